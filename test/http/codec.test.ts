/**
 * The shim's half of the JSON codec: request JSON → proto (schema, unknown-field policy,
 * readable dotted-path violations) and proto → the OpenAI response shapes. Both are
 * checked against the provider's half, which must undo them exactly.
 */
import { describe, expect, it } from "vitest";
import { ChatCompletionChunk, FinishReason, Role, type ChatCompletion } from "../../gen/aigateway/v1/chat.js";
import { Model } from "../../gen/aigateway/v1/models.js";
import { Code, GatewayError } from "../../src/core/errors.js";
import { DROPPED_FIELDS } from "../../src/wire/openai-fields.js";
import { chatRequestFromJson } from "../../src/wire/request-from-json.js";
import { chatRequestToJson } from "../../src/wire/request.js";
import { chatCompletionChunkToJson, chatCompletionToJson, modelToJson } from "../../src/wire/response-to-json.js";
import { chatCompletionChunkFromJson, chatCompletionFromJson } from "../../src/wire/response.js";
import { RECORDED_TOOL_COMPLETION } from "../fixtures/recorded-completion.js";

/** Every field Cerebras accepts, in its wire form. */
const FULL_REQUEST = {
  model: "gpt-oss-120b",
  messages: [
    { role: "system", content: "be brief", name: "sys" },
    { role: "developer", content: [{ type: "text", text: "house rules" }] },
    {
      role: "user",
      name: "u1",
      content: [
        { type: "text", text: "what is this?" },
        { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw0KGgo=", detail: "low" } },
      ],
    },
    {
      role: "assistant",
      name: "bot",
      content: "checking",
      reasoning: "the user wants weather",
      tool_calls: [{ id: "a1b2c3d4e", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } }],
    },
    { role: "tool", content: "18C", tool_call_id: "a1b2c3d4e" },
  ],
  tools: [{ type: "function", function: { name: "get_weather", description: "weather", parameters: { type: "object", properties: {} }, strict: true } }],
  tool_choice: { type: "function", function: { name: "get_weather" } },
  parallel_tool_calls: false,
  response_format: { type: "json_schema", json_schema: { name: "out", description: "d", schema: { type: "object" }, strict: true } },
  temperature: 0.5,
  top_p: 0.9,
  max_tokens: 100,
  max_completion_tokens: 200,
  min_tokens: 1,
  min_completion_tokens: 2,
  stop: ["END", "STOP"],
  seed: 7,
  logprobs: true,
  top_logprobs: 3,
  frequency_penalty: 0.1,
  presence_penalty: -0.1,
  logit_bias: { "42": -5 },
  reasoning_effort: "low",
  reasoning_format: "parsed",
  prediction: { type: "content", content: "guess" },
  service_tier: "auto",
  user: "svc-a",
  stream: true,
  stream_options: { include_usage: true },
  n: 1,
  clear_thinking: false,
  prompt_cache_key: "k1",
  model_parameters: { depth: 2 },
};

/** The INVALID_ARGUMENT error a call throws, or a test failure. */
function rejection(fn: () => unknown): GatewayError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe(Code.INVALID_ARGUMENT);
    return err as GatewayError;
  }
  throw new Error("expected a rejection");
}

const fields = (e: GatewayError) => e.fieldViolations.map((v) => v.field);
const violation = (e: GatewayError, field: string) => e.fieldViolations.find((v) => v.field === field)?.description;
const user = (content: unknown) => ({ model: "gpt-oss-120b", messages: [{ role: "user", content }] });

