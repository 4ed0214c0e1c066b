/**
 * Deterministic replies: the same request always gets the same text, tool calls and
 * token counts, so tests can assert exact content.
 *
 * - A tool message last: "The tool returned: <its content>".
 * - tools + tool_choice "required" / a named function / "auto" with a tool's name in the
 *   last user message: tool calls with arguments generated from the parameters schema.
 * - response_format json_schema: a JSON value that satisfies the schema.
 * - otherwise: "Echo: <last user text>".
 * Reasoning models also produce a short reasoning text unless told not to.
 */
import { createHash } from "node:crypto";
import type { FakeModel } from "./catalog.js";

export interface PlannedToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: string;
}

export interface ReplyPlan {
  /** Reasoning text split into tokens (each token is one stream chunk). */
  readonly reasoning: readonly string[];
  readonly content: readonly string[];
  readonly toolCalls: readonly PlannedToolCall[];
  readonly finishReason: "stop" | "length" | "tool_calls";
  readonly promptTokens: number;
  readonly cachedTokens: number;
  readonly completionTokens: number;
  /** Reasoning arrives inline as <think>…</think> in content (reasoning_format raw). */
  readonly rawReasoning: boolean;
}

type Json = Record<string, unknown>;

export interface PlanOptions {
  /** When set, the text reply is exactly this many tokens (benchmarks). */
  readonly fixedTokens?: number | undefined;
  /** Characters per fixed token (default: " token"). */
  readonly fixedTokenSize?: number | undefined;
  /** Prompt tokens the prompt cache served. */
  readonly cachedTokens?: number;
}

export function planReply(body: Json, model: FakeModel, options: PlanOptions = {}): ReplyPlan {
  const messages = body["messages"] as Json[];
  const last = messages[messages.length - 1]!;
  const userText = lastUserText(messages);
  const promptTokens = Math.max(1, Math.ceil(JSON.stringify(messages).length / 4));

  const format = body["reasoning_format"];
  const effort = body["reasoning_effort"];
  const thinks = model.reasoning && effort !== "none" && format !== "none" && format !== "hidden" && options.fixedTokens === undefined;
  let reasoning = thinks ? tokenize(`The user asked: "${clip(userText, 80)}". Answer directly.`) : [];

  let content: string[] = [];
  let toolCalls: PlannedToolCall[] = [];
  const calls = last["role"] === "tool" ? [] : chooseTools(body, userText);
  if (calls.length > 0) {
    toolCalls = calls.map((fn, i) => ({
      id: toolCallId(messages, i),
      name: String(fn["name"]),
      arguments: JSON.stringify(sampleFromSchema(fn["parameters"], asObject(fn["parameters"]), userText)),
    }));
  } else if (options.fixedTokens !== undefined) {
    const size = options.fixedTokenSize;
    const token = size === undefined ? " token" : " ".padEnd(size, "x");
    content = Array.from({ length: options.fixedTokens }, (_, i) => (i === 0 && size === undefined ? "token" : token));
  } else {
    const rf = asObject(body["response_format"]);
    if (rf["type"] === "json_schema") {
      const schema = asObject(rf["json_schema"])["schema"];
      content = chop(JSON.stringify(sampleFromSchema(schema, asObject(schema), userText)));
    } else if (rf["type"] === "json_object") {
      content = chop(JSON.stringify({ answer: `Echo: ${userText}` }));
    } else if (last["role"] === "tool") {
      content = tokenize(`The tool returned: ${textOf(last["content"])}`);
    } else {
      content = tokenize(`Echo: ${userText}`);
    }
  }

  // max_completion_tokens counts reasoning too; -1 (or unset) means no extra limit.
  const limit = numberOr(body["max_completion_tokens"], numberOr(body["max_tokens"], -1));
  let finishReason: ReplyPlan["finishReason"] = toolCalls.length > 0 ? "tool_calls" : "stop";
  if (limit >= 0 && reasoning.length + content.length > limit) {
    reasoning = reasoning.slice(0, limit);
    content = content.slice(0, Math.max(0, limit - reasoning.length));
    finishReason = "length";
  }
  const toolTokens = toolCalls.reduce((n, c) => n + Math.ceil(c.arguments.length / 4) + 1, 0);
  return {
    reasoning,
    content,
    toolCalls,
    finishReason,
    promptTokens,
    cachedTokens: Math.min(options.cachedTokens ?? 0, promptTokens),
    completionTokens: reasoning.length + content.length + toolTokens,
    rawReasoning: format === "raw",
  };
}

