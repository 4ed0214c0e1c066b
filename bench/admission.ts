/**
 * What admission costs (issue 14): `npm run bench:admission [-- --quick] [-- --rounds N] [-- --turns N]
 * [-- --lease-calls N] [-- --baseline DIR [--baseline-redis]] [-- --redis-cpu N] [-- --profile]`
 * (or `node dist/bench/admission.js` after `npm run build`).
 *
 * Three gateways on the same fake Cerebras, the same keys file and the same caller key,
 * measured in turns in the same run:
 *   off     the key has no limits: the no-op admission (the baseline)
 *   off again  the same as off, another process: what two identical gateways differ by
 *           (an A/A control: a difference to off smaller than theirs is noise)
 *   redis   the key has limits (generous, so nothing is refused) and REDIS_URL points at a
 *           redis-server on loopback: one script per call to admit, one to settle
 *   memory  the same limits, no REDIS_URL: the in-memory store
 *   leased  as redis, with QUOTA_LEASE_CALLS=LEASE_CALLS (`--lease-calls N`, 16 by default): calls admitted from the replica's
 *           leases of the key's buckets (lease-store.ts), a script run per half lease
 * Every limited gateway also serves a second key with no limits (FREE_KEY), in turns with
 * the limited one: the same process with and without the admission's work, the table
 * that carries the verdict (two processes differ by more than the admission costs).
 * `--turns N` adds N pairs of 1 s turns at c=64 per limited gateway, each pair back to
 * back: its turns drift with the VM alike, and the median of N pairs resolves finer; they
 * also count the main thread's CPU alone (/proc/PID/task/PID), JavaScript and HTTP/2
 * without V8's GC and compiler threads.
 * With `--baseline DIR` (a build of another commit, e.g. main: DIR/dist/src/main.js), a
 * fourth column runs that build as `off` runs this one: what this branch costs on the
 * path with nothing configured. `--baseline-redis` adds that build run as `redis` runs
 * this one (its own key prefix on the same redis-server): a before/after of the Redis
 * path in one run.
 * Under the redis columns: Redis commands and socket reads per call (INFO, over a
 * counted run of calls at each concurrency). `--profile` runs instead a CPU profile of
 * each gateway under c=64 (`node --cpu-prof`), summarised in µs per call; a limited
 * gateway's with its two keys in turns, split by key (pairedProfile).
 * Unary gRPC through h2load: p50 latency at c=1, requests/s at c=64 (one connection, 64
 * streams). Targets: redis adds at most 0.15 ms to the p50 and keeps at least 90% of the
 * throughput. Also the estimator's cost next to a real o200k tokenizer's.
 *
 * Every figure is a median over rounds; the order of the gateways alternates between
 * rounds, and each round starts them afresh (`--same-processes` keeps the first ones):
 * on this VM two processes of the same build differ by up to 10-15% a call for the
 * process's whole life (heap and code placement, JIT decisions), so a median over fresh
 * processes measures the build, one process measures that process. Processes are pinned with taskset where the machine allows; all traffic is on
 * 127.0.0.1. The VM these run on is shared and noisy: compare figures of one run only.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:http2";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { ChatCompletionRequest, Role } from "../gen/aigateway/v1/chat.js";
import type { BucketSpec } from "../src/admission/bucket.js";
import { estimatePromptTokens } from "../src/admission/estimator.js";
import { WINDOW_MS, type Window } from "../src/admission/limits.js";
import { RedisStore, SETTLE_WAIT_MS } from "../src/admission/redis-store.js";
import { formatProfile, selfInWindows, summariseProfile } from "./lib/cpuprofile.js";
import { runH2load, type H2loadResult } from "./lib/h2load.js";
import { startRedis } from "./lib/redis.js";
import { failedCalls, storeOutages } from "./lib/servers.js";
import { freePort, hasCommand, hasTaskset, start, stopAll, waitQuiet, type Proc } from "./lib/proc.js";
import { fmt, median, signed } from "./lib/stats.js";
import { GRPC_UNARY_PATH, grpcRequestBody } from "./lib/wire.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const UPSTREAM_KEY = "csk-bench-0123456789abcdef";
const CALLER_KEY = "bench-caller-key-0123456789";
/** A second key of the same length with no limits, on every gateway: the limited gateways' in-process baseline. */
const FREE_KEY = "bench-unlimited-01234567890";
/** Far above what a run can use: admission does all its work, nothing is refused. */
const LIMITS = { requests_per_minute: 1e9, requests_per_day: 1e12, tokens_per_minute: 1e12, tokens_per_day: 1e14 };

type Variant = "off" | "off-again" | "redis" | "memory" | "leased" | "baseline" | "baseline-redis";

/** QUOTA_LEASE_CALLS of the leased variant (`--lease-calls N`; 16 by default). */
let LEASE_CALLS = 16;

/** Which variants are limited (the keys file gives the key limits), and which use Redis. */
const LIMITED: ReadonlySet<Variant> = new Set(["redis", "memory", "leased", "baseline-redis"]);
const ON_REDIS: ReadonlySet<Variant> = new Set(["redis", "leased", "baseline-redis"]);
const OTHER_BUILD: ReadonlySet<Variant> = new Set(["baseline", "baseline-redis"]);

