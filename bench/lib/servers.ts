/**
 * The processes a scenario measures: the fake Cerebras, the gateway and the stack's floor,
 * each started in its own process group (bench/lib/proc.ts), with a preflight that a real
 * call succeeds; and small HTTP/gRPC clients for preflights and the gateway's /metrics.
 */
import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect } from "node:http2";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ChatCompletion } from "../../gen/aigateway/v1/chat.js";
import { note, type Ctx } from "./context.js";
import { freePort, start, type Proc } from "./proc.js";
import { CHAT_PATH, GRPC_UNARY_PATH, grpcRequestBody, jsonRequestBody } from "./wire.js";

export const FAKE_KEY = "csk-bench-0123456789abcdef";

export function baseEnv(): Record<string, string> {
  // Nothing else is inherited: a developer's CEREBRAS_API_KEY or NODE_OPTIONS must not leak in.
  return { PATH: process.env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin" };
}

export interface Fake {
  readonly proc: Proc;
  readonly port: number;
  readonly url: string;
}

export async function startFake(ctx: Ctx, tokenDelayMs: number, fixedTokens: number): Promise<Fake> {
  const args = [join(ctx.snapshot, "dist/src/fake-upstream/main.js"), "--port", "0", "--token-delay-ms", String(tokenDelayMs), "--fixed-tokens", String(fixedTokens), "--api-key", FAKE_KEY];
  const proc = start("fake", process.execPath, args, { cpus: ctx.layout.fake, env: baseEnv() });
  const line = await proc.waitForLine((l) => l.startsWith("{"), 10_000);
  const { url, port } = JSON.parse(line) as { url: string; port: number };
  await directPreflight(port);
  return { proc, port, url };
}

export interface Gw {
  readonly proc: Proc;
  readonly grpcPort: number;
  /** The HTTP shim's port, when the shim exists and answered its preflight. */
  readonly httpPort: number | undefined;
  readonly logFile: string;
}

export interface GwOptions {
  readonly name: string;
  readonly logLevel: "warn" | "info";
  readonly env?: Readonly<Record<string, string>>;
  /** Write a CPU profile to this file (directory and name) when the gateway exits. */
  readonly cpuProfile?: { readonly dir: string; readonly name: string };
}

export async function startGw(ctx: Ctx, fake: Fake, o: GwOptions): Promise<Gw> {
  const grpcPort = await freePort();
  const httpPort = ctx.shim ? await freePort() : undefined;
  const logFile = join(ctx.work, `${o.name}.log`);
  const nodeArgs = o.cpuProfile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${o.cpuProfile.dir}`, `--cpu-prof-name=${o.cpuProfile.name}`, "--cpu-prof-interval=250"];
  const env: Record<string, string> = {
    ...baseEnv(),
    CEREBRAS_API_KEY: FAKE_KEY,
    CEREBRAS_BASE_URL: fake.url,
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: String(grpcPort),
    LOG_LEVEL: o.logLevel,
    SHUTDOWN_GRACE_S: "1",
    ...(httpPort !== undefined ? { HTTP_HOST: "127.0.0.1", HTTP_PORT: String(httpPort) } : {}),
    ...ctx.gatewayEnv,
    ...o.env,
  };
  const proc = start("gateway", process.execPath, [...ctx.gatewayNodeArgs, ...nodeArgs, join(ctx.snapshot, "dist/src/main.js")], { cpus: ctx.layout.gateway, env, stdoutFile: logFile, stderrFile: join(ctx.work, `${o.name}.stderr`) });

  // Ready = a real call succeeds (at LOG_LEVEL=warn there is no "listening" line to wait for).
  const deadline = Date.now() + 15_000;
  let last = "";
  for (;;) {
    if (!proc.running) throw new Error(`gateway exited at start-up: ${proc.stderr().slice(-2000)}`);
    const r = await grpcUnaryOnce(grpcPort, 2000);
    if (r.ok) break;
    last = r.detail;
    if (Date.now() > deadline) {
      await proc.stop();
      throw new Error(`gateway not ready within 15 s: ${last}`);
    }
    await sleep(100);
  }

  let shimPort: number | undefined;
  if (httpPort !== undefined) {
    const r = await httpPost(httpPort, CHAT_PATH, jsonRequestBody(false), 5000).catch((err: unknown) => ({ status: 0, text: String(err) }));
    const ok = r.status === 200 && r.text.includes('"choices"');
    if (ok) shimPort = httpPort;
    else note(ctx, `HTTP shim preflight failed (HTTP ${r.status}: ${r.text.slice(0, 200)}); its rows are skipped`);
  }
  return { proc, grpcPort, httpPort: shimPort, logFile };
}

/**
 * The stack's floor (bench/floor.ts): a bare grpc-js relay of raw bytes, on the gateway's
 * core and paths. Its rows show what grpc-js, node:http2 and undici cost on their own.
 */
export async function startFloor(ctx: Ctx, fake: Fake, name: string): Promise<Gw> {
  const grpcPort = await freePort();
  const logFile = join(ctx.work, `${name}.log`);
  const env = { ...baseEnv(), CEREBRAS_API_KEY: FAKE_KEY, CEREBRAS_BASE_URL: fake.url, GRPC_HOST: "127.0.0.1", GRPC_PORT: String(grpcPort) };
  const proc = start("floor", process.execPath, [join(ctx.snapshot, "dist/bench/floor.js")], { cpus: ctx.layout.gateway, env, stderrFile: join(ctx.work, `${name}.stderr`) });
  await proc.waitForLine((l) => l === "floor listening", 10_000);
  return { proc, grpcPort, httpPort: undefined, logFile };
}

/** Throws when a process the scenario depends on has died (its figures would be nonsense). */
export function alive(...procs: readonly Proc[]): void {
  for (const p of procs) {
    if (!p.running) throw new Error(`${p.name} exited during the run; its stderr ends with:\n${p.stderr().slice(-3000)}`);
  }
}

/** One unary gRPC call over node:http2; ok when grpc-status is 0 and the reply decodes to the fake's text. */
export function grpcUnaryOnce(port: number, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const session = connect(`http://127.0.0.1:${port}`);
    const done = (ok: boolean, detail: string): void => {
      clearTimeout(timer);
      session.destroy();
      resolve({ ok, detail });
    };
    const timer = setTimeout(() => done(false, "timeout"), timeoutMs);
    session.on("error", (err) => done(false, err.message));
    const req = session.request({ ":method": "POST", ":path": GRPC_UNARY_PATH, "content-type": "application/grpc", te: "trailers" });
    const parts: Buffer[] = [];
    let grpcStatus: string | undefined;
    req.on("response", (h) => {
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
    });
    req.on("trailers", (h) => {
      if (h["grpc-status"] !== undefined) grpcStatus = String(h["grpc-status"]);
    });
    req.on("data", (b: Buffer) => parts.push(b));
    req.on("error", (err) => done(false, err.message));
    req.on("close", () => {
      if (grpcStatus !== "0") return done(false, `grpc-status ${grpcStatus}`);
      try {
        const body = Buffer.concat(parts);
        const reply = ChatCompletion.decode(body.subarray(5, 5 + body.readUInt32BE(1)));
        const text = reply.choices[0]?.message?.content ?? "";
        done(text.startsWith("token"), `reply text ${JSON.stringify(text.slice(0, 40))}`);
      } catch (err) {
        done(false, `undecodable reply: ${String(err)}`);
      }
    });
    req.end(grpcRequestBody());
  });
}

