/**
 * The benchmark suite (issue 8): `npm run bench [-- --quick] [-- --rounds N] [-- --profile]`.
 *
 * Processes: the fake Cerebras (dist/src/fake-upstream/main.js), the gateway
 * (dist/src/main.js, configured only through its environment), and a load generator
 * (h2load for unary, dist/bench/loadgen.js for streams), each started in its own process
 * group, pinned with taskset where the machine has the cores, and always stopped.
 * Every gateway figure is printed next to the same figure measured direct to the fake
 * upstream in the same round. All traffic stays on 127.0.0.1. See bench/README.md.
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect } from "node:http2";
import { availableParallelism, cpus, release, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ChatCompletion } from "../gen/aigateway/v1/chat.js";
import type { HoldResult, Job, StreamsResult, Target } from "./loadgen.js";
import { formatProfile, summariseProfile } from "./lib/cpuprofile.js";
import { runH2load, type H2loadResult } from "./lib/h2load.js";
import { CpuWindow, freePort, hasCommand, hasTaskset, start, stopAll, waitQuiet, type Proc } from "./lib/proc.js";
import { fmt, median, signed } from "./lib/stats.js";
import { CHAT_PATH, GRPC_STREAM_PATH, GRPC_UNARY_PATH, grpcRequestBody, jsonRequestBody } from "./lib/wire.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const FAKE_KEY = "csk-bench-0123456789abcdef";
/** Snapshots to remove at the end. */
const snapshotDirs: string[] = [];

// ---------------------------------------------------------------------------------------
// Settings

interface Settings {
  readonly quick: boolean;
  readonly rounds: number;
  /** Gateway warm-up before a round's first scenario (JIT), s. */
  readonly gatewayWarmS: number;
  readonly unaryWarmS: number;
  readonly unaryS: number;
  readonly unaryConcurrency: readonly number[];
  readonly infoConcurrency: readonly number[];
  readonly streamWarmMs: number;
  readonly streamMs: number;
  readonly streamConcurrency: readonly number[];
  /** Content tokens per paced stream: with the role and final chunks, 64 messages. */
  readonly streamTokens: number;
  readonly streamDelayMs: number;
  readonly relayConcurrency: number;
  readonly relayTokens: number;
  readonly relayWarmMs: number;
  readonly relayMs: number;
  readonly holdStreams: number;
  readonly holdDelayMs: number;
  readonly holdTokens: number;
  /** RSS is read this many seconds after the held streams end. */
  readonly settleS: readonly number[];
  /** Before each measured run: wait at most this long for other processes to leave the CPUs alone. */
  readonly quietWaitMs: number;
}

function settings(quick: boolean, rounds: number | undefined): Settings {
  const common = {
    unaryConcurrency: [1, 16, 64],
    infoConcurrency: [1, 64],
    streamConcurrency: [1, 64],
    streamTokens: 62,
    streamDelayMs: 1,
    relayConcurrency: 16,
    relayTokens: 2000,
  };
  return quick
    ? { ...common, quick, rounds: rounds ?? 1, gatewayWarmS: 1, unaryWarmS: 1, unaryS: 1, streamWarmMs: 300, streamMs: 1000, relayWarmMs: 300, relayMs: 1000, holdStreams: 200, holdDelayMs: 100, holdTokens: 10, settleS: [2], quietWaitMs: 3000 }
    : { ...common, quick, rounds: rounds ?? 2, gatewayWarmS: 3, unaryWarmS: 2, unaryS: 5, streamWarmMs: 1000, streamMs: 5000, relayWarmMs: 1000, relayMs: 5000, holdStreams: 1000, holdDelayMs: 200, holdTokens: 30, settleS: [2, 10, 30], quietWaitMs: 60_000 };
}

/** Which CPU each process gets. */
interface Layout {
  readonly fake: string | undefined;
  readonly gateway: string | undefined;
  readonly loadgen: string | undefined;
  readonly description: string;
}

function layout(cores: number): Layout {
  if (!hasTaskset()) return { fake: undefined, gateway: undefined, loadgen: undefined, description: "not pinned (taskset unavailable)" };
  if (cores >= 3) return { fake: "0", gateway: "1", loadgen: "2", description: "fake upstream on CPU 0, gateway on CPU 1, load generator (and the bench itself) on CPU 2" };
  if (cores === 2) {
    return {
      fake: "0",
      gateway: "1",
      loadgen: "0",
      description:
        "gateway alone on CPU 1; fake upstream and load generator (and the bench itself) share CPU 0 — only 2 cores, so the load generator shares a core with the upstream, in the direct runs and the gateway runs alike",
    };
  }
  return { fake: undefined, gateway: undefined, loadgen: undefined, description: "not pinned (1 core)" };
}

// ---------------------------------------------------------------------------------------
// Context and processes

interface Ctx {
  readonly s: Settings;
  readonly layout: Layout;
  /** Scratch directory: logs, bodies, profiles, results.json. */
  readonly work: string;
  /** A copy of dist/ the processes run from, so a rebuild during the run changes nothing. */
  readonly snapshot: string;
  readonly shim: boolean;
  readonly grpcBodyFile: string;
  readonly jsonBodyFile: string;
  readonly notes: string[];
  /** Scenario groups to run (--only). */
  readonly groups: ReadonlySet<Group>;
  /** Extra node options for the gateway process (--gateway-node-args), for before/after experiments. */
  readonly gatewayNodeArgs: readonly string[];
  /** Extra environment for every gateway (--gateway-env K=V,K=V), e.g. METRICS_ENABLED=false. */
  readonly gatewayEnv: Readonly<Record<string, string>>;
}

const GROUPS = ["unary", "stream", "info", "floor", "relay", "memory"] as const;
type Group = (typeof GROUPS)[number];

