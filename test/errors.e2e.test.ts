/**
 * Every row of the error table in DESIGN.md, end to end: the fake Cerebras produces the
 * failure, a generated grpc-js client sees the status, and the google.rpc details in
 * grpc-status-details-bin decode to what the table promises. Upstream retries are off
 * here, so each fault maps exactly once; retries have their own suite (reliability/).
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResponseFormat, Role } from "../gen/aigateway/v1/chat.js";
import { cerebrasErrors } from "../src/fake-upstream/faults.js";
import { ERROR_DOMAIN } from "../src/core/errors.js";
import { create, deadlineIn, decodeStatus, type Harness, rejection, startHarness, stream, until, UPSTREAM_KEY, userRequest } from "./helpers/harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { UPSTREAM_MAX_RETRIES: "0" } });
});
afterAll(async () => {
  await h.close();
});

/** Asserts the AIP-193 invariants every error must keep, and returns the decoded details. */
function richError(err: unknown, code: status, reason: string) {
  const e = err as ServiceError;
  expect(e.code, e.details).toBe(code);
  const d = decodeStatus(e);
  expect(d.code).toBe(code);
  expect(d.message).toBe(e.details);
  expect(d.errorInfoCount).toBe(1);
  expect(d.errorInfo!.reason).toBe(reason);
  expect(d.errorInfo!.domain).toBe(ERROR_DOMAIN);
  expect(d.errorInfo!.metadata["requestId"]).toBeTruthy();
  expect(JSON.stringify({ m: e.message, d: e.details, md: d })).not.toContain(UPSTREAM_KEY);
  return d;
}

describe("request validation → INVALID_ARGUMENT with BadRequest, before any upstream call", () => {
  it("names each bad field by its proto path", async () => {
    const before = h.fake.chatRequests().length;
    const err = await rejection(
      create(
        h.chat,
        userRequest("x", {
          temperature: 3,
          messages: [
            { role: Role.ROLE_USER, contentKind: { $case: "content", value: "hi" }, toolCalls: [], toolCallId: "" },
            { role: Role.ROLE_TOOL, contentKind: { $case: "content", value: "42" }, toolCalls: [], toolCallId: "" },
          ],
        }),
      ),
    );
    const d = richError(err, status.INVALID_ARGUMENT, "INVALID_REQUEST");
    expect(d.badRequest!.fieldViolations.map((v) => v.field)).toEqual(["messages.1.tool_call_id", "temperature"]);
    expect((err as ServiceError).details).toContain("messages.1.tool_call_id");
    expect(h.fake.chatRequests().length).toBe(before);
  });

  it("rejects an empty conversation", async () => {
    const d = richError(await rejection(create(h.chat, userRequest("x", { messages: [] }))), status.INVALID_ARGUMENT, "INVALID_REQUEST");
    expect(d.badRequest!.fieldViolations).toEqual([{ field: "messages", description: "at least one message is required", reason: "" }]);
  });

  it("rejects json_object output on the streaming RPC", async () => {
    const { error, chunks } = await stream(h.chat, userRequest("x", { responseFormat: ResponseFormat.fromPartial({ format: { $case: "jsonObject", value: {} } }) }));
    expect(chunks).toHaveLength(0);
    const d = richError(error, status.INVALID_ARGUMENT, "INVALID_REQUEST");
    expect(d.badRequest!.fieldViolations[0]!.field).toBe("response_format");
  });
});

describe("upstream refusals keep their meaning", () => {
  it("upstream 400 wrong_api_format → INVALID_ARGUMENT with the upstream code", async () => {
    h.fake.failNext(cerebrasErrors.wrongApiFormat());
    const d = richError(await rejection(create(h.chat, userRequest("x"))), status.INVALID_ARGUMENT, "UPSTREAM_INVALID_REQUEST");
    expect(d.errorInfo!.metadata).toMatchObject({ upstreamStatus: "400", upstreamCode: "wrong_api_format", upstreamType: "invalid_request_error" });
    expect(d.message).toBe("Cerebras: body.top_k: property 'body.top_k' is unsupported");
  });

  it("upstream 400 context_length_exceeded → INVALID_ARGUMENT", async () => {
    h.fake.failNext(cerebrasErrors.contextLengthExceeded());
    const d = richError(await rejection(create(h.chat, userRequest("x"))), status.INVALID_ARGUMENT, "UPSTREAM_INVALID_REQUEST");
    expect(d.errorInfo!.metadata["upstreamCode"]).toBe("context_length_exceeded");
  });

  it("upstream 404 model_not_found (a model retired since the last catalog refresh) → NOT_FOUND", async () => {
    h.fake.failNext(cerebrasErrors.modelNotFound());
    const d = richError(await rejection(create(h.chat, userRequest("x"))), status.NOT_FOUND, "MODEL_NOT_FOUND");
    expect(d.errorInfo!.metadata["upstreamCode"]).toBe("model_not_found");
    expect(d.badRequest).toBeUndefined();
  });

  it("upstream 429 token quota → RESOURCE_EXHAUSTED with RetryInfo from x-ratelimit-reset-tokens-minute and QuotaFailure", async () => {
    h.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(11.38));
    const d = richError(await rejection(create(h.chat, userRequest("x"))), status.RESOURCE_EXHAUSTED, "UPSTREAM_QUOTA_EXCEEDED");
    expect(d.retryInfo!.retryDelay).toEqual({ seconds: 11, nanos: 380_000_000 });
    expect(d.quotaFailure!.violations[0]!.subject).toBe("cerebras:token_quota_exceeded");
  });

  it("upstream 429 daily request quota → RESOURCE_EXHAUSTED with the daily reset as RetryInfo", async () => {
    h.fake.failNext(cerebrasErrors.requestQuotaPerDay(33011.38));
    const d = richError(await rejection(create(h.chat, userRequest("x"))), status.RESOURCE_EXHAUSTED, "UPSTREAM_QUOTA_EXCEEDED");
    expect(d.retryInfo!.retryDelay!.seconds).toBe(33011);
  });

  it("a refusal before streaming starts maps the same way on the streaming RPC", async () => {
    h.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(2));
    const { chunks, error } = await stream(h.chat, userRequest("x"));
    expect(chunks).toHaveLength(0);
    richError(error, status.RESOURCE_EXHAUSTED, "UPSTREAM_QUOTA_EXCEEDED");
  });
});