interface Settings {
  readonly rounds: number;
  readonly warmS: number;
  readonly measureS: number;
}

interface Gw {
  readonly variant: Variant;
  readonly proc: Proc;
  readonly port: number;
  readonly logFile: string;
}

function log(text: string): void {
  process.stderr.write(`bench:admission: ${text}\n`);
}

function env(): Record<string, string> {
  return { PATH: process.env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin" };
}

function layout(): { fake: string | undefined; gateway: string | undefined; loadgen: string | undefined; redis: string | undefined; description: string } {
  const n = availableParallelism();
  if (!hasTaskset() || n < 2) return { fake: undefined, gateway: undefined, loadgen: undefined, redis: undefined, description: "not pinned" };
  if (n >= 4) return { fake: "0", gateway: "1", loadgen: "2", redis: "3", description: "fake on CPU 0, gateway on CPU 1, h2load on CPU 2, redis-server on CPU 3" };
  return { fake: "0", gateway: "1", loadgen: "0", redis: "0", description: "gateway alone on CPU 1; fake, h2load and redis-server share CPU 0 (2 cores)" };
}

function keysFile(dir: string, limited: boolean): string {
  const path = join(dir, limited ? "keys-limited.json" : "keys-open.json");
  const entry = { name: "bench", sha256: createHash("sha256").update(CALLER_KEY).digest("hex"), ...(limited ? { limits: LIMITS } : {}) };
  const free = { name: "free", sha256: createHash("sha256").update(FREE_KEY).digest("hex") };
  writeFileSync(path, JSON.stringify({ keys: [entry, free] }));
  return path;
}

async function startFake(cpus: string | undefined): Promise<{ proc: Proc; url: string }> {
  const proc = start("fake", process.execPath, [join(ROOT, "dist/src/fake-upstream/main.js"), "--port", "0", "--token-delay-ms", "0", "--fixed-tokens", "1", "--api-key", UPSTREAM_KEY], { cpus, env: env() });
  const line = await proc.waitForLine((l) => l.startsWith("{"), 10_000);
  return { proc, url: (JSON.parse(line) as { url: string }).url };
}

/** `--gateway-node-args`: node options for every gateway (A/B experiments: V8's heap sizes…). */
let gatewayNodeArgs: string[] = [];

async function startGateway(variant: Variant, dir: string, fakeUrl: string, redisUrl: string, cpus: string | undefined, baseline: string | undefined, profileDir?: string): Promise<Gw> {
  const port = await freePort();
  const logFile = join(dir, `gateway-${variant}.log`);
  const nodeArgs = profileDir === undefined ? [...gatewayNodeArgs] : [...gatewayNodeArgs, "--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${variant}.cpuprofile`, "--cpu-prof-interval=250"];
  const proc = start(
    `gateway-${variant}`,
    process.execPath,
    [...nodeArgs, join(OTHER_BUILD.has(variant) ? baseline! : ROOT, "dist/src/main.js")],
    {
      cpus,
      env: {
        ...env(),
        CEREBRAS_API_KEY: UPSTREAM_KEY,
        CEREBRAS_BASE_URL: fakeUrl,
        GRPC_HOST: "127.0.0.1",
        GRPC_PORT: String(port),
        HTTP_ENABLED: "false",
        METRICS_PORT: "0",
        LOG_LEVEL: "warn",
        GATEWAY_KEYS_FILE: keysFile(dir, LIMITED.has(variant)),
        ...(ON_REDIS.has(variant) ? { REDIS_URL: redisUrl, QUOTA_REDIS_PREFIX: `bench-${variant}` } : {}),
        ...(variant === "leased" ? { QUOTA_LEASE_CALLS: String(LEASE_CALLS) } : {}),
      },
      stdoutFile: logFile,
    },
  );
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await unaryOnce(port);
    if (r.ok) {
      const limited = r.headers["x-ratelimit-limit-requests-minute"] !== undefined;
      if (limited !== LIMITED.has(variant)) throw new Error(`${variant}: the reply ${limited ? "has" : "lacks"} the caller's x-ratelimit headers`);
      return { variant, proc, port, logFile };
    }
    if (!proc.running || Date.now() > deadline) throw new Error(`${variant} gateway not ready: ${r.detail}; ${proc.stderr().slice(-1000)}`);
    await sleep(100);
  }
}

/** One authenticated unary call over node:http2; ok when grpc-status is 0. */
function unaryOnce(port: number): Promise<{ ok: boolean; detail: string; headers: Record<string, unknown> }> {
  return new Promise((done) => {
    const session = connect(`http://127.0.0.1:${port}`);
    let headers: Record<string, unknown> = {};
    const finish = (ok: boolean, detail: string): void => {
      clearTimeout(timer);
      session.destroy();
      done({ ok, detail, headers });
    };
    const timer = setTimeout(() => finish(false, "timeout"), 2000);
    session.on("error", (err) => finish(false, err.message));
    const req = session.request({ ":method": "POST", ":path": GRPC_UNARY_PATH, "content-type": "application/grpc", te: "trailers", authorization: `Bearer ${CALLER_KEY}` });
    let status: string | undefined;
    req.on("response", (h) => {
      headers = h;
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
    });
    req.on("trailers", (h) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
    });
    req.on("data", () => {});
    req.on("error", (err) => finish(false, err.message));
    req.on("close", () => finish(status === "0", `grpc-status ${status}`));
    req.end(grpcRequestBody());
  });
}

