/**
 * Micro-benchmark of the per-call metrics, old path against new in one run:
 *
 * - record: one finished call into the instruments. Old: prom-client Counter/Histogram
 *   updated with a labels object per operation (the code before metric-series.ts, copied
 *   below). New: CallRecorder (src/metrics/record-call.ts).
 * - report: CallReporter.report as the gateway calls it, with the metrics observer (log level
 *   error: no line is built for these calls, as the old copy builds none).
 * - build: report's CallRecord alone, old `{ ...id, code, … }` against field by field. Old: the record spread from
 *   the identity and the old recording; new: src/core/call-log.ts and GatewayMetrics.
 *
 * Every call is a realistic unary call (model, key, attempts, upstream status, first chunk,
 * upstream time, tokens, cost, time_info) spread over a few label combinations, 1 in 16 a
 * failure. Rounds alternate old and new; the figures are the median and best round, in ns
 * per call. Run: npm run build && node dist/bench/micro/metrics.js [rounds] [calls per round]
 */
import { Counter as PromCounter, Histogram as PromHistogram, Registry } from "prom-client";
import { CallReporter, codeName, type CallIdentity, type CallObserver, type CallRecord, type LoggedFailure } from "../../src/core/call-log.js";
import { Code } from "../../src/core/errors.js";
import type { CallStats } from "../../src/core/provider.js";
import { createLogger, type Logger } from "../../src/log.js";
import { COMPLETION_TIME_BUCKETS, DURATION_BUCKETS, OVERHEAD_BUCKETS, PROMPT_TIME_BUCKETS, QUEUE_TIME_BUCKETS, TTFT_BUCKETS } from "../../src/metrics/buckets.js";
import { GatewayMetrics } from "../../src/metrics/gateway-metrics.js";
import { createInstruments } from "../../src/metrics/instruments.js";
import { keyLabel, methodLabel, ModelLabels } from "../../src/metrics/labels.js";
import { CallRecorder, isUpstreamReason } from "../../src/metrics/record-call.js";

const ROUNDS = positiveInt(process.argv[2], 11);
const CALLS = positiveInt(process.argv[3], 50_000);
const MODELS = ["llama3.1-8b", "gpt-oss-120b", "qwen-3-32b"];

interface Call {
  readonly id: CallIdentity;
  readonly stats: CallStats;
  readonly error: LoggedFailure | undefined;
}

/** A fixed set of calls, reused round after round (the gateway's labels are as few). */
function makeCalls(n: number): Call[] {
  const calls: Call[] = [];
  for (let i = 0; i < n; i++) {
    const failed = i % 16 === 15;
    const stats: CallStats = {
      model: MODELS[i % MODELS.length]!,
      keyName: i % 2 === 0 ? "team-a" : "team-b",
      attempts: 1,
      upstreamStatus: failed ? 503 : 200,
      firstChunkAt: 0, // set per call: report() measures from `started`
      upstreamMs: 40 + (i % 7),
      promptTokens: 120 + i,
      completionTokens: 300 + i,
      cachedTokens: 64,
      reasoningTokens: 0,
      costUsd: 0.000123,
      timeInfo: { queueTime: 0.0004, promptTime: 0.003, completionTime: 0.04 + (i % 5) / 1000 },
    };
    const error = failed ? { code: Code.UNAVAILABLE, reason: "UPSTREAM_UNAVAILABLE", message: "upstream unavailable" } : undefined;
    calls.push({ id: { transport: i % 4 === 0 ? "http" : "grpc", method: "CreateChatCompletion", requestId: `req-${i}` }, stats, error });
  }
  return calls;
}

function recordOf(call: Call, now: number): CallRecord {
  return {
    transport: call.id.transport,
    method: call.id.method,
    requestId: call.id.requestId,
    code: call.error === undefined ? "OK" : codeName(call.error.code),
    durationMs: 45.67,
    startedAt: now - 45.67,
    stats: call.stats,
    error: call.error,
  };
}

// ---- The old path, as it was before metric-series.ts (prom-client per operation) ----

