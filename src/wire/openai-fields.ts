/**
 * OpenAI request fields that are not Cerebras fields, and what the HTTP shim does with
 * each (README, "The OpenAI-compatible HTTP API"). The rule: a caller never gets another
 * answer than it asked for without being told.
 *
 * - TRANSLATED, where Cerebras has an equivalent: `functions` → `tools`, `function_call` →
 *   `tool_choice` (and the answer back in the legacy shape), an assistant's `function_call`
 *   and `role: "function"` messages → tool calls and tool messages, `reasoning: {effort}` →
 *   `reasoning_effort`, `safety_identifier` → `user`, `disable_reasoning: true` →
 *   `reasoning_effort: "none"` (Cerebras' own replacement for it).
 * - UNSUPPORTED, fields that change the answer and that Cerebras cannot honour: a 400
 *   naming them, or dropped (and logged) when DROP_UNSUPPORTED_FIELDS=true.
 * - DROPPED, fields that change nothing on Cerebras: accepted, never sent, logged.
 *
 * This runs on the caller's JSON before the schema check, on copies (the caller's object
 * is never touched; copies are made with Object.fromEntries, never by assignment, so a
 * `"__proto__"` key stays a key).
 */
import type { FieldViolation } from "../core/errors.js";
import { isJsonObject, type JsonObject } from "./json.js";
import type { ChatCompletionChunkJson, ChatCompletionJson } from "./schema.js";

/** Top-level fields that change nothing on Cerebras: accepted and dropped. */
export const DROPPED_FIELDS: readonly string[] = ["store", "metadata", "prompt_cache_retention", "prompt_cache_options"];

/** Top-level fields Cerebras cannot honour and that change the answer. */
export const UNSUPPORTED_FIELDS: readonly string[] = ["web_search_options", "top_k", "min_p", "verbosity", "audio", "modalities", "moderation"];

/** Output-only assistant-message fields that come back when clients echo a returned message. */
const ECHOED_ASSISTANT_FIELDS: readonly string[] = ["refusal", "annotations"];

export const UNSUPPORTED = "Cerebras cannot honour it and it changes the answer: remove it (or start the gateway with DROP_UNSUPPORTED_FIELDS=true to drop such fields)";

export interface Translated {
  /** The body with OpenAI-only fields translated or removed. */
  readonly body: JsonObject;
  /** Dotted paths of the fields accepted and dropped (for the log line). */
  readonly ignored: string[];
  readonly violations: FieldViolation[];
  /** The caller used legacy `functions`: answer with `function_call`. */
  readonly legacyFunctions: boolean;
  /** Path renames from the translated body back to the caller's JSON, most specific first. */
  readonly renames: Array<readonly [prefix: string, to: string]>;
}

/** Copies `o` without the keys `drop` says to drop (own keys only). */
function without(o: JsonObject, drop: (key: string) => boolean): JsonObject {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !drop(k)));
}

