/**
 * The rules of the attempt loop (upstream-walk.ts), as pure functions:
 *
 * - what a failure allows: moving to another candidate (another key, or a fallback
 *   model), retrying after a wait, or nothing (it goes to the caller as it is);
 * - how long to wait before another round: backoff with full jitter for transient
 *   failures, and for a quota only when it resets within what is left of
 *   UPSTREAM_QUOTA_MAX_WAIT_MS (never a daily quota) — no wait outlives the budget;
 * - which failure the caller hears when everything failed, and what the error says
 *   about the attempts (bounded: the trailers stay small, status.ts).
 *
 * Moving needs no wait (another key is another organisation or endpoint); only a new
 * round over candidates already tried does. Nothing is retried or moved once a byte
 * reached the caller.
 */
import { Code, GatewayError, Reason, type QuotaViolation } from "./errors.js";
import type { UpstreamCandidate } from "./upstreams.js";

export interface RetryPolicy {
  /** Rounds after the first (UPSTREAM_MAX_RETRIES): waits before trying candidates again. */
  readonly maxRetries: number;
  /** First backoff step; doubles per retry, with full jitter. */
  readonly baseDelayMs: number;
  /** Largest backoff step the gateway picks itself (a server-given delay may be longer). */
  readonly maxDelayMs: number;
  /** UPSTREAM_QUOTA_MAX_WAIT_MS: the most a call waits, in all, for quota resets. */
  readonly quotaMaxWaitMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxRetries: 2, baseDelayMs: 200, maxDelayMs: 2000, quotaMaxWaitMs: 1000 };

/** Failures another key (or a fallback model) may not have: the call moves on. */
const MOVES: ReadonlySet<string> = new Set([
  Reason.UPSTREAM_QUOTA_EXCEEDED,
  Reason.UPSTREAM_OVERLOADED,
  Reason.UPSTREAM_SERVER_ERROR,
  Reason.UPSTREAM_CONNECTION_FAILED,
  Reason.UPSTREAM_TIMEOUT,
  Reason.UPSTREAM_AUTH_FAILED,
  Reason.UPSTREAM_UNEXPECTED_STATUS,
]);

/**
 * Whether the call is over with this failure: a byte already reached the caller, the
 * caller left or ran out of time, or the failure is the request's own (a bad request, an
 * unknown model) or a bug — those never move.
 */
export function isFinal(err: GatewayError, delivered: boolean): boolean {
  if (delivered) return true;
  if (err.code === Code.CANCELLED || err.code === Code.DEADLINE_EXCEEDED) return true;
  return !MOVES.has(err.reason);
}

/** A failure that a fallback model may fix: shared capacity, or a quota (the upstream's 429 or the gateway's own tracking of it). */
export function isCapacityOrQuota(err: GatewayError): boolean {
  return err.reason === Reason.UPSTREAM_QUOTA_EXCEEDED || err.reason === Reason.UPSTREAM_OVERLOADED || (err.reason === Reason.UPSTREAM_SERVER_ERROR && err.metadata["upstreamStatus"] === "503");
}

/** A failure that may not happen again on the same key a little later: worth another round after a backoff. */
export function isTransient(err: GatewayError): boolean {
  switch (err.reason) {
    case Reason.UPSTREAM_CONNECTION_FAILED:
    case Reason.UPSTREAM_SERVER_ERROR:
    case Reason.UPSTREAM_TIMEOUT:
    case Reason.UPSTREAM_OVERLOADED:
      return true;
    default:
      return false;
  }
}

export function isQuota(err: GatewayError): boolean {
  return err.reason === Reason.UPSTREAM_QUOTA_EXCEEDED;
}

/**
 * Delay before another round after a transient failure, or undefined to give up.
 * @param retriesSoFar rounds already retried (0 after the first one failed)
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
    default:
      return undefined;
  }
  // Leave the next attempt some time to succeed, or the wait is wasted.
  return delay + policy.baseDelayMs < remainingMs ? delay : undefined;
}

/**
 * How long to wait for a quota to reset before another round, or undefined to answer
 * RESOURCE_EXHAUSTED now: only when the upstream said when (`resetInMs`, from now), it
 * is not a daily quota, it fits what is left of UPSTREAM_QUOTA_MAX_WAIT_MS after
 * `waitedMs`, and the next attempt still has time inside the budget.
 */
export function quotaWait(resetInMs: number | undefined, daily: boolean, retriesSoFar: number, waitedMs: number, remainingMs: number, policy: RetryPolicy, random: () => number = Math.random): number | undefined {
  if (retriesSoFar >= policy.maxRetries || resetInMs === undefined || daily) return undefined;
  // A little jitter, so calls that waited for the same reset do not all arrive at once.
  const delay = Math.max(0, resetInMs) + random() * Math.min(policy.baseDelayMs, 50);
  if (waitedMs + delay > policy.quotaMaxWaitMs) return undefined;
  return delay + policy.baseDelayMs < remainingMs ? delay : undefined;
}