describe("provider failures → UNAVAILABLE with ErrorInfo (and RetryInfo when known)", () => {
  it("429 queue_exceeded (shared capacity) → UNAVAILABLE", async () => {
    h.fake.failNext(cerebrasErrors.queueExceeded());
    const d = richError(await rejection(create(h.chat, userRequest("x"))), status.UNAVAILABLE, "UPSTREAM_OVERLOADED");
    expect(d.errorInfo!.metadata["upstreamCode"]).toBe("queue_exceeded");
  });

  it.each([500, 502, 503])("upstream %i → UNAVAILABLE", async (code) => {
    h.fake.failNext(cerebrasErrors.serverError(code));
    const d = richError(await rejection(create(h.chat, userRequest("x"))), status.UNAVAILABLE, "UPSTREAM_SERVER_ERROR");
    expect(d.errorInfo!.metadata["upstreamStatus"]).toBe(String(code));
  });

  it("503 with retry-after → RetryInfo carries it", async () => {
    h.fake.failNext({ kind: "http-error", status: 503, body: { message: "Service Unavailable" }, headers: { "retry-after": "2" } });
    const d = richError(await rejection(create(h.chat, userRequest("x"))), status.UNAVAILABLE, "UPSTREAM_SERVER_ERROR");
    expect(d.retryInfo!.retryDelay).toEqual({ seconds: 2, nanos: 0 });
  });

  it.each([
    ["401", cerebrasErrors.wrongApiKey()],
    ["402", cerebrasErrors.paymentRequired()],
  ])("upstream %s for the gateway's own key → UNAVAILABLE, the caller is not blamed", async (_, fault) => {
    h.fake.failNext(fault);
    richError(await rejection(create(h.chat, userRequest("x"))), status.UNAVAILABLE, "UPSTREAM_AUTH_FAILED");
  });

  it("connection reset before headers → UNAVAILABLE", async () => {
    h.fake.failNext({ kind: "reset-before-headers" });
    richError(await rejection(create(h.chat, userRequest("x"))), status.UNAVAILABLE, "UPSTREAM_CONNECTION_FAILED");
  });

  it("a 200 whose body is not a completion → UNAVAILABLE", async () => {
    h.fake.failNext({ kind: "http-error", status: 200, body: "not a completion" });
    richError(await rejection(create(h.chat, userRequest("x"))), status.UNAVAILABLE, "UPSTREAM_BAD_RESPONSE");
  });
});

describe("streams never end silently", () => {
  it("a connection cut mid-stream → the chunks already sent, then UNAVAILABLE", async () => {
    h.fake.failNext({ kind: "cut-stream", afterChunks: 3 });
    const { chunks, error } = await stream(h.chat, userRequest("cut me"));
    expect(chunks).toHaveLength(3);
    richError(error, status.UNAVAILABLE, "UPSTREAM_CONNECTION_FAILED");
  });

  it("an in-band error frame mid-stream → UNAVAILABLE with the upstream's code", async () => {
    h.fake.failNext({ kind: "error-frame", afterChunks: 2 });
    const { chunks, error } = await stream(h.chat, userRequest("frame"));
    expect(chunks).toHaveLength(2);
    const d = richError(error, status.UNAVAILABLE, "UPSTREAM_STREAM_ERROR");
    expect(d.errorInfo!.metadata).toMatchObject({ upstreamCode: "internal_error", upstreamStatus: "500", chunksDelivered: "2" });
    expect(d.message).toBe("Cerebras: Internal error while generating");
  });

  it("an error frame before any chunk maps like the HTTP status it carries", async () => {
    h.fake.failNext({ kind: "error-frame", afterChunks: 0, statusCode: 400, error: { message: "bad schema", type: "invalid_request_error", code: "wrong_api_format", param: null } });
    const { chunks, error } = await stream(h.chat, userRequest("frame"));
    expect(chunks).toHaveLength(0);
    richError(error, status.INVALID_ARGUMENT, "UPSTREAM_INVALID_REQUEST");
  });

  it("EOF without a finish_reason → UNAVAILABLE (truncated), not a quiet end", async () => {
    h.fake.failNext({ kind: "eof-without-finish", afterChunks: 3 });
    const { chunks, error } = await stream(h.chat, userRequest("short"));
    expect(chunks).toHaveLength(3);
    const d = richError(error, status.UNAVAILABLE, "UPSTREAM_STREAM_TRUNCATED");
    expect(d.errorInfo!.metadata["chunksDelivered"]).toBe("3");
  });

  it("malformed JSON in the stream → UNAVAILABLE", async () => {
    h.fake.failNext({ kind: "garbage", afterChunks: 2 });
    const { chunks, error } = await stream(h.chat, userRequest("garbage"));
    expect(chunks).toHaveLength(2);
    richError(error, status.UNAVAILABLE, "UPSTREAM_BAD_RESPONSE");
  });
});

