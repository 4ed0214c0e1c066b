/**
 * Each error row of DESIGN.md that the gateway produces today, as a GatewayClient
 * caller sees it: one GatewayError with the gRPC code, the ErrorInfo reason and
 * metadata, the RetryInfo delay and the BadRequest / QuotaFailure violations decoded.
 * (UNAUTHENTICATED arrives with caller authentication; INTERNAL has no trigger short of
 * a gateway bug.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResponseFormat, Role } from "../../gen/aigateway/v1/chat.js";
import { Code, GatewayError, Reason } from "../../src/core/errors.js";
import { GatewayClient } from "../../src/client/gateway-client.js";
import { DEFAULT_RETRY_POLICY, isRetryable, retryDelayMs } from "../../src/client/retry.js";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { UPSTREAM_KEY, userRequest } from "../helpers/harness.js";
import { drain, rejection, startClientHarness, type ClientHarness } from "./support.js";

let h: ClientHarness;
beforeAll(async () => {
  h = await startClientHarness();
});
afterAll(async () => {
  await h.close();
});

/** The invariants of every decoded error; returns it typed. */
function gatewayError(err: unknown, code: Code, reason: Reason): GatewayError {
  expect(err).toBeInstanceOf(GatewayError);
  const e = err as GatewayError;
  expect({ code: e.code, reason: e.reason }, e.message).toEqual({ code, reason });
  expect(e.metadata["requestId"]).toBeTruthy();
  expect(e.message).not.toMatch(/^\d+ [A-Z_]+: /); // the status message, not grpc-js' "14 UNAVAILABLE: …"
  expect(JSON.stringify({ m: e.message, md: e.metadata })).not.toContain(UPSTREAM_KEY);
  return e;
}

const create = (text: string, partial = {}) => h.client.createChatCompletion(userRequest(text, partial));

describe("INVALID_ARGUMENT", () => {
  it("request validation → INVALID_REQUEST with every field violation", async () => {
    const e = gatewayError(
      await rejection(
        create("x", {
          temperature: 3,
          messages: [
            { role: Role.ROLE_USER, contentKind: { $case: "content", value: "hi" }, toolCalls: [], toolCallId: "" },
            { role: Role.ROLE_TOOL, contentKind: { $case: "content", value: "42" }, toolCalls: [], toolCallId: "" },
          ],
        }),
      ),
      Code.INVALID_ARGUMENT,
      Reason.INVALID_REQUEST,
    );
    expect(e.fieldViolations.map((v) => v.field)).toEqual(["messages.1.tool_call_id", "temperature"]);
    expect(e.fieldViolations[0]!.description).toBeTruthy();
    expect(e.retryDelayMs).toBeUndefined();
    expect(isRetryable(e)).toBe(false);
  });

  it("the same on the streaming RPC, thrown from iteration", async () => {
    const { items, error } = await drain(h.client.streamChatCompletion(userRequest("x", { responseFormat: ResponseFormat.fromPartial({ format: { $case: "jsonObject", value: {} } }) })));
    expect(items).toHaveLength(0);
    expect(gatewayError(error, Code.INVALID_ARGUMENT, Reason.INVALID_REQUEST).fieldViolations[0]!.field).toBe("response_format");
  });

  it("upstream 400 wrong_api_format → UPSTREAM_INVALID_REQUEST with the upstream's status, type and code", async () => {
    h.fake.failNext(cerebrasErrors.wrongApiFormat());
    const e = gatewayError(await rejection(create("x")), Code.INVALID_ARGUMENT, Reason.UPSTREAM_INVALID_REQUEST);
    expect(e.metadata).toMatchObject({ upstreamStatus: "400", upstreamType: "invalid_request_error", upstreamCode: "wrong_api_format" });
    expect(e.message).toBe("Cerebras: body.top_k: property 'body.top_k' is unsupported");
  });

  it("upstream 400 context_length_exceeded → UPSTREAM_INVALID_REQUEST", async () => {
    h.fake.failNext(cerebrasErrors.contextLengthExceeded());
    const e = gatewayError(await rejection(create("x")), Code.INVALID_ARGUMENT, Reason.UPSTREAM_INVALID_REQUEST);
    expect(e.metadata["upstreamCode"]).toBe("context_length_exceeded");
  });
});

