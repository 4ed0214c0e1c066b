/**
 * The official `openai` client, unchanged except for baseURL, against the shim on
 * 127.0.0.1 with the fake Cerebras behind it: every call shape it makes, and each of its
 * error classes, asserted by class and status.
 */
import { APIConnectionError, APIError, BadRequestError, InternalServerError, NotFoundError, RateLimitError } from "openai";
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionCreateParamsNonStreaming, ChatCompletionMessageParam, ChatCompletionTool } from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { startHttpHarness, type HttpHarness } from "../helpers/http.js";
import { rejection } from "../helpers/harness.js";

let h: HttpHarness;
beforeAll(async () => {
  h = await startHttpHarness();
});
afterAll(async () => {
  await h.close();
});

type WithTimeInfo<T> = T & { time_info?: Record<string, number> };
const lastUpstreamBody = (): Record<string, unknown> => h.fake.chatRequests().at(-1)!.body as Record<string, unknown>;
const ask = (text: string): { model: string; messages: ChatCompletionMessageParam[] } => ({ model: "gpt-oss-120b", messages: [{ role: "user", content: text }] });

const weatherTool: ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Current weather for a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, unit: { type: "string", enum: ["celsius", "fahrenheit"] } },
      required: ["city", "unit"],
      additionalProperties: false,
    },
  },
};

describe("chat.completions.create", () => {
  it("unary: OpenAI's completion shape with usage and Cerebras' time_info; upstream gets only what was set", async () => {
    const res = (await h.openai.chat.completions.create(ask("hello there"))) as WithTimeInfo<ChatCompletion>;
    expect(res.object).toBe("chat.completion");
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.model).toBe("gpt-oss-120b");
    expect(res.choices).toHaveLength(1);
    expect(res.choices[0]!.message).toMatchObject({ role: "assistant", content: "Echo: hello there", refusal: null });
    expect(res.choices[0]!.finish_reason).toBe("stop");
    expect(res.usage!.completion_tokens).toBe(10);
    expect(res.usage!.total_tokens).toBe(res.usage!.prompt_tokens + 10);
    expect(res.time_info!["total_time"]).toBeGreaterThan(0);
    expect(lastUpstreamBody()).toEqual({ model: "gpt-oss-120b", messages: [{ role: "user", content: "hello there" }] });
  });

  it("stream: true with include_usage: chunks as they come, then OpenAI's usage chunk with choices: []", async () => {
    const stream = await h.openai.chat.completions.create({ ...ask("stream me please"), stream: true, stream_options: { include_usage: true } });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
    expect(text).toBe("Echo: stream me please");
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    const finish = chunks.at(-2)!;
    expect(finish.choices[0]!.finish_reason).toBe("stop");
    expect(finish.usage).toBeNull();
    const last = chunks.at(-1)! as WithTimeInfo<ChatCompletionChunk>;
    expect(last.choices).toEqual([]);
    expect(last.usage!.completion_tokens).toBeGreaterThan(0);
    expect(last.time_info!["total_time"]).toBeGreaterThan(0);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(lastUpstreamBody()).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it("stream: true without include_usage: usage rides on the finish chunk, as Cerebras sends it", async () => {
    const stream = await h.openai.chat.completions.create({ ...ask("no usage asked"), stream: true });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1)!;
    expect(last.choices[0]!.finish_reason).toBe("stop");
    expect(last.usage!.total_tokens).toBeGreaterThan(0);
    expect(chunks.slice(0, -1).every((c) => c.usage === undefined)).toBe(true);
  });

  it("the SDK's stream helper assembles the final completion", async () => {
    const runner = h.openai.chat.completions.stream({ ...ask("assemble me"), stream_options: { include_usage: true } });
    const final = await runner.finalChatCompletion();
    expect(final.choices[0]!.message.content).toBe("Echo: assemble me");
    expect(final.choices[0]!.finish_reason).toBe("stop");
  });

  it("tool calls round-trip: assistant tool_calls, the returned message echoed back, a tool message, an answer", async () => {
    const messages: ChatCompletionMessageParam[] = [{ role: "user", content: "What's the weather in Paris?" }];
    const first = await h.openai.chat.completions.create({
      model: "gpt-oss-120b",
      messages,
      tools: [weatherTool],
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
    const choice = first.choices[0]!;
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.content).toBeNull();
    const call = choice.message.tool_calls![0]!;
    expect(call.type).toBe("function");
    if (call.type !== "function") throw new Error("not a function call");
    expect(call.id).toMatch(/^[0-9a-f]{9}$/);
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toEqual({ city: "What's the weather in Paris?", unit: "celsius" });

    // What OpenAI code does: append the returned message as-is (with refusal: null, reasoning…).
    messages.push(choice.message, { role: "tool", tool_call_id: call.id, content: "18C, sunny" });
    const second = await h.openai.chat.completions.create({ model: "gpt-oss-120b", messages, tools: [weatherTool] });
    expect(second.choices[0]!.message.content).toBe("The tool returned: 18C, sunny");
    const sent = lastUpstreamBody()["messages"] as Array<Record<string, unknown>>;
    expect(sent[1]).toEqual({ role: "assistant", reasoning: expect.any(String), tool_calls: [{ id: call.id, type: "function", function: call.function }] });
    expect(sent[2]).toEqual({ role: "tool", content: "18C, sunny", tool_call_id: call.id });
  });

  it("streamed tool-call fragments assemble into a whole call in the SDK", async () => {
    const runner = h.openai.chat.completions.stream({
      ...ask("Use get_weather for Oslo"),
      tools: [weatherTool],
      tool_choice: "required",
    });
    const final = await runner.finalChatCompletion();
    const call = final.choices[0]!.message.tool_calls![0]!;
    if (call.type !== "function") throw new Error("not a function call");
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toMatchObject({ unit: "celsius" });
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
  });

  it("json_schema response_format: the content parses and follows the schema", async () => {
    const schema = {
      type: "object",
      properties: { title: { type: "string" }, year: { type: "integer" }, tags: { type: "array", items: { type: "string" } } },
      required: ["title", "year", "tags"],
      additionalProperties: false,
    };
    const res = await h.openai.chat.completions.create({
      ...ask("a movie"),
      response_format: { type: "json_schema", json_schema: { name: "movie", schema, strict: true } },
    });
    const parsed = JSON.parse(res.choices[0]!.message.content!) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual(["tags", "title", "year"]);
    expect(Number.isInteger(parsed["year"])).toBe(true);
    expect(lastUpstreamBody()["response_format"]).toEqual({ type: "json_schema", json_schema: { name: "movie", schema, strict: true } });
  });

  it("x-request-id: the caller's is echoed and sent upstream", async () => {
    const { response } = await h.openai.chat.completions.create(ask("id please"), { headers: { "x-request-id": "req-abc-123" } }).withResponse();
    expect(response.headers.get("x-request-id")).toBe("req-abc-123");
    expect(h.fake.chatRequests().at(-1)!.headers["x-request-id"]).toBe("req-abc-123");
  });
});

describe("models", () => {
  it("models.list() pages through OpenAI's list shape", async () => {
    const ids: string[] = [];
    for await (const m of h.openai.models.list()) ids.push(m.id);
    expect(ids).toEqual(["gpt-oss-120b", "zai-glm-4.7", "gemma-4-31b"]);
  });

  it("models.retrieve() gets one, NotFoundError for an unknown one", async () => {
    expect(await h.openai.models.retrieve("gpt-oss-120b")).toMatchObject({ id: "gpt-oss-120b", object: "model", owned_by: "Cerebras" });
    const err = await rejection(h.openai.models.retrieve("llama-4-scout-17b-16e-instruct"));
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).status).toBe(404);
  });
});

