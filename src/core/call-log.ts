/**
 * The end of every call, the same for both transports: one log line (what was called,
 * how it ended, and the call's figures: model, key, attempts, the upstream key and (a
 * fallback) model of the last attempt, upstream status, time to first token, tokens, cost), then the call's span (tracing), then the observers
 * (metrics). Bugs (INTERNAL) log their cause; the caller only ever saw the request id.
 */
import type { Logger } from "../log.js";
import { Code } from "./errors.js";
import type { CallStats } from "./provider.js";
import type { CallTrace } from "./tracing.js";

const CODE_NAMES = new Map<number, string>(Object.entries(Code).map(([name, value]) => [value, name]));

export function codeName(code: number): string {
  return CODE_NAMES.get(code) ?? String(code);
}

/** How a call failed, as the log line tells it (a GatewayError is one). */
export interface LoggedFailure {
  readonly code: number;
  readonly reason: string;
  readonly message: string;
  /** Logged for INTERNAL failures: the bug behind them. */
  readonly cause?: unknown;
}

/** One finished call, as observers (metrics) see it. */
export interface CallRecord {
  readonly transport: "grpc" | "http";
  /** The RPC name (CreateChatCompletion…), the same on both transports; undefined for unrouted HTTP requests. */
  readonly method: string | undefined;
  readonly requestId: string;
  /** gRPC code name: "OK", "UNAVAILABLE"… */
  readonly code: string;
  readonly durationMs: number;
  /** performance.now() when the call began (stats.firstChunkAt is on the same clock). */
  readonly startedAt: number;
  readonly stats: CallStats;
  readonly error: LoggedFailure | undefined;
}

export type CallObserver = (record: CallRecord) => void;

export interface CallIdentity {
  readonly transport: "grpc" | "http";
  readonly method: string | undefined;
  readonly requestId: string;
  /** The call's span, ended with the call's record (after its log line, before the observers). */
  readonly trace?: CallTrace | undefined;
}

export class CallReporter {
  private readonly observers: CallObserver[] = [];

  constructor(private readonly logger: Logger) {}

  /** Adds an observer, told about every call after its log line. */
  observe(observer: CallObserver): void {
    this.observers.push(observer);
  }

  /**
   * @param extra transport-specific log fields (HTTP method, path, status…)
   * @param started performance.now() when the call began
   * @param quiet a routine call (a probe, a scrape): when it succeeds, logged at debug and not counted
   */
  report(id: CallIdentity, extra: Record<string, unknown>, stats: CallStats, started: number, error: LoggedFailure | undefined, quiet = false): void {
    // Field by field, not `...id`: in V8 (Node 20) `{ ...x, more }` takes a slow path, µs per
    // call (bench/micro/metrics.ts, "build"); and the record keeps one shape for its observers.
    const record: CallRecord = {
      transport: id.transport,
      method: id.method,
      requestId: id.requestId,
      code: error === undefined ? "OK" : codeName(error.code),
      durationMs: round(performance.now() - started),
      startedAt: started,
      stats,
      error,
    };
    const routine = quiet && error === undefined;
    this.log(record, extra, started, routine);
    if (id.trace !== undefined) this.endTrace(id.trace, record);
    if (!routine) for (const observer of this.observers) observer(record);
  }

  private endTrace(trace: CallTrace, record: CallRecord): void {
    try {
      trace.end(record);
    } catch (err) {
      // A tracing bug must never fail the call it describes (or the observers after it).
      this.logger.error({ err, requestId: record.requestId }, "ending a call's span failed");
    }
  }

  private log(r: CallRecord, extra: Record<string, unknown>, started: number, routine: boolean): void {
    const e = r.error;
    const level = e === undefined ? (routine ? "debug" : "info") : e.code === Code.INTERNAL ? "error" : "warn";
    // Build nothing for a line the level drops: this runs once per call.
    if (!this.logger.isLevelEnabled(level)) return;
    const s = r.stats;
    const line: Record<string, unknown> = { transport: r.transport, method: r.method, requestId: r.requestId, ...extra, model: s.model, code: r.code, durationMs: r.durationMs };
    if (s.keyName !== undefined) line["key"] = s.keyName;
    if (s.attempts !== undefined) line["attempts"] = s.attempts;
    if (s.upstreamKey !== undefined) line["upstreamKey"] = s.upstreamKey;
    // Only when a fallback answered (or was tried last): the model the caller asked for is `model`.
    if (s.upstreamModel !== undefined && s.upstreamModel !== s.model) line["upstreamModel"] = s.upstreamModel;
    if (s.upstreamStatus !== undefined) line["upstreamStatus"] = s.upstreamStatus;
    if (s.upstreamRequestId !== undefined) line["upstreamRequestId"] = s.upstreamRequestId;
    if (s.firstChunkAt !== undefined) line["ttftMs"] = round(s.firstChunkAt - started);
    if (s.promptTokens !== undefined) {
      line["tokens"] = { prompt: s.promptTokens, completion: s.completionTokens, cached: s.cachedTokens, reasoning: s.reasoningTokens };
    }
    if (s.costUsd !== undefined) line["costUsd"] = s.costUsd;
    if (e === undefined) {
      this.logger[level](line, "call");
      return;
    }
    // Added to `line`, not spread into a copy: `{ ...x, more }` is a slow path in V8 (µs).
    line["reason"] = e.reason;
    if (level === "error") {
      line["err"] = e.cause ?? e;
      this.logger.error(line, "call failed");
    } else {
      line["error"] = e.message;
      this.logger.warn(line, "call failed");
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
