/**
 * The OpenAI/Cerebras chat-completions JSON, described once.
 *
 * The request is a zod schema: it is what the HTTP shim validates incoming JSON with,
 * and its type is what the Cerebras provider sends, so the two directions cannot drift.
 * It lists exactly the fields Cerebras accepts (CEREBRAS_API.md §2): Cerebras answers
 * 400 to any other field. Responses are plain types: the provider reads them with
 * tolerant hand-written readers (no per-chunk schema work on the hot path).
 */
import { z } from "zod";
import { JSON_TOO_DEEP, MAX_JSON_DEPTH } from "../core/validate.js";
import { isJsonObject, jsonDepthExceeds } from "./json.js";

const nullish = <T extends z.ZodType>(t: T) => t.nullish();

/**
 * A JSON object the gateway passes through as sent (tool parameters, schemas,
 * model_parameters), nested at most MAX_JSON_DEPTH levels. Checked, not copied: a copy
 * made by assignment would turn a `"__proto__"` key of the caller's data into the copy's
 * prototype.
 */
const JsonObject = z
  .custom<Record<string, unknown>>(isJsonObject, { message: "expected an object" })
  .refine((v) => !jsonDepthExceeds(v, MAX_JSON_DEPTH), { message: JSON_TOO_DEEP });

export const TextPartJson = z.object({ type: z.literal("text"), text: z.string() });

export const ContentPartJson = z.discriminatedUnion("type", [
  TextPartJson,
  z.object({
    type: z.literal("image_url"),
    image_url: z.object({ url: z.string(), detail: nullish(z.string()) }),
  }),
  // Cerebras' own image part (its SDK's ImageContent): the image as a data URI.
  z.object({ type: z.literal("image"), image: z.string() }),
]);

export const ContentJson = z.union([z.string(), z.array(ContentPartJson)]);
export const TextContentJson = z.union([z.string(), z.array(TextPartJson)]);

export const ToolCallJson = z.object({
  id: z.string(),
  type: z.literal("function"),
  function: z.object({ name: z.string(), arguments: z.string() }),
  // As Cerebras streams number them; accepted (and passed on) so recorded conversations replay.
  index: z.number().int().nullish(),
});

export const MessageJson = z.discriminatedUnion("role", [
  z.object({ role: z.literal("system"), content: ContentJson, name: nullish(z.string()) }),
  z.object({ role: z.literal("developer"), content: ContentJson, name: nullish(z.string()) }),
  z.object({ role: z.literal("user"), content: ContentJson, name: nullish(z.string()) }),
  z.object({
    role: z.literal("assistant"),
    content: nullish(TextContentJson),
    name: nullish(z.string()),
    tool_calls: nullish(z.array(ToolCallJson)),
    reasoning: nullish(TextContentJson),
  }),
  z.object({ role: z.literal("tool"), content: TextContentJson, tool_call_id: z.string(), name: nullish(z.string()) }),
]);

export const ToolJson = z.object({
  type: z.literal("function"),
  function: z.object({
    name: z.string(),
    description: nullish(z.string()),
    parameters: nullish(JsonObject),
    strict: nullish(z.boolean()),
  }),
});

export const ToolChoiceJson = z.union([
  z.enum(["none", "auto", "required"]),
  z.object({ type: z.literal("function"), function: z.object({ name: z.string() }) }),
]);

export const ResponseFormatJson = z.discriminatedUnion("type", [
  z.object({ type: z.literal("text") }),
  z.object({ type: z.literal("json_object") }),
  z.object({
    type: z.literal("json_schema"),
    json_schema: z.object({
      name: z.string(),
      description: nullish(z.string()),
      schema: nullish(JsonObject),
      strict: nullish(z.boolean()),
    }),
  }),
]);

const int = z.number().int();

