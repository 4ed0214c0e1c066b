/**
 * The request rules the real Cerebras API enforces and the fake mirrors, so a gateway
 * bug (an unknown field sent, a missing key) shows up in tests as the same 400/404 it
 * would cause in production. Written independently of the gateway's own codec on purpose.
 */
import { FAKE_MODELS, type FakeModel } from "./catalog.js";

/** Top-level fields of Cerebras' ChatCompletionRequest (additionalProperties: false). */
const REQUEST_FIELDS = new Set([
  "model", "messages", "max_completion_tokens", "max_tokens", "min_tokens", "min_completion_tokens",
  "temperature", "top_p", "stop", "seed", "stream", "stream_options", "n", "logprobs", "top_logprobs",
  "logit_bias", "frequency_penalty", "presence_penalty", "tools", "tool_choice", "parallel_tool_calls",
  "response_format", "reasoning_effort", "reasoning_format", "disable_reasoning", "clear_thinking",
  "prediction", "prompt_cache_key", "service_tier", "model_parameters", "user",
]);

const MESSAGE_FIELDS: Record<string, ReadonlySet<string>> = {
  system: new Set(["role", "content", "name"]),
  developer: new Set(["role", "content", "name"]),
  user: new Set(["role", "content", "name"]),
  assistant: new Set(["role", "content", "name", "tool_calls", "reasoning"]),
  tool: new Set(["role", "content", "tool_call_id"]),
};

export type RuleFailure =
  | { readonly status: 400; readonly code: "wrong_api_format"; readonly message: string }
  | { readonly status: 404; readonly code: "model_not_found"; readonly message: string };

export type Checked = { readonly ok: true; readonly model: FakeModel } | { readonly ok: false; readonly failure: RuleFailure };

const wrong = (message: string): Checked => ({ ok: false, failure: { status: 400, code: "wrong_api_format", message } });

export function checkChatRequest(body: unknown, models: readonly FakeModel[] = FAKE_MODELS): Checked {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return wrong("body: Input should be a valid dictionary");
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !REQUEST_FIELDS.has(k));
  if (unknown.length > 0) return wrong(unknown.map((k) => `body.${k}: property 'body.${k}' is unsupported`).join("\n"));
  if (typeof b["model"] !== "string" || b["model"] === "") return wrong("body.model: Field required");
  if (!Array.isArray(b["messages"]) || b["messages"].length === 0) return wrong("body.messages: List should have at least 1 item");

  for (const [i, m] of (b["messages"] as unknown[]).entries()) {
    const msg = (typeof m === "object" && m !== null ? m : {}) as Record<string, unknown>;
    const role = String(msg["role"]);
    const allowed = MESSAGE_FIELDS[role];
    if (allowed === undefined) return wrong(`messages.${i}.role: Input should be 'system', 'developer', 'user', 'assistant' or 'tool'`);
    for (const k of Object.keys(msg)) {
      if (!allowed.has(k)) return wrong(`messages.${i}.${role}.${k}: property 'messages.${i}.${role}.${k}' is unsupported`);
    }
    if (role === "tool" && typeof msg["tool_call_id"] !== "string") return wrong(`messages.${i}.tool.tool_call_id: Field required`);
  }

  const hasTools = Array.isArray(b["tools"]) && b["tools"].length > 0;
  if (b["tool_choice"] !== undefined && !hasTools) return wrong("body.tool_choice: tool_choice requires tools");
  const format = b["response_format"] as { type?: unknown } | undefined;
  if (b["stream"] === true && format?.type === "json_object") return wrong("body.response_format: json_object is not supported with stream=true");

  const model = models.find((m) => m.id === b["model"]);
  if (model === undefined) return { ok: false, failure: { status: 404, code: "model_not_found", message: "Model does not exist or you do not have access to it." } };
  const effort = b["reasoning_effort"];
  if (effort !== undefined && !model.reasoningEfforts.includes(String(effort))) {
    return wrong(`body.reasoning_effort: '${String(effort)}' is not supported for model ${model.id}`);
  }
  return { ok: true, model };
}
