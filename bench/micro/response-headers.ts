/**
 * Micro-benchmark of a reply's headers for its caller (issue 14's admission cost): the
 * caller's rate-limit standing (4 limits × limit/remaining/reset), Cerebras' own figures
 * (6, renamed x-cerebras-ratelimit-*), which key and model answered (3) and the request
 * id, rendered into the call and handed to grpc-js, as a unary reply of the
 * `bench:admission` memory/redis gateways does:
 *
 *   npm run build && node dist/bench/micro/response-headers.js [--repeats N] [--calls C] [--e2e-calls E]
 *
 * Variants:
 * - off: the same call with no caller limits (what the `off` gateway pays): the floor;
 *   "off, before" is the same with the code before;
 * - before: the code before ResponseHeaders and replyMetadata, copied below: a Record
 *   filled with a keyed store per header, a grpc-js Metadata filled with set() (which
 *   checks every name and value), grpc-js' toHttp2Headers, String() and toFixed(2);
 * - after: the gateway's code (ResponseHeaders, replyMetadata, caller-headers.ts);
 * - after, grpc-js' toHttp2Headers: the same, but grpc-js' own toHttp2Headers instead of
 *   ReplyMetadata's template clone (what the clone is worth);
 * - after, filled with set(): the same, but the Metadata filled through grpc-js' set()
 *   (what skipping its checks is worth).
 *
 * In process (ns per call, median of N × 3 rounds of C calls): "render" fills the call's
 * headers (setLimitHeaders ×4, noteRateLimits, the upstream walk's three); "hand over"
 * builds the Metadata and what grpc-js' sendMetadata makes of it before node:http2 takes
 * over (server-interceptors.js: toHttp2Headers, then Object.assign onto its default
 * headers; copied below).
 *
 * End to end: a grpc-js server per variant (a child process) and a node:http2 client in
 * this one, one connection, 64 calls in flight, each reply rendering and sending its
 * headers as above: the server's CPU µs per call (grpc-js, node:http2, HPACK), so the
 * difference to `off` is all the extra headers cost the server, as bench:admission's
 * "gateway CPU µs per call" counts it.
 *
 * Every variant runs in a process of its own (see "a child" below), the variants taking
 * turns. Bounded: repeats × rounds × calls, and E calls per end-to-end run.
 */
import { Metadata, Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { connect, type ClientHttp2Session } from "node:http2";
import { loadavg } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setLimitHeaders } from "../../src/admission/caller-headers.js";
import { CLOCK_TICKS_PER_SECOND, machineBusyTicks } from "../lib/proc.js";
import { bounded } from "../lib/stats.js";
import { msToFull } from "../../src/admission/bucket.js";
import { limitsFrom, WINDOW_MS, type Limit } from "../../src/admission/limits.js";
import { setResponseHeader, type CallContext, type CallStats } from "../../src/core/provider.js";
import { ATTEMPTS_HEADER, MODEL_HEADER, UPSTREAM_KEY_HEADER } from "../../src/core/upstreams.js";
import { replyMetadata } from "../../src/grpc/reply-metadata.js";
import { callerHeaderName, isRateLimitHeader, noteRateLimits } from "../../src/providers/cerebras/rate-limits.js";

const { values: args } = parseArgs({ options: { repeats: { type: "string" }, calls: { type: "string" }, "e2e-calls": { type: "string" }, child: { type: "string" }, variant: { type: "string" } } });
const REPEATS = bounded(args.repeats, 3, 1, 21);
const CALLS = bounded(args.calls, 20_000, 1000, 1_000_000);
const E2E_CALLS = bounded(args["e2e-calls"], 10_000, 0, 200_000);

/** bench/admission.ts' limits: far above use, so every figure is a large number. */
const LIMITS = limitsFrom({ requests_per_minute: 1e9, requests_per_day: 1e12, tokens_per_minute: 1e12, tokens_per_day: 1e14 });
const MODEL = "gpt-oss-120b";
/** What the fake Cerebras sends with a chat reply (its generous fixed rate-limit headers among them). */
const UPSTREAM_HEADERS: Record<string, string> = {
  "content-type": "application/json",
  "x-ratelimit-limit-requests-day": "14400",
  "x-ratelimit-remaining-requests-day": "14399",
  "x-ratelimit-reset-requests-day": "33011.38",
  "x-ratelimit-limit-tokens-minute": "1000000",
  "x-ratelimit-remaining-tokens-minute": "999000",
  "x-ratelimit-reset-tokens-minute": "11.38",
  "x-request-id": "0f7c1f52-3b41-4e3b-9d7e-1f1d9f0a3c11",
  date: "Tue, 01 Dec 2026 15:00:52 GMT",
};
const REQUEST_ID = "d48b88c2-3a42-4a8a-b85e-48b1485ce8a8";
/** upstream-walk.ts' check of the model before it becomes a header value. */
const SAFE_HEADER_VALUE = /^[\x21-\x7e]{1,256}$/;