export function translateOpenAiFields(input: JsonObject, dropUnsupported: boolean): Translated {
  const ignored: string[] = [];
  const violations: FieldViolation[] = [];
  const renames: Array<readonly [string, string]> = [];
  const unsupported = (path: string): void => {
    if (dropUnsupported) ignored.push(path);
    else violations.push({ field: path, description: UNSUPPORTED });
  };

  const body = without(input, (key) => {
    if (DROPPED_FIELDS.includes(key)) {
      ignored.push(key);
      return true;
    }
    if (key === "modalities" && isTextOnly(input[key])) {
      ignored.push(key); // asks for what Cerebras does anyway
      return true;
    }
    if (UNSUPPORTED_FIELDS.includes(key)) {
      unsupported(key);
      return true;
    }
    return false;
  });

  // functions → tools, function_call → tool_choice.
  const functions = body["functions"];
  const legacyFunctions = functions !== undefined && functions !== null;
  if (legacyFunctions) {
    if (body["tools"] != null) violations.push({ field: "functions", description: "send tools or the legacy functions, not both" });
    else if (!Array.isArray(functions)) violations.push({ field: "functions", description: "expected array" });
    else {
      body["tools"] = functions.map((f: unknown) => (isJsonObject(f) ? { type: "function", function: f } : f));
      renames.push(["tools.*.function", "functions.*"], ["tools", "functions"]);
      if (body["parallel_tool_calls"] == null) body["parallel_tool_calls"] = false; // a legacy answer holds one call
    }
  }
  delete body["functions"];
  const functionCall = body["function_call"];
  if (functionCall !== undefined && functionCall !== null) {
    if (body["tool_choice"] != null) violations.push({ field: "function_call", description: "send tool_choice or the legacy function_call, not both" });
    else {
      body["tool_choice"] = isJsonObject(functionCall) ? { type: "function", function: functionCall } : functionCall;
      renames.push(["tool_choice.function", "function_call"], ["tool_choice", "function_call"]);
    }
  }
  delete body["function_call"];

  // reasoning: {effort} → reasoning_effort.
  const reasoning = body["reasoning"];
  delete body["reasoning"];
  if (reasoning !== undefined && reasoning !== null) {
    if (!isJsonObject(reasoning)) violations.push({ field: "reasoning", description: "expected an object ({\"effort\": ...})" });
    else {
      for (const key of Object.keys(reasoning)) if (key !== "effort") unsupported(`reasoning.${key}`);
      const effort = reasoning["effort"];
      if (effort != null) {
        if (body["reasoning_effort"] != null && body["reasoning_effort"] !== effort) violations.push({ field: "reasoning.effort", description: "differs from reasoning_effort; send one of them" });
        body["reasoning_effort"] = effort;
        renames.push(["reasoning_effort", "reasoning.effort"]);
      }
    }
  }

  // disable_reasoning (Cerebras, deprecated): true is reasoning_effort "none".
  const disable = body["disable_reasoning"];
  delete body["disable_reasoning"];
  if (disable === true) {
    if (body["reasoning_effort"] != null && body["reasoning_effort"] !== "none") violations.push({ field: "disable_reasoning", description: "contradicts reasoning_effort; send reasoning_effort only" });
    body["reasoning_effort"] = "none";
    renames.push(["reasoning_effort", "disable_reasoning"]);
  } else if (disable !== undefined) {
    if (disable !== false && disable !== null) violations.push({ field: "disable_reasoning", description: "expected boolean" });
    else ignored.push("disable_reasoning");
  }

  // safety_identifier → user: both are the end user's id for abuse monitoring.
  const safety = body["safety_identifier"];
  delete body["safety_identifier"];
  if (safety !== undefined && safety !== null) {
    if (body["user"] == null) {
      body["user"] = safety;
      renames.push(["user", "safety_identifier"]);
    } else {
      ignored.push("safety_identifier");
    }
  }

  const streamOptions = body["stream_options"];
  if (isJsonObject(streamOptions) && "include_obfuscation" in streamOptions) {
    body["stream_options"] = without(streamOptions, (k) => k === "include_obfuscation"); // Cerebras pads nothing
    ignored.push("stream_options.include_obfuscation");
  }

  const messages = body["messages"];
  if (Array.isArray(messages)) body["messages"] = translateMessages(messages, ignored, violations, renames, unsupported);
  return { body, ignored, violations, legacyFunctions, renames };
}

function isTextOnly(modalities: unknown): boolean {
  return Array.isArray(modalities) && modalities.length === 1 && modalities[0] === "text";
}

/**
 * Per message: drops what clients echo back (refusal, annotations; a part's
 * prompt_cache_breakpoint), and turns a legacy assistant `function_call` and the
 * `role: "function"` message answering it into a tool call (id `call_<i>`, i the
 * assistant message's index) and its tool message.
 */