describe("errors arrive as the SDK's own classes", () => {
  it("an invalid request → BadRequestError 400 naming the field, before any upstream call", async () => {
    const before = h.fake.chatRequests().length;
    const err = await rejection(h.openai.chat.completions.create({ ...ask("x"), temperature: 3 }));
    expect(err).toBeInstanceOf(BadRequestError);
    const e = err as BadRequestError;
    expect(e.status).toBe(400);
    expect(e.param).toBe("temperature");
    expect(e.code).toBe("invalid_request");
    expect(e.type).toBe("invalid_request_error");
    expect(e.message).toContain("temperature: must be between 0 and 2");
    expect(e.requestID).toBeTruthy();
    expect(h.fake.chatRequests().length).toBe(before);
  });

  it("an unknown field → BadRequestError naming it", async () => {
    const params = { ...ask("x"), temprature: 0.2 } as ChatCompletionCreateParamsNonStreaming;
    const err = await rejection(h.openai.chat.completions.create(params));
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).param).toBe("temprature");
  });

  it("upstream 400 context_length_exceeded → BadRequestError with the upstream's code", async () => {
    h.fake.failNext(cerebrasErrors.contextLengthExceeded());
    const err = await rejection(h.openai.chat.completions.create(ask("x")));
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).code).toBe("context_length_exceeded");
    expect((err as BadRequestError).message).toContain("Cerebras: Please reduce the length");
  });

  it("unknown model → NotFoundError 404 (the upstream's own rule, no fault injected)", async () => {
    const err = await rejection(h.openai.chat.completions.create({ ...ask("x"), model: "llama-4-scout-17b-16e-instruct" }));
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).code).toBe("model_not_found");
  });

  it("upstream token quota → RateLimitError 429 with retry-after and the upstream's rate-limit headers as x-cerebras-ratelimit-*", async () => {
    h.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(11.38));
    const err = await rejection(h.openai.chat.completions.create(ask("x")));
    expect(err).toBeInstanceOf(RateLimitError);
    const e = err as RateLimitError;
    expect(e.status).toBe(429);
    expect(e.code).toBe("token_quota_exceeded");
    expect(e.headers.get("retry-after")).toBe("12");
    expect(e.headers.get("retry-after-ms")).toBe("11380");
    // Cerebras' own headers, renamed so they cannot be taken for the caller's own limits (x-ratelimit-*).
    expect(e.headers.get("x-cerebras-ratelimit-reset-tokens-minute")).toBe("11.38");
    expect(e.headers.get("x-cerebras-ratelimit-remaining-tokens-minute")).toBe("0");
    expect(e.headers.get("x-ratelimit-reset-tokens-minute")).toBeNull();
  });

  it("a refusal before the first chunk keeps its status on a streaming call too (RateLimitError)", async () => {
    h.fake.failNext(cerebrasErrors.requestQuotaPerDay(33011.38));
    const err = await rejection(h.openai.chat.completions.create({ ...ask("x"), stream: true }));
    expect(err).toBeInstanceOf(RateLimitError);
    expect((err as RateLimitError).headers.get("retry-after")).toBe("33012");
  });

  it.each([
    ["upstream 500", cerebrasErrors.serverError(500), 502, "upstream_server_error"],
    ["upstream 503", cerebrasErrors.serverError(503), 503, "upstream_server_error"],
    ["429 queue_exceeded (shared capacity)", cerebrasErrors.queueExceeded(), 503, "upstream_overloaded"],
    ["the gateway's own key refused (401)", cerebrasErrors.wrongApiKey(), 502, "upstream_auth_failed"],
  ])("UNAVAILABLE: %s → InternalServerError %i (the caller is not blamed)", async (_, fault, status, code) => {
    h.fake.failNext(fault);
    const err = await rejection(h.openai.chat.completions.create(ask("x")));
    expect(err).toBeInstanceOf(InternalServerError);
    expect((err as InternalServerError).status).toBe(status);
    expect((err as InternalServerError).code).toBe(code);
  });

  it("a failure mid-stream → the chunks already sent, then the SDK raises APIError from the in-band error event", async () => {
    h.fake.failNext({ kind: "error-frame", afterChunks: 3 });
    const stream = await h.openai.chat.completions.create({ ...ask("fail midway"), stream: true });
    const chunks: ChatCompletionChunk[] = [];
    const err = await rejection(
      (async () => {
        for await (const chunk of stream) chunks.push(chunk);
      })(),
    );
    expect(chunks).toHaveLength(3);
    expect(err).toBeInstanceOf(APIError);
    expect(err).not.toBeInstanceOf(APIConnectionError);
    const e = err as APIError;
    expect(e.status).toBeUndefined(); // the 200 was already sent
    expect(e.message).toBe("Cerebras: Internal error while generating");
    expect(e.code).toBe("upstream_stream_error");
    expect(e.type).toBe("upstream_error");
  });

  it("a connection cut mid-stream is reported in-band too, never a quiet end", async () => {
    h.fake.failNext({ kind: "cut-stream", afterChunks: 2 });
    const stream = await h.openai.chat.completions.create({ ...ask("cut me"), stream: true });
    let count = 0;
    const err = await rejection(
      (async () => {
        for await (const _ of stream) count++;
      })(),
    );
    expect(count).toBe(2);
    expect((err as APIError).code).toBe("upstream_connection_failed");
  });
});

describe("deadlines", () => {
  it("REQUEST_TIMEOUT_S passing → InternalServerError 504, and the upstream request is closed", async () => {
    const short = await startHttpHarness({ env: { REQUEST_TIMEOUT_S: "0.3" } });
    try {
      short.fake.failNext({ kind: "hang" });
      const err = await rejection(short.openai.chat.completions.create(ask("slow")));
      expect(err).toBeInstanceOf(InternalServerError);
      expect((err as InternalServerError).status).toBe(504);
      expect((err as InternalServerError).code).toBe("deadline_exceeded");
      expect(await short.fake.chatRequests()[0]!.settled).toBe("aborted");
    } finally {
      await short.close();
    }
  });
});
