/**
 * Request checks: each rule names the proto field path it is about.
 */
import { describe, expect, it } from "vitest";
import { ChatCompletionRequest, ReasoningEffort, ReasoningFormat, Role, ServiceTier, ToolChoiceMode, type Message } from "../../gen/aigateway/v1/chat.js";
import { validateChatRequest } from "../../src/core/validate.js";

const user = (text: string): Message => ({ role: Role.ROLE_USER, contentKind: { $case: "content", value: text }, toolCalls: [], toolCallId: "" });
const req = (partial: Partial<ChatCompletionRequest>) => ChatCompletionRequest.fromPartial({ messages: [user("hi")], ...partial });
const fields = (partial: Partial<ChatCompletionRequest>, stream = false) =>
  validateChatRequest(req(partial), { stream, maxMessages: 10 }).map((v) => v.field);

describe("validateChatRequest", () => {
  it("accepts a minimal request", () => {
    expect(fields({})).toEqual([]);
  });

  it.each<[string, Partial<ChatCompletionRequest>, string[]]>([
    ["no messages", { messages: [] }, ["messages"]],
    ["too many messages", { messages: Array.from({ length: 11 }, () => user("x")) }, ["messages"]],
    ["a message without role", { messages: [{ ...user("x"), role: Role.ROLE_UNSPECIFIED }] }, ["messages.0.role"]],
    ["an unknown role number", { messages: [{ ...user("x"), role: 42 as Role }] }, ["messages.0.role"]],
    ["ROLE_OTHER (output-only)", { messages: [{ ...user("x"), role: Role.ROLE_OTHER }] }, ["messages.0.role"]],
    ["an image part that is not a data URI", { messages: [{ ...user("x"), contentKind: { $case: "contentParts", value: { parts: [{ part: { $case: "image", value: "https://x/y.png" } }] } } }] }, ["messages.0.content_parts.parts.0.image"]],
    ["reasoning parts on a user message", { messages: [{ ...user("x"), reasoningParts: { parts: [{ part: { $case: "text", value: "r" } }] } }] }, ["messages.0.reasoning_parts"]],
    ["schema_json that is not an object", { responseFormat: { format: { $case: "jsonSchema", value: { name: "s", schemaJson: "[]" } } } }, ["response_format.json_schema.schema_json"]],
    ["a user message without content", { messages: [{ role: Role.ROLE_USER, toolCalls: [], toolCallId: "" }] }, ["messages.0.content"]],
    ["an assistant message with neither content nor tool_calls", { messages: [{ role: Role.ROLE_ASSISTANT, toolCalls: [], toolCallId: "" }] }, ["messages.0.content"]],
    ["tool_calls on a user message", { messages: [{ ...user("x"), toolCalls: [{ id: "1", type: "function", function: { name: "f", arguments: "{}" } }] }] }, ["messages.0.tool_calls"]],
    ["a tool message without tool_call_id", { messages: [{ ...user("x"), role: Role.ROLE_TOOL }] }, ["messages.0.tool_call_id"]],
    ["tool_call_id on a user message", { messages: [{ ...user("x"), toolCallId: "abc" }] }, ["messages.0.tool_call_id"]],
    ["reasoning on a user message", { messages: [{ ...user("x"), reasoning: "hmm" }] }, ["messages.0.reasoning"]],
    [
      "a tool call without id or a bad function name",
      { messages: [{ role: Role.ROLE_ASSISTANT, toolCalls: [{ id: "", type: "function", function: { name: "bad name", arguments: "{}" } }], toolCallId: "" }] },
      ["messages.0.tool_calls.0.id", "messages.0.tool_calls.0.function.name"],
    ],
    [
      "an https image (Cerebras takes base64 data URIs only)",
      { messages: [{ ...user("x"), contentKind: { $case: "contentParts", value: { parts: [{ part: { $case: "imageUrl", value: { url: "https://x/y.png" } } }] } } }] },
      ["messages.0.content_parts.parts.0.image_url.url"],
    ],
    [
      "an image in an assistant message",
      {
        messages: [
          { role: Role.ROLE_ASSISTANT, contentKind: { $case: "contentParts", value: { parts: [{ part: { $case: "imageUrl", value: { url: "data:image/png;base64,AA==" } } }] } }, toolCalls: [], toolCallId: "" },
        ],
      },
      ["messages.0.content_parts.parts.0.image_url"],
    ],
    ["empty content parts", { messages: [{ ...user("x"), contentKind: { $case: "contentParts", value: { parts: [] } } }] }, ["messages.0.content_parts.parts"]],
    ["a tool without function", { tools: [{}] }, ["tools.0.function"]],
    ["a bad tool name", { tools: [{ function: { name: "no spaces allowed" } }] }, ["tools.0.function.name"]],
    ["duplicate tool names", { tools: [{ function: { name: "f" } }, { function: { name: "f" } }] }, ["tools.1.function.name"]],
    ["tool_choice without tools", { toolChoice: { choice: { $case: "mode", value: ToolChoiceMode.TOOL_CHOICE_MODE_AUTO } } }, ["tool_choice"]],
    ["tool_choice naming an unknown function", { tools: [{ function: { name: "f" } }], toolChoice: { choice: { $case: "functionName", value: "g" } } }, ["tool_choice.function_name"]],
    ["tool_choice with an unspecified mode", { tools: [{ function: { name: "f" } }], toolChoice: { choice: { $case: "mode", value: ToolChoiceMode.TOOL_CHOICE_MODE_UNSPECIFIED } } }, ["tool_choice.mode"]],
    ["an empty response_format", { responseFormat: {} }, ["response_format"]],
    ["a json_schema without a valid name", { responseFormat: { format: { $case: "jsonSchema", value: { name: "" } } } }, ["response_format.json_schema.name"]],
    ["temperature above 2", { temperature: 2.5 }, ["temperature"]],
    ["NaN top_p", { topP: Number.NaN }, ["top_p"]],
    ["penalties out of range", { frequencyPenalty: -3, presencePenalty: 3 }, ["frequency_penalty", "presence_penalty"]],
    ["max tokens below -1", { maxTokens: -2, maxCompletionTokens: -5 }, ["max_tokens", "max_completion_tokens"]],
    ["n below 1", { n: 0 }, ["n"]],
    ["top_logprobs without logprobs", { topLogprobs: 3 }, ["top_logprobs"]],
    ["top_logprobs above 20", { topLogprobs: 21, logprobs: true }, ["top_logprobs"]],
    ["five stop sequences", { stop: ["a", "b", "c", "d", "e"] }, ["stop"]],
    ["an empty stop sequence", { stop: [""] }, ["stop.0"]],
    ["a logit_bias key that is not a token id, and one out of range", { logitBias: { abc: 1, "12": 101 } }, ["logit_bias.12", "logit_bias.abc"]],
    ["an unknown enum number", { reasoningEffort: 9 as ReasoningEffort, reasoningFormat: -1 as ReasoningFormat, serviceTier: 7 as ServiceTier }, ["reasoning_effort", "reasoning_format", "service_tier"]],
    ["an over-long prompt_cache_key", { promptCacheKey: "k".repeat(1025) }, ["prompt_cache_key"]],
  ])("rejects %s", (_, partial, expected) => {
    expect(fields(partial)).toEqual(expected);
  });

  it("rejects json_object output only when streaming", () => {
    const partial: Partial<ChatCompletionRequest> = { responseFormat: { format: { $case: "jsonObject", value: {} } } };
    expect(fields(partial, false)).toEqual([]);
    expect(fields(partial, true)).toEqual(["response_format"]);
  });

  it("reports every violation at once, with a description", () => {
    const v = validateChatRequest(req({ messages: [], temperature: 9 }), { stream: false, maxMessages: 10 });
    expect(v).toEqual([
      { field: "messages", description: "at least one message is required" },
      { field: "temperature", description: "must be between 0 and 2" },
    ]);
  });
});