function oldInstruments(registry: Registry) {
  const registers = [registry];
  const counter = (name: string, labelNames: readonly string[]) => new PromCounter({ name, help: name, labelNames, registers });
  const histogram = (name: string, labelNames: readonly string[], buckets: number[]) => new PromHistogram({ name, help: name, labelNames, buckets, registers });
  return {
    requests: counter("gateway_requests_total", ["transport", "method", "code", "model", "key"]),
    duration: histogram("gateway_request_duration_seconds", ["transport", "method", "code", "model"], DURATION_BUCKETS),
    ttft: histogram("gateway_time_to_first_token_seconds", ["transport", "method", "model"], TTFT_BUCKETS),
    overhead: histogram("gateway_overhead_seconds", ["transport", "method"], OVERHEAD_BUCKETS),
    tokens: counter("gateway_tokens_total", ["model", "kind"]),
    cost: counter("gateway_cost_usd_total", ["model", "key"]),
    attempts: counter("cerebras_upstream_attempts_total", ["model"]),
    upstreamErrors: counter("cerebras_upstream_errors_total", ["reason"]),
    queueTime: histogram("cerebras_queue_time_seconds", ["model"], QUEUE_TIME_BUCKETS),
    promptTime: histogram("cerebras_prompt_time_seconds", ["model"], PROMPT_TIME_BUCKETS),
    completionTime: histogram("cerebras_completion_time_seconds", ["model"], COMPLETION_TIME_BUCKETS),
  };
}

function oldRecordCall(m: ReturnType<typeof oldInstruments>, models: ModelLabels, record: CallRecord): void {
  const s = record.stats;
  const transport = record.transport;
  const method = methodLabel(record);
  const model = models.of(record);
  const key = keyLabel(record);
  m.requests.inc({ transport, method, code: record.code, model, key });
  m.duration.observe({ transport, method, code: record.code, model }, record.durationMs / 1000);
  if (s.firstChunkAt !== undefined) m.ttft.observe({ transport, method, model }, Math.max(0, s.firstChunkAt - record.startedAt) / 1000);
  if (s.upstreamMs !== undefined) m.overhead.observe({ transport, method }, Math.max(0, record.durationMs - s.upstreamMs) / 1000);
  if (s.attempts !== undefined) m.attempts.inc({ model }, count(s.attempts));
  const reason = record.error?.reason;
  if (reason !== undefined && s.attempts !== undefined && isUpstreamReason(reason)) m.upstreamErrors.inc({ reason });
  if (s.promptTokens !== undefined) {
    m.tokens.inc({ model, kind: "prompt" }, count(s.promptTokens));
    m.tokens.inc({ model, kind: "completion" }, count(s.completionTokens));
    m.tokens.inc({ model, kind: "cached" }, count(s.cachedTokens));
    m.tokens.inc({ model, kind: "reasoning" }, count(s.reasoningTokens));
  }
  if (s.costUsd !== undefined) m.cost.inc({ model, key }, count(s.costUsd));
  const t = s.timeInfo;
  if (t !== undefined) {
    if (isSeconds(t.queueTime)) m.queueTime.observe({ model }, t.queueTime);
    if (isSeconds(t.promptTime)) m.promptTime.observe({ model }, t.promptTime);
    if (isSeconds(t.completionTime)) m.completionTime.observe({ model }, t.completionTime);
  }
}

function count(n: number | undefined): number {
  return n !== undefined && Number.isFinite(n) && n > 0 ? n : 0;
}

function isSeconds(v: number | undefined): v is number {
  return v !== undefined && Number.isFinite(v) && v >= 0;
}

/** CallReporter.report before: the record spread from the identity (no log line: none is built at level error). */
function oldReport(observers: readonly CallObserver[], id: CallIdentity, stats: CallStats, started: number, error: LoggedFailure | undefined): void {
  const record: CallRecord = {
    ...id,
    code: error === undefined ? "OK" : codeName(error.code),
    durationMs: Math.round((performance.now() - started) * 100) / 100,
    startedAt: started,
    stats,
    error,
  };
  for (const observer of observers) observer(record);
}

