/**
 * The request rules the real Cerebras API enforces and the fake mirrors, so a gateway
 * bug (an unknown field sent, a missing key) shows up in tests as the same 400/404 it
 * would cause in production. Written independently of the gateway's own codec on purpose:
 * the accepted keys come from api-fields.ts (CEREBRAS_API.md §2 and the SDK's types).
 */
import { MESSAGE_FIELDS, NESTED_FIELDS, PART_FIELDS, REQUEST_FIELDS } from "./api-fields.js";
import { FAKE_MODELS, type FakeModel } from "./catalog.js";

const TOP = new Set(REQUEST_FIELDS);
const MAX_STOP = 4;

export type RuleFailure =
  | { readonly status: 400; readonly code: "wrong_api_format"; readonly message: string }
  | { readonly status: 404; readonly code: "model_not_found"; readonly message: string };

export type Checked = { readonly ok: true; readonly model: FakeModel } | { readonly ok: false; readonly failure: RuleFailure };

const wrong = (message: string): Checked => ({ ok: false, failure: { status: 400, code: "wrong_api_format", message } });

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Cerebras' wording for keys its schema does not have. */
const unsupported = (paths: readonly string[]): string => paths.map((p) => `${p}: property '${p}' is unsupported`).join("\n");

/** Keys of `o` (at `path`) not in `allowed`, as Cerebras names them. */
function extraKeys(o: unknown, allowed: readonly string[], path: string, out: string[]): void {
  if (!isObject(o)) return;
  for (const k of Object.keys(o)) if (!allowed.includes(k)) out.push(`${path}.${k}`);
}

export function checkChatRequest(body: unknown, models: readonly FakeModel[] = FAKE_MODELS): Checked {
  if (!isObject(body)) return wrong("body: Input should be a valid dictionary");
  const b = body;
  const unknown = Object.keys(b).filter((k) => !TOP.has(k));
  if (unknown.length > 0) return wrong(unsupported(unknown.map((k) => `body.${k}`)));
  if (typeof b["model"] !== "string" || b["model"] === "") return wrong("body.model: Field required");
  if (!Array.isArray(b["messages"]) || b["messages"].length === 0) return wrong("body.messages: List should have at least 1 item");

  const nested: string[] = [];
  let images = 0;
  for (const [i, m] of (b["messages"] as unknown[]).entries()) {
    const msg = isObject(m) ? m : {};
    const role = String(msg["role"]);
    const allowed = MESSAGE_FIELDS[role];
    if (allowed === undefined) return wrong(`messages.${i}.role: Input should be 'system', 'developer', 'user', 'assistant' or 'tool'`);
    for (const k of Object.keys(msg)) if (!allowed.includes(k)) nested.push(`messages.${i}.${role}.${k}`);
    if (role === "tool" && typeof msg["tool_call_id"] !== "string") return wrong(`messages.${i}.tool.tool_call_id: Field required`);
    for (const key of ["content", "reasoning"]) {
      const parts = msg[key];
      if (!Array.isArray(parts)) continue;
      for (const [j, p] of parts.entries()) {
        const type = isObject(p) ? String(p["type"]) : "";
        const partKeys = PART_FIELDS[type];
        const path = `messages.${i}.${role}.${key}.${j}`;
        const imagesAllowed = key === "content" && (role === "user" || role === "system" || role === "developer");
        if (partKeys === undefined || (type !== "text" && !imagesAllowed)) return wrong(`${path}.type: Input tag '${type}' is not allowed here`);
        extraKeys(p, partKeys, path, nested);
        if (type === "image_url") extraKeys((p as Json)["image_url"], NESTED_FIELDS.imageUrl, `${path}.image_url`, nested);
        if (type !== "text") images++;
      }
    }
    if (Array.isArray(msg["tool_calls"])) {
      for (const [j, c] of msg["tool_calls"].entries()) {
        extraKeys(c, NESTED_FIELDS.toolCall, `messages.${i}.${role}.tool_calls.${j}`, nested);
        if (isObject(c)) extraKeys(c["function"], NESTED_FIELDS.toolCallFunction, `messages.${i}.${role}.tool_calls.${j}.function`, nested);
      }
    }
  }
  if (Array.isArray(b["tools"])) {
    for (const [i, t] of b["tools"].entries()) {
      extraKeys(t, NESTED_FIELDS.tool, `body.tools.${i}`, nested);
      if (isObject(t)) extraKeys(t["function"], NESTED_FIELDS.toolFunction, `body.tools.${i}.function`, nested);
    }
  }
  if (isObject(b["tool_choice"])) extraKeys(b["tool_choice"], NESTED_FIELDS.toolChoice, "body.tool_choice", nested);
  const format = isObject(b["response_format"]) ? b["response_format"] : undefined;
  if (format?.["type"] === "json_schema") extraKeys(format["json_schema"], NESTED_FIELDS.jsonSchema, "body.response_format.json_schema", nested);
  extraKeys(b["stream_options"], NESTED_FIELDS.streamOptions, "body.stream_options", nested);
  extraKeys(b["prediction"], NESTED_FIELDS.prediction, "body.prediction", nested);
  if (nested.length > 0) return wrong(unsupported(nested));

  const stop = b["stop"];
  if (Array.isArray(stop) && stop.length > MAX_STOP) return wrong(`body.stop: List should have at most ${MAX_STOP} items after validation, not ${stop.length}`);
  if (b["seed"] !== undefined && b["seed"] !== null && !Number.isInteger(b["seed"])) return wrong("body.seed: Input should be a valid integer");
  if (b["n"] !== undefined && b["n"] !== null && !(Number.isInteger(b["n"]) && (b["n"] as number) >= 1)) return wrong("body.n: Input should be greater than or equal to 1");

  const hasTools = Array.isArray(b["tools"]) && b["tools"].length > 0;
  if (b["tool_choice"] !== undefined && !hasTools) return wrong("body.tool_choice: tool_choice requires tools");
  if (b["stream"] === true && format?.["type"] === "json_object") return wrong("body.response_format: json_object is not supported with stream=true");
  if (b["reasoning_format"] === "raw" && (format?.["type"] === "json_object" || format?.["type"] === "json_schema")) {
    return wrong("body.reasoning_format: 'raw' cannot be combined with JSON response formats");
  }

  const model = models.find((m) => m.id === b["model"]);
  if (model === undefined) return { ok: false, failure: { status: 404, code: "model_not_found", message: "Model does not exist or you do not have access to it." } };
  if (images > 0 && !model.vision) return wrong(`body.messages: model ${model.id} does not support image inputs`);
  const effort = b["reasoning_effort"];
  if (effort !== undefined && !model.reasoningEfforts.includes(String(effort))) {
    return wrong(`body.reasoning_effort: '${String(effort)}' is not supported for model ${model.id}`);
  }
  return { ok: true, model };
}
