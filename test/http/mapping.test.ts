/**
 * The shim's two policies as tables: GatewayError → HTTP status/envelope/headers, and
 * where a stream's usage goes.
 */
import { describe, expect, it } from "vitest";
import { ChatCompletionChunk, FinishReason, type DeepPartial } from "../../gen/aigateway/v1/chat.js";
import { Code, GatewayError, ProviderError, Reason } from "../../src/core/errors.js";
import { failureFrom, HttpError } from "../../src/http/errors.js";
import { StreamUsage } from "../../src/http/usage.js";

const err = (code: Code, reason: Reason, extra: Partial<ConstructorParameters<typeof GatewayError>[0]> = {}) =>
  new GatewayError({ code, reason, message: `${reason} happened`, ...extra });

describe("GatewayError → HTTP", () => {
  it.each([
    ["INVALID_ARGUMENT", err(Code.INVALID_ARGUMENT, Reason.INVALID_REQUEST), 400, "invalid_request_error"],
    ["UNAUTHENTICATED", err(Code.UNAUTHENTICATED, Reason.INVALID_REQUEST), 401, "authentication_error"],
    ["PERMISSION_DENIED", err(Code.PERMISSION_DENIED, Reason.INVALID_REQUEST), 403, "permission_error"],
    ["NOT_FOUND", err(Code.NOT_FOUND, Reason.MODEL_NOT_FOUND), 404, "not_found_error"],
    ["RESOURCE_EXHAUSTED", err(Code.RESOURCE_EXHAUSTED, Reason.UPSTREAM_QUOTA_EXCEEDED), 429, "rate_limit_error"],
    ["UNAVAILABLE, upstream 5xx", new ProviderError({ reason: Reason.UPSTREAM_SERVER_ERROR, message: "x", metadata: { upstreamStatus: "500" } }), 502, "upstream_error"],
    ["UNAVAILABLE, upstream 503", new ProviderError({ reason: Reason.UPSTREAM_SERVER_ERROR, message: "x", metadata: { upstreamStatus: "503" } }), 503, "service_unavailable_error"],
    ["UNAVAILABLE, queue_exceeded", new ProviderError({ reason: Reason.UPSTREAM_OVERLOADED, message: "x" }), 503, "service_unavailable_error"],
    ["UNAVAILABLE, connection failed", new ProviderError({ reason: Reason.UPSTREAM_CONNECTION_FAILED, message: "x" }), 502, "upstream_error"],
    ["UNAVAILABLE, gateway key refused", new ProviderError({ reason: Reason.UPSTREAM_AUTH_FAILED, message: "x" }), 502, "upstream_error"],
    ["DEADLINE_EXCEEDED", GatewayError.deadlineExceeded(), 504, "timeout_error"],
    ["CANCELLED", err(Code.CANCELLED, Reason.CANCELLED), 499, "cancelled_error"],
    ["INTERNAL", GatewayError.from(new TypeError("boom")), 500, "server_error"],
  ])("%s → %i %s", (_, e, status, type) => {
    const f = failureFrom(e);
    expect(f.status).toBe(status);
    expect(f.envelope.error.type).toBe(type);
    expect(Object.keys(f.envelope.error)).toEqual(["message", "type", "param", "code"]);
  });

  it("never sends an internal error's text", () => {
    const f = failureFrom(new Error("secret internals at /srv/app.js:12"));
    expect(f.envelope.error).toEqual({ message: "internal error", type: "server_error", param: null, code: "internal" });
  });

  it("code is Cerebras' code for the caller's own problems, else the reason in lower case; param is the first bad field", () => {
    const upstream = err(Code.INVALID_ARGUMENT, Reason.UPSTREAM_INVALID_REQUEST, { metadata: { upstreamCode: "context_length_exceeded" } });
    expect(failureFrom(upstream).envelope.error.code).toBe("context_length_exceeded");
    const quota = err(Code.RESOURCE_EXHAUSTED, Reason.UPSTREAM_QUOTA_EXCEEDED, { metadata: { upstreamCode: "token_quota_exceeded" } });
    expect(failureFrom(quota).envelope.error.code).toBe("token_quota_exceeded");
    // The gateway's own key refused upstream: not the caller's key, whatever Cerebras called it.
    const ownKey = new ProviderError({ reason: Reason.UPSTREAM_AUTH_FAILED, message: "x", metadata: { upstreamCode: "wrong_api_key" } });
    expect(failureFrom(ownKey).envelope.error.code).toBe("upstream_auth_failed");
    const local = GatewayError.invalidArgument([{ field: "messages.0.content", description: "is required" }]);
    expect(failureFrom(local).envelope.error).toMatchObject({ code: "invalid_request", param: "messages.0.content" });
  });

  it("lists every bad field in the message (the envelope has no details list)", () => {
    const e = GatewayError.invalidArgument([
      { field: "temperature", description: "must be between 0 and 2" },
      { field: "messages.1.tool_call_id", description: "a tool message must name the tool call it answers" },
    ]);
    expect(e.message).toContain("(and 1 more)");
    expect(failureFrom(e).envelope.error.message).toBe(
      "invalid request: temperature: must be between 0 and 2; messages.1.tool_call_id: a tool message must name the tool call it answers",
    );
  });

  it("passes the upstream's rate-limit headers on and adds retry-after (seconds, rounded up) and retry-after-ms", () => {
    const e = err(Code.RESOURCE_EXHAUSTED, Reason.UPSTREAM_QUOTA_EXCEEDED, {
      retryDelayMs: 11_380,
      headers: { "x-cerebras-ratelimit-reset-tokens-minute": "11.38", "x-cerebras-ratelimit-remaining-tokens-minute": "0" },
    });
    expect(failureFrom(e).headers).toEqual({
      "x-cerebras-ratelimit-reset-tokens-minute": "11.38",
      "x-cerebras-ratelimit-remaining-tokens-minute": "0",
      "retry-after": "12",
      "retry-after-ms": "11380",
    });
    expect(failureFrom(err(Code.INTERNAL, Reason.INTERNAL)).headers).toEqual({});
  });

  it("renders the shim's own transport errors in the same envelope", () => {
    expect(failureFrom(HttpError.methodNotAllowed("PUT", "/v1/models", ["GET"]))).toMatchObject({
      status: 405,
      headers: { allow: "GET" },
      envelope: { error: { type: "invalid_request_error", code: "method_not_allowed", param: null } },
    });
    expect(failureFrom(HttpError.bodyTooLarge(10))).toMatchObject({ status: 413, headers: { connection: "close" }, envelope: { error: { code: "request_too_large" } } });
  });
});