describe("chatRequestFromJson", () => {
  it("maps every Cerebras field, and the provider's encoder gives back the same JSON", () => {
    const { request, stream, ignored } = chatRequestFromJson(structuredClone(FULL_REQUEST));
    expect(stream).toBe(true);
    expect(ignored).toEqual([]);
    expect(chatRequestToJson(request, true)).toEqual(FULL_REQUEST);
  });

  it("decodes into the generated types, with unset optionals left undefined", () => {
    const { request, stream } = chatRequestFromJson(user("hi"));
    expect(stream).toBe(false);
    expect(request.messages).toEqual([{ role: Role.ROLE_USER, contentKind: { $case: "content", value: "hi" }, toolCalls: [], toolCallId: "" }]);
    expect(request.temperature).toBeUndefined();
    expect(request.toolChoice).toBeUndefined();
    expect(request.stop).toEqual([]);
  });

  it("treats null like an absent field, as OpenAI clients send them", () => {
    const { request } = chatRequestFromJson({ ...user("hi"), temperature: null, tools: null, stop: null, stream: null, stream_options: null });
    expect(request.temperature).toBeUndefined();
    expect(request.tools).toEqual([]);
    expect(chatRequestToJson(request, false)).toEqual(user("hi"));
  });

  it("takes a single stop string and tool_choice modes", () => {
    const { request } = chatRequestFromJson({ ...user("hi"), stop: "END", tool_choice: "required", tools: FULL_REQUEST.tools });
    expect(request.stop).toEqual(["END"]);
    expect(chatRequestToJson(request, false)).toMatchObject({ stop: "END", tool_choice: "required" });
  });

  it("accepts and drops the OpenAI-only fields that change nothing on Cerebras", () => {
    const extras = Object.fromEntries(DROPPED_FIELDS.map((f) => [f, f === "store" ? true : { any: "thing" }]));
    const { request, ignored } = chatRequestFromJson({ ...user("hi"), ...extras });
    expect(ignored).toEqual(DROPPED_FIELDS);
    expect(chatRequestToJson(request, false)).toEqual(user("hi"));
  });

  it("accepts an assistant message echoed back from a response (refusal, annotations) and drops those fields", () => {
    const echoed = { role: "assistant", content: "Echo: hi", refusal: null, annotations: [], reasoning: "r" };
    const { request, ignored } = chatRequestFromJson({ model: "m", messages: [{ role: "user", content: "hi" }, echoed, { role: "user", content: "more" }] });
    expect(ignored).toEqual(["messages.1.refusal", "messages.1.annotations"]);
    expect(request.messages[1]).toMatchObject({ role: Role.ROLE_ASSISTANT, contentKind: { $case: "content", value: "Echo: hi" }, reasoning: "r" });
  });

  it("refuses any other unknown field, at any depth, naming it", () => {
    expect(fields(rejection(() => chatRequestFromJson({ ...user("hi"), temprature: 0.2 })))).toEqual(["temprature"]);
    const nested = rejection(() =>
      chatRequestFromJson({
        model: "m",
        messages: [{ role: "user", content: "hi", reasoning_content: "x" }, { role: "assistant", content: "a", refusal: null }, { role: "user", content: "b", refusal: null }],
        tools: [{ type: "function", function: { name: "f", parameters: { anything: { goes: true } }, strictly: true } }],
        response_format: { type: "json_schema", json_schema: { name: "n", schema: { free: "form" }, extra: 1 } },
      }),
    );
    expect(fields(nested)).toEqual(["messages.0.reasoning_content", "messages.2.refusal", "tools.0.function.strictly", "response_format.json_schema.extra"]);
    expect(nested.fieldViolations[0]!.description).toMatch(/^unknown field/);
    expect(nested.message).toContain("messages.0.reasoning_content");
  });

  it("names bad fields by dotted path with a readable reason", () => {
    const e = rejection(() =>
      chatRequestFromJson({
        messages: [{ role: "user", content: 5 }, { role: "bogus", content: "x" }, { role: "user", content: [{ type: "text" }] }, { content: "no role" }],
        temperature: "hot",
        seed: 1.5,
        tool_choice: "maybe",
        response_format: { type: "yaml" },
      }),
    );
    expect(violation(e, "model")).toBe("is required");
    expect(violation(e, "messages.0.content")).toBe("expected string or array, got number");
    expect(violation(e, "messages.1.role")).toBe('must be one of "system", "developer", "user", "assistant", "tool"');
    expect(violation(e, "messages.2.content.0.text")).toBe("is required");
    expect(violation(e, "messages.3.role")).toBe("is required");
    expect(violation(e, "temperature")).toBe("expected number, got string");
    expect(violation(e, "seed")).toBe("expected an integer, got a fractional number");
    expect(violation(e, "tool_choice")).toBe('expected one of "none", "auto", "required" or object, got string');
    expect(violation(e, "response_format.type")).toBe('must be one of "text", "json_object", "json_schema"');
  });

  it("refuses a body that is not a JSON object", () => {
    for (const body of [[], "text", 42, null]) {
      expect(rejection(() => chatRequestFromJson(body)).message).toMatch(/^invalid request: the body must be a JSON object/);
    }
  });
});


