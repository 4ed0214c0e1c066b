/**
 * When a retry makes sense, and the client's optional retry of UNAVAILABLE.
 *
 * The gateway already retries its upstream while nothing has reached the caller, so a
 * caller that still sees UNAVAILABLE has met a longer outage: the client's own retry is
 * off by default, honours the server's RetryInfo, and never waits past the deadline.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Code, GatewayError, Reason } from "../core/errors.js";
import { isServiceError, toGatewayError } from "./grpc-error.js";
import type { RetryOptions } from "./options.js";

export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 3, initialBackoffMs: 100, maxBackoffMs: 5000 };

/**
 * Whether calling again, unchanged, may succeed:
 * - UNAVAILABLE: yes (a transient failure of the gateway or of Cerebras), except
 *   UPSTREAM_AUTH_FAILED: the gateway's own Cerebras key was refused, and stays refused
 *   until an operator replaces it;
 * - RESOURCE_EXHAUSTED: only with a RetryInfo delay (the quota refills then);
 * - everything else, INVALID_ARGUMENT, DEADLINE_EXCEEDED and CANCELLED included: no.
 */
export function isRetryable(err: unknown): boolean {
  const e = err instanceof GatewayError ? err : isServiceError(err) ? toGatewayError(err) : undefined;
  if (e === undefined) return false;
  if (e.code === Code.UNAVAILABLE) return e.reason !== Reason.UPSTREAM_AUTH_FAILED;
  return e.code === Code.RESOURCE_EXHAUSTED && e.retryDelayMs !== undefined;
}

/** The client option → a policy, or undefined when retries are off. */
export function retryPolicy(option: boolean | RetryOptions | undefined): RetryPolicy | undefined {
  if (option === undefined || option === false) return undefined;
  const o = option === true ? {} : option;
  const policy = { ...DEFAULT_RETRY_POLICY, ...definedOnly(o) };
  if (!(Number.isInteger(policy.maxAttempts) && policy.maxAttempts >= 1)) throw new TypeError("GatewayClient: retry.maxAttempts must be an integer ≥ 1");
  if (!(policy.initialBackoffMs >= 0 && policy.maxBackoffMs >= 0)) throw new TypeError("GatewayClient: retry backoffs must be ≥ 0 ms");
  return policy;
}

/**
 * The wait before the next attempt, or undefined to give up with `err`: only
 * UNAVAILABLE is retried (not UPSTREAM_AUTH_FAILED, see isRetryable), at most `maxAttempts` in all, after the RetryInfo delay when
 * the server gave one (else jittered exponential backoff), and only when the wait
 * ends before the deadline.
 *
 * @param attempts attempts made so far (1 after the first failed)
 * @param deadline epoch ms the whole call (every attempt) must end by
 */
export function retryDelayMs(err: GatewayError, attempts: number, deadline: number, policy: RetryPolicy, now = Date.now(), random: () => number = Math.random): number | undefined {
  if (err.code !== Code.UNAVAILABLE || err.reason === Reason.UPSTREAM_AUTH_FAILED || attempts >= policy.maxAttempts) return undefined;
  const delay = err.retryDelayMs ?? random() * Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** (attempts - 1));
  return now + delay < deadline ? delay : undefined;
}

/**
 * Runs `attempt` until it succeeds, the policy gives up or the signal aborts. Always
 * rejects with a GatewayError: the last attempt's error, or CANCELLED when the signal
 * aborted a wait.
 */
export async function withRetries<T>(
  policy: RetryPolicy | undefined,
  deadline: number,
  signal: AbortSignal | undefined,
  requestId: string,
  attempt: () => Promise<T>,
): Promise<T> {
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt();
    } catch (err) {
      const error = toGatewayError(err, requestId);
      const delay = policy === undefined ? undefined : retryDelayMs(error, attempts, deadline, policy);
      if (delay === undefined) throw error;
      await pause(delay, signal, requestId);
    }
  }
}

/** Waits `ms`, or rejects with CANCELLED as soon as the signal aborts. */
export async function pause(ms: number, signal: AbortSignal | undefined, requestId: string): Promise<void> {
  try {
    await sleep(ms, undefined, signal === undefined ? {} : { signal });
  } catch (err) {
    throw cancelledError(signal?.reason ?? err, requestId);
  }
}

/** The error of a call its caller aborted (through the signal or ChatStream.cancel()). */
export function cancelledError(cause: unknown, requestId: string): GatewayError {
  return new GatewayError({ code: Code.CANCELLED, reason: Reason.CANCELLED, message: "the call was cancelled by the caller", metadata: { requestId }, cause });
}

function definedOnly(o: RetryOptions): Partial<RetryPolicy> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<RetryPolicy>;
}
