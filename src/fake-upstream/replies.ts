/**
 * Deterministic replies: the same request always gets the same text, tool calls and
 * token counts, so tests can assert exact content.
 *
 * - A tool message last: "The tool returned: <its content>".
 * - tools + tool_choice "required" / a named function / "auto" with a tool's name in the
 *   last user message: tool calls with arguments generated from the parameters schema.
 * - response_format json_schema: a JSON value that satisfies the schema.
 * - otherwise: "Echo: <last user text>".
 * Reasoning models also produce a short reasoning text unless told not to
 * (reasoning_effort "none"), returned as reasoning_format says (CEREBRAS_API.md §2, the
 * SDK's doc): parsed and text_parsed in `reasoning`, raw inline in `content` between
 * think tokens, hidden not at all (though counted), and none (or unset) as the model's
 * default (text_parsed for the models the fake knows).
 *
 * As Cerebras documents them: `stop` ends the text before the first stop sequence
 * (finish_reason "stop"; the sequence is not returned); `logprobs` adds one entry per
 * token (with `top_logprobs` alternatives), kept apart for reasoning tokens only under
 * "parsed"; images count as `image_tokens` (in prompt_tokens too); a `prediction` counts
 * its tokens found in the answer as accepted, the rest as rejected. `seed` needs nothing:
 * the fake is deterministic, so the same request (seed or not) gets the same answer.
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
  /** Reasoning happened but is not returned (reasoning_format hidden); its tokens still count. */
  readonly hiddenReasoning: boolean;
  /** Tokens of the prompt's images (also in promptTokens); 0 without images. */
  readonly imageTokens: number;
  /** With a prediction in the request: its tokens found in the answer, and the others. */
  readonly prediction: { readonly accepted: number; readonly rejected: number } | undefined;
  /** Log probabilities were asked for: how many alternatives per token, and whether reasoning's go apart (parsed). */
  readonly logprobs: { readonly top: number; readonly reasoningApart: boolean } | undefined;
}

/** What one image costs in prompt tokens (made up; Cerebras does not publish it). */
export const IMAGE_TOKENS = 256;

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
  const promptTokens = Math.max(1, Math.ceil(JSON.stringify(messages).length / 4)) + countImages(messages) * IMAGE_TOKENS;

  const format = body["reasoning_format"];
  const effort = body["reasoning_effort"];
  const thinks = model.reasoning && effort !== "none" && body["disable_reasoning"] !== true && options.fixedTokens === undefined;
  let reasoning = thinks ? tokenize(`The user asked: "${clip(userText, 80)}". Answer directly.`) : [];
  const images = countImages(messages);
  const imageTokens = images * IMAGE_TOKENS;

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

  // Stop sequences: the text ends before the first one (which is not returned).
  const stops = typeof body["stop"] === "string" ? [body["stop"]] : Array.isArray(body["stop"]) ? body["stop"].filter((x): x is string => typeof x === "string" && x !== "") : [];
  if (stops.length > 0 && toolCalls.length === 0) {
    const text = content.join("");
    const at = Math.min(...stops.map((x) => text.indexOf(x)).filter((i) => i >= 0));
    if (Number.isFinite(at)) content = tokenize(text.slice(0, at));
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
    hiddenReasoning: format === "hidden",
    imageTokens,
    prediction: predictionTokens(body["prediction"], content),
    logprobs: body["logprobs"] === true ? { top: numberOr(body["top_logprobs"], 0), reasoningApart: format === "parsed" } : undefined,
  };
}

/** Image parts (either form) in the messages. */
function countImages(messages: Json[]): number {
  let n = 0;
  for (const m of messages) {
    const c = m["content"];
    if (Array.isArray(c)) for (const p of c) if (asObject(p)["type"] === "image_url" || asObject(p)["type"] === "image") n++;
  }
  return n;
}

/** Accepted: the prediction's tokens that the answer has too; rejected: the rest. */
function predictionTokens(prediction: unknown, content: readonly string[]): ReplyPlan["prediction"] {
  const p = asObject(prediction);
  if (p["type"] !== "content") return undefined;
  const tokens = tokenize(textOf(p["content"]));
  const answer = new Set(content.map((t) => t.trim()));
  const accepted = tokens.filter((t) => answer.has(t.trim())).length;
  return { accepted, rejected: tokens.length - accepted };
}

/** A token's log probability: deterministic, negative, different per token. */
export function tokenLogprob(token: string, top: number): Record<string, unknown> {
  const h = createHash("sha256").update(token).digest();
  const logprob = -((h[0]! + 1) / 256);
  const bytes = [...Buffer.from(token, "utf8")];
  const alternatives = Array.from({ length: top }, (_, i) => {
    const alt = i === 0 ? token : `${token.trim()}_${i}`;
    return { token: alt, logprob: i === 0 ? logprob : logprob - i, bytes: [...Buffer.from(alt, "utf8")] };
  });
  return { token, logprob, bytes, top_logprobs: alternatives };
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
      .map((p) => (p["type"] === "text" ? String(p["text"]) : p["type"] === "image_url" || p["type"] === "image" ? "[image]" : ""))
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