describe("chatCompletionToJson", () => {
  it("gives back a recorded Cerebras completion, plus the keys OpenAI requires (null content, refusal, logprobs)", () => {
    const out = chatCompletionToJson(chatCompletionFromJson(RECORDED_TOOL_COMPLETION));
    const expected = structuredClone(RECORDED_TOOL_COMPLETION) as { choices: Array<Record<string, unknown>> };
    expected.choices[0] = {
      index: 0,
      finish_reason: "tool_calls",
      logprobs: null,
      message: { role: "assistant", content: null, refusal: null, tool_calls: RECORDED_TOOL_COMPLETION.choices[0]!.message.tool_calls },
    };
    expect(out).toEqual(expected);
  });

  it("leaves out optional keys with no value instead of writing defaults", () => {
    const c: ChatCompletion = {
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 1,
      model: "m",
      systemFingerprint: "",
      choices: [{ index: 0, finishReason: FinishReason.FINISH_REASON_STOP, message: { role: Role.ROLE_ASSISTANT, content: "hi", toolCalls: [] } }],
    };
    expect(chatCompletionToJson(c)).toEqual({
      id: "chatcmpl-1",
      object: "chat.completion",
      created: 1,
      model: "m",
      choices: [{ index: 0, message: { role: "assistant", content: "hi", refusal: null }, logprobs: null, finish_reason: "stop" }],
    });
  });

  it("writes logprobs in OpenAI's shape", () => {
    const c = chatCompletionFromJson({
      ...RECORDED_TOOL_COMPLETION,
      choices: [
        {
          index: 0,
          finish_reason: "stop",
          message: { role: "assistant", content: "a" },
          logprobs: { content: [{ token: "a", logprob: -0.1, bytes: [97], top_logprobs: [{ token: "b", logprob: -2, bytes: [98] }] }] },
        },
      ],
    });
    expect(chatCompletionToJson(c).choices[0]!.logprobs).toEqual({
      content: [{ token: "a", logprob: -0.1, bytes: [97], top_logprobs: [{ token: "b", logprob: -2, bytes: [98] }] }],
      refusal: null,
    });
  });
});

describe("chatCompletionChunkToJson", () => {
  const base = { id: "chatcmpl-1", object: "chat.completion.chunk", created: 1761231233, model: "qwen-3-coder-480b", system_fingerprint: "fp_1" };

  it("gives back the recorded stream sequence with finish_reason null on every non-final chunk", () => {
    const recorded = [
      { ...base, choices: [{ delta: { role: "assistant" }, index: 0 }] },
      { ...base, choices: [{ delta: { content: "Oi" }, index: 0 }] },
      { ...base, choices: [{ delta: { reasoning: "hmm" }, index: 0 }] },
      { ...base, choices: [{ delta: { tool_calls: [{ index: 0, id: "ab8048658", type: "function", function: { name: "add", arguments: "" } }] }, index: 0 }] },
      { ...base, choices: [{ delta: { tool_calls: [{ index: 0, function: { arguments: '{"a": 2}' } }] }, index: 0 }] },
      { ...base, choices: [{ delta: {}, index: 0 }] },
      {
        ...base,
        choices: [{ delta: {}, finish_reason: "stop", index: 0 }],
        usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 },
        time_info: { queue_time: 0.1, total_time: 0.2, created: 1761231233.5 },
      },
    ];
    const out = recorded.map((c) => chatCompletionChunkToJson(chatCompletionChunkFromJson(c)));
    const expected = recorded.map((c) => ({ ...c, choices: c.choices.map((ch) => ({ finish_reason: null, ...ch })) }));
    expect(out).toEqual(expected);
  });

  it("writes no delta keys that were not set, and no empty system_fingerprint", () => {
    const chunk = ChatCompletionChunk.fromPartial({ id: "x", created: 1, model: "m", choices: [{ index: 0, delta: { role: Role.ROLE_UNSPECIFIED } }] });
    expect(chatCompletionChunkToJson(chunk)).toEqual({ id: "x", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta: {}, finish_reason: null }] });
  });
});

describe("modelToJson", () => {
  it("writes OpenAI's model object", () => {
    const model = Model.fromPartial({ id: "gpt-oss-120b", object: "model", created: 0, ownedBy: "Cerebras" });
    expect(modelToJson(model)).toEqual({ id: "gpt-oss-120b", object: "model", created: 0, owned_by: "Cerebras" });
  });
});
