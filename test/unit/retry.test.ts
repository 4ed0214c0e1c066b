/**
 * The retry policy: what is retried, how long it waits, and that no wait outlives the budget.
 */
import { describe, expect, it } from "vitest";
import { Code, GatewayError, ProviderError, Reason, type Reason as ReasonT } from "../../src/core/errors.js";
import { retryDelay, type RetryPolicy } from "../../src/providers/cerebras/retry.js";

const policy: RetryPolicy = { maxRetries: 2, baseDelayMs: 200, maxDelayMs: 2000 };
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

  it("retries a quota only when the upstream says when it refills, inside the budget, and never a daily one", () => {
    expect(retryDelay(quota(500, "minute"), 0, 10_000, policy, () => 0)).toBe(500);
    expect(retryDelay(quota(undefined, "minute"), 0, 10_000, policy)).toBeUndefined();
    expect(retryDelay(quota(30_000, "minute"), 0, 10_000, policy)).toBeUndefined();
    expect(retryDelay(quota(500, "day"), 0, 10_000, policy)).toBeUndefined();
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
