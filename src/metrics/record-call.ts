/**
 * A finished call (CallRecord) into the instruments: everything is counted or observed
 * here, once per call, after its log line; nothing is touched per chunk.
 */
import type { CallRecord } from "../core/call-log.js";
import { Reason } from "../core/errors.js";
import type { Instruments } from "./instruments.js";
import { keyLabel, methodLabel, type ModelLabels } from "./labels.js";

export function recordCall(m: Instruments, models: ModelLabels, record: CallRecord): void {
  const s = record.stats;
  const transport = record.transport;
  const method = methodLabel(record);
  const model = models.of(record);
  const key = keyLabel(record);

  m.requests.inc({ transport, method, code: record.code, model, key });
  m.duration.observe({ transport, method, code: record.code, model }, record.durationMs / 1000);
  if (s.firstChunkAt !== undefined) m.ttft.observe({ transport, method, model }, Math.max(0, s.firstChunkAt - record.startedAt) / 1000);
  // durationMs is rounded to 10 µs: clamp the rounding away rather than observe a negative.
  if (s.upstreamMs !== undefined) m.overhead.observe({ transport, method }, Math.max(0, record.durationMs - s.upstreamMs) / 1000);

  if (s.attempts !== undefined) m.attempts.inc({ model }, count(s.attempts));
  // Retried attempts were counted as they failed (upstreamRetried); this is the last one.
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

/**
 * Failures the upstream caused (as opposed to the caller's deadline or cancellation, or a
 * gateway bug). recordCall also requires an upstream attempt (stats.attempts): a
 * MODEL_NOT_FOUND without one is the catalog's pre-flight refusal, not Cerebras'.
 */
export function isUpstreamReason(reason: string): boolean {
  return reason.startsWith("UPSTREAM_") || reason === Reason.MODEL_NOT_FOUND;
}

/** Upstream figures feed counters, which only go up: anything but a finite n >= 0 counts 0. */
function count(n: number | undefined): number {
  return n !== undefined && Number.isFinite(n) && n > 0 ? n : 0;
}

function isSeconds(v: number | undefined): v is number {
  return v !== undefined && Number.isFinite(v) && v >= 0;
}