/** One h2load run against `gw`: warm-up then a timed phase, or exactly `requests` calls. */
async function load(gw: Gw, peers: readonly Proc[], concurrency: number, s: Settings, work: string, cpus: string | undefined, requests?: number, key = CALLER_KEY): Promise<H2loadResult & { errors: number }> {
  const busy = await waitQuiet(10_000);
  if (busy >= 15) log(`the machine was busy (${busy.toFixed(0)}% of a core) before ${gw.variant}${key === FREE_KEY ? " (unlimited key)" : ""} c=${concurrency}`);
  const before = failedCalls(gw);
  const bodyFile = join(work, "body.bin");
  const r = await runH2load({
    cpus,
    url: `http://127.0.0.1:${gw.port}${GRPC_UNARY_PATH}`,
    bodyFile,
    headers: ["content-type: application/grpc", "te: trailers", `authorization: Bearer ${key}`],
    h1: false,
    connections: 1,
    streamsPerConnection: concurrency,
    warmupS: s.warmS,
    durationS: s.measureS,
    requests,
    logFile: join(work, "h2load.log"),
    peers: [gw.proc, ...peers],
  });
  return { ...r, errors: r.failures + failedCalls(gw) - before };
}

/** The estimator's cost per call on a few prompt sizes, next to gpt-tokenizer's o200k (the exact count it approximates). */
async function estimatorCost(): Promise<string[]> {
  const { countTokens } = (await import("gpt-tokenizer/encoding/o200k_base")) as { countTokens: (t: string) => number };
  const text = readFileSync(join(ROOT, "README.md"), "utf8");
  const rows = ["| prompt | estimator µs | o200k tokenizer µs | tokens (o200k) | estimate |", "|---|---|---|---|---|"];
  for (const chars of [6, 2000, 32_000]) {
    const prompt = text.slice(0, chars);
    const request = ChatCompletionRequest.fromPartial({ messages: [{ role: Role.ROLE_USER, contentKind: { $case: "content", value: prompt } }] });
    const time = (f: () => number, n: number): number => {
      for (let i = 0; i < Math.min(n, 100); i++) f();
      const t0 = performance.now();
      for (let i = 0; i < n; i++) f();
      return ((performance.now() - t0) / n) * 1000;
    };
    const n = chars < 100 ? 200_000 : chars < 5000 ? 5000 : 200;
    rows.push(`| ${chars} chars | ${fmt(time(() => estimatePromptTokens(request), n))} | ${fmt(time(() => countTokens(prompt), Math.max(20, n / 20)))} | ${countTokens(prompt)} | ${estimatePromptTokens(request)} |`);
  }
  return rows;
}

/** Redis' counters that say how a gateway uses it: commands by name, and socket reads (≈ batches the server received). */
interface RedisCounters {
  readonly commands: Map<string, number>;
  readonly reads: number;
}

async function redisCounters(client: Redis): Promise<RedisCounters> {
  const [cmds, stats] = await Promise.all([client.info("commandstats"), client.info("stats")]);
  const commands = new Map<string, number>();
  for (const m of cmds.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) commands.set(m[1]!, Number(m[2]));
  return { commands, reads: Number(/^total_reads_processed:(\d+)/m.exec(stats)?.[1] ?? Number.NaN) };
}

/** Per call, over a counted run: "evalsha 2.00, reads 1.98" (the bench's own INFO calls left out). */
async function redisPerCall(client: Redis, run: () => Promise<number>): Promise<string> {
  const a = await redisCounters(client);
  const calls = await run();
  const b = await redisCounters(client);
  const parts: string[] = [];
  for (const [name, n] of b.commands) {
    const d = n - (a.commands.get(name) ?? 0) - (name === "info" ? 2 : 0);
    if (d > 0) parts.push(`${name} ${fmt(d / calls, 2)}`);
  }
  // The bench's own two INFO commands arrive as one read or two.
  parts.push(`socket reads ${fmt((b.reads - a.reads - 2) / calls, 2)}`);
  return parts.join(", ");
}

/** What to add to a verdict on a gateway's figures when its store was unreachable `n` times meanwhile. */
function outageWarning(n: number): string {
  return n === 0 ? "" : ` **Not admission's figures: the limit store was unreachable ${n} time(s) (its log says why), and calls went through unchecked meanwhile.**`;
}