describe("deadlines and cancellation reach the upstream", () => {
  it("the caller's deadline → DEADLINE_EXCEEDED, and the upstream request is closed", async () => {
    h.fake.failNext({ kind: "hang" });
    const err = await rejection(create(h.chat, userRequest("slow"), deadlineIn(300)));
    expect((err as ServiceError).code).toBe(status.DEADLINE_EXCEEDED);
    expect(await h.fake.chatRequests().at(-1)!.settled).toBe("aborted");
  });

  it("a deadline passing mid-stream → DEADLINE_EXCEEDED after the chunks already sent; upstream closed", async () => {
    const gate = h.fake.holdNext(2);
    const { chunks, error } = await stream(h.chat, userRequest("slow stream"), deadlineIn(300));
    expect(chunks).toHaveLength(2);
    expect(error!.code).toBe(status.DEADLINE_EXCEEDED);
    expect(await h.fake.chatRequests().at(-1)!.settled).toBe("aborted");
    gate.release();
  });

  it("client cancel of a unary call closes the upstream request", async () => {
    h.fake.failNext({ kind: "hang" });
    const before = h.fake.chatRequests().length;
    const call = h.chat.createChatCompletion(userRequest("cancel me"), () => {});
    await until(() => h.fake.chatRequests().length > before, 5000, "the upstream request");
    call.cancel();
    expect(await h.fake.chatRequests().at(-1)!.settled).toBe("aborted");
  });

  it("client cancel mid-stream closes the upstream request", async () => {
    const gate = h.fake.holdNext(1);
    const call = h.chat.streamChatCompletion(userRequest("cancel the stream"));
    call.on("error", () => {}); // CANCELLED, expected
    await new Promise((resolve) => call.once("data", resolve));
    call.cancel();
    expect(await h.fake.chatRequests().at(-1)!.settled).toBe("aborted");
    gate.release();
  });

  it("after all of the above the gateway still serves, with no upstream request left open", async () => {
    await until(() => h.fake.openRequests() === 0, 5000, "upstream requests to close");
    const res = await create(h.chat, userRequest("still alive?"));
    expect(res.choices[0]!.message!.content).toBe("Echo: still alive?");
  });
});

describe("server-side limits and an unreachable upstream", () => {
  it("REQUEST_TIMEOUT_S caps calls that set no deadline → DEADLINE_EXCEEDED with ErrorInfo; upstream closed", async () => {
    const short = await startHarness({ env: { REQUEST_TIMEOUT_S: "0.3", UPSTREAM_MAX_RETRIES: "0" } });
    try {
      short.fake.failNext({ kind: "hang" });
      richError(await rejection(create(short.chat, userRequest("x"))), status.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED");
      expect(await short.fake.chatRequests()[0]!.settled).toBe("aborted");
    } finally {
      await short.close();
    }
  });

  it("connection refused → UNAVAILABLE", async () => {
    const dead = await startHarness({ env: { UPSTREAM_MAX_RETRIES: "0" } });
    await dead.fake.close(); // nothing listens on the upstream port any more
    try {
      richError(await rejection(create(dead.chat, userRequest("x"))), status.UNAVAILABLE, "UPSTREAM_CONNECTION_FAILED");
    } finally {
      await dead.close();
    }
  });

  it("a wrong upstream key is reported as the gateway's problem and the key is not echoed", async () => {
    const wrong = await startHarness({ env: { CEREBRAS_API_KEY: "csk-wrong-key-should-not-leak", UPSTREAM_MAX_RETRIES: "0" } });
    try {
      const err = await rejection(create(wrong.chat, userRequest("x")));
      richError(err, status.UNAVAILABLE, "UPSTREAM_AUTH_FAILED");
      expect(JSON.stringify(decodeStatus(err as ServiceError))).not.toContain("csk-wrong-key-should-not-leak");
    } finally {
      await wrong.close();
    }
  });
});
