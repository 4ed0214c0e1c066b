/**
 * ChatCompletionRequest (proto) → the JSON body Cerebras takes. Only fields that are set
 * are written, so an unset temperature is left to the model's default instead of
 * becoming 0, and nothing outside Cerebras' whitelist is ever sent.
 *
 * JSON Schemas given as text (FunctionDefinition.parameters_json,
 * JsonSchemaFormat.schema_json: validated by the core as JSON objects of bounded depth)
 * are spliced into the body as they are, never parsed and re-serialised: their key order
 * is the model's property order under strict decoding (chatRequestBody).
 */
import type {
  ChatCompletionRequest,
  ContentParts,
  Message,
  ToolCall,
} from "../../gen/aigateway/v1/chat.js";
import { reasoningEfforts, reasoningFormats, roles, serviceTiers, toolChoiceModes } from "./enums.js";
import type { ChatRequestJson, ContentPartJson, MessageJson, ToolCallJson } from "./schema.js";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * JSON text that goes into the body verbatim. `toJSON` is only a fallback (a plain
 * JSON.stringify of the object still gives valid, if re-serialised, JSON).
 */
export class RawJson {
  constructor(readonly text: string) {}

  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}

/** Top-level keys whose values may hold RawJson. */
const RAW_KEYS = new Set(["tools", "response_format"]);

/**
 * The upstream request body as text: JSON.stringify, except that RawJson values (the
 * schemas given as text) are written byte for byte. Only the subtrees that can hold them
 * are walked by hand; the rest (messages, however large) go through the native stringify.
 */
export function chatRequestBody(req: ChatCompletionRequest, stream: boolean): string {
  const body = chatRequestToJson(req, stream) as unknown as Record<string, unknown>;
  if (!hasRawJson(req)) return JSON.stringify(body);
  const parts: string[] = [];
  for (const key of Object.keys(body)) {
    const value = body[key];
    if (value === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${RAW_KEYS.has(key) ? stringifyWithRaw(value) : JSON.stringify(value)}`);
  }
  return `{${parts.join(",")}}`;
}

function hasRawJson(req: ChatCompletionRequest): boolean {
  const format = req.responseFormat?.format;
  return (format?.$case === "jsonSchema" && format.value.schemaJson !== undefined) || req.tools.some((t) => t.function?.parametersJson !== undefined);
}

function stringifyWithRaw(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? "null" : stringifyWithRaw(v))).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries: string[] = [];
    for (const [k, v] of Object.entries(value)) if (v !== undefined) entries.push(`${JSON.stringify(k)}:${stringifyWithRaw(v)}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}

export function chatRequestToJson(req: ChatCompletionRequest, stream: boolean): ChatRequestJson {
  const out: Mutable<ChatRequestJson> = { model: req.model, messages: req.messages.map(messageToJson) };
  if (stream) out.stream = true;

  if (req.tools.length > 0) {
    out.tools = req.tools.map((t) => {
      const fn = t.function!; // validated: every tool has a function
      const f: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean } = { name: fn.name };
      if (fn.description !== undefined) f.description = fn.description;
      // parameters_json, if set, wins (proto comment); it is spliced in as text.
      if (fn.parametersJson !== undefined) f.parameters = new RawJson(fn.parametersJson) as unknown as Record<string, unknown>;
      else if (fn.parameters !== undefined) f.parameters = fn.parameters;
      if (fn.strict !== undefined) f.strict = fn.strict;
      return { type: "function" as const, function: f };
    });
  }
  const choice = req.toolChoice?.choice;
  if (choice !== undefined) {
    if (choice.$case === "mode") {
      const mode = toolChoiceModes.toWire(choice.value);
      if (mode !== undefined) out.tool_choice = mode;
    } else {
      out.tool_choice = { type: "function", function: { name: choice.value } };
    }
  }
  if (req.parallelToolCalls !== undefined) out.parallel_tool_calls = req.parallelToolCalls;

  const format = req.responseFormat?.format;
  if (format !== undefined) {
    if (format.$case === "text") out.response_format = { type: "text" };
    else if (format.$case === "jsonObject") out.response_format = { type: "json_object" };
    else {
      const s = format.value;
      const js: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean } = { name: s.name };
      if (s.description !== undefined) js.description = s.description;
      if (s.schemaJson !== undefined) js.schema = new RawJson(s.schemaJson) as unknown as Record<string, unknown>;
      else if (s.schema !== undefined) js.schema = s.schema;
      if (s.strict !== undefined) js.strict = s.strict;
      out.response_format = { type: "json_schema", json_schema: js };
    }
  }

  if (req.temperature !== undefined) out.temperature = req.temperature;
  if (req.topP !== undefined) out.top_p = req.topP;
  if (req.maxTokens !== undefined) out.max_tokens = req.maxTokens;
  if (req.maxCompletionTokens !== undefined) out.max_completion_tokens = req.maxCompletionTokens;
  if (req.minTokens !== undefined) out.min_tokens = req.minTokens;
  if (req.minCompletionTokens !== undefined) out.min_completion_tokens = req.minCompletionTokens;
  // One stop sequence goes as a string: the documented form; several as an array.
  if (req.stop.length === 1) out.stop = req.stop[0]!;
  else if (req.stop.length > 1) out.stop = req.stop;
  if (req.seed !== undefined) out.seed = req.seed;
  if (req.logprobs !== undefined) out.logprobs = req.logprobs;
  if (req.topLogprobs !== undefined) out.top_logprobs = req.topLogprobs;
  if (req.frequencyPenalty !== undefined) out.frequency_penalty = req.frequencyPenalty;
  if (req.presencePenalty !== undefined) out.presence_penalty = req.presencePenalty;
  if (hasKeys(req.logitBias)) out.logit_bias = req.logitBias;
  const effort = reasoningEfforts.toWire(req.reasoningEffort);
  if (effort !== undefined) out.reasoning_effort = effort;
  const reasoningFormat = reasoningFormats.toWire(req.reasoningFormat);
  if (reasoningFormat !== undefined) out.reasoning_format = reasoningFormat;
  const prediction = req.prediction?.contentKind;
  if (prediction !== undefined) {
    out.prediction = {
      type: "content",
      content: prediction.$case === "content" ? prediction.value : textParts(prediction.value),
    };
  }
  const tier = serviceTiers.toWire(req.serviceTier);
  if (tier !== undefined) out.service_tier = tier;
  if (req.user !== undefined) out.user = req.user;
  if (stream && req.streamOptions?.includeUsage !== undefined) {
    out.stream_options = { include_usage: req.streamOptions.includeUsage };
  }
  if (req.n !== undefined) out.n = req.n;
  if (req.clearThinking !== undefined) out.clear_thinking = req.clearThinking;
  if (req.promptCacheKey !== undefined) out.prompt_cache_key = req.promptCacheKey;
  if (req.modelParameters !== undefined) out.model_parameters = req.modelParameters;
  return out;
}

