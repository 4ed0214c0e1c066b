/**
 * When to try the upstream again. Only transient failures are retried, only while
 * nothing has reached the caller (the provider checks that), and only when the wait
 * fits inside the call's remaining budget: no sleep outlives the caller's deadline.
 */
import { Reason, type GatewayError } from "../../core/errors.js";

export interface RetryPolicy {
  /** Retries after the first attempt (UPSTREAM_MAX_RETRIES). */
  readonly maxRetries: number;
  /** First backoff step; doubles per retry, with full jitter. */
  readonly baseDelayMs: number;
  /** Largest backoff step the gateway picks itself (a server-given delay may be longer). */
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxRetries: 2, baseDelayMs: 200, maxDelayMs: 2000 };

/**
 * Delay before the next attempt, or undefined to give up with `err`.
 * @param retriesSoFar retries already made (0 after the first attempt failed)
 * @param remainingMs what is left of the call's budget
 */
export function retryDelay(err: GatewayError, retriesSoFar: number, remainingMs: number, policy: RetryPolicy, random: () => number = Math.random): number | undefined {
  if (retriesSoFar >= policy.maxRetries) return undefined;
  const backoff = (base: number): number => random() * Math.min(policy.maxDelayMs, base * 2 ** retriesSoFar);
  let delay: number;
  switch (err.reason) {
    case Reason.UPSTREAM_CONNECTION_FAILED:
    case Reason.UPSTREAM_SERVER_ERROR:
    case Reason.UPSTREAM_TIMEOUT:
      delay = err.retryDelayMs ?? backoff(policy.baseDelayMs);
      break;
    case Reason.UPSTREAM_OVERLOADED:
      // Shared capacity frees up fast: a short, fully jittered wait spreads the herd.
      delay = err.retryDelayMs ?? backoff(policy.baseDelayMs / 2);
      break;
    case Reason.UPSTREAM_QUOTA_EXCEEDED:
      // The organisation's bucket: only worth it when the upstream says when it refills,
      // and never for a daily quota (hours away).
      if (err.retryDelayMs === undefined || err.metadata["quotaWindow"] === "day") return undefined;
      delay = err.retryDelayMs + random() * policy.baseDelayMs;
      break;
    default:
      return undefined;
  }
  // Leave the next attempt some time to succeed, or the wait is wasted.
  return delay + policy.baseDelayMs < remainingMs ? delay : undefined;
}