/** The levels one call's reservation leaves in the four buckets: a different figure each call, as under load. */
function levels(i: number): number[] {
  return LIMITS.map((l) => l.limit - 1 - (l.resource === "tokens" ? 40_975 : 1) * (i % 5000));
}
const RATES = LIMITS.map((l) => l.limit / WINDOW_MS[l.window]);

// ---- before: the code this change replaced, as it was ----

interface OldContext {
  responseHeaders: Record<string, string> | undefined;
  readonly stats: CallStats;
}

function oldSetResponseHeader(ctx: OldContext, name: string, value: string): void {
  (ctx.responseHeaders ??= {})[name] = value;
}

const oldNames = new Map<Limit, { limit: string; remaining: string; reset: string; value: string }>();
function oldSetLimitHeaders(ctx: OldContext, limit: Limit, level: number, capacity: number, ratePerMs: number): void {
  let n = oldNames.get(limit);
  if (n === undefined) {
    const suffix = `${limit.resource}-${limit.window}`;
    n = { limit: `x-ratelimit-limit-${suffix}`, remaining: `x-ratelimit-remaining-${suffix}`, reset: `x-ratelimit-reset-${suffix}`, value: String(limit.limit) };
    oldNames.set(limit, n);
  }
  oldSetResponseHeader(ctx, n.limit, n.value);
  oldSetResponseHeader(ctx, n.remaining, level <= 0 ? "0" : String(Math.floor(level + 1e-9)));
  oldSetResponseHeader(ctx, n.reset, (msToFull(level, capacity, ratePerMs) / 1000).toFixed(2));
}

function oldNoteRateLimits(ctx: OldContext, headers: Record<string, string>): void {
  let kept: Record<string, string> | undefined;
  for (const name in headers) {
    if (!isRateLimitHeader(name)) continue;
    const value = headers[name]!;
    (kept ??= {})[name] = value;
    oldSetResponseHeader(ctx, callerHeaderName(name), value);
  }
  if (kept !== undefined) ctx.stats.upstreamRateLimits = kept;
}

function oldMetadata(ctx: OldContext): Metadata {
  const headers = new Metadata();
  headers.set("x-request-id", REQUEST_ID);
  const extra = ctx.responseHeaders;
  if (extra !== undefined) for (const name in extra) headers.set(name, extra[name]!);
  return headers;
}

// ---- grpc-js' sendMetadata up to node:http2 (server-interceptors.js, BaseServerInterceptingCall) ----

const DEFAULT_RESPONSE_HEADERS = { ":status": 200, "content-type": "application/grpc+proto" };
const DEFAULT_COMPRESSION_HEADERS = { "grpc-accept-encoding": "identity,deflate,gzip", "grpc-encoding": "identity" };

function grpcHeaders(custom: Record<string, unknown>): Record<string, unknown> {
  return Object.assign(Object.assign(Object.assign({}, DEFAULT_RESPONSE_HEADERS), DEFAULT_COMPRESSION_HEADERS), custom);
}

// ---- the variants ----

interface Variant {
  /** On the command line of a child. */
  readonly id: string;
  readonly name: string;
  /** Fills a fresh call's headers; returns what hand() takes. */
  render(i: number): unknown;
  /** The Metadata for the reply (what the handler passes to sendMetadata). */
  metadata(rendered: unknown): Metadata;
  /** What grpc-js' sendMetadata makes of it before node:http2. */
  hand(metadata: Metadata): Record<string, unknown>;
}

function upstreamWalk(ctx: CallContext): void {
  setResponseHeader(ctx, UPSTREAM_KEY_HEADER, "default");
  setResponseHeader(ctx, ATTEMPTS_HEADER, String(1));
  if (SAFE_HEADER_VALUE.test(MODEL)) setResponseHeader(ctx, MODEL_HEADER, MODEL);
}