async function profiles(gateways: readonly Gw[], peers: readonly Proc[], s: Settings, work: string, cpus: string | undefined, count: number, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const gw of gateways) {
    if (LIMITED.has(gw.variant) && !OTHER_BUILD.has(gw.variant)) {
      out.push(await pairedProfile(gw, peers, s, work, cpus, count, dir), "");
      const warning = outageWarning(storeOutages(gw));
      if (warning !== "") out.push(warning.trim(), "");
      continue;
    }
    // No warm-up: the profile covers the process's whole life (start-up dropped), so every call in it is counted.
    log(`profile: ${gw.variant}, ${count} calls at c=64`);
    const r = await load(gw, peers, 64, s, work, cpus, count);
    await gw.proc.stop(15_000);
    const file = join(dir, `${gw.variant}.cpuprofile`);
    out.push(formatProfile(summariseProfile(file, 30, "/dist/src/grpc/handlers.js"), `${gw.variant}: unary gRPC, c=64, ${r.requests} calls at ${fmt(r.rps)} req/s under the profiler`, { count: r.requests + 1, what: "call" }), "");
  }
  return out;
}

const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * A limited gateway's profile in one process: its unlimited key and its limited key take
 * turns (three phases each of count/6 calls at c=64, after a warm-up of each), and the
 * profile's samples are split by phase on the clock V8 stamps them with. So the
 * difference is the admission's, not that of two processes (the A/A line), and it is
 * spread over the functions that pay it: in µs per call, under the profiler (which
 * roughly doubles every figure on this VM; read the differences, not the totals).
 */
async function pairedProfile(gw: Gw, peers: readonly Proc[], s: Settings, work: string, cpus: string | undefined, count: number, dir: string): Promise<string> {
  const n = Math.max(1000, Math.round(count / 6));
  log(`profile: ${gw.variant}, unlimited and limited keys in turns, 6 × ${n} calls at c=64`);
  for (const key of [FREE_KEY, CALLER_KEY]) await load(gw, peers, 64, s, work, cpus, n, key); // warm-up, not counted
  const windows: [number, number][][] = [[], []];
  const calls = [0, 0];
  for (let i = 0; i < 6; i++) {
    const k = i % 2; // 0: the unlimited key, 1: the limited one
    const from = monotonicUs();
    const r = await load(gw, peers, 64, s, work, cpus, n, k === 0 ? FREE_KEY : CALLER_KEY);
    windows[k]!.push([from, monotonicUs()]);
    calls[k]! += r.requests;
  }
  await gw.proc.stop(15_000);
  const [free, limited] = selfInWindows(join(dir, `${gw.variant}.cpuprofile`), windows) as [ReturnType<typeof selfInWindows>[number], ReturnType<typeof selfInWindows>[number]];
  const perCall = (us: number, k: number): number => us / calls[k]!;
  const names = new Set([...free.self.keys(), ...limited.self.keys()]);
  const rows = [...names]
    .map((name) => ({ name, f: perCall(free.self.get(name) ?? 0, 0), l: perCall(limited.self.get(name) ?? 0, 1) }))
    .map((r) => ({ ...r, d: r.l - r.f }))
    .sort((a, b) => b.d - a.d);
  const line = (r: { name: string; f: number; l: number; d: number }): string => `| \`${r.name}\` | ${fmt(r.f, 2)} | ${fmt(r.l, 2)} | ${signed(r.d, 2)} |`;
  return [
    `### ${gw.variant}: one process, the unlimited key and the limited key in turns (3 × ${n} calls each at c=64, under the profiler)`,
    "",
    `Busy main thread per call: unlimited ${fmt(perCall(free.busyUs, 0), 1)} µs, limited ${fmt(perCall(limited.busyUs, 1), 1)} µs (${signed(perCall(limited.busyUs, 1) - perCall(free.busyUs, 0), 1)}). Functions by what the limited key adds:`,
    "",
    "| function (self time) | unlimited µs/call | limited µs/call | + |",
    "| --- | --: | --: | --: |",
    ...rows.slice(0, 30).map(line),
    "| … the most negative: | | | |",
    ...rows.slice(-3).map(line),
  ].join("\n");
}

/** What one Redis round trip costs, measured on the gateway's CPU with the gateways idle (see floorChild). */
interface Floor {
  /** p50 of a PING through ioredis, ms: loopback, the syscalls, redis-server's loop. */
  readonly pingMs: number;
  /** p50 of a lone reservation of the bench's four caller buckets through the gateway's RedisStore, ms: the round trip plus the script. */
  readonly reserveMs: number;
  /** redis-server's own time per script run over those reservations (INFO commandstats, evalsha usec_per_call), ms. */
  readonly scriptMs: number;
}

const FLOOR_CALLS = 3000;

/**
 * `--floor-child URL`: run pinned where the gateway runs, one call at a time (as at c=1):
 * FLOOR_CALLS PINGs, then FLOOR_CALLS reservations through the gateway's own RedisStore
 * (the four caller buckets of LIMITS, a prefix of its own), each followed by its settlement
 * like a call's; prints the p50s as one JSON line.
 */