it("upstream 404 model_not_found → NOT_FOUND / MODEL_NOT_FOUND", async () => {
  h.fake.failNext(cerebrasErrors.modelNotFound());
  const e = gatewayError(await rejection(create("x")), Code.NOT_FOUND, Reason.MODEL_NOT_FOUND);
  expect(e.metadata["upstreamCode"]).toBe("model_not_found");
  expect(isRetryable(e)).toBe(false);
});

it("a model the catalog does not list → NOT_FOUND / MODEL_NOT_FOUND with a BadRequest on model, before any upstream call", async () => {
  const e = gatewayError(await rejection(create("x", { model: "llama-4-scout-17b-16e-instruct" })), Code.NOT_FOUND, Reason.MODEL_NOT_FOUND);
  expect(e.fieldViolations).toEqual([{ field: "model", description: 'unknown model "llama-4-scout-17b-16e-instruct"' }]);
  expect(isRetryable(e)).toBe(false);
});

describe("RESOURCE_EXHAUSTED", () => {
  it("daily request quota → UPSTREAM_QUOTA_EXCEEDED with RetryInfo and QuotaFailure; retryable (it has a delay)", async () => {
    h.fake.failNext(cerebrasErrors.requestQuotaPerDay(33011.38));
    const e = gatewayError(await rejection(create("x")), Code.RESOURCE_EXHAUSTED, Reason.UPSTREAM_QUOTA_EXCEEDED);
    expect(e.retryDelayMs).toBe(33_011_380);
    expect(e.quotaViolations).toEqual([{ subject: "cerebras:request_quota_exceeded", description: expect.any(String) }]);
    expect(isRetryable(e)).toBe(true);
  });

  it("per-minute token quota on the streaming RPC, before any chunk", async () => {
    h.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(11.38));
    const { items, error } = await drain(h.client.streamChatCompletion(userRequest("x"), { deadlineMs: 5000 }));
    expect(items).toHaveLength(0);
    const e = gatewayError(error, Code.RESOURCE_EXHAUSTED, Reason.UPSTREAM_QUOTA_EXCEEDED);
    expect(e.retryDelayMs).toBe(11_380);
    expect(e.quotaViolations[0]!.subject).toBe("cerebras:token_quota_exceeded");
  });
});

describe("UNAVAILABLE (ProviderError): retryable, but for the gateway's own key refused", () => {
  it("upstream 503 with retry-after → UPSTREAM_SERVER_ERROR with the RetryInfo delay", async () => {
    h.fake.failNext({ kind: "http-error", status: 503, body: { message: "Service Unavailable" }, headers: { "retry-after": "2" } });
    const e = gatewayError(await rejection(create("x")), Code.UNAVAILABLE, Reason.UPSTREAM_SERVER_ERROR);
    expect(e.retryDelayMs).toBe(2000);
    expect(e.metadata["upstreamStatus"]).toBe("503");
    expect(isRetryable(e)).toBe(true);
  });

  it("429 queue_exceeded (shared capacity) → UPSTREAM_OVERLOADED", async () => {
    h.fake.failNext(cerebrasErrors.queueExceeded());
    const e = gatewayError(await rejection(create("x")), Code.UNAVAILABLE, Reason.UPSTREAM_OVERLOADED);
    expect(e.metadata["upstreamCode"]).toBe("queue_exceeded");
    expect(isRetryable(e)).toBe(true);
  });

  it("the gateway's own key refused (401) → UPSTREAM_AUTH_FAILED: UNAVAILABLE, but not retryable (the key stays refused)", async () => {
    h.fake.failNext(cerebrasErrors.wrongApiKey());
    const e = gatewayError(await rejection(create("x")), Code.UNAVAILABLE, Reason.UPSTREAM_AUTH_FAILED);
    expect(isRetryable(e)).toBe(false);
    expect(retryDelayMs(e, 1, Date.now() + 60_000, DEFAULT_RETRY_POLICY)).toBeUndefined();
  });

  it("connection reset → UPSTREAM_CONNECTION_FAILED", async () => {
    h.fake.failNext({ kind: "reset-before-headers" });
    gatewayError(await rejection(create("x")), Code.UNAVAILABLE, Reason.UPSTREAM_CONNECTION_FAILED);
  });

  it("an unreadable reply → UPSTREAM_BAD_RESPONSE", async () => {
    h.fake.failNext({ kind: "http-error", status: 200, body: "not a completion" });
    gatewayError(await rejection(create("x")), Code.UNAVAILABLE, Reason.UPSTREAM_BAD_RESPONSE);
  });

  it("a stream cut mid-way → the chunks already sent, then UPSTREAM_CONNECTION_FAILED", async () => {
    h.fake.failNext({ kind: "cut-stream", afterChunks: 3 });
    const { items, error } = await drain(h.client.streamChatCompletion(userRequest("cut")));
    expect(items).toHaveLength(3);
    gatewayError(error, Code.UNAVAILABLE, Reason.UPSTREAM_CONNECTION_FAILED);
  });

  it("an error frame mid-stream → UPSTREAM_STREAM_ERROR with chunksDelivered", async () => {
    h.fake.failNext({ kind: "error-frame", afterChunks: 2 });
    const { items, error } = await drain(h.client.streamChatCompletion(userRequest("frame")));
    expect(items).toHaveLength(2);
    const e = gatewayError(error, Code.UNAVAILABLE, Reason.UPSTREAM_STREAM_ERROR);
    expect(e.metadata).toMatchObject({ upstreamCode: "internal_error", chunksDelivered: "2" });
  });

  it("EOF without finish_reason → UPSTREAM_STREAM_TRUNCATED", async () => {
    h.fake.failNext({ kind: "eof-without-finish", afterChunks: 3 });
    const { items, error } = await drain(h.client.streamChatCompletion(userRequest("short")));
    expect(items).toHaveLength(3);
    gatewayError(error, Code.UNAVAILABLE, Reason.UPSTREAM_STREAM_TRUNCATED);
  });
});