export function httpPost(port: number, path: string, body: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  return httpCall(port, "POST", path, body, timeoutMs);
}

export function httpCall(port: number, method: "GET" | "POST", path: string, body: string | undefined, timeoutMs: number): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { authorization: `Bearer ${FAKE_KEY}` };
    if (body !== undefined) Object.assign(headers, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
    const req = httpRequest({ host: "127.0.0.1", port, path, method, timeout: timeoutMs, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (t: string) => (text += t));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(body);
  });
}

/** The gateway's V8 heap as its /metrics reports it (process metrics), in bytes; undefined without the HTTP port. */
export async function heapOf(gw: Gw): Promise<{ total: number; newSpace: number; oldSpace: number; external: number } | undefined> {
  if (gw.httpPort === undefined) return undefined;
  const r = await httpCall(gw.httpPort, "GET", "/metrics", undefined, 5000).catch(() => undefined);
  if (r === undefined || r.status !== 200) return undefined;
  const value = (pattern: RegExp): number => Number(pattern.exec(r.text)?.[1] ?? Number.NaN);
  return {
    total: value(/^nodejs_heap_size_total_bytes (\S+)$/m),
    newSpace: value(/^nodejs_heap_space_size_total_bytes\{space="new"\} (\S+)$/m),
    oldSpace: value(/^nodejs_heap_space_size_total_bytes\{space="old"\} (\S+)$/m),
    external: value(/^nodejs_external_memory_bytes (\S+)$/m),
  };
}

export async function directPreflight(port: number): Promise<void> {
  const r = await httpPost(port, CHAT_PATH, jsonRequestBody(false), 5000);
  if (r.status !== 200 || !r.text.includes("token")) throw new Error(`fake upstream preflight failed: HTTP ${r.status} ${r.text.slice(0, 200)}`);
}

/**
 * Failed calls the gateway logged so far (it logs every failure at warn or above), except
 * CANCELLED: h2load and the load generator end a timed run by closing connections with
 * calls still in flight, and the gateway rightly logs those as cancelled by the caller.
 */
export function failedCalls(gw: { readonly logFile: string }): number {
  return logText(gw)
    .split("\n")
    .filter((l) => l.includes('"msg":"call failed"') && !l.includes('"code":"CANCELLED"')).length;
}

export function loggedCalls(gw: Gw): number {
  return logText(gw).split('"msg":"call"').length - 1;
}

/**
 * Times the gateway's limit store went unreachable so far (its log's one line per outage):
 * QUOTA_FAIL_MODE is open by default, so through an outage calls go through unchecked,
 * cheaper than admitted ones, and the gateway's figures are not admission's any more.
 */
export function storeOutages(gw: { readonly logFile: string }): number {
  return logText(gw).split('"msg":"limit store unreachable').length - 1;
}

/** The gateway's log so far; empty before it wrote one. */
function logText(gw: { readonly logFile: string }): string {
  try {
    return readFileSync(gw.logFile, "utf8");
  } catch {
    return "";
  }
}
