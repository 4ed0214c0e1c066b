/**
 * The one log line per call, the same for both transports: what was called, how it
 * ended, and the call's figures (model, attempts, upstream status, time to first token,
 * tokens, cost). Bugs (INTERNAL) log their cause; the caller only ever saw the request id.
 */
import type { Logger } from "../log.js";
import { Code } from "./errors.js";
import type { CallStats } from "./provider.js";

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

/**
 * @param fields transport-specific fields (transport, method, requestId, …)
 * @param started performance.now() when the call began
 */
export function logCall(logger: Logger, fields: Record<string, unknown>, stats: CallStats, started: number, error: LoggedFailure | undefined): void {
  const now = performance.now();
  const line: Record<string, unknown> = {
    ...fields,
    model: stats.model,
    code: error === undefined ? "OK" : codeName(error.code),
    durationMs: round(now - started),
  };
  if (stats.attempts !== undefined) line["attempts"] = stats.attempts;
  if (stats.upstreamStatus !== undefined) line["upstreamStatus"] = stats.upstreamStatus;
  if (stats.firstChunkAt !== undefined) line["ttftMs"] = round(stats.firstChunkAt - started);
  if (stats.promptTokens !== undefined) {
    line["tokens"] = { prompt: stats.promptTokens, completion: stats.completionTokens, cached: stats.cachedTokens, reasoning: stats.reasoningTokens };
  }
  if (stats.costUsd !== undefined) line["costUsd"] = stats.costUsd;
  if (error === undefined) logger.info(line, "call");
  else if (error.code === Code.INTERNAL) logger.error({ ...line, reason: error.reason, err: error.cause ?? error }, "call failed");
  else logger.warn({ ...line, reason: error.reason, error: error.message }, "call failed");
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