function translateMessages(
  messages: unknown[],
  ignored: string[],
  violations: FieldViolation[],
  renames: Array<readonly [string, string]>,
  unsupported: (path: string) => void,
): unknown[] {
  let lastCall: { id: string; name: unknown } | undefined;
  return messages.map((m: unknown, i) => {
    if (!isJsonObject(m)) return m;
    let out = m;
    const content = out["content"];
    if (Array.isArray(content) && content.some((p) => isJsonObject(p) && "prompt_cache_breakpoint" in p)) {
      out = {
        ...Object.fromEntries(Object.entries(out)),
        content: content.map((p: unknown, j) => {
          if (!isJsonObject(p) || !("prompt_cache_breakpoint" in p)) return p;
          ignored.push(`messages.${i}.content.${j}.prompt_cache_breakpoint`); // a caching hint: changes nothing
          return without(p, (k) => k === "prompt_cache_breakpoint");
        }),
      };
    }
    if (out["role"] === "assistant") {
      out = without(out, (key) => {
        if (ECHOED_ASSISTANT_FIELDS.includes(key)) {
          ignored.push(`messages.${i}.${key}`);
          return true;
        }
        if (key === "audio") {
          if (out[key] !== null) unsupported(`messages.${i}.audio`);
          else ignored.push(`messages.${i}.audio`);
          return true;
        }
        return false;
      });
      const call = out["function_call"];
      if (call !== undefined) {
        out = without(out, (k) => k === "function_call");
        if (call !== null) {
          if (out["tool_calls"] != null) violations.push({ field: `messages.${i}.function_call`, description: "send tool_calls or the legacy function_call, not both" });
          else {
            const id = `call_${i}`;
            out["tool_calls"] = [{ id, type: "function", function: call }];
            lastCall = { id, name: isJsonObject(call) ? call["name"] : undefined };
            renames.push([`messages.${i}.tool_calls.0.function`, `messages.${i}.function_call`], [`messages.${i}.tool_calls`, `messages.${i}.function_call`]);
          }
        }
      } else {
        lastCall = undefined;
      }
      return out;
    }
    if (out["role"] === "function") {
      if (lastCall === undefined) {
        violations.push({ field: `messages.${i}.role`, description: 'a "function" message must follow an assistant message\'s function_call' });
        return out;
      }
      const tool: JsonObject = { role: "tool", tool_call_id: lastCall.id, content: out["content"] ?? "" };
      if (out["name"] !== undefined) tool["name"] = out["name"];
      for (const key of Object.keys(out)) if (key !== "role" && key !== "content" && key !== "name") tool[key] = out[key]; // refused as unknown by the schema
      renames.push([`messages.${i}.tool_call_id`, `messages.${i}`]);
      lastCall = undefined;
      return tool;
    }
    if (out["role"] !== "tool") lastCall = undefined;
    return out;
  });
}

/**
 * A proto or translated-body path → the caller's JSON path: the proto's wrappers
 * (`content_parts.parts`, `reasoning_parts.parts`, `tool_choice.mode`, `*_json`) and the
 * translations above undone. What HTTP callers see in `param` and error messages.
 */
export function jsonPathOf(field: string, renames: ReadonlyArray<readonly [string, string]>): string {
  let path = field
    .replace(/\.(content|reasoning)_parts\.parts(?=\.|$)/g, ".$1")
    .replace(/^prediction\.content_parts\.parts(?=\.|$)/, "prediction.content")
    .replace(/^tool_choice\.mode$/, "tool_choice")
    .replace(/^tool_choice\.function_name$/, "tool_choice.function.name")
    .replace(/^(tools\.\d+\.function\.parameters)_json$/, "$1")
    .replace(/^response_format\.json_schema\.schema_json$/, "response_format.json_schema.schema");
  for (const [from, to] of renames) {
    const renamed = renamePrefix(path, from, to);
    if (renamed !== undefined) {
      path = renamed;
      break;
    }
  }
  return path;
}

/** `path` with `from` (whose `*` matches one index) at its start replaced by `to`; undefined if it does not start so. */
function renamePrefix(path: string, from: string, to: string): string | undefined {
  const pattern = new RegExp(`^${from.replace(/\./g, "\\.").replace(/\*/g, "(\\d+)")}(?=\\.|$)`);
  const m = pattern.exec(path);
  if (m === null) return undefined;
  let n = 1;
  return to.replace(/\*/g, () => m[n++]!) + path.slice(m[0].length);
}

// ---- the answer, for a caller that used legacy `functions` ----------------------------

/**
 * A completion in the legacy shape: the (one: parallel_tool_calls is false) tool call as
 * `message.function_call`, finish_reason `function_call`. In place (the object is the
 * shim's own, fresh from response-to-json).
 */
export function toLegacyCompletion(c: ChatCompletionJson): ChatCompletionJson {
  for (const choice of c.choices) {
    const call = choice.message.tool_calls?.[0];
    if (call !== undefined) choice.message.function_call = { name: call.function.name, arguments: call.function.arguments };
    delete choice.message.tool_calls;
    if (choice.finish_reason === "tool_calls") choice.finish_reason = "function_call";
  }
  return c;
}

/** A chunk in the legacy shape: the first tool call's pieces as `delta.function_call`. In place. */
export function toLegacyChunk(c: ChatCompletionChunkJson): ChatCompletionChunkJson {
  for (const choice of c.choices) {
    const call = choice.delta.tool_calls?.find((t) => t.index === 0)?.function;
    if (call !== undefined) {
      const fn: { name?: string; arguments?: string } = {};
      if (call.name !== undefined) fn.name = call.name;
      if (call.arguments !== undefined) fn.arguments = call.arguments;
      choice.delta.function_call = fn;
    }
    delete choice.delta.tool_calls;
    if (choice.finish_reason === "tool_calls") choice.finish_reason = "function_call";
  }
  return c;
}
