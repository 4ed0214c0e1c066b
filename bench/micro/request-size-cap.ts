/**
 * Micro-benchmark of what request-size-cap.ts' prefix watcher costs a unary call, now that
 * every chat call gets one (MAX_REQUEST_BYTES refused at the prefix), in one process, the
 * variants taking turns:
 *
 *   npm run build && node dist/bench/micro/request-size-cap.js [--rounds N] [--calls C] [--part 1|2]
 *
 * 1. The watcher alone, ns of CPU per call (median and range of N rounds of C calls): one
 *    call's chunks dispatched to a paused stream that already has grpc-js' 'data' listener
 *    (a no-op here), as the HTTP/2 stream of a call does:
 *    - none: the dispatch alone (the floor, what the chat calls paid before);
 *    - first prefix: watchMessageSizes as the gateway runs it on a unary call (added,
 *      reads the first prefix, removes itself);
 *    - every prefix: the same watcher kept to the end of the request (removed at the
 *      half-close), what a request stream gets;
 *    for a 200-byte request (one chunk) and a 1 MiB one (64 chunks of 16 KiB).
 * 2. End to end, µs of CPU per unary call (this process: a grpc-js server and a node:http2
 *    client, one connection, 64 calls in flight, C calls a round), one server per variant:
 *    - no interceptor: grpc-js' floor;
 *    - shell: an interceptor doing what the gateway's does but the watcher (a timer armed
 *      on the metadata, cleared at the half-close);
 *    - shell + first prefix, shell + every prefix: the same with the watcher;
 *    - gateway's: request-body-timeout.ts' interceptor itself.
 *    Client and server share the process, so the differences between rows are the
 *    server's; the machine is shared, so only rows of one run compare. Each round starts
 *    with the next variant, so none always runs first. On a busy machine a round's figure
 *    varies by tens of µs, far more than part 1's difference: this part bounds the cost
 *    (no row stands out), part 1 measures it.
 *
 * Bounded: N × C calls per row; nothing listens but 127.0.0.1.
 */
import { Server, ServerCredentials, ServerInterceptingCall, type ServerInterceptor, type ServiceDefinition } from "@grpc/grpc-js";
import { connect, type ClientHttp2Session, type ServerHttp2Stream } from "node:http2";
import { loadavg } from "node:os";
import { PassThrough, Duplex } from "node:stream";
import { parseArgs } from "node:util";
import { ChatCompletionRequest, Role } from "../../gen/aigateway/v1/chat.js";
import { CallReporter } from "../../src/core/call-log.js";
import { requestBodyTimeoutInterceptor } from "../../src/grpc/request-body-timeout.js";
import { watchMessageSizes } from "../../src/grpc/request-size-cap.js";
import { createLogger } from "../../src/log.js";

const { values: args } = parseArgs({ options: { rounds: { type: "string" }, calls: { type: "string" }, part: { type: "string" } } });
const PARTS = args.part === undefined ? ["1", "2"] : [args.part];
const ROUNDS = Math.max(1, Math.min(21, Number(args.rounds ?? 5)));
const CALLS = Math.max(1000, Math.min(200_000, Number(args.calls ?? 10_000)));
const MAX = 16 * 1024 * 1024;
const MiB = 1024 * 1024;