function chooseTools(body: Json, userText: string): Json[] {
  const tools = Array.isArray(body["tools"]) ? (body["tools"] as Json[]).map((t) => asObject(t["function"])) : [];
  if (tools.length === 0) return [];
  const choice = body["tool_choice"];
  if (choice === "none") return [];
  if (typeof choice === "object" && choice !== null) {
    const name = asObject((choice as Json)["function"])["name"];
    return tools.filter((t) => t["name"] === name).slice(0, 1);
  }
  const lower = userText.toLowerCase();
  const mentioned = tools.filter((t) => typeof t["name"] === "string" && lower.includes(t["name"].toLowerCase()));
  const picked = mentioned.length > 0 ? mentioned : choice === "required" ? tools.slice(0, 1) : [];
  return body["parallel_tool_calls"] === false ? picked.slice(0, 1) : picked;
}

/** A JSON value satisfying a (Cerebras-subset) JSON schema: objects, arrays, enums, anyOf, $ref to $defs. */
export function sampleFromSchema(schema: unknown, root: Json, hint: string, depth = 0): unknown {
  const s = asObject(schema);
  if (depth > 8) return null;
  if (typeof s["$ref"] === "string") {
    const name = s["$ref"].replace(/^#\/\$defs\//, "");
    return sampleFromSchema(asObject(root["$defs"])[name], root, hint, depth + 1);
  }
  if (Array.isArray(s["enum"]) && s["enum"].length > 0) return s["enum"][0];
  if ("const" in s) return s["const"];
  if (Array.isArray(s["anyOf"]) && s["anyOf"].length > 0) return sampleFromSchema(s["anyOf"][0], root, hint, depth + 1);
  switch (s["type"]) {
    case "object": {
      const props = asObject(s["properties"]);
      const out: Json = {};
      for (const [key, sub] of Object.entries(props)) out[key] = sampleFromSchema(sub, root, hint, depth + 1);
      return out;
    }
    case "array": {
      const min = numberOr(s["minItems"], 1);
      return Array.from({ length: Math.max(1, min) }, () => sampleFromSchema(s["items"], root, hint, depth + 1));
    }
    case "string":
      return clip(hint, 40) || "example";
    case "integer":
      return Math.max(numberOr(s["minimum"], 1), 1);
    case "number":
      return Math.max(numberOr(s["minimum"], 1.5), 1.5);
    case "boolean":
      return true;
    case "null":
      return null;
    default:
      return {};
  }
}

/** 9-character lowercase hex ids, as Cerebras issues them. */
function toolCallId(messages: Json[], index: number): string {
  return createHash("sha256").update(JSON.stringify(messages)).update(String(index)).digest("hex").slice(0, 9);
}

function lastUserText(messages: Json[]): string {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]!["role"] === "user") return textOf(messages[i]!["content"]);
  return "";
}

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => asObject(p))
      .map((p) => (p["type"] === "text" ? String(p["text"]) : p["type"] === "image_url" ? "[image]" : ""))
      .join(" ");
  }
  return "";
}

/** Words with their leading space, like a real tokenizer's pieces. */
export function tokenize(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [];
}

/** JSON text in 6-character pieces. */
function chop(text: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += 6) out.push(text.slice(i, i + 6));
  return out;
}

function clip(s: string, n: number): string {
  return s.length > n ? s.slice(0, n) : s;
}

function asObject(v: unknown): Json {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Json) : {};
}

function numberOr(v: unknown, fallback: number): number {
  return typeof v === "number" ? v : fallback;
}
