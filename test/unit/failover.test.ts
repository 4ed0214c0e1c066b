/**
 * The attempt loop's rules on their own: what moves, what is final, and which failure
 * the caller hears when every candidate failed (with the attempts listed, bounded).
 */
import { describe, expect, it } from "vitest";
import { Code, GatewayError, ProviderError, Reason } from "../../src/core/errors.js";
import { finalError, isCapacityOrQuota, isFinal, MAX_LISTED_ATTEMPTS, type Failure } from "../../src/core/failover.js";
import type { UpstreamCandidate } from "../../src/core/upstreams.js";
import { toGrpcError } from "../../src/grpc/status.js";

const NOW = 1_750_000_000_000;
const at = (key: string, model = "gpt-oss-120b"): UpstreamCandidate => ({ key, model, fallback: 0, requested: model, standing: "ready" });
const quota = (retryDelayMs: number | undefined, window = "minute") =>
  new GatewayError({
    code: Code.RESOURCE_EXHAUSTED,
    reason: Reason.UPSTREAM_QUOTA_EXCEEDED,
    message: `Tokens per ${window} limit exceeded`,
    metadata: { quotaWindow: window, upstreamStatus: "429" },
    quotaViolations: [{ subject: "cerebras:token_quota_exceeded", description: `Tokens per ${window} limit exceeded` }],
    ...(retryDelayMs === undefined ? {} : { retryDelayMs }),
  });
const provider = (reason: Reason) => new ProviderError({ reason, message: reason });
const failed = (key: string, error: GatewayError, when = NOW): Failure => ({ candidate: at(key), error, at: when });

describe("what moves", () => {
  it("quota, capacity, 5xx, connection, timeout, a refused key and an unexpected status move to the next candidate", () => {
    for (const r of [Reason.UPSTREAM_OVERLOADED, Reason.UPSTREAM_SERVER_ERROR, Reason.UPSTREAM_CONNECTION_FAILED, Reason.UPSTREAM_TIMEOUT, Reason.UPSTREAM_AUTH_FAILED, Reason.UPSTREAM_UNEXPECTED_STATUS]) {
      expect(isFinal(provider(r), false)).toBe(false);
    }
    expect(isFinal(quota(1000), false)).toBe(false);
  });

  it("a caller's bad request, an unknown model, a bad reply, a bug, a cancel or a passed deadline never move; nothing moves once a byte was delivered", () => {
    expect(isFinal(new GatewayError({ code: Code.INVALID_ARGUMENT, reason: Reason.UPSTREAM_INVALID_REQUEST, message: "x" }), false)).toBe(true);
    expect(isFinal(new GatewayError({ code: Code.NOT_FOUND, reason: Reason.MODEL_NOT_FOUND, message: "x" }), false)).toBe(true);
    expect(isFinal(provider(Reason.UPSTREAM_BAD_RESPONSE), false)).toBe(true);
    expect(isFinal(GatewayError.from(new TypeError("bug")), false)).toBe(true);
    expect(isFinal(GatewayError.deadlineExceeded(), false)).toBe(true);
    expect(isFinal(provider(Reason.UPSTREAM_SERVER_ERROR), true)).toBe(true);
  });

  it("only capacity and quotas open a fallback", () => {
    expect(isCapacityOrQuota(quota(1000))).toBe(true);
    expect(isCapacityOrQuota(provider(Reason.UPSTREAM_OVERLOADED))).toBe(true);
    expect(isCapacityOrQuota(new ProviderError({ reason: Reason.UPSTREAM_SERVER_ERROR, message: "x", metadata: { upstreamStatus: "503" } }))).toBe(true);
    expect(isCapacityOrQuota(provider(Reason.UPSTREAM_SERVER_ERROR))).toBe(false);
    expect(isCapacityOrQuota(provider(Reason.UPSTREAM_CONNECTION_FAILED))).toBe(false);
  });
});

