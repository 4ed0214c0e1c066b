/**
 * Cerebras error responses → GatewayError: body forms, codes and retry delays.
 */
import { describe, expect, it } from "vitest";
import { Code, Reason } from "../../src/core/errors.js";
import { errorFromNetwork, errorFromResponse, parseErrorBody, retryDelayFromHeaders } from "../../src/providers/cerebras/errors.js";

const flat = (message: string, type: string, param: string | null, code: string) => JSON.stringify({ message, type, param, code });

describe("parseErrorBody", () => {
  it("reads the flat body Cerebras sends, the OpenAI envelope, and FastAPI's detail list", () => {
    expect(parseErrorBody(flat("Wrong API Key", "invalid_request_error", "api_key", "wrong_api_key"))).toMatchObject({ message: "Wrong API Key", code: "wrong_api_key" });
    expect(parseErrorBody(JSON.stringify({ error: { message: "m", type: "t", param: null, code: "c" } }))).toMatchObject({ message: "m", code: "c", param: undefined });
    expect(parseErrorBody(JSON.stringify({ detail: [{ loc: ["body", "messages", 0, "content"], msg: "Field required", type: "missing" }] }))).toMatchObject({
      message: "messages.0.content: Field required",
      violations: [{ field: "messages.0.content", description: "Field required" }],
    });
  });

  it("survives an empty or non-JSON body", () => {
    expect(parseErrorBody("")).toMatchObject({ message: undefined, violations: [] });
    expect(parseErrorBody("<html>502 Bad Gateway</html>")).toMatchObject({ message: undefined });
  });
});

describe("errorFromResponse", () => {
  it("maps a 422 with no body to INVALID_ARGUMENT naming the status", () => {
    const e = errorFromResponse(422, {}, "");
    expect([e.code, e.reason, e.message]).toEqual([Code.INVALID_ARGUMENT, Reason.UPSTREAM_INVALID_REQUEST, "Cerebras: HTTP 422"]);
  });

  it("turns a param that names a field into a BadRequest violation, but not 'validation_error'", () => {
    expect(errorFromResponse(400, {}, flat("bad", "invalid_request_error", "temperature", "wrong_api_format")).fieldViolations).toEqual([{ field: "temperature", description: "bad" }]);
    expect(errorFromResponse(400, {}, flat("bad", "invalid_request_error", "validation_error", "wrong_api_format")).fieldViolations).toEqual([]);
  });

  it("treats a 404 that is not model_not_found (a wrong base URL) as the gateway's problem", () => {
    const e = errorFromResponse(404, {}, "Not Found");
    expect([e.code, e.reason]).toEqual([Code.UNAVAILABLE, Reason.UPSTREAM_UNEXPECTED_STATUS]);
  });

  it("maps 408 to UPSTREAM_TIMEOUT, 413 to INVALID_ARGUMENT, 5xx to UPSTREAM_SERVER_ERROR", () => {
    expect(errorFromResponse(408, {}, "").reason).toBe(Reason.UPSTREAM_TIMEOUT);
    expect(errorFromResponse(413, {}, "").code).toBe(Code.INVALID_ARGUMENT);
    expect(errorFromResponse(504, {}, "").reason).toBe(Reason.UPSTREAM_SERVER_ERROR);
  });

  it("records the quota window so a daily quota is never retried", () => {
    const daily = errorFromResponse(429, {}, flat("Requests per day limit exceeded - too many requests sent.", "too_many_requests_error", "quota", "request_quota_exceeded"));
    expect(daily.metadata["quotaWindow"]).toBe("day");
  });

  it("keys 429s on code: queue_exceeded is UNAVAILABLE, quotas are RESOURCE_EXHAUSTED with the rate-limit headers kept as x-cerebras-ratelimit-*", () => {
    const queue = errorFromResponse(429, {}, flat("busy", "too_many_requests_error", "queue", "queue_exceeded"));
    expect([queue.code, queue.reason]).toEqual([Code.UNAVAILABLE, Reason.UPSTREAM_OVERLOADED]);
    const quota = errorFromResponse(429, { "x-ratelimit-reset-tokens-minute": "11.38", "x-ratelimit-remaining-tokens-minute": "0", server: "cf" }, flat("Tokens per minute limit exceeded", "too_many_tokens_error", "quota", "token_quota_exceeded"));
    expect([quota.code, quota.retryDelayMs]).toEqual([Code.RESOURCE_EXHAUSTED, 11380]);
    // Renamed for callers: the gateway's own x-ratelimit-* headers describe the caller's limits.
    expect(quota.headers).toEqual({ "x-cerebras-ratelimit-reset-tokens-minute": "11.38", "x-cerebras-ratelimit-remaining-tokens-minute": "0" });
  });

  it("cuts very long upstream messages", () => {
    expect(errorFromResponse(500, {}, flat("x".repeat(2000), "server_error", null, "e")).message.length).toBeLessThan(520);
  });
});

describe("retryDelayFromHeaders", () => {
  it("prefers retry-after-ms, then retry-after seconds or date, then the matching reset header", () => {
    expect(retryDelayFromHeaders({ "retry-after-ms": "250", "retry-after": "9" })).toBe(250);
    expect(retryDelayFromHeaders({ "retry-after": "3" })).toBe(3000);
    const date = new Date(Date.now() + 60_000).toUTCString();
    expect(retryDelayFromHeaders({ "retry-after": date })).toBeGreaterThan(55_000);
    expect(retryDelayFromHeaders({ "x-ratelimit-reset-requests-day": "33011.38" }, "request_quota_exceeded", "Requests per day limit exceeded")).toBe(33_011_380);
    expect(retryDelayFromHeaders({ "x-ratelimit-reset-tokens-minute": "0.5" }, "token_quota_exceeded", "Tokens per minute")).toBe(500);
    expect(retryDelayFromHeaders({}, "token_quota_exceeded")).toBeUndefined();
    expect(retryDelayFromHeaders({ "retry-after": "soon" })).toBeUndefined();
  });
});

describe("errorFromNetwork", () => {
  it("maps undici error codes, not messages", () => {
    const timeout = errorFromNetwork(Object.assign(new Error("x"), { code: "UND_ERR_HEADERS_TIMEOUT" }), false);
    expect([timeout.code, timeout.reason, timeout.message]).toEqual([Code.UNAVAILABLE, Reason.UPSTREAM_TIMEOUT, "the connection to Cerebras timed out (UND_ERR_HEADERS_TIMEOUT)"]);
    const refused = errorFromNetwork(Object.assign(new Error("x"), { code: "ECONNREFUSED" }), false);
    expect([refused.reason, refused.message]).toEqual([Reason.UPSTREAM_CONNECTION_FAILED, "the connection to Cerebras failed (ECONNREFUSED)"]);
    expect(errorFromNetwork(Object.assign(new Error("x"), { code: "UND_ERR_SOCKET" }), true).message).toBe("the connection to Cerebras was cut mid-stream (UND_ERR_SOCKET)");
  });
});
