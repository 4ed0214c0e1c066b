/**
 * The Cerebras JSON codec against bytes recorded from the real API (CEREBRAS_API.md §3-4)
 * and against the upstream's field whitelist.
 */
import { describe, expect, it } from "vitest";
import { ChatCompletionRequest, FinishReason, ReasoningFormat, Role, ServiceTier } from "../../gen/aigateway/v1/chat.js";
import { ProviderError } from "../../src/core/errors.js";
import { chatRequestBody, chatRequestToJson } from "../../src/wire/request.js";
import { chatCompletionChunkFromJson, chatCompletionFromJson } from "../../src/wire/response.js";
import { ChatRequestJson } from "../../src/wire/schema.js";
import { RECORDED_TOOL_COMPLETION } from "../fixtures/recorded-completion.js";


describe("chatCompletionFromJson", () => {
  it("reads a recorded tool-call completion, keeping absent content absent", () => {
    const c = chatCompletionFromJson(RECORDED_TOOL_COMPLETION);
    expect(c.choices[0]!.message).toEqual({
      role: Role.ROLE_ASSISTANT,
      toolCalls: [{ id: "181e286b1", type: "function", function: { name: "weather", arguments: '{"location": "Florence"}' } }],
    });
    expect(c.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_TOOL_CALLS);
    expect(c.usage).toEqual({ promptTokens: 277, completionTokens: 23, totalTokens: 300, promptTokensDetails: { cachedTokens: 0 } });
    expect(c.timeInfo!.created).toBe(1761231233.7300596);
    expect(c.systemFingerprint).toBe("fp_386b539e7b02ce3613b7");
  });

  it("accepts nulls where Cerebras' docs show them (tool_calls, logprobs, completion_tokens_details)", () => {
    const c = chatCompletionFromJson({
      ...RECORDED_TOOL_COMPLETION,
      choices: [{ index: 0, finish_reason: "stop", logprobs: null, message: { role: "assistant", content: "hi", tool_calls: null } }],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, completion_tokens_details: null },
    });
    expect(c.choices[0]!.message).toEqual({ role: Role.ROLE_ASSISTANT, content: "hi", toolCalls: [] });
    expect(c.choices[0]!.logprobs).toBeUndefined();
    expect(c.usage!.completionTokensDetails).toBeUndefined();
  });

  it("reads logprobs and reasoning", () => {
    const c = chatCompletionFromJson({
      ...RECORDED_TOOL_COMPLETION,
      choices: [
        {
          index: 0,
          finish_reason: "length",
          message: { role: "assistant", content: "a", reasoning: "think" },
          logprobs: { content: [{ token: "a", logprob: -0.1, bytes: [97], top_logprobs: [{ token: "b", logprob: -2, bytes: [98] }] }] },
        },
      ],
    });
    expect(c.choices[0]!.message!.reasoning).toBe("think");
    expect(c.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_LENGTH);
    expect(c.choices[0]!.logprobs!.content[0]).toEqual({ token: "a", logprob: -0.1, bytes: [97], topLogprobs: [{ token: "b", logprob: -2, bytes: [98] }] });
  });

  it("rejects what cannot be a completion with UPSTREAM_BAD_RESPONSE", () => {
    for (const bad of [null, "text", [], { choices: "no" }]) {
      expect(() => chatCompletionFromJson(bad)).toThrow(ProviderError);
    }
  });
});

describe("chatCompletionChunkFromJson", () => {
  it("reads the recorded stream sequence: role, content, final chunk with usage and time_info", () => {
    const base = { id: "chatcmpl-1", object: "chat.completion.chunk", created: 1761231233, model: "qwen-3-coder-480b", system_fingerprint: "fp_1" };
    const role = chatCompletionChunkFromJson({ ...base, choices: [{ delta: { role: "assistant" }, index: 0 }] });
    const text = chatCompletionChunkFromJson({ ...base, choices: [{ delta: { content: "Oi" }, index: 0 }] });
    const final = chatCompletionChunkFromJson({
      ...base,
      choices: [{ delta: {}, finish_reason: "stop", index: 0 }],
      usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 },
      time_info: { queue_time: 0.1, total_time: 0.2, created: 1761231233.5 },
    });
    expect(role.choices[0]!.delta).toEqual({ role: Role.ROLE_ASSISTANT, toolCalls: [] });
    expect(text.choices[0]!.delta).toEqual({ role: Role.ROLE_UNSPECIFIED, content: "Oi", toolCalls: [] });
    expect(text.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_UNSPECIFIED);
    expect(final.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(final.usage!.totalTokens).toBe(12);
    expect(final.timeInfo).toEqual({ queueTime: 0.1, totalTime: 0.2, created: 1761231233.5 });
  });

  it("keeps tool-call deltas whole (qwen) or in fragments (gpt-oss) with their index", () => {
    const whole = chatCompletionChunkFromJson({
      choices: [
        {
          index: 0,
          delta: {
            tool_calls: [
              { function: { name: "add", arguments: '{"a": 2, "b": 3}' }, type: "function", id: "ab8048658", index: 0 },
              { function: { name: "mul", arguments: "{}" }, type: "function", id: "ab8048659", index: 1 },
            ],
          },
        },
      ],
    });
    expect(whole.choices[0]!.delta!.toolCalls.map((t) => [t.index, t.id, t.function?.name])).toEqual([
      [0, "ab8048658", "add"],
      [1, "ab8048659", "mul"],
    ]);
    const fragment = chatCompletionChunkFromJson({ choices: [{ index: 0, delta: { tool_calls: [{ index: 1, function: { arguments: '"b": 3' } }] } }] });
    expect(fragment.choices[0]!.delta!.toolCalls).toEqual([{ index: 1, function: { arguments: '"b": 3' } }]);
  });
});

