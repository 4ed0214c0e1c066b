/**
 * What tracing costs (issue 19): `npm run bench:tracing [-- --quick] [-- --rounds N]
 * [-- --baseline-dist DIR]`.
 *
 * Unary gRPC through the gateway (h2load, as in bench/run.ts), throughput at c=64 and
 * latency at c=1, in the same run for each variant:
 *   direct          h2load straight to the fake upstream (HTTP/1.1): the floor of all
 *   baseline        (with --baseline-dist) another build's gateway, e.g. main before tracing existed
 *   off             this build, no OTEL_* variable (nothing of OpenTelemetry loaded)
 *   off+parent      the same, every call carrying a traceparent (forwarded upstream as is)
 *   on              OTEL_EXPORTER_OTLP_ENDPOINT set: every call sampled, two spans exported
 *                   over OTLP http/protobuf to a receiver on 127.0.0.1 (in this process)
 *   on+parent       the same, every call continuing a caller's trace
 * Variants run in turn within each round, rounds alternate the order; medians are printed.
 * Processes, pinning and the h2load runner are bench/lib's. Everything stays on 127.0.0.1.
 */
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { connect } from "node:http2";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runH2load, type H2loadResult } from "./lib/h2load.js";
import { freePort, hasCommand, hasTaskset, start, stopAll, waitQuiet, type Proc } from "./lib/proc.js";
import { fmt, median, signed } from "./lib/stats.js";
import { CHAT_PATH, GRPC_UNARY_PATH, grpcRequestBody, jsonRequestBody } from "./lib/wire.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const FAKE_KEY = "csk-bench-tracing-0123456789";
const TRACEPARENT = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

type Variant = "direct" | "baseline" | "off" | "off+parent" | "on" | "on+parent";

interface Settings {
  readonly rounds: number;
  readonly warmS: number;
  readonly runS: number;
}

interface Figures {
  /** c=64 requests/s. */
  readonly rps: number;
  /** c=1 latency, ms. */
  readonly p50: number;
  readonly p99: number;
  /** The gateway's (direct: the fake's) CPU µs per request at c=64. */
  readonly cpuUsPerRequest: number;
  readonly failures: number;
}

const cores = availableParallelism();
const pin = hasTaskset() && cores >= 2 ? { fake: "0", gateway: "1", loadgen: "0" } : { fake: undefined, gateway: undefined, loadgen: undefined };

function baseEnv(): Record<string, string> {
  return { PATH: process.env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin" };
}

/** An OTLP/HTTP receiver that reads and drops what it gets (counting it), so the exporter's cost is the gateway's, not a collector's. */
async function startSink(): Promise<{ endpoint: string; requests: () => number; bytes: () => number; close: () => Promise<void> }> {
  let requests = 0;
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on("data", (b: Buffer) => (bytes += b.length));
    req.on("end", () => {
      requests++;
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    requests: () => requests,
    bytes: () => bytes,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

async function startFake(snapshot: string): Promise<{ proc: Proc; port: number; url: string }> {
  const args = [join(snapshot, "dist/src/fake-upstream/main.js"), "--port", "0", "--token-delay-ms", "0", "--fixed-tokens", "16", "--api-key", FAKE_KEY];
  const proc = start("fake", process.execPath, args, { cpus: pin.fake, env: baseEnv() });
  const line = await proc.waitForLine((l) => l.startsWith("{"), 10_000);
  const { url, port } = JSON.parse(line) as { url: string; port: number };
  return { proc, port, url };
}

async function startGateway(main: string, fakeUrl: string, env: Record<string, string>, work: string, name: string): Promise<{ proc: Proc; port: number }> {
  const port = await freePort();
  const proc = start("gateway", process.execPath, [main], {
    cpus: pin.gateway,
    env: { ...baseEnv(), CEREBRAS_API_KEY: FAKE_KEY, CEREBRAS_BASE_URL: fakeUrl, GRPC_HOST: "127.0.0.1", GRPC_PORT: String(port), HTTP_ENABLED: "false", METRICS_PORT: "0", LOG_LEVEL: "warn", SHUTDOWN_GRACE_S: "1", ...env },
    stdoutFile: join(work, `${name}.log`),
    stderrFile: join(work, `${name}.stderr`),
  });
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (!proc.running) throw new Error(`${name} exited at start-up: ${proc.stderr().slice(-2000)}`);
    if (await unaryOnce(port)) return { proc, port };
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`${name} not ready within 15 s`);
    }
    await sleep(100);
  }
}

/** One unary gRPC call; true when it answered grpc-status 0. */
function unaryOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const session = connect(`http://127.0.0.1:${port}`);
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      session.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 2000);
    session.on("error", () => done(false));
    const req = session.request({ ":method": "POST", ":path": GRPC_UNARY_PATH, "content-type": "application/grpc", te: "trailers" });
    let status: string | undefined;
    req.on("response", (h) => (status = h["grpc-status"] === undefined ? status : String(h["grpc-status"])));
    req.on("trailers", (h) => (status = h["grpc-status"] === undefined ? status : String(h["grpc-status"])));
    req.on("data", () => {});
    req.on("error", () => done(false));
    req.on("close", () => done(status === "0"));
    req.end(grpcRequestBody());
  });
}