describe("the caller's answer when everything failed", () => {
  it("one failure after one attempt is passed on as it is", () => {
    const e = quota(5000);
    expect(finalError([failed("a", e)], 1, NOW)).toBe(e);
  });

  it("quotas on every key: RESOURCE_EXHAUSTED with the earliest reset across keys, the attempts listed", () => {
    const e = finalError([failed("a", quota(30_000)), failed("b", quota(5000)), failed("c", quota(12_000))], 3, NOW + 1000);
    expect([e.code, e.reason]).toEqual([Code.RESOURCE_EXHAUSTED, Reason.UPSTREAM_QUOTA_EXCEEDED]);
    expect(e.retryDelayMs).toBe(4000); // b resets 5 s after its failure, 1 s ago
    expect(e.metadata).toMatchObject({
      attempts: "3",
      attempt1: "a/gpt-oss-120b: UPSTREAM_QUOTA_EXCEEDED",
      attempt2: "b/gpt-oss-120b: UPSTREAM_QUOTA_EXCEEDED",
      attempt3: "c/gpt-oss-120b: UPSTREAM_QUOTA_EXCEEDED",
    });
    expect(e.quotaViolations).toHaveLength(1); // the same violation three times is one
  });

  it("a key's later failure supersedes its earlier one (its reset counts from the latest)", () => {
    const e = finalError([failed("a", quota(100), NOW), failed("a", quota(100), NOW + 200)], 2, NOW + 250);
    expect(e.retryDelayMs).toBe(50);
  });

  it("a quota resetting soon beats a transient failure; a far one (a daily quota) does not", () => {
    expect(finalError([failed("a", provider(Reason.UPSTREAM_SERVER_ERROR)), failed("b", quota(5000))], 2, NOW).reason).toBe(Reason.UPSTREAM_QUOTA_EXCEEDED);
    const daily = finalError([failed("a", quota(33_000_000, "day")), failed("b", provider(Reason.UPSTREAM_SERVER_ERROR))], 2, NOW);
    expect([daily.code, daily.reason]).toEqual([Code.UNAVAILABLE, Reason.UPSTREAM_SERVER_ERROR]);
  });

  it("capacity beats a server error, which beats a connection failure, which beats a refused key", () => {
    const reasons = [Reason.UPSTREAM_AUTH_FAILED, Reason.UPSTREAM_CONNECTION_FAILED, Reason.UPSTREAM_SERVER_ERROR, Reason.UPSTREAM_OVERLOADED];
    for (let n = 2; n <= reasons.length; n++) {
      const fs = reasons.slice(0, n).map((r, i) => failed(`k${i}`, provider(r)));
      expect(finalError(fs, n, NOW).reason).toBe(reasons[n - 1]);
    }
  });

  it("lists at most MAX_LISTED_ATTEMPTS attempts, and the status stays well under 8 KiB whatever the names", () => {
    const long = "k".repeat(64);
    const fs = Array.from({ length: 20 }, (_, i) => ({ candidate: at(`${long}${i}`.slice(0, 64), "m".repeat(256)), error: quota(1000 + i), at: NOW }));
    const e = finalError(fs, 16, NOW);
    expect(Object.keys(e.metadata).filter((k) => k.startsWith("attempt") && k !== "attempts")).toHaveLength(MAX_LISTED_ATTEMPTS);
    const grpc = toGrpcError(e, "req-1");
    const bytes = (grpc.metadata.get("grpc-status-details-bin")[0] as Buffer).length + Buffer.byteLength(grpc.details);
    expect(bytes).toBeLessThan(4096);
  });

  it("an organisation refusal (nothing sent) says so in its line", () => {
    const gateway = new GatewayError({ code: Code.RESOURCE_EXHAUSTED, reason: Reason.UPSTREAM_QUOTA_EXCEEDED, message: "org", metadata: { detectedBy: "gateway" }, retryDelayMs: 100 });
    expect(finalError([failed("a", gateway), failed("b", provider(Reason.UPSTREAM_SERVER_ERROR))], 1, NOW).metadata["attempt1"]).toBe("a/gpt-oss-120b: UPSTREAM_QUOTA_EXCEEDED (gateway)");
  });
});
