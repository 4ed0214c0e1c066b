/**
 * Client-side retry: the pure policy (which errors, how long, never past the deadline)
 * and, end to end, a retried UNAVAILABLE that honours the gateway's RetryInfo.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, GatewayError, Reason } from "../../src/core/errors.js";
import { DEFAULT_RETRY_POLICY, isRetryable, retryDelayMs } from "../../src/client/retry.js";
import { until, userRequest } from "../helpers/harness.js";
import { drain, rejection, startClientHarness, type ClientHarness } from "./support.js";

const err = (code: Code, retryDelayMs?: number) =>
  new GatewayError({ code, reason: Reason.UPSTREAM_SERVER_ERROR, message: "x", ...(retryDelayMs === undefined ? {} : { retryDelayMs }) });

describe("isRetryable", () => {
  it.each([
    ["UNAVAILABLE", err(Code.UNAVAILABLE), true],
    ["UNAVAILABLE with RetryInfo", err(Code.UNAVAILABLE, 50), true],
    ["UNAVAILABLE GATEWAY_SHUTTING_DOWN (a replica going away)", GatewayError.shuttingDown(), true],
    ["RESOURCE_EXHAUSTED with RetryInfo", err(Code.RESOURCE_EXHAUSTED, 1000), true],
    ["RESOURCE_EXHAUSTED without RetryInfo", err(Code.RESOURCE_EXHAUSTED), false],
    ["INVALID_ARGUMENT", err(Code.INVALID_ARGUMENT), false],
    ["DEADLINE_EXCEEDED", err(Code.DEADLINE_EXCEEDED, 10), false],
    ["CANCELLED", err(Code.CANCELLED), false],
    ["INTERNAL", err(Code.INTERNAL), false],
    ["not a gateway error", new Error("boom"), false],
    ["not an error", "UNAVAILABLE", false],
  ])("%s → %s", (_, e, expected) => {
    expect(isRetryable(e)).toBe(expected);
  });
});

describe("retryDelayMs", () => {
  const now = 1_000_000;
  const policy = DEFAULT_RETRY_POLICY;

  it("waits the RetryInfo delay when there is one", () => {
    expect(retryDelayMs(err(Code.UNAVAILABLE, 700), 1, now + 10_000, policy, now)).toBe(700);
  });

  it("else backs off exponentially with full jitter, capped", () => {
    const max = () => 0.999_999;
    expect(retryDelayMs(err(Code.UNAVAILABLE), 1, Infinity, policy, now, max)).toBeCloseTo(100, 0);
    expect(retryDelayMs(err(Code.UNAVAILABLE), 2, Infinity, { ...policy, maxAttempts: 10 }, now, max)).toBeCloseTo(200, 0);
    expect(retryDelayMs(err(Code.UNAVAILABLE), 9, Infinity, { ...policy, maxAttempts: 10 }, now, max)).toBeCloseTo(5000, 0);
  });

  it("gives up after maxAttempts", () => {
    expect(retryDelayMs(err(Code.UNAVAILABLE, 1), 3, Infinity, policy, now)).toBeUndefined();
  });

  it("never waits past the deadline", () => {
    expect(retryDelayMs(err(Code.UNAVAILABLE, 5000), 1, now + 4000, policy, now)).toBeUndefined();
  });

  it("retries only UNAVAILABLE (a quota with RetryInfo is the caller's call)", () => {
    expect(retryDelayMs(err(Code.RESOURCE_EXHAUSTED, 10), 1, Infinity, policy, now)).toBeUndefined();
    expect(retryDelayMs(err(Code.INVALID_ARGUMENT), 1, Infinity, policy, now)).toBeUndefined();
  });
});

describe("GatewayClient with retry on", () => {
  let h: ClientHarness;
  beforeAll(async () => {
    h = await startClientHarness({}, { retry: { maxAttempts: 3 } });
  });
  afterAll(async () => {
    await h.close();
  });

  it("retries an UNAVAILABLE unary call after the RetryInfo delay, and succeeds", async () => {
    h.fake.failNext({ kind: "http-error", status: 503, body: { message: "busy" }, headers: { "retry-after-ms": "80" } });
    const before = h.fake.chatRequests().length;
    const started = performance.now();
    const res = await h.client.createChatCompletion(userRequest("again"));
    expect(res.choices[0]!.message!.content).toBe("Echo: again");
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
    const attempts = h.fake.chatRequests().slice(before);
    expect(attempts).toHaveLength(2);
    // One logical call: both attempts carry the same request id.
    expect(attempts[0]!.headers["x-request-id"]).toBe(attempts[1]!.headers["x-request-id"]);
  });

  it("gives up after maxAttempts with the last error", async () => {
    for (let i = 0; i < 3; i++) h.fake.failNext(cerebras503(10));
    const e = (await rejection(h.client.createChatCompletion(userRequest("down")))) as GatewayError;
    expect(e.code).toBe(Code.UNAVAILABLE);
    expect(e.reason).toBe(Reason.UPSTREAM_SERVER_ERROR);
  });

  it("does not wait when the RetryInfo delay would pass the deadline", async () => {
    h.fake.failNext(cerebras503(10_000));
    const before = h.fake.chatRequests().length;
    const e = (await rejection(h.client.createChatCompletion(userRequest("late"), { deadlineMs: 2000 }))) as GatewayError;
    expect(e.code).toBe(Code.UNAVAILABLE);
    expect(h.fake.chatRequests().length).toBe(before + 1);
  });

  it("does not retry other codes", async () => {
    h.fake.failNext({ kind: "http-error", status: 400, body: { message: "bad", type: "invalid_request_error", code: "wrong_api_format" } });
    const before = h.fake.chatRequests().length;
    expect(((await rejection(h.client.createChatCompletion(userRequest("bad")))) as GatewayError).code).toBe(Code.INVALID_ARGUMENT);
    expect(h.fake.chatRequests().length).toBe(before + 1);
  });

  it("retries a stream that failed before its first chunk", async () => {
    h.fake.failNext(cerebras503(20));
    const { items, error } = await drain(h.client.streamChatCompletion(userRequest("stream again")));
    expect(error).toBeUndefined();
    expect(items.length).toBeGreaterThan(2);
  });

  it("never restarts a stream that already yielded chunks", async () => {
    h.fake.failNext({ kind: "cut-stream", afterChunks: 2 });
    const before = h.fake.chatRequests().length;
    const { items, error } = await drain(h.client.streamChatCompletion(userRequest("cut once")));
    expect(items).toHaveLength(2);
    expect((error as GatewayError).code).toBe(Code.UNAVAILABLE);
    expect(h.fake.chatRequests().length).toBe(before + 1);
  });

  it("an abort while waiting to retry ends the call at once with CANCELLED", async () => {
    h.fake.failNext(cerebras503(5000));
    const ac = new AbortController();
    const before = h.fake.chatRequests().length;
    const p = h.client.createChatCompletion(userRequest("abort the wait"), { signal: ac.signal });
    // The first attempt has failed once its upstream request is over.
    await until(() => h.fake.chatRequests().length > before, 5000, "the first attempt");
    await h.fake.chatRequests().at(-1)!.settled;
    ac.abort();
    expect(((await rejection(p)) as GatewayError).code).toBe(Code.CANCELLED);
    expect(h.fake.chatRequests().length).toBe(before + 1);
  });
});

function cerebras503(retryAfterMs: number) {
  return { kind: "http-error" as const, status: 503, body: { message: "busy" }, headers: { "retry-after-ms": String(retryAfterMs) } };
}