// ---- The runs ----

type Run = (calls: readonly Call[]) => void;

function recordRuns(): { old: Run; new: Run } {
  const listed = (m: string): boolean => MODELS.includes(m);
  const oldM = oldInstruments(new Registry());
  const oldModels = new ModelLabels(listed);
  const recorder = new CallRecorder(createInstruments(new Registry(), () => 0), new ModelLabels(listed));
  return {
    old: (calls) => {
      const now = performance.now();
      for (const call of calls) oldRecordCall(oldM, oldModels, recordOf(call, now));
    },
    new: (calls) => {
      const now = performance.now();
      for (const call of calls) recorder.record(recordOf(call, now));
    },
  };
}

function buildRuns(): { old: Run; new: Run } {
  let sink = 0; // read, so the records are not optimised away
  const build = (make: (id: CallIdentity, now: number) => CallRecord): Run => (calls) => {
    const now = performance.now();
    for (const call of calls) sink += make(call.id, now).durationMs;
    if (sink < 0) console.log(sink);
  };
  return {
    old: build((id, now) => ({ ...id, code: "OK", durationMs: 45.67, startedAt: now, stats: {}, error: undefined })),
    new: build((id, now) => ({ transport: id.transport, method: id.method, requestId: id.requestId, code: "OK", durationMs: 45.67, startedAt: now, stats: {}, error: undefined })),
  };
}

function reportRuns(logger: Logger): { old: Run; new: Run } {
  const listed = (m: string): boolean => MODELS.includes(m);
  const oldM = oldInstruments(new Registry());
  const oldModels = new ModelLabels(listed);
  const oldObservers: CallObserver[] = [(record) => oldRecordCall(oldM, oldModels, record)];
  const reporter = new CallReporter(logger);
  new GatewayMetrics(logger).observe(reporter, { inFlight: () => 0, listed });
  return {
    old: (calls) => {
      for (const call of calls) {
        const started = performance.now() - 45;
        call.stats.firstChunkAt = started + 44;
        oldReport(oldObservers, call.id, call.stats, started, call.error);
      }
    },
    new: (calls) => {
      for (const call of calls) {
        const started = performance.now() - 45;
        call.stats.firstChunkAt = started + 44;
        reporter.report(call.id, {}, call.stats, started, call.error);
      }
    },
  };
}

/** ns per call of each round, old and new alternating so drift hits both alike. */
function measure(runs: { old: Run; new: Run }, calls: readonly Call[]): { old: number[]; new: number[] } {
  const perCall = (run: Run): number => {
    const t0 = process.hrtime.bigint();
    run(calls);
    return Number(process.hrtime.bigint() - t0) / calls.length;
  };
  for (let i = 0; i < 3; i++) {
    perCall(runs.old); // warm-up: let both paths optimise
    perCall(runs.new);
  }
  const out = { old: [] as number[], new: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    out.old.push(perCall(runs.old));
    out.new.push(perCall(runs.new));
  }
  return out;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function print(name: string, r: { old: number[]; new: number[] }): void {
  const [o, n] = [median(r.old), median(r.new)];
  const fmt = (x: number): string => x.toFixed(0).padStart(7);
  console.log(`${name.padEnd(8)} old ${fmt(o)} ns/call (best ${fmt(Math.min(...r.old))})   new ${fmt(n)} ns/call (best ${fmt(Math.min(...r.new))})   saved ${fmt(o - n)} ns/call (${(o / n).toFixed(1)}x)`);
}

function positiveInt(arg: string | undefined, fallback: number): number {
  const n = arg === undefined ? fallback : Number(arg);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`expected a positive integer, got ${arg}`);
  return n;
}

const calls = makeCalls(CALLS);
console.log(`node ${process.version}, ${ROUNDS} rounds of ${CALLS} calls, median (best) ns per call`);
print("record", measure(recordRuns(), calls));
print("report", measure(reportRuns(createLogger("error")), calls));
print("build", measure(buildRuns(), calls));