interface RunContext {
  readonly s: Settings;
  readonly work: string;
  readonly snapshot: string;
  readonly baselineMain: string | undefined;
  readonly grpcBody: string;
  readonly jsonBody: string;
}

async function measure(ctx: RunContext, variant: Variant, fake: { proc: Proc; port: number; url: string }): Promise<Figures & { exportedKb?: number }> {
  await waitQuiet(5000);
  const h2 = (port: number, direct: boolean, c: number, peers: Proc[], headers: string[]): Promise<H2loadResult> =>
    runH2load({
      cpus: pin.loadgen,
      url: `http://127.0.0.1:${port}${direct ? CHAT_PATH : GRPC_UNARY_PATH}`,
      bodyFile: direct ? ctx.jsonBody : ctx.grpcBody,
      headers: direct ? ["content-type: application/json", `authorization: Bearer ${FAKE_KEY}`] : ["content-type: application/grpc", "te: trailers", ...headers],
      h1: direct,
      connections: direct ? c : 1,
      streamsPerConnection: direct ? 1 : c,
      warmupS: ctx.s.warmS,
      durationS: ctx.s.runS,
      logFile: join(ctx.work, "h2load.log"),
      peers,
    });

  if (variant === "direct") {
    const lat = await h2(fake.port, true, 1, [fake.proc], []);
    const tput = await h2(fake.port, true, 64, [fake.proc], []);
    return { rps: tput.rps, p50: lat.latency.p50, p99: lat.latency.p99, cpuUsPerRequest: ((tput.cpu["fake"] ?? NaN) / 100 / tput.rps) * 1e6, failures: lat.failures + tput.failures };
  }

  const sink = variant.startsWith("on") ? await startSink() : undefined;
  const env: Record<string, string> = sink === undefined ? {} : { OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint, OTEL_SERVICE_NAME: "bench" };
  const main = variant === "baseline" ? ctx.baselineMain! : join(ctx.snapshot, "dist/src/main.js");
  const gw = await startGateway(main, fake.url, env, ctx.work, variant.replace("+", "-"));
  try {
    const headers = variant.endsWith("+parent") ? [TRACEPARENT] : [];
    // JIT warm-up before the first measured run.
    await h2(gw.port, false, 16, [gw.proc], headers);
    const lat = await h2(gw.port, false, 1, [gw.proc], headers);
    const tput = await h2(gw.port, false, 64, [gw.proc], headers);
    if (!gw.proc.running) throw new Error(`${variant}: the gateway died: ${gw.proc.stderr().slice(-2000)}`);
    const figures = { rps: tput.rps, p50: lat.latency.p50, p99: lat.latency.p99, cpuUsPerRequest: ((tput.cpu["gateway"] ?? NaN) / 100 / tput.rps) * 1e6, failures: lat.failures + tput.failures };
    await gw.proc.stop(); // flushes the last batch of spans
    if (sink === undefined) return figures;
    if (sink.requests() === 0) throw new Error(`${variant}: no span reached the OTLP receiver`);
    return { ...figures, exportedKb: sink.bytes() / 1024 };
  } finally {
    await gw.proc.stop();
    await sink?.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: "boolean", default: false }, rounds: { type: "string" }, "baseline-dist": { type: "string" }, json: { type: "string" } } });
  if (!hasCommand("h2load")) throw new Error("h2load is needed (apt-get install nghttp2-client)");
  const s: Settings = values.quick ? { rounds: Number(values.rounds ?? 1), warmS: 1, runS: 2 } : { rounds: Number(values.rounds ?? 2), warmS: 2, runS: 5 };
  const work = mkdtempSync(join(tmpdir(), "gateway-bench-tracing-"));
  // A snapshot of dist/ (node_modules linked), so a rebuild during the run changes nothing.
  const snapshot = join(work, "snapshot");
  cpSync(join(ROOT, "dist"), join(snapshot, "dist"), { recursive: true });
  cpSync(join(ROOT, "package.json"), join(snapshot, "package.json"));
  symlinkSync(join(ROOT, "node_modules"), join(snapshot, "node_modules"));
  const baselineMain = values["baseline-dist"] === undefined ? undefined : resolve(values["baseline-dist"], "src/main.js");
  const grpcBody = join(work, "grpc.body");
  const jsonBody = join(work, "json.body");
  writeFileSync(grpcBody, grpcRequestBody());
  writeFileSync(jsonBody, jsonRequestBody(false));
  const ctx: RunContext = { s, work, snapshot, baselineMain, grpcBody, jsonBody };

  const variants: Variant[] = ["direct", ...(baselineMain === undefined ? [] : (["baseline"] as const)), "off", "off+parent", "on", "on+parent"];
  const results = new Map<Variant, Array<Figures & { exportedKb?: number }>>();
  const fake = await startFake(snapshot);
  try {
    for (let round = 0; round < s.rounds; round++) {
      const order = round % 2 === 0 ? variants : [...variants].reverse();
      for (const v of order) {
        process.stderr.write(`bench:tracing round ${round + 1}/${s.rounds}: ${v}\n`);
        const r = await measure(ctx, v, fake);
        results.set(v, [...(results.get(v) ?? []), r]);
      }
    }
  } finally {
    await fake.proc.stop();
    await stopAll();
  }

  const med = (v: Variant, f: (x: Figures & { exportedKb?: number }) => number | undefined): number => median((results.get(v) ?? []).map((x) => f(x) ?? NaN));
  const ref: Variant = baselineMain === undefined ? "off" : "baseline";
  const rows = variants.map((v) => ({
    variant: v,
    rps: med(v, (x) => x.rps),
    p50: med(v, (x) => x.p50),
    p99: med(v, (x) => x.p99),
    cpu: med(v, (x) => x.cpuUsPerRequest),
    failures: (results.get(v) ?? []).reduce((a, x) => a + x.failures, 0),
    exportedKb: med(v, (x) => x.exportedKb),
  }));
  const refRow = rows.find((r) => r.variant === ref)!;
  const lines = [
    `Tracing cost, unary gRPC through the gateway; medians of ${s.rounds} round(s), ${s.warmS} s warm-up + ${s.runS} s per run.`,
    `Node ${process.version}, ${cores} cores, ${pin.gateway === undefined ? "not pinned" : "gateway alone on CPU 1, fake upstream and h2load on CPU 0"}; Δ against "${ref}".`,
    "",
    "| variant | c=64 req/s | Δ req/s | c=1 p50 ms | c=1 p99 ms | Δ p50 ms | gateway CPU µs/req (c=64) | exported (KiB per run) | failures |",
    "|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${r.variant} | ${fmt(r.rps)} | ${r.variant === ref || r.variant === "direct" ? "" : `${signed(((r.rps - refRow.rps) / refRow.rps) * 100, 1)} %`} | ${fmt(r.p50, 3)} | ${fmt(r.p99, 3)} | ${r.variant === ref || r.variant === "direct" ? "" : signed(r.p50 - refRow.p50, 3)} | ${fmt(r.cpu)}${r.variant === "direct" ? " (fake)" : ""} | ${Number.isNaN(r.exportedKb) ? "" : fmt(r.exportedKb)} | ${r.failures} |`,
    ),
  ];
  process.stdout.write(`${lines.join("\n")}\n\nscratch: ${work}\n`);
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify({ settings: s, rows }, null, 2));
  if (!values.quick) return;
  rmSync(join(work, "h2load.log"), { force: true });
}

main().catch(async (err: unknown) => {
  await stopAll();
  process.stderr.write(`bench:tracing failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