/** The part of a CallContext the header code touches (a CallScope would add a timer per call to every variant). */
function newContext(): CallContext {
  return { replyHeaders: undefined, stats: {} } as unknown as CallContext;
}

function beforeVariant(id: string, name: string, limited: boolean): Variant {
  return {
    id,
    name,
    render: (i) => {
      const ctx: OldContext = { responseHeaders: undefined, stats: {} };
      if (limited) {
        const ls = levels(i);
        LIMITS.forEach((l, k) => oldSetLimitHeaders(ctx, l, ls[k]!, l.limit, RATES[k]!));
      }
      oldSetResponseHeader(ctx, UPSTREAM_KEY_HEADER, "default");
      oldSetResponseHeader(ctx, ATTEMPTS_HEADER, String(1));
      if (SAFE_HEADER_VALUE.test(MODEL)) oldSetResponseHeader(ctx, MODEL_HEADER, MODEL);
      oldNoteRateLimits(ctx, UPSTREAM_HEADERS);
      return ctx;
    },
    metadata: (ctx) => oldMetadata(ctx as OldContext),
    hand: (m) => grpcHeaders(m.toHttp2Headers()),
  };
}

const before = beforeVariant("before", "before", true);
const offBefore = beforeVariant("off-before", "off, before", false);

function afterVariant(id: string, name: string, limited: boolean, hand: (m: Metadata) => Record<string, unknown>): Variant {
  return {
    id,
    name,
    render: (i) => {
      const ctx = newContext();
      if (limited) {
        const ls = levels(i);
        LIMITS.forEach((l, k) => setLimitHeaders(ctx, l, ls[k]!, l.limit, RATES[k]!));
      }
      upstreamWalk(ctx);
      noteRateLimits(ctx, UPSTREAM_HEADERS);
      return ctx;
    },
    metadata: (ctx) => replyMetadata(REQUEST_ID, (ctx as CallContext).replyHeaders),
    hand,
  };
}

const off = afterVariant("off", "off (no limits)", false, (m) => grpcHeaders(m.toHttp2Headers()));
const after = afterVariant("after", "after", true, (m) => grpcHeaders(m.toHttp2Headers()));
const afterPlain = afterVariant("after-plain", "after, grpc-js' toHttp2Headers", true, (m) => grpcHeaders(Metadata.prototype.toHttp2Headers.call(m)));
/** The same Metadata filled through set(), grpc-js' checks and all. */
const afterSet: Variant = {
  ...after,
  id: "after-set",
  name: "after, filled with set()",
  metadata: (ctx) => {
    const m = replyMetadata(REQUEST_ID, undefined);
    const f = (ctx as CallContext).replyHeaders?.flat ?? [];
    for (let i = 0; i < f.length; i += 2) m.set(f[i]!, f[i + 1]!);
    return m;
  },
};
const VARIANTS = [off, offBefore, before, after, afterPlain, afterSet];


// ---- a child: one variant in a process of its own ----
//
// V8 shares hidden-class transitions between all objects made from `{}`: the templates
// ReplyMetadata builds with defineProperty create transitions that grpc-js' keyed stores
// then follow, which keeps grpc-js' own objects out of dictionary mode too. Measured in
// one process, `before` would borrow `after`'s transitions; so every variant runs in a
// child process of its own, the children taking turns.

let sink = 0;

/** One round of CALLS calls: ns per call of each stage (the clock read around batches of 100). */
function round(v: Variant, start: number): { render: number; hand: number } {
  const rendered: unknown[] = new Array(100);
  let renderNs = 0n;
  let handNs = 0n;
  for (let done = 0; done < CALLS; done += 100) {
    const t0 = process.hrtime.bigint();
    for (let j = 0; j < 100; j++) rendered[j] = v.render(start + done + j);
    const t1 = process.hrtime.bigint();
    for (let j = 0; j < 100; j++) sink += v.hand(v.metadata(rendered[j]))[":status"] as number;
    const t2 = process.hrtime.bigint();
    renderNs += t1 - t0;
    handNs += t2 - t1;
  }
  return { render: Number(renderNs) / CALLS, hand: Number(handNs) / CALLS };
}

const CHILD_ROUNDS = 3;

