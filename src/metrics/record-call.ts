/**
 * A finished call (CallRecord) into the instruments: everything is counted or observed
 * here, once per call, after its log line; nothing is touched per chunk.
 *
 * This runs for every call, so the label work is done once per kind of call: the series a
 * call updates are resolved the first time its (transport, method, code, model, key) is
 * seen and kept in a tree of Maps; after that a call costs five Map lookups and a few
 * additions.
 */
import type { CallRecord } from "../core/call-log.js";
import { Reason } from "../core/errors.js";
import type { Instruments } from "./instruments.js";
import { keyLabel, methodLabel, type ModelLabels } from "./labels.js";
import type { CounterSeries, HistogramSeries } from "./metric-series.js";

/** The series one kind of call updates (made, but only exported once updated: see metric-series.ts). */
interface CallSeries {
  readonly requests: CounterSeries;
  readonly duration: HistogramSeries;
  readonly ttft: HistogramSeries;
  readonly overhead: HistogramSeries;
  readonly attempts: CounterSeries;
  readonly promptTokens: CounterSeries;
  readonly completionTokens: CounterSeries;
  readonly cachedTokens: CounterSeries;
  readonly reasoningTokens: CounterSeries;
  readonly cost: CounterSeries;
  readonly queueTime: HistogramSeries;
  readonly promptTime: HistogramSeries;
  readonly completionTime: HistogramSeries;
}

/** transport → method → code → model → key → the series. */
type SeriesTree = Branch<Branch<Branch<Branch<Branch<CallSeries>>>>>;

export class CallRecorder {
  private readonly tree: SeriesTree;

  constructor(
    private readonly m: Instruments,
    private readonly models: ModelLabels,
  ) {
    this.tree = new Branch((transport) =>
      new Branch((method) => new Branch((code) => new Branch((model) => new Branch((key) => callSeries(m, transport, method, code, model, key))))),
    );
  }

  record(record: CallRecord): void {
    const s = record.stats;
    const c = this.tree.at(record.transport).at(methodLabel(record)).at(record.code).at(this.models.of(record)).at(keyLabel(record));

    c.requests.inc();
    c.duration.observe(record.durationMs / 1000);
    if (s.firstChunkAt !== undefined) c.ttft.observe(Math.max(0, s.firstChunkAt - record.startedAt) / 1000);
    // durationMs is rounded to 10 µs: clamp the rounding away rather than observe a negative.
    if (s.upstreamMs !== undefined) c.overhead.observe(Math.max(0, record.durationMs - s.upstreamMs) / 1000);

    if (s.attempts !== undefined) c.attempts.add(s.attempts);
    // Retried attempts were counted as they failed (upstreamRetried); this is the last one.
    const reason = record.error?.reason;
    if (reason !== undefined && s.attempts !== undefined && isUpstreamReason(reason)) this.m.upstreamErrors.series(reason).inc();

    // Counters add 0 for anything but a finite figure >= 0 (undefined included).
    if (s.promptTokens !== undefined) {
      c.promptTokens.add(s.promptTokens);
      c.completionTokens.add(s.completionTokens);
      c.cachedTokens.add(s.cachedTokens);
      c.reasoningTokens.add(s.reasoningTokens);
    }
    if (s.costUsd !== undefined) c.cost.add(s.costUsd);

    const t = s.timeInfo;
    if (t !== undefined) {
      if (isSeconds(t.queueTime)) c.queueTime.observe(t.queueTime);
      if (isSeconds(t.promptTime)) c.promptTime.observe(t.promptTime);
      if (isSeconds(t.completionTime)) c.completionTime.observe(t.completionTime);
    }
  }
}

function callSeries(m: Instruments, transport: string, method: string, code: string, model: string, key: string): CallSeries {
  return {
    requests: m.requests.series(transport, method, code, model, key),
    duration: m.duration.series(transport, method, code, model),
    ttft: m.ttft.series(transport, method, model),
    overhead: m.overhead.series(transport, method),
    attempts: m.attempts.series(model),
    promptTokens: m.tokens.series(model, "prompt"),
    completionTokens: m.tokens.series(model, "completion"),
    cachedTokens: m.tokens.series(model, "cached"),
    reasoningTokens: m.tokens.series(model, "reasoning"),
    cost: m.cost.series(model, key),
    queueTime: m.queueTime.series(model),
    promptTime: m.promptTime.series(model),
    completionTime: m.completionTime.series(model),
  };
}

/** One level of a label tree: a label value → the next level (or the leaf), made on first use. */
class Branch<T> {
  private readonly next = new Map<string, T>();

  constructor(private readonly make: (value: string) => T) {}

  at(value: string): T {
    let t = this.next.get(value);
    if (t === undefined) {
      t = this.make(value);
      this.next.set(value, t);
    }
    return t;
  }
}

/**
 * Failures the upstream caused (as opposed to the caller's deadline or cancellation, or a
 * gateway bug). CallRecorder also requires an upstream attempt (stats.attempts): a
 * MODEL_NOT_FOUND without one is the catalog's pre-flight refusal, not Cerebras'.
 */
export function isUpstreamReason(reason: string): boolean {
  return reason.startsWith("UPSTREAM_") || reason === Reason.MODEL_NOT_FOUND;
}

/** Cerebras' time_info figures: observed only when they are a duration (finite, >= 0). */
function isSeconds(v: number | undefined): v is number {
  return v !== undefined && Number.isFinite(v) && v >= 0;
}