function baseEnv(): Record<string, string> {
  // Nothing else is inherited: a developer's CEREBRAS_API_KEY or NODE_OPTIONS must not leak in.
  return { PATH: process.env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin" };
}

interface Fake {
  readonly proc: Proc;
  readonly port: number;
  readonly url: string;
}

async function startFake(ctx: Ctx, tokenDelayMs: number, fixedTokens: number): Promise<Fake> {
  const args = [join(ctx.snapshot, "dist/src/fake-upstream/main.js"), "--port", "0", "--token-delay-ms", String(tokenDelayMs), "--fixed-tokens", String(fixedTokens), "--api-key", FAKE_KEY];
  const proc = start("fake", process.execPath, args, { cpus: ctx.layout.fake, env: baseEnv() });
  const line = await proc.waitForLine((l) => l.startsWith("{"), 10_000);
  const { url, port } = JSON.parse(line) as { url: string; port: number };
  await directPreflight(port);
  return { proc, port, url };
}

interface Gw {
  readonly proc: Proc;
  readonly grpcPort: number;
  /** The HTTP shim's port, when the shim exists and answered its preflight. */
  readonly httpPort: number | undefined;
  readonly logFile: string;
}

interface GwOptions {
  readonly name: string;
  readonly logLevel: "warn" | "info";
  readonly env?: Readonly<Record<string, string>>;
  /** Write a CPU profile to this file (directory and name) when the gateway exits. */
  readonly cpuProfile?: { readonly dir: string; readonly name: string };
}

async function startGw(ctx: Ctx, fake: Fake, o: GwOptions): Promise<Gw> {
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
async function startFloor(ctx: Ctx, fake: Fake, name: string): Promise<Gw> {
  const grpcPort = await freePort();
  const logFile = join(ctx.work, `${name}.log`);
  const env = { ...baseEnv(), CEREBRAS_API_KEY: FAKE_KEY, CEREBRAS_BASE_URL: fake.url, GRPC_HOST: "127.0.0.1", GRPC_PORT: String(grpcPort) };
  const proc = start("floor", process.execPath, [join(ctx.snapshot, "dist/bench/floor.js")], { cpus: ctx.layout.gateway, env, stderrFile: join(ctx.work, `${name}.stderr`) });
  await proc.waitForLine((l) => l === "floor listening", 10_000);
  return { proc, grpcPort, httpPort: undefined, logFile };
}

/** Throws when a process the scenario depends on has died (its figures would be nonsense). */
function alive(...procs: readonly Proc[]): void {
  for (const p of procs) {
    if (!p.running) throw new Error(`${p.name} exited during the run; its stderr ends with:\n${p.stderr().slice(-3000)}`);
  }
}

function note(ctx: Ctx, text: string): void {
  if (!ctx.notes.includes(text)) ctx.notes.push(text);
  process.stderr.write(`bench: ${text}\n`);
}

/** One unary gRPC call over node:http2; ok when grpc-status is 0 and the reply decodes to the fake's text. */
function grpcUnaryOnce(port: number, timeoutMs: number): Promise<{ ok: boolean; detail: string }> {
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

function httpPost(port: number, path: string, body: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  return httpCall(port, "POST", path, body, timeoutMs);
}

function httpCall(port: number, method: "GET" | "POST", path: string, body: string | undefined, timeoutMs: number): Promise<{ status: number; text: string }> {
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
async function heapOf(gw: Gw): Promise<{ total: number; newSpace: number; oldSpace: number; external: number } | undefined> {
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

async function directPreflight(port: number): Promise<void> {
  const r = await httpPost(port, CHAT_PATH, jsonRequestBody(false), 5000);
  if (r.status !== 200 || !r.text.includes("token")) throw new Error(`fake upstream preflight failed: HTTP ${r.status} ${r.text.slice(0, 200)}`);
}

/**
 * Failed calls the gateway logged so far (it logs every failure at warn or above), except
 * CANCELLED: h2load and the load generator end a timed run by closing connections with
 * calls still in flight, and the gateway rightly logs those as cancelled by the caller.
 */
function failedCalls(gw: Gw): number {
  try {
    return readFileSync(gw.logFile, "utf8")
      .split("\n")
      .filter((l) => l.includes('"msg":"call failed"') && !l.includes('"code":"CANCELLED"')).length;
  } catch {
    return 0;
  }
}

/** Before a measured run: give other processes' bursts (builds, tests) a chance to pass, and say so if they do not. */
async function quiet(ctx: Ctx, what: string): Promise<void> {
  const busy = await waitQuiet(ctx.s.quietWaitMs);
  if (busy >= 15) note(ctx, `the machine was busy (${busy.toFixed(0)}% of a core used by other processes) when "${what}" started; see the "other" CPU figures`);
}

function loggedCalls(gw: Gw): number {
  try {
    return readFileSync(gw.logFile, "utf8").split('"msg":"call"').length - 1;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------
// Load

type UnaryTarget = { readonly kind: "direct"; readonly fake: Fake } | { readonly kind: "grpc"; readonly gw: Gw; readonly fake: Fake } | { readonly kind: "http"; readonly gw: Gw; readonly fake: Fake };

async function unary(ctx: Ctx, target: UnaryTarget, concurrency: number, opts: { warmupS?: number; durationS?: number; requests?: number } = {}): Promise<H2loadResult & { errors: number }> {
  const grpc = target.kind === "grpc";
  const port = target.kind === "direct" ? target.fake.port : grpc ? target.gw.grpcPort : target.gw.httpPort!;
  const peers = target.kind === "direct" ? [target.fake.proc] : [target.gw.proc, target.fake.proc];
  const before = target.kind === "direct" ? 0 : failedCalls(target.gw);
  if (opts.requests === undefined) await quiet(ctx, `unary ${target.kind} c=${concurrency}`);
  const r = await runH2load({
    cpus: ctx.layout.loadgen,
    url: `http://127.0.0.1:${port}${grpc ? GRPC_UNARY_PATH : CHAT_PATH}`,
    bodyFile: grpc ? ctx.grpcBodyFile : ctx.jsonBodyFile,
    headers: grpc ? ["content-type: application/grpc", "te: trailers"] : ["content-type: application/json", `authorization: Bearer ${FAKE_KEY}`],
    h1: !grpc,
    // gRPC: one connection with `concurrency` streams, as one grpc-js channel; HTTP/1.1: a connection per request in flight.
    connections: grpc ? 1 : concurrency,
    streamsPerConnection: grpc ? concurrency : 1,
    warmupS: opts.warmupS ?? ctx.s.unaryWarmS,
    durationS: opts.durationS ?? ctx.s.unaryS,
    requests: opts.requests,
    logFile: join(ctx.work, "h2load.log"),
    peers,
  });
  alive(...peers);
  const errors = r.failures + (target.kind === "direct" ? 0 : failedCalls(target.gw) - before);
  return { ...r, errors };
}

async function runJob(ctx: Ctx, job: Job, peers: readonly Proc[], onAllOpen?: () => void): Promise<{ result: StreamsResult | HoldResult; cpu: Record<string, number> }> {
  const proc = start("loadgen", process.execPath, [join(ctx.snapshot, "dist/bench/loadgen.js"), JSON.stringify(job)], { cpus: ctx.layout.loadgen, env: baseEnv() });
  let window: CpuWindow | undefined;
  let cpu: Record<string, number> = {};
  let result: StreamsResult | HoldResult | undefined;
  proc.onLine((line) => {
    let msg: { event?: string };
    try {
      msg = JSON.parse(line) as { event?: string };
    } catch {
      return;
    }
    if (msg.event === "measure-start") window = new CpuWindow([proc, ...peers]);
    else if (msg.event === "measure-end" && window !== undefined) cpu = window.end();
    else if (msg.event === "all-open") onAllOpen?.();
    else if (msg.event === "result") result = msg as StreamsResult | HoldResult;
  });
  const bound = (job.mode === "streams" ? job.warmupMs + job.durationMs + job.drainMs : job.timeoutMs) + 15_000;
  const finished = await Promise.race([proc.exited.then(() => true), sleep(bound, undefined, { ref: false }).then(() => false)]);
  if (!finished) {
    await proc.stop(1000);
    throw new Error(`load generator did not finish within ${bound} ms`);
  }
  if (result === undefined) throw new Error(`load generator gave no result: ${proc.stderr().slice(-2000)}`);
  return { result, cpu };
}

function grpcTarget(gw: Gw, sessions = 1): Target {
  return { kind: "grpc", port: gw.grpcPort, path: GRPC_STREAM_PATH, bodyBase64: grpcRequestBody().toString("base64"), sessions };
}

function sseTarget(port: number): Target {
  return { kind: "sse", port, path: CHAT_PATH, body: jsonRequestBody(true), headers: { authorization: `Bearer ${FAKE_KEY}` } };
}

async function streams(ctx: Ctx, target: Target, peers: readonly Proc[], concurrency: number, warmupMs: number, durationMs: number, expectMessages: number): Promise<{ r: StreamsResult; cpu: Record<string, number> }> {
  if (peers.length > 0) await quiet(ctx, `${target.kind} streams c=${concurrency}`);
  const { result, cpu } = await runJob(ctx, { mode: "streams", target, concurrency, warmupMs, durationMs, expectMessages, drainMs: 30_000 }, peers);
  alive(...peers);
  return { r: result as StreamsResult, cpu };
}

// ---------------------------------------------------------------------------------------
// Results

interface Row {
  readonly scenario: string;
  readonly metric: string;
  readonly round: number;
  readonly direct: number | undefined;
  readonly gateway: number | undefined;
  /** Print the difference and the ratio. */
  readonly compare: boolean;
  readonly cpuGateway?: string | undefined;
  readonly cpuDirect?: string | undefined;
  readonly errors?: string | undefined;
}

const rows: Row[] = [];

/** CPU % of whatever served in the gateway's place: the gateway, or the floor. */
function gatewayCpu(cpu: Record<string, number>): number | undefined {
  return cpu["gateway"] ?? cpu["floor"];
}

function cpuText(cpu: Record<string, number>, withGateway: boolean): string {
  const p = (name: string): string => (cpu[name] === undefined ? "?" : cpu[name]!.toFixed(0));
  const other = (cpu["other"] ?? 0) >= 25 ? ` · **${p("other")}** ⚠` : ` · ${p("other")}`;
  const gw = cpu["gateway"] === undefined && cpu["floor"] !== undefined ? "floor" : "gateway";
  return (withGateway ? `${p(gw)} · ${p("fake")} · ${p("loadgen")}` : `${p("fake")} · ${p("loadgen")}`) + other;
}

function find(scenario: string, metric: string, round: number): Row | undefined {
  return rows.find((r) => r.scenario === scenario && r.metric === metric && r.round === round);
}

function errorsText(direct: number, gateway: number): string | undefined {
  return direct + gateway === 0 ? undefined : `${direct} / ${gateway}`;
}

function addUnaryRows(scenario: string, round: number, d: H2loadResult & { errors: number }, g: H2loadResult & { errors: number }): void {
  rows.push({ scenario, metric: "req/s", round, direct: d.rps, gateway: g.rps, compare: true, cpuDirect: cpuText(d.cpu, false), cpuGateway: cpuText(g.cpu, true), errors: errorsText(d.errors, g.errors) });
  rows.push({ scenario, metric: "p50 ms", round, direct: d.latency.p50, gateway: g.latency.p50, compare: true });
  rows.push({ scenario, metric: "p99 ms", round, direct: d.latency.p99, gateway: g.latency.p99, compare: true });
  rows.push({ scenario, metric: "CPU µs per request (direct: fake; gw: gateway)", round, direct: cpuPer(d.cpu["fake"], d.rps), gateway: cpuPer(gatewayCpu(g.cpu), g.rps), compare: true });
}

/** µs of one process's CPU per unit of work, from its CPU % and the rate. */
function cpuPer(cpuPct: number | undefined, perSecond: number): number | undefined {
  return cpuPct === undefined || perSecond <= 0 ? undefined : (cpuPct / 100 / perSecond) * 1e6;
}

function addStreamRows(scenario: string, round: number, d: { r: StreamsResult; cpu: Record<string, number> }, g: { r: StreamsResult; cpu: Record<string, number> }, durationMs: number): void {
  rows.push({
    scenario,
    metric: "streams/s",
    round,
    direct: d.r.streams / (durationMs / 1000),
    gateway: g.r.streams / (durationMs / 1000),
    compare: true,
    cpuDirect: cpuText(d.cpu, false),
    cpuGateway: cpuText(g.cpu, true),
    errors: errorsText(d.r.errors, g.r.errors),
  });
  rows.push({ scenario, metric: "first message p50 ms", round, direct: d.r.ttfm.p50, gateway: g.r.ttfm.p50, compare: true });
  rows.push({ scenario, metric: "first message p99 ms", round, direct: d.r.ttfm.p99, gateway: g.r.ttfm.p99, compare: true });
  rows.push({ scenario, metric: "stream total p50 ms", round, direct: d.r.total.p50, gateway: g.r.total.p50, compare: true });
  rows.push({ scenario, metric: "stream total p99 ms", round, direct: d.r.total.p99, gateway: g.r.total.p99, compare: true });
  const rate = (x: StreamsResult): number => x.windowMessages / (durationMs / 1000);
  rows.push({ scenario, metric: "CPU µs per message (direct: fake; gw: gateway)", round, direct: cpuPer(d.cpu["fake"], rate(d.r)), gateway: cpuPer(gatewayCpu(g.cpu), rate(g.r)), compare: true });
  for (const [who, x] of [["direct", d.r], ["gateway", g.r]] as const) {
    if (x.firstError !== undefined) process.stderr.write(`bench: ${scenario} round ${round} ${who}: ${x.errors} failed streams, e.g. ${x.firstError}\n`);
  }
}

// ---------------------------------------------------------------------------------------
// Scenarios

/** JIT warm-up: unary and streaming calls before anything is measured. */
async function warmGateway(ctx: Ctx, gw: Gw, fake: Fake, streamTokens: number): Promise<void> {
  await unary(ctx, { kind: "grpc", gw, fake }, 16, { warmupS: 0.5, durationS: ctx.s.gatewayWarmS });
  if (gw.httpPort !== undefined) await unary(ctx, { kind: "http", gw, fake }, 16, { warmupS: 0.5, durationS: 1 });
  await streams(ctx, grpcTarget(gw), [], 8, 0, 1000, streamTokens + 2);
}

async function ordered<A, B>(gatewayFirst: boolean, direct: () => Promise<A>, gateway: () => Promise<B>): Promise<[A, B]> {
  if (gatewayFirst) {
    const g = await gateway();
    return [await direct(), g];
  }
  const d = await direct();
  return [d, await gateway()];
}

/** The round's direct stream figures by concurrency, for the floor's rows. */
const streamDirect = new Map<number, { r: StreamsResult; cpu: Record<string, number> }>();

async function unaryAndStreaming(ctx: Ctx, round: number): Promise<void> {
  const s = ctx.s;
  const gatewayFirst = round % 2 === 0; // alternate the order so neither side always runs on a warmer machine
  const fake = await startFake(ctx, s.streamDelayMs, s.streamTokens);
  let gw = await startGw(ctx, fake, { name: `gateway-r${round}-warn`, logLevel: "warn" });
  const directUnary = new Map<number, H2loadResult & { errors: number }>();
  streamDirect.clear();
  try {
    await warmGateway(ctx, gw, fake, s.streamTokens);
    for (const c of ctx.groups.has("unary") || ctx.groups.has("info") ? s.unaryConcurrency : []) {
      if (!ctx.groups.has("unary") && !s.infoConcurrency.includes(c)) continue;
      log(`round ${round}: unary c=${c}`);
      const [d, g] = await ordered(gatewayFirst, () => unary(ctx, { kind: "direct", fake }, c), () => unary(ctx, { kind: "grpc", gw, fake }, c));
      directUnary.set(c, d);
      addUnaryRows(`unary gRPC c=${c}`, round, d, g);
      if (gw.httpPort !== undefined) addUnaryRows(`unary HTTP shim c=${c}`, round, d, await unary(ctx, { kind: "http", gw, fake }, c));
    }
    const expect = s.streamTokens + 2;
    for (const c of ctx.groups.has("stream") ? s.streamConcurrency : []) {
      log(`round ${round}: streaming c=${c}`);
      const [d, g] = await ordered(
        gatewayFirst,
        () => streams(ctx, sseTarget(fake.port), [fake.proc], c, s.streamWarmMs, s.streamMs, expect),
        () => streams(ctx, grpcTarget(gw), [gw.proc, fake.proc], c, s.streamWarmMs, s.streamMs, expect),
      );
      streamDirect.set(c, d);
      addStreamRows(`stream gRPC c=${c}, ${expect} msgs, ${s.streamDelayMs} ms pacing`, round, d, g, s.streamMs);
      if (gw.httpPort !== undefined) {
        const h = await streams(ctx, sseTarget(gw.httpPort), [gw.proc, fake.proc], c, s.streamWarmMs, s.streamMs, expect);
        addStreamRows(`stream HTTP shim c=${c}, ${expect} msgs, ${s.streamDelayMs} ms pacing`, round, d, h, s.streamMs);
      }
    }
    await gw.proc.stop();
    if (ctx.groups.has("floor")) await floorRows(ctx, round, fake, directUnary);
    if (!ctx.groups.has("info")) return;

    // The same unary load with one JSON log line per call, to show what it costs.
    gw = await startGw(ctx, fake, { name: `gateway-r${round}-info`, logLevel: "info" });
    await warmGateway(ctx, gw, fake, s.streamTokens);
    for (const c of s.infoConcurrency) {
      log(`round ${round}: unary c=${c}, LOG_LEVEL=info`);
      const before = loggedCalls(gw);
      const g = await unary(ctx, { kind: "grpc", gw, fake }, c);
      const logged = loggedCalls(gw) - before;
      // Every call (warm-up phase included) logs one line; fewer means the log is not what we think.
      if (logged < g.requests) note(ctx, `LOG_LEVEL=info run logged ${logged} call lines for ${g.requests} measured calls`);
      addUnaryRows(`unary gRPC c=${c}, LOG_LEVEL=info`, round, directUnary.get(c)!, g);
    }
  } finally {
    await gw.proc.stop();
    await fake.proc.stop();
  }
}

/** The floor's unary and streaming rows, against the same round's direct figures (run when the gateway's ran). */
async function floorRows(ctx: Ctx, round: number, fake: Fake, directUnary: ReadonlyMap<number, H2loadResult & { errors: number }>): Promise<void> {
  const s = ctx.s;
  const floor = await startFloor(ctx, fake, `floor-r${round}`);
  try {
    await unary(ctx, { kind: "grpc", gw: floor, fake }, 16, { warmupS: 0.5, durationS: ctx.s.gatewayWarmS });
    for (const c of s.unaryConcurrency) {
      log(`round ${round}: unary c=${c}, floor`);
      const d = directUnary.get(c) ?? (await unary(ctx, { kind: "direct", fake }, c));
      addUnaryRows(`unary gRPC c=${c}, floor (bare grpc-js relay)`, round, d, await unary(ctx, { kind: "grpc", gw: floor, fake }, c));
    }
    const expect = s.streamTokens + 2;
    for (const c of s.streamConcurrency) {
      log(`round ${round}: streaming c=${c}, floor`);
      const d = streamDirect.get(c) ?? (await streams(ctx, sseTarget(fake.port), [fake.proc], c, s.streamWarmMs, s.streamMs, expect));
      const f = await streams(ctx, grpcTarget(floor), [floor.proc, fake.proc], c, s.streamWarmMs, s.streamMs, expect);
      addStreamRows(`stream gRPC c=${c}, ${expect} msgs, floor (bare grpc-js relay)`, round, d, f, s.streamMs);
    }
  } finally {
    await floor.proc.stop();
  }
}

async function relay(ctx: Ctx, round: number): Promise<void> {
  const s = ctx.s;
  log(`round ${round}: relay capacity`);
  const fake = await startFake(ctx, 0, s.relayTokens);
  const gw = await startGw(ctx, fake, { name: `gateway-r${round}-relay`, logLevel: "warn" });
  try {
    await warmGateway(ctx, gw, fake, s.relayTokens);
    const expect = s.relayTokens + 2;
    const [d, g] = await ordered(
      round % 2 === 0,
      () => streams(ctx, sseTarget(fake.port), [fake.proc], s.relayConcurrency, s.relayWarmMs, s.relayMs, expect),
      () => streams(ctx, grpcTarget(gw), [gw.proc, fake.proc], s.relayConcurrency, s.relayWarmMs, s.relayMs, expect),
    );
    const scenario = `relay, ${s.relayConcurrency} unpaced streams of ${expect} msgs`;
    const dRate = d.r.windowMessages / (s.relayMs / 1000);
    const gRate = g.r.windowMessages / (s.relayMs / 1000);
    rows.push({ scenario, metric: "chunks/s", round, direct: dRate, gateway: gRate, compare: true, cpuDirect: cpuText(d.cpu, false), cpuGateway: cpuText(g.cpu, true), errors: errorsText(d.r.errors, g.r.errors) });
    const gwShare = (g.cpu["gateway"] ?? Number.NaN) / 100;
    rows.push({ scenario, metric: "chunks/s per gateway core (÷ its CPU share)", round, direct: undefined, gateway: gRate / gwShare, compare: false });
    rows.push({ scenario, metric: "gateway CPU µs per chunk", round, direct: undefined, gateway: (gwShare * 1e6) / gRate, compare: false });
    await gw.proc.stop();
    if (ctx.groups.has("floor")) await relayFloor(ctx, round, fake, d, `${scenario}, floor (bare grpc-js relay)`);
  } finally {
    await gw.proc.stop();
    await fake.proc.stop();
  }
}

async function relayFloor(ctx: Ctx, round: number, fake: Fake, d: { r: StreamsResult; cpu: Record<string, number> }, scenario: string): Promise<void> {
  const s = ctx.s;
  const floor = await startFloor(ctx, fake, `floor-r${round}-relay`);
  try {
    log(`round ${round}: relay capacity, floor`);
    const expect = s.relayTokens + 2;
    await streams(ctx, grpcTarget(floor), [], 8, 0, 1000, expect); // warm-up
    const f = await streams(ctx, grpcTarget(floor), [floor.proc, fake.proc], s.relayConcurrency, s.relayWarmMs, s.relayMs, expect);
    const dRate = d.r.windowMessages / (s.relayMs / 1000);
    const fRate = f.r.windowMessages / (s.relayMs / 1000);
    rows.push({ scenario, metric: "chunks/s", round, direct: dRate, gateway: fRate, compare: true, cpuDirect: cpuText(d.cpu, false), cpuGateway: cpuText(f.cpu, true), errors: errorsText(d.r.errors, f.r.errors) });
    const share = (gatewayCpu(f.cpu) ?? Number.NaN) / 100;
    rows.push({ scenario, metric: "floor CPU µs per chunk", round, direct: undefined, gateway: (share * 1e6) / fRate, compare: false });
  } finally {
    await floor.proc.stop();
  }
}

async function memory(ctx: Ctx, round: number): Promise<void> {
  const s = ctx.s;
  const n = s.holdStreams;
  log(`round ${round}: memory, ${n} slow streams`);
  const fake = await startFake(ctx, s.holdDelayMs, s.holdTokens);
  // Room for every stream upstream: with the default UPSTREAM_CONNECTIONS (128) the rest would queue inside undici.
  const gw = await startGw(ctx, fake, { name: `gateway-r${round}-memory`, logLevel: "warn", env: { UPSTREAM_CONNECTIONS: String(n + 64) } });
  const expect = s.holdTokens + 2;
  try {
    await unary(ctx, { kind: "grpc", gw, fake }, 16, { warmupS: 0.5, durationS: 1 });
    await runJob(ctx, { mode: "hold", target: grpcTarget(gw), streams: 32, expectMessages: expect, timeoutMs: 60_000 }, []);
    await quiet(ctx, "memory");
    const baselineSamples: number[] = [];
    const fakeBaselineSamples: number[] = [];
    for (let i = 0; i < 10; i++) {
      baselineSamples.push(gw.proc.rssBytes() ?? Number.NaN);
      fakeBaselineSamples.push(fake.proc.rssBytes() ?? Number.NaN);
      await sleep(100);
    }
    const baseline = median(baselineSamples);
    const heapBefore = await heapOf(gw);
    const fdsBefore = gw.proc.fdCount() ?? Number.NaN;
    let fdsAllOpen = Number.NaN;
    const fakeBaseline = median(fakeBaselineSamples);

    let peak = baseline;
    let fakePeak = fakeBaseline;
    let atAllOpen = Number.NaN;
    const sampler = setInterval(() => {
      peak = Math.max(peak, gw.proc.rssBytes() ?? 0);
      fakePeak = Math.max(fakePeak, fake.proc.rssBytes() ?? 0);
    }, 50);
    let held: HoldResult;
    try {
      const { result } = await runJob(ctx, { mode: "hold", target: grpcTarget(gw, 4), streams: n, expectMessages: expect, timeoutMs: 120_000 }, [], () => {
        atAllOpen = gw.proc.rssBytes() ?? Number.NaN;
        fdsAllOpen = gw.proc.fdCount() ?? Number.NaN;
      });
      held = result as HoldResult;
    } finally {
      clearInterval(sampler);
    }
    const ended = performance.now();
    const after: number[] = [];
    const fdsAfter: number[] = [];
    for (const t of s.settleS) {
      await sleep(Math.max(0, t * 1000 - (performance.now() - ended)));
      after.push(gw.proc.rssBytes() ?? Number.NaN);
      fdsAfter.push(gw.proc.fdCount() ?? Number.NaN);
    }
    const heapAfter = await heapOf(gw);
    const MB = 1024 * 1024;
    const scenario = `memory, ${n} concurrent slow streams`;
    const errors = held.errors > 0 ? `0 / ${held.errors}` : undefined;
    if (held.firstError !== undefined) process.stderr.write(`bench: memory round ${round}: ${held.errors} failed streams, e.g. ${held.firstError}\n`);
    rows.push({ scenario, metric: "RSS before MB (fake | gateway)", round, direct: fakeBaseline / MB, gateway: baseline / MB, compare: false, errors });
    rows.push({ scenario, metric: `RSS with all ${n} open MB`, round, direct: undefined, gateway: atAllOpen / MB, compare: false });
    rows.push({ scenario, metric: "RSS peak MB (fake | gateway)", round, direct: fakePeak / MB, gateway: peak / MB, compare: false });
    rows.push({ scenario, metric: "RSS per stream KB (fake | gateway)", round, direct: (fakePeak - fakeBaseline) / n / 1024, gateway: (peak - baseline) / n / 1024, compare: false });
    s.settleS.forEach((t, i) => {
      rows.push({ scenario, metric: `RSS ${t} s after the end MB (gateway, % of before)`, round, direct: undefined, gateway: after[i]! / MB, compare: false, cpuGateway: `${((after[i]! / baseline) * 100).toFixed(0)}% of before` });
    });
    rows.push({
      scenario,
      metric: "gateway open fds: before · all open · after (upstream keep-alive sockets)",
      round,
      direct: undefined,
      gateway: fdsAllOpen,
      compare: false,
      cpuGateway: `${fdsBefore} · ${fdsAllOpen} · ${s.settleS.map((t, i) => `${fdsAfter[i]} at ${t} s`).join(", ")}`,
    });
    if (heapBefore !== undefined && heapAfter !== undefined) {
      // Where RSS that stays after the load sits: V8's heap (new space grows under load and is kept), or outside it.
      const mb = (x: number): string => (x / MB).toFixed(1);
      const text = (h: NonNullable<typeof heapBefore>): string => `${mb(h.total)} (new ${mb(h.newSpace)}, old ${mb(h.oldSpace)}), external ${mb(h.external)}`;
      rows.push({ scenario, metric: `V8 heap MB, before → ${s.settleS[s.settleS.length - 1]} s after the end`, round, direct: undefined, gateway: heapAfter.total / MB, compare: false, cpuGateway: `${text(heapBefore)} → ${text(heapAfter)}` });
    }
    rows.push({ scenario, metric: `ms until all ${n} had their first message`, round, direct: undefined, gateway: held.allOpenMs, compare: false });
    rows.push({ scenario, metric: "first message p99 ms", round, direct: undefined, gateway: held.ttfm.p99, compare: false });

    // A second, identical wave: if the memory kept after the first was garbage V8 had not
    // given back (rather than a leak), this wave reuses it and ends where the first did.
    let peak2 = after[after.length - 1] ?? baseline;
    const sampler2 = setInterval(() => {
      peak2 = Math.max(peak2, gw.proc.rssBytes() ?? 0);
    }, 50);
    try {
      await runJob(ctx, { mode: "hold", target: grpcTarget(gw, 4), streams: n, expectMessages: expect, timeoutMs: 120_000 }, []);
    } finally {
      clearInterval(sampler2);
    }
    await sleep(s.settleS[0]! * 1000);
    const after2 = gw.proc.rssBytes() ?? Number.NaN;
    rows.push({ scenario, metric: "RSS peak of a 2nd identical wave MB", round, direct: undefined, gateway: peak2 / MB, compare: false });
    rows.push({ scenario, metric: `RSS ${s.settleS[0]} s after the 2nd wave MB (% of before)`, round, direct: undefined, gateway: after2 / MB, compare: false, cpuGateway: `${((after2 / baseline) * 100).toFixed(0)}% of before` });
  } finally {
    await gw.proc.stop();
    await fake.proc.stop();
  }
}

// ---------------------------------------------------------------------------------------
// Profile mode

async function profile(ctx: Ctx): Promise<string> {
  const s = ctx.s;
  const dir = join(ctx.work, "profiles");
  const out: string[] = [];

  log("profile: unary gRPC c=64");
  let fake = await startFake(ctx, s.streamDelayMs, s.streamTokens);
  try {
    const gw = await startGw(ctx, fake, { name: "gateway-profile-unary", logLevel: "warn", cpuProfile: { dir, name: "unary-c64.cpuprofile" } });
    let served = 0;
    try {
      await quiet(ctx, "profile: unary");
      const r = await unary(ctx, { kind: "grpc", gw, fake }, 64, { requests: s.quick ? 5000 : 40_000 });
      served += r.requests;
      log(`profile: ${r.requests} requests at ${fmt(r.rps)} req/s (profiling slows the gateway)`);
    } finally {
      await gw.proc.stop(15_000);
    }
    out.push(formatProfile(summariseProfile(join(dir, "unary-c64.cpuprofile"), 25, "/dist/src/grpc/handlers.js"), "Unary gRPC, concurrency 64 (gateway at LOG_LEVEL=warn)", { count: served, what: "request" }));
  } finally {
    await fake.proc.stop();
  }

  log("profile: relay");
  fake = await startFake(ctx, 0, s.relayTokens);
  try {
    const gw = await startGw(ctx, fake, { name: "gateway-profile-relay", logLevel: "warn", cpuProfile: { dir, name: "relay.cpuprofile" } });
    let chunks = 0;
    try {
      await quiet(ctx, "profile: relay");
      const { r } = await streams(ctx, grpcTarget(gw), [], s.relayConcurrency, 0, s.quick ? 1000 : 5000, s.relayTokens + 2);
      chunks = r.totalMessages;
    } finally {
      await gw.proc.stop(15_000);
    }
    out.push(formatProfile(summariseProfile(join(dir, "relay.cpuprofile"), 25, "/dist/src/grpc/handlers.js"), `Relay, ${s.relayConcurrency} unpaced streams (gateway at LOG_LEVEL=warn)`, { count: chunks, what: "chunk" }));
  } finally {
    await fake.proc.stop();
  }
  return out.join("\n\n");
}

// ---------------------------------------------------------------------------------------
// Report

function machine(): string {
  const model = cpus()[0]?.model ?? "unknown CPU";
  let git = "";
  try {
    const head = execFileSync("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], { encoding: "utf8", timeout: 5000 }).trim();
    const dirty = execFileSync("git", ["-C", ROOT, "status", "--porcelain", "--", "src", "gen", "package.json"], { encoding: "utf8", timeout: 5000 })
      .split("\n")
      .filter((l) => l.trim() !== "").length;
    git = `, commit ${head}${dirty > 0 ? ` with ${dirty} uncommitted change(s) under src/` : ""}`;
  } catch {
    // not a git checkout
  }
  const h2 = (() => {
    try {
      return execFileSync("h2load", ["--version"], { encoding: "utf8", timeout: 5000 }).trim();
    } catch {
      return "h2load ?";
    }
  })();
  return `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC · ${cpus().length} cores (${model}) · Node ${process.version} · Linux ${release()} · ${h2}${git}`;
}

function table(): string {
  const lines = [
    "| scenario | metric | round | direct | gateway | gw − direct | gw ÷ direct | CPU % gateway run: gw · fake · loadgen · other | CPU % direct run: fake · loadgen · other | errors direct / gw |",
    "| --- | --- | --: | --: | --: | --: | --: | --- | --- | --- |",
  ];
  const keys: string[] = [];
  for (const r of rows) {
    const k = `${r.scenario}\u0000${r.metric}`;
    if (!keys.includes(k)) keys.push(k);
  }
  let lastScenario = "";
  for (const k of keys) {
    const [scenario, metric] = k.split("\u0000") as [string, string];
    for (const r of rows.filter((x) => x.scenario === scenario && x.metric === metric)) {
      const diff = r.compare && r.direct !== undefined && r.gateway !== undefined ? signed(r.gateway - r.direct) : "";
      const ratio = r.compare && r.direct !== undefined && r.gateway !== undefined && r.direct !== 0 ? `${fmt(r.gateway / r.direct, 2)}×` : "";
      lines.push(
        `| ${scenario === lastScenario ? "" : scenario} | ${metric} | ${r.round} | ${r.direct === undefined ? "" : fmt(r.direct)} | ${fmt(r.gateway)} | ${diff} | ${ratio} | ${r.cpuGateway ?? ""} | ${r.cpuDirect ?? ""} | ${r.errors ?? ""} |`,
      );
      lastScenario = scenario;
    }
  }
  return lines.join("\n");
}

interface Check {
  readonly target: string;
  readonly measured: string;
  readonly pass: boolean | undefined;
  /** The same figure for the stack's floor (bench/floor.ts), where it has one. */
  readonly floor?: string | undefined;
}

/** Issue 8's targets, judged on the worse round. */
function targets(ctx: Ctx): Check[] {
  const rounds = Array.from({ length: ctx.s.rounds }, (_, i) => i + 1);
  const worst = (scenario: string, metric: string, f: (r: Row) => number | undefined, higherIsBetter: boolean): number | undefined => {
    const v = rounds.map((n) => find(scenario, metric, n)).filter((r): r is Row => r !== undefined).map(f).filter((x): x is number => x !== undefined && !Number.isNaN(x));
    if (v.length === 0) return undefined;
    return higherIsBetter ? Math.min(...v) : Math.max(...v);
  };
  const added = (r: Row): number | undefined => (r.gateway === undefined || r.direct === undefined ? undefined : r.gateway - r.direct);
  const ratio = (r: Row): number | undefined => (r.gateway === undefined || r.direct === undefined ? undefined : r.gateway / r.direct);
  const checks: Check[] = [];
  const check = (target: string, v: number | undefined, unit: string, ok: (v: number) => boolean, floor?: number): void => {
    const text = (x: number | undefined): string => (x === undefined ? "not measured" : `${fmt(x)}${unit}`);
    checks.push({ target, measured: text(v), pass: v === undefined ? undefined : ok(v), floor: floor === undefined ? undefined : text(floor) });
  };
  const F = ", floor (bare grpc-js relay)";
  check("unary gRPC c=1: added p50 ≤ 0.4 ms", worst("unary gRPC c=1", "p50 ms", added, false), " ms", (v) => v <= 0.4, worst(`unary gRPC c=1${F}`, "p50 ms", added, false));
  check("unary gRPC c=1: added p99 ≤ 1.5 ms", worst("unary gRPC c=1", "p99 ms", added, false), " ms", (v) => v <= 1.5, worst(`unary gRPC c=1${F}`, "p99 ms", added, false));
  const direct64 = worst("unary gRPC c=64", "req/s", (r) => r.direct, true);
  const need = direct64 === undefined ? 5000 : Math.min(5000, 0.8 * direct64);
  check(`unary gRPC c=64: ≥ ${fmt(need)} req/s (min of 5,000 and 80% of direct)`, worst("unary gRPC c=64", "req/s", (r) => r.gateway, true), " req/s", (v) => v >= need, worst(`unary gRPC c=64${F}`, "req/s", (r) => r.gateway, true));
  check("unary gRPC c=64: added p99 ≤ 5 ms", worst("unary gRPC c=64", "p99 ms", added, false), " ms", (v) => v <= 5, worst(`unary gRPC c=64${F}`, "p99 ms", added, false));
  if (ctx.shim) {
    for (const c of ctx.s.unaryConcurrency) {
      const g = worst(`unary gRPC c=${c}`, "p50 ms", (r) => r.gateway, false);
      const h = worst(`unary HTTP shim c=${c}`, "p50 ms", (r) => r.gateway, false);
      check(`HTTP shim unary c=${c}: p50 within 1.5× of gRPC`, h === undefined || g === undefined ? undefined : h / g, "×", (v) => v <= 1.5);
    }
  }
  const s1 = `stream gRPC c=1, ${ctx.s.streamTokens + 2} msgs, ${ctx.s.streamDelayMs} ms pacing`;
  const s64 = `stream gRPC c=64, ${ctx.s.streamTokens + 2} msgs, ${ctx.s.streamDelayMs} ms pacing`;
  const f1 = `stream gRPC c=1, ${ctx.s.streamTokens + 2} msgs${F}`;
  const f64 = `stream gRPC c=64, ${ctx.s.streamTokens + 2} msgs${F}`;
  check("stream c=1: added first-message p50 ≤ 0.5 ms", worst(s1, "first message p50 ms", added, false), " ms", (v) => v <= 0.5, worst(f1, "first message p50 ms", added, false));
  checks.push(((v) => ({ target: "stream c=1: total stream time p50 within 3% of direct", measured: v === undefined ? "not measured" : `${v.toFixed(3)}×`, pass: v === undefined ? undefined : v <= 1.03 }))(worst(s1, "stream total p50 ms", ratio, false)));
  check("stream c=64: added first-message p99 ≤ 5 ms", worst(s64, "first message p99 ms", added, false), " ms", (v) => v <= 5, worst(f64, "first message p99 ms", added, false));
  const relayScenario = `relay, ${ctx.s.relayConcurrency} unpaced streams of ${ctx.s.relayTokens + 2} msgs`;
  check("relay: ≥ 100,000 chunks/s forwarded", worst(relayScenario, "chunks/s", (r) => r.gateway, true), " chunks/s", (v) => v >= 100_000, worst(`${relayScenario}${F}`, "chunks/s", (r) => r.gateway, true));
  const mem = `memory, ${ctx.s.holdStreams} concurrent slow streams`;
  check(`memory: ≤ 40 KB RSS per stream at ${ctx.s.holdStreams} streams`, worst(mem, "RSS per stream KB (fake | gateway)", (r) => r.gateway, false), " KB", (v) => v <= 40);
  const lastSettle = ctx.s.settleS[ctx.s.settleS.length - 1]!;
  const back = worst(mem, `RSS ${lastSettle} s after the end MB (gateway, % of before)`, (r) => {
    const before = find(mem, "RSS before MB (fake | gateway)", r.round)?.gateway;
    return before === undefined || r.gateway === undefined ? undefined : r.gateway / before;
  }, false);
  check(`memory: RSS ${lastSettle} s after the load within 20% of before`, back, "× before", (v) => v <= 1.2);
  return checks;
}

function log(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}

// ---------------------------------------------------------------------------------------
// Main

/** "K=V,K=V" → { K: V }; the variables the bench itself sets (ports, upstream, key) cannot be overridden. */
function parseEnvList(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (text ?? "").split(",").filter((p) => p.trim() !== "")) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`--gateway-env: expected K=V, got "${pair}"`);
    const key = pair.slice(0, eq).trim();
    if (["CEREBRAS_API_KEY", "CEREBRAS_BASE_URL", "GRPC_HOST", "GRPC_PORT", "HTTP_HOST", "HTTP_PORT", "LOG_LEVEL"].includes(key)) throw new Error(`--gateway-env: ${key} is set by the bench`);
    out[key] = pair.slice(eq + 1);
  }
  return out;
}

function snapshot(work: string): string {
  const dist = join(ROOT, "dist");
  for (const need of ["src/main.js", "src/fake-upstream/main.js", "bench/loadgen.js", "gen/descriptor.js"]) {
    if (!existsSync(join(dist, need))) throw new Error(`dist/${need} is missing: run \`npm run build\` (npm run bench does)`);
  }
  const snap = join(work, "snapshot");
  for (const d of ["src", "gen", "bench"]) cpSync(join(dist, d), join(snap, "dist", d), { recursive: true });
  cpSync(join(ROOT, "package.json"), join(snap, "package.json"));
  symlinkSync(join(ROOT, "node_modules"), join(snap, "node_modules"), "dir");
  snapshotDirs.push(snap);
  return snap;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      profile: { type: "boolean", default: false },
      json: { type: "string" },
      only: { type: "string" },
      "gateway-node-args": { type: "string" },
      "gateway-env": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`usage: npm run bench [-- --quick] [-- --rounds N] [-- --only ${GROUPS.join(",")}] [-- --gateway-node-args="--flag ..."] [-- --gateway-env=K=V,K=V] [-- --profile] [-- --json FILE]\n`);
    return;
  }
  const only = (values.only ?? GROUPS.join(",")).split(",").map((g) => g.trim());
  for (const g of only) if (!(GROUPS as readonly string[]).includes(g)) throw new Error(`--only: unknown group "${g}" (groups: ${GROUPS.join(", ")})`);
  const rounds = values.rounds === undefined ? undefined : Number(values.rounds);
  if (rounds !== undefined && !(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10)) throw new Error("--rounds must be an integer 1-10");
  if (!hasCommand("h2load")) {
    throw new Error("h2load not found: install Debian's nghttp2-client (apt-get install -y nghttp2-client); see bench/README.md");
  }

  const s = settings(values.quick, rounds);
  const lay = layout(availableParallelism());
  const work = mkdtempSync(join(tmpdir(), "gateway-bench-"));
  const snap = snapshot(work);
  const shim = readFileSync(join(snap, "dist/src/config.js"), "utf8").includes("HTTP_PORT");
  const grpcBodyFile = join(work, "unary.grpc");
  const jsonBodyFile = join(work, "unary.json");
  writeFileSync(grpcBodyFile, grpcRequestBody());
  writeFileSync(jsonBodyFile, jsonRequestBody(false));
  const ctx: Ctx = { s, layout: lay, work, snapshot: snap, shim, grpcBodyFile, jsonBodyFile, notes: [], groups: new Set(only as Group[]), gatewayNodeArgs: (values["gateway-node-args"] ?? "").split(" ").filter((a) => a !== ""), gatewayEnv: parseEnvList(values["gateway-env"]) };
  if (ctx.gatewayNodeArgs.length > 0) note(ctx, `gateway started with extra node options: ${ctx.gatewayNodeArgs.join(" ")}`);
  if (Object.keys(ctx.gatewayEnv).length > 0) note(ctx, `gateway started with extra environment: ${Object.entries(ctx.gatewayEnv).map(([k, v]) => `${k}=${v}`).join(" ")}`);
  if (lay.loadgen !== undefined) {
    // The bench process itself stays off the gateway's core (its children are pinned explicitly).
    execFileSync("taskset", ["-a", "-pc", lay.loadgen, String(process.pid)], { stdio: "ignore", timeout: 5000 });
  }
  if (!shim) note(ctx, "no HTTP_PORT in src/config.ts yet: the HTTP shim rows are skipped (they run by themselves once it exists)");
  log(`scratch directory ${work}; pinning: ${lay.description}`);

  const header = [`Machine: ${machine()}`, "", `Pinning: ${lay.description}.`, ""];
  if (values.profile) {
    const md = await profile(ctx);
    writeFileSync(join(work, "profile.md"), md);
    process.stdout.write(`${header.join("\n")}\n${md}\n\nProfiles: ${join(work, "profiles")}\n`);
    return;
  }

  const started = Date.now();
  for (let round = 1; round <= s.rounds; round++) {
    if (ctx.groups.has("unary") || ctx.groups.has("stream") || ctx.groups.has("info") || ctx.groups.has("floor")) await unaryAndStreaming(ctx, round);
    if (ctx.groups.has("relay")) await relay(ctx, round);
    if (ctx.groups.has("memory")) await memory(ctx, round);
  }
  const checks = targets(ctx);
  const report = [
    `## Results${s.quick ? " (--quick: short smoke run, not for comparison)" : ""}`,
    "",
    ...header,
    table(),
    "",
    "Targets (issue 8), each judged on the worse round:",
    "",
    "| target | measured | | the floor measured |",
    "| --- | --: | --- | --: |",
    ...checks.map((c) => `| ${c.target} | ${c.measured} | ${c.pass === undefined ? "–" : c.pass ? "met" : "**missed**"} | ${c.floor ?? ""} |`),
    "",
    ...(ctx.notes.length > 0 ? ["Notes:", "", ...ctx.notes.map((n) => `- ${n}`), ""] : []),
    `${s.rounds} round(s) in ${((Date.now() - started) / 1000).toFixed(0)} s; logs and results.json in ${work}`,
  ].join("\n");
  writeFileSync(join(work, "results.json"), JSON.stringify({ machine: machine(), layout: lay, settings: s, rows, checks, notes: ctx.notes }, null, 2));
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify({ machine: machine(), layout: lay, settings: s, rows, checks, notes: ctx.notes }, null, 2));
  process.stdout.write(`${report}\n`);
}

let exiting = false;
const bail = (signal: NodeJS.Signals): void => {
  if (exiting) process.exit(130);
  exiting = true;
  log(`${signal}: stopping every process the bench started`);
  void stopAll().finally(() => process.exit(130));
};
process.on("SIGINT", bail);
process.on("SIGTERM", bail);

main()
  .then(async () => {
    await stopAll();
    cleanupSnapshot();
  })
  .catch(async (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    await stopAll();
    cleanupSnapshot();
    process.exit(1);
  });

/** The copied dist/ is only for the run; logs, profiles and results stay. */
function cleanupSnapshot(): void {
  for (const dir of snapshotDirs) {
    rmSync(join(dir, "dist"), { recursive: true, force: true });
    rmSync(join(dir, "node_modules"), { force: true });
  }
}