export const ChatRequestJson = z.object({
  model: z.string(),
  messages: z.array(MessageJson),
  tools: nullish(z.array(ToolJson)),
  tool_choice: nullish(ToolChoiceJson),
  parallel_tool_calls: nullish(z.boolean()),
  response_format: nullish(ResponseFormatJson),
  temperature: nullish(z.number()),
  top_p: nullish(z.number()),
  max_tokens: nullish(int),
  max_completion_tokens: nullish(int),
  min_tokens: nullish(int),
  min_completion_tokens: nullish(int),
  stop: nullish(z.union([z.string(), z.array(z.string())])),
  seed: nullish(int),
  logprobs: nullish(z.boolean()),
  top_logprobs: nullish(int),
  frequency_penalty: nullish(z.number()),
  presence_penalty: nullish(z.number()),
  logit_bias: nullish(z.record(z.string(), z.number())),
  reasoning_effort: nullish(z.enum(["none", "low", "medium", "high"])),
  reasoning_format: nullish(z.enum(["none", "parsed", "text_parsed", "raw", "hidden"])),
  prediction: nullish(z.object({ type: z.literal("content"), content: TextContentJson })),
  service_tier: nullish(z.enum(["auto", "default", "flex", "priority"])),
  user: nullish(z.string()),
  stream: nullish(z.boolean()),
  stream_options: nullish(z.object({ include_usage: nullish(z.boolean()) })),
  n: nullish(int),
  clear_thinking: nullish(z.boolean()),
  prompt_cache_key: nullish(z.string()),
  model_parameters: nullish(JsonObject),
});

export type ChatRequestJson = z.input<typeof ChatRequestJson>;
export type MessageJson = z.input<typeof MessageJson>;
export type ContentPartJson = z.input<typeof ContentPartJson>;
export type ToolCallJson = z.input<typeof ToolCallJson>;

/** chat.completion as Cerebras sends it (and as the shim returns it). Keys may be absent or null. */
export interface ChatCompletionJson {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  system_fingerprint?: string | null;
  choices: ChoiceJson[];
  usage?: UsageJson | null;
  time_info?: TimeInfoJson | null;
  service_tier?: string | null;
  service_tier_used?: string | null;
}

export interface ChoiceJson {
  index: number;
  message: {
    /** "assistant"; an unknown upstream role is passed through as it came. */
    role: string;
    content?: string | null;
    /** OpenAI's refusal text; Cerebras never sends it, the HTTP shim writes null. */
    refusal?: string | null;
    reasoning?: string | null;
    tool_calls?: ToolCallJson[] | null;
    /** Legacy (a request that used `functions`): the first tool call in OpenAI's old form. */
    function_call?: { name: string; arguments: string };
  };
  finish_reason: string | null;
  logprobs?: LogprobsJson | null;
  reasoning_logprobs?: LogprobsJson | null;
}

/** chat.completion.chunk. */
export interface ChatCompletionChunkJson {
  id: string;
  object: "chat.completion.chunk";
  created: number;
  model: string;
  system_fingerprint?: string | null;
  choices: ChunkChoiceJson[];
  usage?: UsageJson | null;
  time_info?: TimeInfoJson | null;
  service_tier?: string | null;
  service_tier_used?: string | null;
}

export interface ChunkChoiceJson {
  index: number;
  delta: {
    role?: string;
    content?: string | null;
    reasoning?: string | null;
    tool_calls?: ToolCallDeltaJson[];
    /** Legacy (a request that used `functions`): the first tool call's pieces in OpenAI's old form. */
    function_call?: { name?: string; arguments?: string };
  };
  finish_reason?: string | null;
  logprobs?: LogprobsJson | null;
  reasoning_logprobs?: LogprobsJson | null;
}

export interface ToolCallDeltaJson {
  index: number;
  id?: string;
  type?: string;
  function?: { name?: string; arguments?: string };
}

export interface UsageJson {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number | null } | null;
  completion_tokens_details?: {
    reasoning_tokens?: number | null;
    accepted_prediction_tokens?: number | null;
    rejected_prediction_tokens?: number | null;
  } | null;
  /** Gateway addition: the call's cost in USD; absent when the model's prices are unknown. */
  cost_usd?: number;
  /** Vision models: tokens the prompt's images took. */
  image_tokens?: number | null;
}

export interface TimeInfoJson {
  queue_time?: number | null;
  prompt_time?: number | null;
  completion_time?: number | null;
  total_time?: number | null;
  created?: number | null;
}

export interface LogprobsJson {
  content?: TokenLogprobJson[] | null;
  refusal?: TokenLogprobJson[] | null;
}

export interface TokenLogprobJson {
  token: string;
  logprob: number;
  bytes?: number[] | null;
  top_logprobs?: Array<{ token: string; logprob: number; bytes?: number[] | null }> | null;
}
