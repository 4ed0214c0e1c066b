/**
 * The retry policy: what is retried, how long it waits, and that no wait outlives the budget.
 */
import { describe, expect, it } from "vitest";
import { Code, GatewayError, ProviderError, Reason, type Reason as ReasonT } from "../../src/core/errors.js";
import { quotaWait, retryDelay, type RetryPolicy } from "../../src/core/failover.js";

const policy: RetryPolicy = { maxRetries: 2, baseDelayMs: 200, maxDelayMs: 2000, quotaMaxWaitMs: 1000 };
const maxRandom = () => 0.999_999;
const provider = (reason: ReasonT, extra: { retryDelayMs?: number; metadata?: Record<string, string> } = {}) => new ProviderError({ reason, message: "x", ...extra });
const quota = (retryDelayMs: number | undefined, window: string) =>
  new GatewayError({ code: Code.RESOURCE_EXHAUSTED, reason: Reason.UPSTREAM_QUOTA_EXCEEDED, message: "q", metadata: { quotaWindow: window }, ...(retryDelayMs === undefined ? {} : { retryDelayMs }) });

describe("retryDelay", () => {
  it("retries transient failures with exponential backoff and full jitter", () => {
    for (const reason of [Reason.UPSTREAM_CONNECTION_FAILED, Reason.UPSTREAM_SERVER_ERROR, Reason.UPSTREAM_TIMEOUT]) {
      expect(retryDelay(provider(reason), 0, 10_000, policy, maxRandom)).toBeCloseTo(200, 0);
      expect(retryDelay(provider(reason), 1, 10_000, policy, maxRandom)).toBeCloseTo(400, 0);
      expect(retryDelay(provider(reason), 1, 10_000, policy, () => 0)).toBe(0);
    }
  });

  it("stops after maxRetries", () => {
    expect(retryDelay(provider(Reason.UPSTREAM_SERVER_ERROR), 2, 10_000, policy)).toBeUndefined();
  });

  it("waits a shorter step for shared capacity (queue_exceeded)", () => {
    expect(retryDelay(provider(Reason.UPSTREAM_OVERLOADED), 0, 10_000, policy, maxRandom)).toBeCloseTo(100, 0);
  });

  it("honours a server-given delay", () => {
    expect(retryDelay(provider(Reason.UPSTREAM_SERVER_ERROR, { retryDelayMs: 1500 }), 0, 10_000, policy)).toBe(1500);
  });

  it("backs off only for transient failures: a quota is the quota wait's business", () => {
    expect(retryDelay(quota(500, "minute"), 0, 10_000, policy, () => 0)).toBeUndefined();
  });

  it("waits for a quota only when the upstream says when it resets, within UPSTREAM_QUOTA_MAX_WAIT_MS in all and the budget, and never a daily one", () => {
    expect(quotaWait(500, false, 0, 0, 10_000, policy, () => 0)).toBe(500);
    expect(quotaWait(500, false, 0, 600, 10_000, policy, () => 0)).toBeUndefined(); // 600 ms waited already: 1100 > 1000
    expect(quotaWait(undefined, false, 0, 0, 10_000, policy)).toBeUndefined();
    expect(quotaWait(30_000, false, 0, 0, 60_000, policy)).toBeUndefined();
    expect(quotaWait(500, true, 0, 0, 10_000, policy)).toBeUndefined();
    expect(quotaWait(500, false, 0, 0, 600, policy, () => 0)).toBeUndefined(); // no time left for the attempt after it
    expect(quotaWait(500, false, 2, 0, 10_000, policy, () => 0)).toBeUndefined(); // retries used up
    expect(quotaWait(500, false, 0, 0, 10_000, { ...policy, quotaMaxWaitMs: 0 }, () => 0)).toBeUndefined();
  });

  it("never retries what the caller or the gateway's key got wrong", () => {
    for (const reason of [Reason.UPSTREAM_AUTH_FAILED, Reason.UPSTREAM_BAD_RESPONSE, Reason.UPSTREAM_UNEXPECTED_STATUS, Reason.UPSTREAM_STREAM_ERROR]) {
      expect(retryDelay(provider(reason), 0, 10_000, policy)).toBeUndefined();
    }
    for (const [code, reason] of [
      [Code.INVALID_ARGUMENT, Reason.UPSTREAM_INVALID_REQUEST],
      [Code.NOT_FOUND, Reason.MODEL_NOT_FOUND],
      [Code.INVALID_ARGUMENT, Reason.INVALID_REQUEST],
    ] as const) {
      expect(retryDelay(new GatewayError({ code, reason, message: "x" }), 0, 10_000, policy)).toBeUndefined();
    }
  });

  it("gives up when the wait would not leave the next attempt time inside the budget", () => {
    expect(retryDelay(provider(Reason.UPSTREAM_SERVER_ERROR, { retryDelayMs: 900 }), 0, 1000, policy)).toBeUndefined();
    expect(retryDelay(provider(Reason.UPSTREAM_SERVER_ERROR, { retryDelayMs: 700 }), 0, 1000, policy)).toBe(700);
  });
});
