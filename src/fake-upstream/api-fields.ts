/**
 * The request shape Cerebras accepts, as a table: its chat-completions request schema has
 * `additionalProperties: false` at every level, so any other key is a 400
 * `wrong_api_format` ("body.top_k: property 'body.top_k' is unsupported").
 *
 * Sources, not the gateway's codec (the fake must stay an independent stand-in):
 * - top-level fields: CEREBRAS_API.md §2, the field table (from the SDK's OpenAPI spec,
 *   `ChatCompletionRequest`); test/fake-upstream/api-fields.test.ts parses that table and
 *   fails if this list differs from it;
 * - message, part and nested object keys: CEREBRAS_API.md §2 "Message content forms" and the
 *   SDK 1.91.0's `ChatCompletionCreateParams` types (`resources/chat/completions.d.ts`:
 *   a tool message's `name`, an assistant tool call's `index`, reasoning as a string or text
 *   parts, the `{type: "image", image}` part), which the same test reads from the installed SDK.
 */

/** Top-level request fields (CEREBRAS_API.md §2's table, in its order). */
export const REQUEST_FIELDS: readonly string[] = [
  "model",
  "messages",
  "max_completion_tokens",
  "max_tokens",
  "min_tokens",
  "min_completion_tokens",
  "temperature",
  "top_p",
  "stop",
  "seed",
  "stream",
  "stream_options",
  "n",
  "logprobs",
  "top_logprobs",
  "logit_bias",
  "frequency_penalty",
  "presence_penalty",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "response_format",
  "reasoning_effort",
  "reasoning_format",
  "disable_reasoning",
  "clear_thinking",
  "prediction",
  "prompt_cache_key",
  "service_tier",
  "model_parameters",
  "user",
];

/** Keys of each message, by role (SDK `SystemMessageRequest` … `ToolMessageRequest`). */
export const MESSAGE_FIELDS: Readonly<Record<string, readonly string[]>> = {
  system: ["content", "name", "role"],
  developer: ["content", "name", "role"],
  user: ["content", "name", "role"],
  assistant: ["content", "name", "reasoning", "role", "tool_calls"],
  tool: ["content", "tool_call_id", "name", "role"],
};

/** Content part keys, by `type` (SDK `TextContent`, `ImageURLContent`, `ImageContent`). */
export const PART_FIELDS: Readonly<Record<string, readonly string[]>> = {
  text: ["text", "type"],
  image_url: ["image_url", "type"],
  image: ["image", "type"],
};

/** Keys of the other nested objects (SDK types of the same names). */
export const NESTED_FIELDS = {
  /** `ImageURLContent.ImageURL` */
  imageUrl: ["url", "detail"],
  /** `AssistantMessageRequest.ToolCall` */
  toolCall: ["id", "function", "type", "index"],
  /** `AssistantMessageRequest.ToolCall.Function` */
  toolCallFunction: ["arguments", "name"],
  /** `Tool` */
  tool: ["function", "type"],
  /** `Tool.Function` */
  toolFunction: ["name", "description", "parameters", "strict"],
  /** `ChoiceObject` (a tool_choice object) */
  toolChoice: ["function", "type"],
  /** `ResponseFormatJsonSchema.JsonSchema` */
  jsonSchema: ["name", "description", "schema", "strict"],
  /** `StreamOptions` */
  streamOptions: ["include_usage"],
  /** `Prediction` */
  prediction: ["content", "type"],
} as const satisfies Record<string, readonly string[]>;