function framed(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(message.length + 5);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

const small = framed(ChatCompletionRequest.encode(ChatCompletionRequest.fromPartial({ model: "gpt-oss-120b", messages: [{ role: Role.ROLE_USER, contentKind: { $case: "content", value: "Say hello in one short sentence, please. ".repeat(4) } }] })).finish());
const bigMessage = framed(Buffer.alloc(MiB - 5, 0x41));
const bigChunks = Array.from({ length: bigMessage.length / (16 * 1024) }, (_, i) => bigMessage.subarray(i * 16 * 1024, (i + 1) * 16 * 1024));

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: readonly number[], digits: number): string => `${median(xs).toFixed(digits).padStart(8)}  (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

// ---- 1. the watcher alone ----

let sink = 0;
/** A paused Duplex with a listener standing for grpc-js' handleDataFrame (the watcher only needs 'data' and its listeners). */
function pausedStream(): ServerHttp2Stream {
  const s = new PassThrough();
  s.on("data", (chunk: Buffer) => {
    sink += chunk.length;
  });
  s.pause();
  return s as unknown as ServerHttp2Stream; // a PassThrough, not an HTTP/2 stream: watchMessageSizes uses only its EventEmitter side
}

type Variant = "none" | "first prefix" | "every prefix";
function oneCall(stream: ServerHttp2Stream, chunks: readonly Buffer[], variant: Variant): void {
  const stop = variant === "none" ? undefined : watchMessageSizes(stream, MAX, variant === "first prefix", () => sink++);
  for (const c of chunks) stream.emit("data", c);
  stop?.(); // the half-close
}

function watcherRound(chunks: readonly Buffer[], variant: Variant): number {
  const stream = pausedStream();
  const n = chunks.length > 1 ? Math.max(100, CALLS / 10) : CALLS * 10;
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) oneCall(stream, chunks, variant);
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / n;
}

// ---- 2. end to end ----

const echo: ServiceDefinition = {
  call: {
    path: "/bench.Echo/Call",
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};
const REPLY = Buffer.alloc(64, 0x42);

/** The gateway interceptor's shape without its size watcher: a timer armed on the metadata, cleared at the half-close or the status. */
function shell(watch: Variant): ServerInterceptor {
  return (method, call) => {
    let timer: NodeJS.Timeout | undefined;
    let unwatch: (() => void) | undefined;
    const stop = (): void => {
      unwatch?.();
      unwatch = undefined;
      clearTimeout(timer);
      timer = undefined;
    };
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            timer = setTimeout(() => undefined, 10_000);
            timer.unref();
            const stream: unknown = (call as unknown as { readonly stream?: unknown }).stream;
            if (watch !== "none" && stream instanceof Duplex) unwatch = watchMessageSizes(stream as ServerHttp2Stream, MAX, watch === "first prefix" && !method.requestStream, () => sink++);
            pass(metadata);
          },
          onReceiveHalfClose: (pass) => {
            stop();
            pass();
          },
          onCancel: stop,
        }),
      sendStatus: (status, next) => {
        stop();
        next(status);
      },
    });
  };
}

async function serve(interceptors: ServerInterceptor[]): Promise<{ server: Server; port: number }> {
  const server = new Server({ interceptors, "grpc.max_receive_message_length": MAX });
  server.addService(echo, { call: (_call: unknown, done: (err: null, reply: Buffer) => void) => done(null, REPLY) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { server, port };
}

/** `calls` unary calls over `s`, 64 in flight; resolves when all have ended. */
function drive(s: ClientHttp2Session, calls: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let started = 0;
    let ended = 0;
    const one = (): void => {
      started++;
      const st = s.request({ ":method": "POST", ":path": "/bench.Echo/Call", "content-type": "application/grpc", te: "trailers" });
      st.on("data", () => undefined);
      st.on("error", reject);
      st.on("close", () => {
        ended++;
        if (ended === calls) resolve();
        else if (started < calls) one();
      });
      st.end(small);
    };
    for (let i = 0; i < Math.min(64, calls); i++) one();
  });
}

async function main(): Promise<void> {
  console.log(`request-size-cap micro: ${ROUNDS} rounds, load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} (shared machine: compare rows of this run only)`);
  if (PARTS.includes("1")) watcherPart();
  if (PARTS.includes("2")) await endToEndPart();
  if (sink < 0) console.log(sink);
}

function watcherPart(): void {
  console.log("\n1. the watcher alone, ns of CPU per call: median (range)");
  for (const [what, chunks] of [[`${small.length}-byte request, 1 chunk`, [small]], ["1 MiB request, 64 chunks", bigChunks]] as const) {
    const variants: Variant[] = ["none", "first prefix", "every prefix"];
    const results = new Map<Variant, number[]>(variants.map((v) => [v, []]));
    for (const v of variants) watcherRound(chunks, v); // warm-up
    for (let r = 0; r < ROUNDS; r++) for (const v of variants) results.get(v)!.push(watcherRound(chunks, v));
    console.log(`  ${what}`);
    for (const v of variants) console.log(`    ${v.padEnd(14)} ${fmt(results.get(v)!, 0)}   +${(median(results.get(v)!) - median(results.get("none")!)).toFixed(0)} ns`);
  }

}

async function endToEndPart(): Promise<void> {
  const reporter = new CallReporter(createLogger("silent"));
  const rows: Array<[string, ServerInterceptor[]]> = [
    ["no interceptor", []],
    ["shell", [shell("none")]],
    ["shell + first prefix", [shell("first prefix")]],
    ["shell + every prefix", [shell("every prefix")]],
    ["gateway's", [requestBodyTimeoutInterceptor({ reporter, timeoutMs: 10_000, maxRequestBytes: MAX })]],
  ];
  const servers = await Promise.all(rows.map(([, i]) => serve(i)));
  const sessions = await Promise.all(servers.map(({ port }) => new Promise<ClientHttp2Session>((resolve, reject) => {
    const s = connect(`http://127.0.0.1:${port}`);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  })));
  const e2e = rows.map(() => [] as number[]);
  for (const s of sessions) await drive(s, 5000); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    // Each round starts with another variant: none always runs first (or after the same one).
    for (let k = 0; k < rows.length; k++) {
      const v = (r + k) % rows.length;
      const start = process.cpuUsage();
      await drive(sessions[v]!, CALLS);
      const used = process.cpuUsage(start);
      e2e[v]!.push((used.user + used.system) / CALLS);
    }
  }
  console.log(`\n2. end to end, µs of CPU per unary call (client and server in this process, ${CALLS} calls a round, 64 in flight): median (range)`);
  const shellMedian = median(e2e[1]!);
  rows.forEach(([name], v) => console.log(`  ${name.padEnd(22)} ${fmt(e2e[v]!, 2)}   ${v === 0 ? "" : `${(median(e2e[v]!) - shellMedian >= 0 ? "+" : "")}${(median(e2e[v]!) - shellMedian).toFixed(2)} µs vs shell`}`));
  for (const s of sessions) s.close();
  await Promise.all(servers.map(({ server }) => new Promise<void>((resolve) => server.tryShutdown(() => resolve()))));
}

await main();