function messageToJson(m: Message): MessageJson {
  const role = roles.toWire(m.role)!; // validated: role is known
  const content = m.contentKind;
  switch (role) {
    case "assistant": {
      const out: Mutable<Extract<MessageJson, { role: "assistant" }>> = { role };
      if (content !== undefined) out.content = content.$case === "content" ? content.value : textParts(content.value);
      if (m.name !== undefined) out.name = m.name;
      if (m.toolCalls.length > 0) out.tool_calls = m.toolCalls.map(toolCallToJson);
      if (m.reasoning !== undefined) out.reasoning = m.reasoning;
      else if (m.reasoningParts !== undefined) out.reasoning = textParts(m.reasoningParts);
      return out;
    }
    case "tool": {
      const out: Mutable<Extract<MessageJson, { role: "tool" }>> = {
        role,
        content: content === undefined ? "" : content.$case === "content" ? content.value : textParts(content.value),
        tool_call_id: m.toolCallId,
      };
      if (m.name !== undefined) out.name = m.name;
      return out;
    }
    default: {
      const out: Mutable<Extract<MessageJson, { role: "user" }>> = {
        role: role as "user",
        content: content === undefined ? "" : content.$case === "content" ? content.value : contentParts(content.value),
      };
      if (m.name !== undefined) out.name = m.name;
      return out as MessageJson;
    }
  }
}

function toolCallToJson(c: ToolCall): ToolCallJson {
  const out: Mutable<ToolCallJson> = {
    id: c.id,
    type: "function",
    function: { name: c.function?.name ?? "", arguments: c.function?.arguments ?? "" },
  };
  if (c.index !== undefined) out.index = c.index;
  return out;
}

function contentParts(c: ContentParts): ContentPartJson[] {
  return c.parts.map((p): ContentPartJson => {
    const part = p.part;
    if (part?.$case === "imageUrl") {
      const image: { url: string; detail?: string } = { url: part.value.url };
      if (part.value.detail !== undefined) image.detail = part.value.detail;
      return { type: "image_url", image_url: image };
    }
    if (part?.$case === "image") return { type: "image", image: part.value };
    return { type: "text", text: part?.value ?? "" };
  });
}

/** Text-only parts (assistant, tool, prediction): images were rejected by validation. */
function textParts(c: ContentParts): Array<{ type: "text"; text: string }> {
  return c.parts.map((p) => ({ type: "text", text: p.part?.$case === "text" ? p.part.value : "" }));
}

function hasKeys(o: object): boolean {
  for (const _ in o) return true;
  return false;
}