function renderChild(v: Variant): void {
  for (let w = 0; w < 3; w++) round(v, w * CALLS); // warm-up: every path optimised
  const out = { render: [] as number[], hand: [] as number[] };
  for (let r = 0; r < CHILD_ROUNDS; r++) {
    const s = round(v, r * CALLS);
    out.render.push(s.render);
    out.hand.push(s.hand);
  }
  const u = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ ...out, sink, cpuUs: u.user + u.system })}\n`);
}

const E2E_PATH = "/bench.Headers/Unary";
const REPLY = Buffer.from("ok");

/** A grpc-js server whose replies send `v`'s headers; on stdin, `start` and `stop` bracket a measured run (its CPU µs and calls on stdout). */
async function serverChild(v: Variant): Promise<void> {
  const server = new Server();
  let n = 0;
  const identity = (b: Buffer): Buffer => b;
  server.addService(
    { Unary: { path: E2E_PATH, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity, originalName: "Unary" } },
    {
      Unary: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        call.sendMetadata(v.metadata(v.render(n++)));
        callback(null, REPLY);
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  process.stdout.write(`${JSON.stringify({ port })}\n`);
  let cpu = process.cpuUsage();
  let calls = 0;
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === "start") {
      cpu = process.cpuUsage();
      calls = n;
    } else if (line === "stop") {
      const u = process.cpuUsage(cpu);
      process.stdout.write(`${JSON.stringify({ us: u.user + u.system, calls: n - calls })}\n`);
    } else break;
  }
  server.forceShutdown();
  const u = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ cpuUs: u.user + u.system })}\n`);
}

// ---- the parent: children in turns, and the client of the end-to-end runs ----

/** CPU µs the children used, for the "other processes" figure. */
let childrenUs = 0;

interface Child {
  readonly proc: ChildProcessWithoutNullStreams;
  /** The next line the child prints, parsed. */
  next<T>(): Promise<T>;
}

