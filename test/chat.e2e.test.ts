/**
 * Chat completions end to end: generated grpc-js client → gateway → fake Cerebras, all
 * on 127.0.0.1. Asserts what callers see and what the upstream received.
 */
import { Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FinishReason, ReasoningEffort, Role, ToolChoiceMode, type ChatCompletionRequest } from "../gen/aigateway/v1/chat.js";
import { collect, create, startHarness, stream, streamedText, userRequest, type Harness } from "./helpers/harness.js";

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

const lastChatBody = (): Record<string, unknown> => h.fake.chatRequests().at(-1)!.body as Record<string, unknown>;

const weatherTool = {
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

describe("CreateChatCompletion", () => {
  it("returns the upstream completion with usage and time_info", async () => {
    const res = await create(h.chat, userRequest("hello there"));
    expect(res.object).toBe("chat.completion");
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.model).toBe("gpt-oss-120b");
    expect(res.choices).toHaveLength(1);
    expect(res.choices[0]!.message!.role).toBe(Role.ROLE_ASSISTANT);
    expect(res.choices[0]!.message!.content).toBe("Echo: hello there");
    expect(res.choices[0]!.message!.reasoning).toBe('The user asked: "hello there". Answer directly.');
    expect(res.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(res.usage!.promptTokens).toBeGreaterThan(0);
    expect(res.usage!.completionTokens).toBe(10);
    expect(res.usage!.totalTokens).toBe(res.usage!.promptTokens + 10);
    expect(res.usage!.completionTokensDetails!.reasoningTokens).toBe(7);
    expect(res.timeInfo!.totalTime).toBeGreaterThan(0);
    expect(res.timeInfo!.created).toBeGreaterThan(1.7e9);
  });

  it("fills in DEFAULT_MODEL when the request names none, and reports the real model", async () => {
    const res = await create(h.chat, userRequest("which model?"));
    expect(lastChatBody()["model"]).toBe("gpt-oss-120b");
    expect(res.model).toBe("gpt-oss-120b");
  });

  it("sends only the fields that are set: an unset temperature is not sent as 0", async () => {
    await create(h.chat, userRequest("hi"));
    expect(lastChatBody()).toEqual({ model: "gpt-oss-120b", messages: [{ role: "user", content: "hi" }] });
  });

  it("passes every set field through in Cerebras' wire form, which the upstream accepts", async () => {
    const request = userRequest("all the knobs", {
      model: "gpt-oss-120b",
      temperature: 0,
      topP: 0.9,
      maxCompletionTokens: 500,
      stop: ["END"],
      seed: 42,
      frequencyPenalty: 0.5,
      presencePenalty: -0.5,
      logitBias: { "1234": -100 },
      reasoningEffort: ReasoningEffort.REASONING_EFFORT_LOW,
      user: "svc-a",
      parallelToolCalls: false,
      tools: [weatherTool],
      toolChoice: { choice: { $case: "mode", value: ToolChoiceMode.TOOL_CHOICE_MODE_AUTO } },
    });
    const res = await create(h.chat, request);
    expect(res.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(lastChatBody()).toMatchObject({
      temperature: 0,
      top_p: 0.9,
      max_completion_tokens: 500,
      stop: "END",
      seed: 42,
      frequency_penalty: 0.5,
      presence_penalty: -0.5,
      logit_bias: { "1234": -100 },
      reasoning_effort: "low",
      user: "svc-a",
      parallel_tool_calls: false,
      tool_choice: "auto",
      tools: [{ type: "function", function: { name: "get_weather", description: "Current weather for a city", parameters: weatherTool.function.parameters } }],
    });
  });

  it("echoes the caller's x-request-id and forwards it upstream", async () => {
    const md = new Metadata();
    md.set("x-request-id", "req-abc-123");
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => (done = resolve));
    const headers = new Promise<Metadata>((resolve) => {
      const call = h.chat.createChatCompletion(userRequest("id please"), md, () => done());
      call.on("metadata", resolve);
    });
    expect((await headers).get("x-request-id")).toEqual(["req-abc-123"]);
    await finished;
    expect(h.fake.chatRequests().at(-1)!.headers["x-request-id"]).toBe("req-abc-123");
  });

  it("returns a tool call when the tool choice requires one, with a 9-character id and schema-valid arguments", async () => {
    const res = await create(
      h.chat,
      userRequest("What's the weather in Paris?", {
        tools: [weatherTool],
        toolChoice: { choice: { $case: "functionName", value: "get_weather" } },
      }),
    );
    const choice = res.choices[0]!;
    expect(choice.finishReason).toBe(FinishReason.FINISH_REASON_TOOL_CALLS);
    expect(choice.message!.content).toBeUndefined();
    expect(choice.message!.toolCalls).toHaveLength(1);
    const call = choice.message!.toolCalls[0]!;
    expect(call.id).toMatch(/^[0-9a-f]{9}$/);
    expect(call.type).toBe("function");
    expect(call.function!.name).toBe("get_weather");
    expect(JSON.parse(call.function!.arguments)).toEqual({ city: "What's the weather in Paris?", unit: "celsius" });
    expect(lastChatBody()["tool_choice"]).toEqual({ type: "function", function: { name: "get_weather" } });
  });

  it("round-trips a tool result: assistant tool_calls then a tool message get a final answer", async () => {
    const request: Partial<ChatCompletionRequest> = {
      tools: [weatherTool],
      messages: [
        { role: Role.ROLE_USER, contentKind: { $case: "content", value: "Weather in Paris?" }, toolCalls: [], toolCallId: "" },
        {
          role: Role.ROLE_ASSISTANT,
          toolCalls: [{ id: "a1b2c3d4e", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris","unit":"celsius"}' } }],
          toolCallId: "",
        },
        { role: Role.ROLE_TOOL, contentKind: { $case: "content", value: "18C, sunny" }, toolCalls: [], toolCallId: "a1b2c3d4e" },
      ],
    };
    const res = await create(h.chat, userRequest("", request));
    expect(res.choices[0]!.message!.content).toBe("The tool returned: 18C, sunny");
    const sent = lastChatBody()["messages"] as unknown[];
    expect(sent[1]).toEqual({
      role: "assistant",
      tool_calls: [{ id: "a1b2c3d4e", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris","unit":"celsius"}' } }],
    });
    expect(sent[2]).toEqual({ role: "tool", content: "18C, sunny", tool_call_id: "a1b2c3d4e" });
  });

  it("returns JSON that follows the json_schema response format", async () => {
    const schema = {
      type: "object",
      properties: { title: { type: "string" }, year: { type: "integer" }, tags: { type: "array", items: { type: "string" } } },
      required: ["title", "year", "tags"],
      additionalProperties: false,
    };
    const res = await create(
      h.chat,
      userRequest("a movie", { responseFormat: { format: { $case: "jsonSchema", value: { name: "movie", schema, strict: true } } } }),
    );
    const parsed = JSON.parse(res.choices[0]!.message!.content!) as Record<string, unknown>;
    expect(Object.keys(parsed).sort()).toEqual(["tags", "title", "year"]);
    expect(typeof parsed["title"]).toBe("string");
    expect(Number.isInteger(parsed["year"])).toBe(true);
    expect(lastChatBody()["response_format"]).toEqual({ type: "json_schema", json_schema: { name: "movie", schema, strict: true } });
  });

  it("sends images as content parts in OpenAI form", async () => {
    const image = "data:image/png;base64,iVBORw0KGgo=";
    await create(
      h.chat,
      userRequest("", {
        model: "gemma-4-31b",
        messages: [
          {
            role: Role.ROLE_USER,
            contentKind: {
              $case: "contentParts",
              value: { parts: [{ part: { $case: "text", value: "what is this?" } }, { part: { $case: "imageUrl", value: { url: image } } }] },
            },
            toolCalls: [],
            toolCallId: "",
          },
        ],
      }),
    );
    expect((lastChatBody()["messages"] as unknown[])[0]).toEqual({
      role: "user",
      content: [
        { type: "text", text: "what is this?" },
        { type: "image_url", image_url: { url: image } },
      ],
    });
  });
});

describe("StreamChatCompletion", () => {
  it("streams one message per upstream chunk and ends with finish_reason, usage and time_info", async () => {
    const { chunks, error } = await stream(h.chat, userRequest("stream me please"));
    expect(error).toBeUndefined();
    expect(chunks[0]!.choices[0]!.delta!.role).toBe(Role.ROLE_ASSISTANT);
    const reasoning = chunks.map((c) => c.choices[0]?.delta?.reasoning ?? "").join("");
    expect(reasoning).toBe('The user asked: "stream me please". Answer directly.');
    expect(streamedText(chunks)).toBe("Echo: stream me please");
    // role + 8 reasoning tokens + 4 content tokens + the final chunk
    expect(chunks).toHaveLength(14);
    const last = chunks.at(-1)!;
    expect(last.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(last.usage!.completionTokens).toBe(12);
    expect(last.timeInfo!.completionTime).toBeGreaterThanOrEqual(0);
    for (const c of chunks.slice(0, -1)) {
      expect(c.object).toBe("chat.completion.chunk");
      expect(c.usage).toBeUndefined();
      expect(c.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_UNSPECIFIED);
    }
    expect(lastChatBody()["stream"]).toBe(true);
  });

  it("forwards each chunk as it arrives: the first reaches the caller while the upstream holds the rest", async () => {
    const gate = h.fake.holdNext(1);
    const call = h.chat.streamChatCompletion(userRequest("incremental"));
    const result = collect(call);
    const first = await new Promise((resolve) => call.once("data", resolve));
    await gate.reached;
    const upstream = h.fake.chatRequests().at(-1)!;
    expect(first).toBeDefined();
    expect(upstream.chunksSent).toBe(1);
    expect(upstream.outcome).toBe("pending");
    gate.release();
    const { chunks, error } = await result;
    expect(error).toBeUndefined();
    expect(chunks.at(-1)!.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
  });

  it("streams tool-call fragments with their index so the caller can assemble the call", async () => {
    const { chunks, error } = await stream(
      h.chat,
      userRequest("get_weather for Oslo", { tools: [weatherTool], toolChoice: { choice: { $case: "mode", value: ToolChoiceMode.TOOL_CHOICE_MODE_REQUIRED } } }),
    );
    expect(error).toBeUndefined();
    const deltas = chunks.flatMap((c) => c.choices[0]?.delta?.toolCalls ?? []);
    expect(deltas.length).toBeGreaterThan(2);
    expect(deltas.every((d) => d.index === 0)).toBe(true);
    expect(deltas[0]!.id).toMatch(/^[0-9a-f]{9}$/);
    expect(deltas[0]!.function!.name).toBe("get_weather");
    const args = deltas.map((d) => d.function?.arguments ?? "").join("");
    expect(JSON.parse(args)).toEqual({ city: "get_weather for Oslo", unit: "celsius" });
    expect(chunks.at(-1)!.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_TOOL_CALLS);
  });

  it("streams JSON schema output that parses once joined", async () => {
    const schema = { type: "object", properties: { ok: { type: "boolean" } }, required: ["ok"], additionalProperties: false };
    const { chunks, error } = await stream(
      h.chat,
      userRequest("json please", { responseFormat: { format: { $case: "jsonSchema", value: { name: "flag", schema } } } }),
    );
    expect(error).toBeUndefined();
    expect(JSON.parse(streamedText(chunks))).toEqual({ ok: true });
  });
});

describe("ModelService", () => {
  it("lists the upstream's models", async () => {
    const res = await new Promise<{ models: Array<{ id: string; ownedBy: string }> }>((resolve, reject) =>
      h.models.listModels({}, (err, r) => (err ? reject(err) : resolve(r!))),
    );
    expect(res.models.map((m) => m.id)).toEqual(["gpt-oss-120b", "zai-glm-4.7", "gemma-4-31b"]);
    expect(res.models[0]!.ownedBy).toBe("Cerebras");
  });

  it("gets one model, and NOT_FOUND for an unknown one", async () => {
    const get = (id: string) =>
      new Promise<{ id: string }>((resolve, reject) => h.models.getModel({ id }, (err, r) => (err ? reject(err) : resolve(r!))));
    expect((await get("gpt-oss-120b")).id).toBe("gpt-oss-120b");
    await expect(get("llama-4-scout-17b-16e-instruct")).rejects.toMatchObject({ code: 5 });
  });
});