/** One failed try of a candidate: an attempt the upstream answered with an error, or an organisation refusal (nothing sent). */
export interface Failure {
  readonly candidate: UpstreamCandidate;
  readonly error: GatewayError;
  /** Epoch ms when it failed (a quota's reset is counted from then). */
  readonly at: number;
}

/** When a quota failure resets, in epoch ms; undefined when the upstream did not say (or it is daily). */
export function quotaResetAt(f: Failure): number | undefined {
  if (!isQuota(f.error) || f.error.retryDelayMs === undefined || f.error.metadata["quotaWindow"] === "day") return undefined;
  return f.at + f.error.retryDelayMs;
}

/** Quotas that reset within this are the best news a caller can get: retry at a known time, soon. */
const NEAR_RESET_MS = 60_000;

/**
 * The order in which failures make the caller's answer, best first: a quota that resets
 * soon (come back then), shared capacity, a server error, a timeout, a connection
 * failure, an unexpected status, a far quota (hours: another key failing transiently is
 * better news), the key refused.
 */
function rank(f: Failure, now: number): number {
  switch (f.error.reason) {
    case Reason.UPSTREAM_QUOTA_EXCEEDED: {
      const at = quotaResetAt(f);
      return at !== undefined && at - now <= NEAR_RESET_MS ? 0 : 6;
    }
    case Reason.UPSTREAM_OVERLOADED:
      return 1;
    case Reason.UPSTREAM_SERVER_ERROR:
      return 2;
    case Reason.UPSTREAM_TIMEOUT:
      return 3;
    case Reason.UPSTREAM_CONNECTION_FAILED:
      return 4;
    case Reason.UPSTREAM_UNEXPECTED_STATUS:
      return 5;
    case Reason.UPSTREAM_AUTH_FAILED:
      return 7;
    default:
      return 8;
  }
}

/** Attempts listed in ErrorInfo metadata (`attempt1`…), at most. */
export const MAX_LISTED_ATTEMPTS = 8;

/**
 * The error the caller gets when every candidate failed: the best failure (rank above;
 * among quotas, the one resetting first, and RetryInfo says when the first of them does),
 * with ErrorInfo metadata `attempts` (upstream requests made) and `attempt1`…`attemptN`,
 * one per failure in order, `<key>/<model>: <REASON>` (`(gateway)` when the gateway's own
 * tracking refused it and nothing was sent). One failure after one attempt is passed on
 * as it is.
 */
export function finalError(failures: readonly Failure[], attempts: number, now: number): GatewayError {
  if (failures.length === 1 && attempts <= 1) return failures[0]!.error;
  // A key's later failure supersedes its earlier ones (a quota's reset in particular).
  const latest = new Map<string, Failure>();
  for (const f of failures) latest.set(`${f.candidate.key}\u0000${f.candidate.model}`, f);
  const current = [...latest.values()];
  let best = failures[failures.length - 1]!;
  let bestRank = rank(best, now);
  for (const f of current) {
    const r = rank(f, now);
    if (r < bestRank || (r === bestRank && r === 0 && quotaResetAt(f)! < quotaResetAt(best)!)) {
      best = f;
      bestRank = r;
    }
  }
  const metadata: Record<string, string> = {};
  if (attempts > 1) metadata["attempts"] = String(attempts);
  failures.slice(0, MAX_LISTED_ATTEMPTS).forEach((f, i) => {
    const gateway = f.error.metadata["detectedBy"] === "gateway" ? " (gateway)" : "";
    metadata[`attempt${i + 1}`] = `${f.candidate.key}/${f.candidate.model}: ${f.error.reason}${gateway}`;
  });
  const patch: { metadata: Record<string, string>; retryDelayMs?: number; quotaViolations?: QuotaViolation[] } = { metadata: { ...best.error.metadata, ...metadata } };
  if (isQuota(best.error)) {
    // RetryInfo: when the first of the quotas resets, counted from now.
    const resets = current.map(quotaResetAt).filter((t): t is number => t !== undefined);
    if (resets.length > 0) patch.retryDelayMs = Math.max(0, Math.min(...resets) - now);
    const seen = new Set<string>();
    const violations: QuotaViolation[] = [];
    for (const f of failures) {
      if (!isQuota(f.error)) continue;
      for (const v of f.error.quotaViolations) {
        const id = `${v.subject}\n${v.description}`;
        if (!seen.has(id)) violations.push(v);
        seen.add(id);
      }
    }
    patch.quotaViolations = violations;
  }
  return best.error.withDetails(patch);
}