describe("chatRequestToJson", () => {
  it("writes a minimal request as just model and messages", () => {
    const req = ChatCompletionRequest.fromPartial({ model: "m", messages: [{ role: Role.ROLE_USER, contentKind: { $case: "content", value: "hi" } }] });
    expect(chatRequestToJson(req, false)).toEqual({ model: "m", messages: [{ role: "user", content: "hi" }] });
    expect(chatRequestToJson(req, true)).toEqual({ model: "m", messages: [{ role: "user", content: "hi" }], stream: true });
  });

  it("keeps zero values that were set (temperature 0, seed 0) and sends several stops as an array", () => {
    const req = ChatCompletionRequest.fromPartial({
      model: "m",
      messages: [{ role: Role.ROLE_SYSTEM, contentKind: { $case: "content", value: "be brief" } }],
      temperature: 0,
      seed: 0,
      stop: ["a", "b"],
      reasoningFormat: ReasoningFormat.REASONING_FORMAT_PARSED,
      serviceTier: ServiceTier.SERVICE_TIER_FLEX,
      streamOptions: { includeUsage: true },
    });
    expect(chatRequestToJson(req, true)).toMatchObject({ temperature: 0, seed: 0, stop: ["a", "b"], reasoning_format: "parsed", service_tier: "flex", stream_options: { include_usage: true } });
    expect(chatRequestToJson(req, false)).not.toHaveProperty("stream_options");
  });

  it("produces JSON the shared request schema accepts (the two directions cannot drift)", () => {
    const req = ChatCompletionRequest.fromPartial({
      model: "m",
      messages: [
        { role: Role.ROLE_DEVELOPER, contentKind: { $case: "content", value: "dev" } },
        { role: Role.ROLE_USER, contentKind: { $case: "contentParts", value: { parts: [{ part: { $case: "text", value: "x" } }] } }, name: "u" },
        { role: Role.ROLE_ASSISTANT, reasoning: "r", toolCalls: [{ id: "1", type: "function", function: { name: "f", arguments: "{}" } }] },
        { role: Role.ROLE_TOOL, toolCallId: "1", contentKind: { $case: "content", value: "ok" } },
      ],
      tools: [{ function: { name: "f", parameters: { type: "object" }, strict: true } }],
      toolChoice: { choice: { $case: "functionName", value: "f" } },
      responseFormat: { format: { $case: "jsonObject", value: {} } },
      prediction: { contentKind: { $case: "content", value: "guess" } },
      modelParameters: { foo: 1 },
    });
    const json = chatRequestToJson(req, false);
    expect(ChatRequestJson.safeParse(json).success).toBe(true);
    expect(json.messages[2]).toEqual({ role: "assistant", reasoning: "r", tool_calls: [{ id: "1", type: "function", function: { name: "f", arguments: "{}" } }] });
    expect(json.prediction).toEqual({ type: "content", content: "guess" });
  });
});

describe("chatRequestBody", () => {
  const base = (): ChatCompletionRequest => ChatCompletionRequest.fromPartial({ model: "m", messages: [{ role: Role.ROLE_USER, contentKind: { $case: "content", value: 'a "quoted" \u2028 text' } }] });

  it("is JSON.stringify of chatRequestToJson when no schema is given as text", () => {
    const req = { ...base(), tools: [{ function: { name: "f", parameters: { type: "object" } } }] };
    expect(chatRequestBody(req, true)).toBe(JSON.stringify(chatRequestToJson(req, true)));
  });

  it("splices parameters_json and schema_json in byte for byte, and the rest is the same JSON", () => {
    const params = '{ "properties" : {"2": {}, "1": {}} }';
    const schema = '{"type":"object","properties":{"b":{},"a":{}}}';
    const req: ChatCompletionRequest = {
      ...base(),
      tools: [{ function: { name: "f", description: "d", parameters: { ignored: true }, parametersJson: params, strict: true } }, { function: { name: "g", parameters: { type: "object" } } }],
      responseFormat: { format: { $case: "jsonSchema", value: { name: "s", schemaJson: schema } } },
    };
    const body = chatRequestBody(req, false);
    expect(body).toContain(`"parameters":${params}`);
    expect(body).toContain(`"schema":${schema}`);
    expect(body).toContain('"parameters":{"type":"object"}');
    expect(JSON.parse(body)).toEqual(JSON.parse(JSON.stringify(chatRequestToJson(req, false))));
  });
});