describe("StreamUsage", () => {
  const chunk = (partial: DeepPartial<ChatCompletionChunk>) =>
    ChatCompletionChunk.fromPartial({ id: "c1", object: "chat.completion.chunk", created: 5, model: "m", systemFingerprint: "fp", ...partial });
  const content = chunk({ choices: [{ index: 0, delta: { content: "hi" } }] });
  const finish = chunk({
    choices: [{ index: 0, delta: {}, finishReason: FinishReason.FINISH_REASON_STOP }],
    usage: { promptTokens: 3, completionTokens: 1, totalTokens: 4 },
    timeInfo: { totalTime: 0.5 },
  });
  const usageJson = { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 };

  it("without include_usage: Cerebras' form, usage and time_info in the finish chunk", () => {
    const u = new StreamUsage(false);
    const events = [...u.events(content), ...u.events(finish), ...u.final()];
    expect(events).toHaveLength(2);
    expect(events[0]).not.toHaveProperty("usage");
    expect(events[1]).toMatchObject({ choices: [{ finish_reason: "stop" }], usage: usageJson, time_info: { total_time: 0.5 } });
  });

  it("with include_usage: OpenAI's form, usage null everywhere, then a choices-less usage chunk", () => {
    const u = new StreamUsage(true);
    const events = [...u.events(content), ...u.events(finish), ...u.final()];
    expect(events).toHaveLength(3);
    expect(events[0]).toMatchObject({ usage: null });
    expect(events[1]).toMatchObject({ usage: null, choices: [{ finish_reason: "stop" }] });
    expect(events[1]).not.toHaveProperty("time_info");
    expect(events[2]).toEqual({
      id: "c1",
      object: "chat.completion.chunk",
      created: 5,
      model: "m",
      system_fingerprint: "fp",
      choices: [],
      usage: usageJson,
      time_info: { total_time: 0.5 },
    });
  });
});