async function floorChild(url: string): Promise<void> {
  const ping = new Redis(url, { maxRetriesPerRequest: 1 });
  const store = new RedisStore({ target: { kind: "node", url }, prefix: "bench-floor", commandTimeoutMs: 1000 });
  try {
    if (!(await store.ready(5000))) throw new Error("floor: redis did not connect");
    const pingTimes: number[] = [];
    for (let i = 0; i < FLOOR_CALLS + 200; i++) {
      const t = performance.now();
      await ping.ping();
      if (i >= 200) pingTimes.push(performance.now() - t);
    }
    const windows: Record<keyof typeof LIMITS, Window> = { requests_per_minute: "minute", requests_per_day: "day", tokens_per_minute: "minute", tokens_per_day: "day" };
    const specs: BucketSpec[] = Object.entries(LIMITS).map(([name, limit]) => ({ id: `c:bench:${name}`, capacity: limit, ratePerMs: limit / WINDOW_MS[windows[name as keyof typeof LIMITS]], shared: false }));
    const ops = specs.map((bucket) => ({ bucket, amount: bucket.id.includes("tokens") ? 100 : 1 }));
    const refund = specs.filter((b) => b.id.includes("tokens")).map((bucket) => ({ bucket, amount: 90 }));
    const reserveTimes: number[] = [];
    const evalsha = async (): Promise<{ calls: number; usec: number }> => {
      const m = /^cmdstat_evalsha:calls=(\d+),usec=(\d+)/m.exec(await ping.info("commandstats"));
      return { calls: Number(m?.[1] ?? 0), usec: Number(m?.[2] ?? 0) };
    };
    let before = { calls: 0, usec: 0 };
    for (let i = 0; i < FLOOR_CALLS + 200; i++) {
      if (i === 200) before = await evalsha();
      const t = performance.now();
      const r = await store.reserve(ops, Date.now());
      const dt = performance.now() - t;
      if (!r.ok) throw new Error("floor: a reservation was refused");
      if (i >= 200) reserveTimes.push(dt);
      void store.adjust(refund, Date.now());
    }
    await new Promise((r) => setTimeout(r, SETTLE_WAIT_MS * 2)); // the last settlement
    const after = await evalsha();
    const scriptMs = (after.usec - before.usec) / (after.calls - before.calls) / 1000;
    process.stdout.write(`${JSON.stringify({ pingMs: median(pingTimes), reserveMs: median(reserveTimes), scriptMs } satisfies Floor)}\n`);
  } finally {
    ping.disconnect();
    await store.close();
  }
}