function spawnChild(mode: string, v: Variant): Child {
  const proc = spawn(process.execPath, [fileURLToPath(import.meta.url), "--child", mode, "--variant", v.id, "--calls", String(CALLS)], { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  proc.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  return {
    proc,
    next: async <T>() => {
      const r = await lines.next();
      if (r.done === true) throw new Error(`child ${mode} ${v.id} ended: ${stderr.slice(-2000)}`);
      return JSON.parse(r.value as string) as T;
    },
  };
}

async function inProcess(): Promise<Map<Variant, { render: number[]; hand: number[] }>> {
  const out = new Map(VARIANTS.map((v) => [v, { render: [] as number[], hand: [] as number[] }]));
  for (let r = 0; r < REPEATS; r++) {
    for (let k = 0; k < VARIANTS.length; k++) {
      const v = VARIANTS[(k + r) % VARIANTS.length]!; // the order turns, so drift hits all alike
      const child = spawnChild("render", v);
      const s = await child.next<{ render: number[]; hand: number[]; cpuUs: number }>();
      childrenUs += s.cpuUs;
      out.get(v)!.render.push(...s.render);
      out.get(v)!.hand.push(...s.hand);
    }
  }
  return out;
}

/** `count` unary calls on `session`, 64 in flight; rejects on the first that fails. */
function calls(session: ClientHttp2Session, count: number): Promise<void> {
  const headers = { ":method": "POST", ":path": E2E_PATH, "content-type": "application/grpc", te: "trailers" };
  const body = Buffer.from([0, 0, 0, 0, 0]); // one empty message
  return new Promise((resolve, reject) => {
    let started = 0;
    let finished = 0;
    const one = (): void => {
      started++;
      const req = session.request(headers);
      let ok = false;
      req.on("trailers", (t) => (ok = t["grpc-status"] === "0"));
      req.on("data", () => {});
      req.on("error", reject);
      req.on("close", () => {
        if (!ok) return reject(new Error("a call failed"));
        if (++finished === count) resolve();
        else if (started < count) one();
      });
      req.end(body);
    };
    for (let i = 0; i < Math.min(64, count); i++) one();
  });
}

async function endToEnd(): Promise<Map<Variant, number[]>> {
  const out = new Map(VARIANTS.map((v) => [v, [] as number[]]));
  const servers = VARIANTS.map((v) => ({ v, child: spawnChild("server", v) }));
  const sessions: ClientHttp2Session[] = [];
  try {
    for (const s of servers) sessions.push(connect(`http://127.0.0.1:${(await s.child.next<{ port: number }>()).port}`));
    for (let i = 0; i < servers.length; i++) await calls(sessions[i]!, 3000); // warm-up
    for (let r = 0; r < REPEATS * CHILD_ROUNDS; r++) {
      for (let k = 0; k < servers.length; k++) {
        const i = (k + r) % servers.length;
        const { v, child } = servers[i]!;
        await calls(sessions[i]!, 500);
        child.proc.stdin.write("start\n");
        await calls(sessions[i]!, E2E_CALLS);
        child.proc.stdin.write("stop\n");
        const m = await child.next<{ us: number; calls: number }>();
        out.get(v)!.push(m.us / m.calls);
      }
    }
  } finally {
    for (const s of sessions) s.close();
    for (const s of servers) s.child.proc.stdin.end("exit\n");
  }
  for (const s of servers) childrenUs += (await s.child.next<{ cpuUs: number }>()).cpuUs;
  return out;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function headerCount(v: Variant): number {
  return Object.keys(v.hand(v.metadata(v.render(0)))).length;
}

function load(): string {
  return loadavg().map((x) => x.toFixed(2)).join(" / ");
}

async function parent(): Promise<void> {
  // The variants must send the same headers: a bench of different work would prove nothing.
  const entries = (v: Variant): string => JSON.stringify(Object.entries(v.hand(v.metadata(v.render(7)))).sort());
  if (![before, afterPlain, afterSet].every((v) => entries(v) === entries(after)) || entries(offBefore) !== entries(off)) throw new Error("before and after do not send the same headers");
  if (headerCount(off) >= headerCount(after)) throw new Error("off sends the limited headers");

  const lines = [`node ${process.version}; headers per reply: off ${headerCount(off)}, limited ${headerCount(after)} (with grpc-js' 4 defaults); load average before ${load()}`, ""];
  const machineAt = machineBusyTicks();
  const startedAt = performance.now();
  const ownAt = process.cpuUsage();
  const ip = await inProcess();
  lines.push(
    `| in process (${REPEATS} × ${CHILD_ROUNDS} rounds of ${CALLS} calls), ns per call | render | hand over | total | total − off |`,
    "| --- | --: | --: | --: | --: |",
  );
  const total = (v: Variant): number => median(ip.get(v)!.render) + median(ip.get(v)!.hand);
  for (const v of VARIANTS) {
    const s = ip.get(v)!;
    lines.push(`| ${v.name} | ${median(s.render).toFixed(0)} | ${median(s.hand).toFixed(0)} | ${total(v).toFixed(0)} | ${v === off ? "" : `+${(total(v) - total(off)).toFixed(0)}`} |`);
  }
  if (E2E_CALLS > 0) {
    const e2e = await endToEnd();
    const offUs = median(e2e.get(off)!);
    lines.push(
      "",
      `| end to end (grpc-js server, node:http2 client, c=64, ${REPEATS * CHILD_ROUNDS} runs of ${E2E_CALLS} calls), server CPU µs per call | median | range | − off |`,
      "| --- | --: | --- | --: |",
    );
    for (const v of VARIANTS) {
      const s = e2e.get(v)!;
      lines.push(`| ${v.name} | ${median(s).toFixed(1)} | ${Math.min(...s).toFixed(1)}–${Math.max(...s).toFixed(1)} | ${v === off ? "" : `+${(median(s) - offUs).toFixed(1)}`} |`);
    }
  }
  // What the rest of the machine used meanwhile (a shared machine makes these figures noisy).
  const seconds = (performance.now() - startedAt) / 1000;
  const own = process.cpuUsage(ownAt);
  const machineUs = ((machineBusyTicks() - machineAt) / CLOCK_TICKS_PER_SECOND) * 1e6;
  const otherPct = ((machineUs - own.user - own.system - childrenUs) / 1e6 / seconds) * 100;
  lines.push("", `other processes: ${Math.max(0, otherPct).toFixed(0)}% of a core over the ${seconds.toFixed(0)} s run; load average after ${load()}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

if (args.child === undefined) await parent();
else {
  const v = VARIANTS.find((x) => x.id === args.variant);
  if (v === undefined) throw new Error(`unknown variant ${args.variant}`);
  if (args.child === "render") renderChild(v);
  else if (args.child === "server") await serverChild(v);
  else throw new Error(`unknown child mode ${args.child}`);
}
