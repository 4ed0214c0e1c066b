/**
 * How `aigw` reports a failed call: a few readable lines, or one JSON document.
 */
import { status as GrpcStatus } from "@grpc/grpc-js";
import type { GatewayError } from "../core/errors.js";

/** e.g. "aigw: UNAVAILABLE (UPSTREAM_SERVER_ERROR): Cerebras: Internal server error" plus detail lines. */
export function errorText(err: GatewayError): string {
  const name = GrpcStatus[err.code] ?? String(err.code);
  const reason = err.reason === name ? "" : ` (${err.reason})`;
  const lines = [`aigw: ${name}${reason}: ${err.message}`];
  for (const v of err.fieldViolations) lines.push(`  ${v.field}: ${v.description}`);
  for (const v of err.quotaViolations) lines.push(`  quota ${v.subject}: ${v.description}`);
  if (err.retryDelayMs !== undefined) lines.push(`  retry after ${formatDelay(err.retryDelayMs)}`);
  const requestId = err.metadata["requestId"];
  if (requestId !== undefined) lines.push(`  request ${requestId}`);
  return lines.join("\n");
}

/** The --json error document. */
export function errorJson(err: GatewayError): Record<string, unknown> {
  return {
    error: {
      code: err.code,
      status: GrpcStatus[err.code] ?? null,
      reason: err.reason,
      message: err.message,
      metadata: err.metadata,
      retryDelayMs: err.retryDelayMs ?? null,
      fieldViolations: err.fieldViolations,
      quotaViolations: err.quotaViolations,
    },
  };
}

function formatDelay(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${Math.round(ms / 100) / 10} s`;
  return `${Math.round(ms / 60_000)} min`;
}
