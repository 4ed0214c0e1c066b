/**
 * The tracing hooks of one call, in process, without the network: start the call's span,
 * start and end one attempt, end the call (what a unary call does), in ns per call.
 *
 * - off: PASS_THROUGH (tracing off, the default), the call carrying no trace context
 * - off+parent: PASS_THROUGH, the call carrying a traceparent (forwarded upstream)
 * - on: the OpenTelemetry tracer (src/tracing/otel.ts) with its batch processor, every
 *   span sampled, exported to a sink that drops it (the OTLP encoding and the network
 *   are not counted here: bench/tracing.ts measures them)
 * - on+parent: the same, continuing a caller's trace
 *
 * Rounds alternate the variants; median and best round. Run after a build:
 * node dist/bench/tracing-hooks.js [rounds] [calls per round]
 */
import type { CallRecord } from "../src/core/call-log.js";
import type { CallStats } from "../src/core/provider.js";
import { PASS_THROUGH, type Tracer } from "../src/core/tracing.js";
import { createLogger } from "../src/log.js";
import { createOtelTracer } from "../src/tracing/otel.js";
import { ChatCompletionRequest, FinishReason, Role } from "../gen/aigateway/v1/chat.js";

const ROUNDS = Number(process.argv[2] ?? 7);
const CALLS = Number(process.argv[3] ?? 100_000);
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const upstream = { host: "api.cerebras.ai", port: 443 };
const request = ChatCompletionRequest.fromPartial({ model: "gpt-oss-120b", maxCompletionTokens: 256, messages: [{ role: Role.ROLE_USER, contentKind: { $case: "content", value: "hi" } }] });

function stats(): CallStats {
  return {
    model: "gpt-oss-120b",
    keyName: "team-a",
    attempts: 1,
    upstreamStatus: 200,
    upstreamRequestId: "req-upstream",
    firstChunkAt: performance.now(),
    upstreamMs: 40,
    promptTokens: 120,
    completionTokens: 300,
    cachedTokens: 0,
    reasoningTokens: 10,
    costUsd: 0.0001,
    responseId: "chatcmpl-1",
    responseModel: "gpt-oss-120b",
    finishReasons: [FinishReason.FINISH_REASON_STOP],
  };
}

/** Every so many calls the loop yields, so the batch processor exports as it would between calls (its queue never overflows). */
const YIELD_EVERY = 256;
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function run(tracer: Tracer, traceparent: string | undefined): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < CALLS; i++) {
    if (i % YIELD_EVERY === 0) await tick();
    const s = stats();
    const trace = tracer.startCall({ transport: "grpc", method: "CreateChatCompletion", requestId: "r", traceparent, tracestate: undefined });
    const attempt = trace.startAttempt(request, 1, false, upstream);
    if (attempt.headers.length > 8) throw new Error("unexpected");
    attempt.end(undefined, s);
    const record: CallRecord = { transport: "grpc", method: "CreateChatCompletion", requestId: "r", code: "OK", durationMs: 50, startedAt: started, stats: s, error: undefined };
    trace.end(record);
  }
  return ((performance.now() - started) * 1e6) / CALLS;
}

/** The cost of the loop itself (the stats and the record), subtracted from every variant. */
async function runBare(): Promise<number> {
  const started = performance.now();
  let sink = 0;
  for (let i = 0; i < CALLS; i++) {
    if (i % YIELD_EVERY === 0) await tick();
    const s = stats();
    const record: CallRecord = { transport: "grpc", method: "CreateChatCompletion", requestId: "r", code: "OK", durationMs: 50, startedAt: started, stats: s, error: undefined };
    sink += record.durationMs;
  }
  if (sink < 0) throw new Error("unreachable");
  return ((performance.now() - started) * 1e6) / CALLS;
}

const dropped = { n: 0 };
const on = await createOtelTracer({
  protocol: "http/protobuf",
  logger: createLogger("silent"),
  exporter: {
    export: (spans, done) => {
      dropped.n += spans.length;
      done({ code: 0 });
    },
    shutdown: () => Promise.resolve(),
  },
});

const variants: Array<[string, () => Promise<number>]> = [
  ["off", () => run(PASS_THROUGH, undefined)],
  ["off+parent", () => run(PASS_THROUGH, TRACEPARENT)],
  ["on", () => run(on, undefined)],
  ["on+parent", () => run(on, TRACEPARENT)],
];
const results = new Map<string, number[]>(variants.map(([n]) => [n, []]));
for (let r = 0; r < ROUNDS; r++) {
  const bare = await runBare();
  for (const [name, fn] of r % 2 === 0 ? variants : [...variants].reverse()) results.get(name)!.push(Math.max(0, (await fn()) - bare));
}
await on.shutdown();
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`tracing hooks of one unary call (start call, one attempt, end both), ns per call, ${ROUNDS} rounds × ${CALLS.toLocaleString("en-US")} calls; Node ${process.version}`);
console.log("| variant | median ns/call | best ns/call |");
console.log("|---|---|---|");
for (const [name] of variants) console.log(`| ${name} | ${Math.round(median(results.get(name)!))} | ${Math.round(Math.min(...results.get(name)!))} |`);
console.log(`(spans handed to the exporter: ${dropped.n.toLocaleString("en-US")} of ${(ROUNDS * CALLS * 4).toLocaleString("en-US")} made by the "on" variants)`);