async function measureFloor(url: string, cpus: string | undefined): Promise<Floor> {
  const busy = await waitQuiet(10_000);
  if (busy >= 15) log(`the machine was busy (${busy.toFixed(0)}% of a core) before the Redis floor`);
  const proc = start("redis-floor", process.execPath, [fileURLToPath(import.meta.url), "--floor-child", url], { cpus, env: env() });
  try {
    return JSON.parse(await proc.waitForLine((l) => l.startsWith("{"), 60_000)) as Floor;
  } finally {
    await proc.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { quick: { type: "boolean" }, rounds: { type: "string" }, turns: { type: "string" }, "gateway-node-args": { type: "string" }, "same-processes": { type: "boolean" }, baseline: { type: "string" }, "baseline-redis": { type: "boolean" }, "redis-cpu": { type: "string" }, profile: { type: "boolean" }, "lease-calls": { type: "string" }, "floor-child": { type: "string" } },
    strict: true,
  });
  if (values["floor-child"] !== undefined) return floorChild(values["floor-child"]);
  gatewayNodeArgs = (values["gateway-node-args"] ?? "").split(" ").filter((a) => a !== "");
  if (values["lease-calls"] !== undefined) {
    LEASE_CALLS = Number(values["lease-calls"]);
    if (!Number.isInteger(LEASE_CALLS) || LEASE_CALLS < 1) throw new Error(`--lease-calls wants a whole number of calls ≥ 1, not ${values["lease-calls"]}`);
  }
  const baseline = values.baseline === undefined ? undefined : resolve(values.baseline);
  if (values["baseline-redis"] === true && baseline === undefined) throw new Error("--baseline-redis needs --baseline DIR");
  const variants: Variant[] = ["off", "off-again", "redis", "memory", "leased", ...(baseline === undefined ? [] : (["baseline"] as const)), ...(values["baseline-redis"] === true ? (["baseline-redis"] as const) : [])];
  const quick = values.quick === true;
  const s: Settings = quick ? { rounds: Number(values.rounds ?? 1), warmS: 1, measureS: 2 } : { rounds: Number(values.rounds ?? 3), warmS: 2, measureS: 5 };
  for (const cmd of [["h2load", "--version"], ["redis-server", "--version"]]) {
    if (!hasCommand(cmd[0]!, cmd.slice(1))) throw new Error(`${cmd[0]} is not installed (Debian: nghttp2-client, redis-server)`);
  }
  const pin = layout();
  const work = mkdtempSync(join(tmpdir(), "aigw-bench-admission-"));
  writeFileSync(join(work, "body.bin"), grpcRequestBody());
  log(`work dir ${work}; ${pin.description}${values["redis-cpu"] !== undefined ? `; redis-server moved to CPU ${values["redis-cpu"]}` : ""}`);

  const fake = await startFake(pin.fake);
  const redisCpu = values["redis-cpu"] ?? pin.redis;
  const redis = await startRedis(redisCpu);
  const info = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await info.connect();
  const profileDir = values.profile === true ? join(work, "profiles") : undefined;
  let gateways: Gw[] = [];
  const startGateways = async (): Promise<void> => {
    for (const gw of gateways) await gw.proc.stop(15_000);
    gateways = [];
    for (const v of variants) gateways.push(await startGateway(v, work, fake.url, redis.url, pin.gateway, baseline, profileDir));
  };
  // JIT warm-up for each, unmeasured.
  const warmUp = async (): Promise<void> => {
    for (const gw of gateways) await load(gw, peers, 16, { ...s, warmS: 0.5, measureS: quick ? 1 : 3 }, work, pin.loadgen);
  };
  await startGateways();
  const peers = [fake.proc, redis.proc];
  const results = new Map<string, (H2loadResult & { errors: number })[]>();
  const perCall = new Map<string, string>();
  const floors: Floor[] = [];
  const add = (key: string, r: H2loadResult & { errors: number }): void => void results.set(key, [...(results.get(key) ?? []), r]);
  let profileText: string[] = [];
  /** Per variant, times its limit store went unreachable over the run (storeOutages). */
  const outages = new Map<Variant, number>();
  try {
    if (profileDir !== undefined) {
      profileText = await profiles(gateways, peers, s, work, pin.loadgen, quick ? 10_000 : 40_000, profileDir);
    } else {
      // Warm-up; then, on Redis, what one call sends it.
      await warmUp();
      for (const gw of gateways.filter((g) => ON_REDIS.has(g.variant))) {
        for (const c of [1, 64]) {
          const n = c === 1 ? 2000 : 10_000;
          perCall.set(`${gw.variant}:${c}`, await redisPerCall(info, async () => (await load(gw, peers, c, s, work, pin.loadgen, n)).requests));
        }
      }
      for (let round = 0; round < s.rounds; round++) {
        if (round > 0 && values["same-processes"] !== true) {
          log(`round ${round + 1}/${s.rounds}: fresh gateways`);
          await startGateways();
          await warmUp();
        }
        log(`round ${round + 1}/${s.rounds}: the Redis floor`);
        floors.push(await measureFloor(redis.url, pin.gateway));
        const order = round % 2 === 0 ? gateways : [...gateways].reverse();
        for (const c of [1, 64]) {
          for (const gw of order) {
            log(`round ${round + 1}/${s.rounds}: ${gw.variant} c=${c}`);
            // A limited gateway takes turns with its unlimited key: the same process, with and without admission.
            const free = LIMITED.has(gw.variant) && !OTHER_BUILD.has(gw.variant);
            if (free && round % 2 === 1) add(`${gw.variant}~free:${c}`, await load(gw, peers, c, s, work, pin.loadgen, undefined, FREE_KEY));
            add(`${gw.variant}:${c}`, await load(gw, peers, c, s, work, pin.loadgen));
            if (free && round % 2 === 0) add(`${gw.variant}~free:${c}`, await load(gw, peers, c, s, work, pin.loadgen, undefined, FREE_KEY));
          }
        }
      }
      // `--turns N`: N short pairs of turns per limited gateway at c=64, each pair back to
      // back (which key goes first alternates): a drift of the VM's neighbours touches both
      // sides of a pair alike, and N pairs give the median its resolution.
      const turns = Number(values.turns ?? 0);
      const turn: Settings = { ...s, warmS: 0.3, measureS: 1 };
      for (const gw of gateways.filter((g) => LIMITED.has(g.variant) && !OTHER_BUILD.has(g.variant))) {
        if (turns > 0) log(`${gw.variant}: ${turns} pairs of 1 s turns at c=64`);
        for (let i = 0; i < turns; i++) {
          if (i % 2 === 1) add(`${gw.variant}~turnfree:64`, await load(gw, peers, 64, turn, work, pin.loadgen, undefined, FREE_KEY));
          add(`${gw.variant}~turn:64`, await load(gw, peers, 64, turn, work, pin.loadgen));
          if (i % 2 === 0) add(`${gw.variant}~turnfree:64`, await load(gw, peers, 64, turn, work, pin.loadgen, undefined, FREE_KEY));
        }
      }
    }
  } finally {
    info.disconnect();
    for (const gw of gateways) await gw.proc.stop(15_000);
    await redis.proc.stop();
    await fake.proc.stop();
    // Read before the logs go with the scratch directory.
    for (const v of variants) outages.set(v, storeOutages({ logFile: join(work, `gateway-${v}.log`) }));
    if (profileDir === undefined) rmSync(work, { recursive: true, force: true });
  }
  const where = `${cpus()[0]?.model ?? "?"} × ${availableParallelism()}; ${pin.description}${values["redis-cpu"] !== undefined ? `, but redis-server on CPU ${redisCpu}` : ""}`;
  if (profileDir !== undefined) {
    process.stdout.write(`Admission profiles, ${where}. Profiles: ${profileDir}\n\n${profileText.join("\n")}\n`);
    return;
  }

  const m = (variant: Variant, c: number, f: (r: H2loadResult & { errors: number }) => number): number => median((results.get(`${variant}:${c}`) ?? []).map(f));
  const p50 = (v: Variant): number => m(v, 1, (r) => r.latency.p50);
  const rps = (v: Variant): number => m(v, 64, (r) => r.rps);
  const cpu = (v: Variant, name: string): number => m(v, 64, (r) => r.cpu[name] ?? Number.NaN);
  // % of one core per (calls per second) → µs of CPU per call: less sensitive to others' load than req/s.
  const cpuPerCall = (v: Variant): number => m(v, 64, (r) => ((r.cpu[`gateway-${v}`] ?? Number.NaN) / r.rps) * 1e4);
  const errors = (v: Variant): number => [1, 64].reduce((n, c) => n + (results.get(`${v}:${c}`) ?? []).reduce((k, r) => k + r.errors, 0), 0);
  const title: Record<Variant, string> = { off: "off (no limits)", "off-again": "off again (A/A)", redis: "redis (REDIS_URL, loopback)", memory: "memory", leased: `redis, leases of ${LEASE_CALLS} calls`, baseline: "baseline build, no limits", "baseline-redis": "baseline build, redis" };
  const col = (f: (v: Variant) => string): string => `| ${variants.map(f).join(" | ")} |`;
  // The same process with its unlimited key: paired by round (both ran in it, back to back).
  const paired = variants.filter((v) => results.has(`${v}~free:64`));
  const pairs = (v: Variant, c: number, f: (r: H2loadResult & { errors: number }, key: string) => number, d: (limited: number, free: number) => number, short = false): { free: number; limited: number; diff: number } => {
    const lim = (results.get(short ? `${v}~turn:${c}` : `${v}:${c}`) ?? []).map((r) => f(r, v));
    const fr = (results.get(short ? `${v}~turnfree:${c}` : `${v}~free:${c}`) ?? []).map((r) => f(r, v));
    return { free: median(fr), limited: median(lim), diff: median(lim.map((x, i) => d(x, fr[i]!))) };
  };
  // µs of CPU a call from a turn's % of a core: the whole process, or (":main") its main thread alone:
  // JavaScript, node:http2 and nghttp2, without V8's helper threads (GC, compiler).
  const perCallOf =
    (thread: "" | ":main") =>
    (r: H2loadResult, v: string): number =>
      ((r.cpu[`gateway-${v}${thread}`] ?? Number.NaN) / r.rps) * 1e4;
  const samePerCall = perCallOf("");
  const samePerCallMain = perCallOf(":main");
  const sameP50 = (v: Variant) => pairs(v, 1, (r) => r.latency.p50, (a, b) => a - b);
  const sameRps = (v: Variant) => pairs(v, 64, (r) => r.rps, (a, b) => (a / b) * 100);
  const sameCpu = (v: Variant) => pairs(v, 64, samePerCall, (a, b) => a - b);
  const sameLines =
    paired.length === 0
      ? []
      : [
          "In the same process: each limited gateway also serves an unlimited key, in turns with the limited one (which goes first alternates by round), so the difference is the admission alone, not that of two processes (the A/A line above). Unlimited → limited; in brackets the median over rounds of each round's pair:",
          "",
          `| | ${paired.map((v) => title[v]).join(" | ")} |`,
          `|---|${paired.map(() => "---|").join("")}`,
          `| p50 ms, c=1 | ${paired.map((v) => { const x = sameP50(v); return `${fmt(x.free, 3)} → ${fmt(x.limited, 3)} (${signed(x.diff, 3)})`; }).join(" | ")} |`,
          `| req/s, c=64 | ${paired.map((v) => { const x = sameRps(v); return `${fmt(x.free)} → ${fmt(x.limited)} (${fmt(x.diff, 1)}%)`; }).join(" | ")} |`,
          `| gateway CPU µs per call, c=64 | ${paired.map((v) => { const x = sameCpu(v); return `${fmt(x.free, 0)} → ${fmt(x.limited, 0)} (${signed(x.diff, 0)})`; }).join(" | ")} |`,
          ...(Number(values.turns ?? 0) > 0
            ? [
                `| req/s, c=64, ${values.turns} pairs of 1 s turns | ${paired.map((v) => { const x = pairs(v, 64, (r) => r.rps, (a, b) => (a / b) * 100, true); return `${fmt(x.free)} → ${fmt(x.limited)} (${fmt(x.diff, 1)}%)`; }).join(" | ")} |`,
                `| gateway CPU µs per call, c=64, the same turns | ${paired.map((v) => { const x = pairs(v, 64, samePerCall, (a, b) => a - b, true); return `${fmt(x.free, 0)} → ${fmt(x.limited, 0)} (${signed(x.diff, 0)})`; }).join(" | ")} |`,
                `| of which the main thread | ${paired.map((v) => { const x = pairs(v, 64, samePerCallMain, (a, b) => a - b, true); return `${fmt(x.free, 0)} → ${fmt(x.limited, 0)} (${signed(x.diff, 0)})`; }).join(" | ")} |`,
                `| req/s kept, ratio of the medians | ${paired.map((v) => { const x = pairs(v, 64, (r) => r.rps, (a, b) => a / b, true); return `${fmt((x.limited / x.free) * 100, 1)}%`; }).join(" | ")} |`,
              ]
            : []),
          "",
          ...paired.filter((v) => v === "redis" || v === "leased").map((v) => `Targets, same process (${title[v]}): p50 ${signed(sameP50(v).diff, 3)} ms (≤ +0.15: ${sameP50(v).diff <= 0.15 ? "met" : "MISSED"}), throughput ${fmt(sameRps(v).diff, 1)}% (≥ 90%: ${sameRps(v).diff >= 90 ? "met" : "MISSED"}).${outageWarning(outages.get(v) ?? 0)}`),
          "",
        ];
  const vsOff = (v: Variant, x: (v: Variant) => number, d: (a: number, o: number) => string): string => (v === "off" ? "" : ` (${d(x(v), x("off"))})`);
  const lines = [
    `Admission cost, unary gRPC, ${s.rounds} round(s) × ${s.measureS} s per figure (medians${values["same-processes"] === true ? ", the same processes throughout" : ", fresh processes each round"}), ${where}.`,
    "",
    `| | ${variants.map((v) => title[v]).join(" | ")} |`,
    `|---|${variants.map(() => "---|").join("")}`,
    `| p50 ms, c=1 ${col((v) => fmt(p50(v), 3) + vsOff(v, p50, (a, o) => signed(a - o, 3)))}`,
    `| p99 ms, c=1 ${col((v) => fmt(m(v, 1, (r) => r.latency.p99), 3))}`,
    `| req/s, c=64 ${col((v) => fmt(rps(v)) + vsOff(v, rps, (a, o) => `${fmt((a / o) * 100, 1)}%`))}`,
    `| gateway CPU %, c=64 ${col((v) => fmt(cpu(v, `gateway-${v}`)))}`,
    `| gateway CPU µs per call, c=64 ${col((v) => fmt(cpuPerCall(v), 0) + vsOff(v, cpuPerCall, (a, o) => signed(a - o, 0)))}`,
    `| redis-server CPU %, c=64 ${col((v) => fmt(cpu(v, "redis-server")))}`,
    `| other processes CPU %, c=64 ${col((v) => fmt(cpu(v, "other")))}`,
    `| other processes CPU %, c=1 ${col((v) => fmt(m(v, 1, (r) => r.cpu["other"] ?? Number.NaN)))}`,
    `| failed calls ${col((v) => String(errors(v)))}`,
    `| limit store outages (calls unchecked) ${col((v) => String(outages.get(v) ?? 0))}`,
    "",
    `A/A: a second gateway identical to off does ${fmt((rps("off-again") / rps("off")) * 100, 1)}% of its req/s at c=64 and ${signed(p50("off-again") - p50("off"), 3)} ms on its p50 at c=1, ${signed(cpuPerCall("off-again") - cpuPerCall("off"), 0)} µs of CPU per call: differences to off of that size are this run's noise.`,
    ...(["redis", "leased"] as const).map((v) => `Targets (${title[v]} vs off): p50 +${fmt(p50(v) - p50("off"), 3)} ms (≤ +0.15: ${p50(v) - p50("off") <= 0.15 ? "met" : "MISSED"}), throughput ${fmt((rps(v) / rps("off")) * 100, 1)}% (≥ 90%: ${rps(v) / rps("off") >= 0.9 ? "met" : "MISSED"}).${outageWarning(outages.get(v) ?? 0)}`),
    "",
    ...sameLines,
    ...(floors.length === 0
      ? []
      : [
          `The Redis floor, one call at a time from a process on the gateway's CPU with the gateways idle (${FLOOR_CALLS} each, medians of the rounds' p50s): PING ${fmt(median(floors.map((f) => f.pingMs)), 3)} ms; a lone reservation of the four caller buckets through the gateway's RedisStore ${fmt(median(floors.map((f) => f.reserveMs)), 3)} ms, of which redis-server ran the script for ${fmt(median(floors.map((f) => f.scriptMs)), 3)} ms (INFO commandstats). Redis' p50 over memory's at c=1: +${fmt(p50("redis") - p50("memory"), 3)} ms.`,
          "",
        ]),
    "Redis per call (INFO commandstats and total_reads_processed over a counted run: 2,000 calls at c=1, 10,000 at c=64):",
    "",
    ...[...perCall].map(([k, v]) => `- ${k.replace(":", ", c=")}: ${v}`),
    "",
    "Estimator vs tokenizer, per call (this process):",
    "",
    ...(await estimatorCost()),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench:admission: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  await stopAll();
  process.exit(1);
});