describe("DEADLINE_EXCEEDED and CANCELLED are never retryable", () => {
  it("the server's REQUEST_TIMEOUT_S → DEADLINE_EXCEEDED decoded from the gateway's ErrorInfo", async () => {
    const short = await startClientHarness({ env: { REQUEST_TIMEOUT_S: "0.3" } });
    try {
      short.fake.failNext({ kind: "hang" });
      const e = gatewayError(await rejection(short.client.createChatCompletion(userRequest("x"))), Code.DEADLINE_EXCEEDED, Reason.DEADLINE_EXCEEDED);
      expect(isRetryable(e)).toBe(false);
    } finally {
      await short.close();
    }
  });

  it("the client's own deadline → DEADLINE_EXCEEDED (no details: grpc-js ends it) with the request id", async () => {
    h.fake.failNext({ kind: "hang" });
    const e = gatewayError(await rejection(h.client.createChatCompletion(userRequest("x"), { requestId: "deadline-1", deadlineMs: 200 })), Code.DEADLINE_EXCEEDED, Reason.DEADLINE_EXCEEDED);
    expect(e.metadata["requestId"]).toBe("deadline-1");
    expect(isRetryable(e)).toBe(false);
  });

  it("cancelled → CANCELLED", async () => {
    const e = gatewayError(await rejection(h.client.createChatCompletion(userRequest("x"), { signal: AbortSignal.abort() })), Code.CANCELLED, Reason.CANCELLED);
    expect(isRetryable(e)).toBe(false);
  });
});

it("the gateway at its in-flight limit → RESOURCE_EXHAUSTED / GATEWAY_OVERLOADED with RetryInfo: retryable", async () => {
  const small = await startClientHarness({ env: { MAX_IN_FLIGHT: "1" } });
  const gate = small.fake.holdNext(1);
  try {
    const busy = small.client.streamChatCompletion(userRequest("hold the only slot"))[Symbol.asyncIterator]();
    expect((await busy.next()).done).toBe(false);
    const e = gatewayError(await rejection(small.client.createChatCompletion(userRequest("one too many"))), Code.RESOURCE_EXHAUSTED, Reason.GATEWAY_OVERLOADED);
    expect(e.retryDelayMs).toBeGreaterThan(0);
    expect(isRetryable(e)).toBe(true);
    await busy.return(undefined);
  } finally {
    gate.release();
    await small.close();
  }
});

it("a gateway that is not there → UNAVAILABLE named by its code (no ErrorInfo), retryable", async () => {
  const nowhere = new GatewayClient({ target: "127.0.0.1:1", defaultDeadlineMs: 5000 });
  try {
    const e = await rejection(nowhere.listModels());
    expect(e).toBeInstanceOf(GatewayError);
    expect((e as GatewayError).code).toBe(Code.UNAVAILABLE);
    expect((e as GatewayError).reason).toBe("UNAVAILABLE");
    expect(isRetryable(e)).toBe(true);
  } finally {
    nowhere.close();
  }
});
