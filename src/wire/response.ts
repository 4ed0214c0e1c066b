/**
 * Cerebras response JSON → ChatCompletion / ChatCompletionChunk (proto).
 *
 * These readers run once per streamed chunk, so they are plain property reads with
 * type guards rather than schema parsing. They accept what Cerebras really sends
 * (keys absent rather than null, `time_info.created` as a float, tool calls whole or in
 * fragments, a usage-only chunk whose `choices` is null or absent) and reject only what
 * cannot be a completion at all. A finish_reason or role the contract does not know yet
 * is kept recognisable: FINISH_REASON_OTHER / ROLE_OTHER plus the raw string.
 */
import {
  FinishReason,
  Role,
  type AssistantMessage,
  type ChatCompletion,
  type ChatCompletionChunk,
  type Choice,
  type ChunkChoice,
  type Delta,
  type Logprobs,
  type TimeInfo,
  type TokenLogprob,
  type ToolCall,
  type ToolCallDelta,
  type Usage,
} from "../../gen/aigateway/v1/chat.js";
import { ProviderError, Reason } from "../core/errors.js";
import { finishReasons, roles } from "./enums.js";
import { isJsonObject, type JsonObject } from "./json.js";

export function chatCompletionFromJson(value: unknown): ChatCompletion {
  const o = object(value, "completion");
  const choices = array(o["choices"], "completion.choices");
  const out: ChatCompletion = {
    id: str(o["id"]),
    object: "chat.completion",
    created: int(o["created"]),
    model: str(o["model"]),
    systemFingerprint: str(o["system_fingerprint"]),
    choices: choices.map(choiceFromJson),
  };
  fillCommon(o, out);
  return out;
}

export function chatCompletionChunkFromJson(value: unknown): ChatCompletionChunk {
  const o = object(value, "chunk");
  // The SDK's types allow a chunk without choices (or with null): a usage-only chunk.
  const choices = o["choices"] == null ? [] : array(o["choices"], "chunk.choices");
  const out: ChatCompletionChunk = {
    id: str(o["id"]),
    object: "chat.completion.chunk",
    created: int(o["created"]),
    model: str(o["model"]),
    systemFingerprint: str(o["system_fingerprint"]),
    choices: choices.map(chunkChoiceFromJson),
  };
  fillCommon(o, out);
  return out;
}

function fillCommon(o: JsonObject, out: ChatCompletion | ChatCompletionChunk): void {
  const usage = o["usage"];
  if (isJsonObject(usage)) out.usage = usageFromJson(usage);
  const timeInfo = o["time_info"];
  if (isJsonObject(timeInfo)) out.timeInfo = timeInfoFromJson(timeInfo);
  const tier = o["service_tier"];
  if (typeof tier === "string") out.serviceTier = tier;
  const tierUsed = o["service_tier_used"];
  if (typeof tierUsed === "string") out.serviceTierUsed = tierUsed;
}

function choiceFromJson(value: unknown): Choice {
  const c = object(value, "completion.choices[]");
  const m = isJsonObject(c["message"]) ? c["message"] : {};
  const message: AssistantMessage = { role: Role.ROLE_ASSISTANT, toolCalls: toolCallsFromJson(m["tool_calls"]) };
  const role = m["role"];
  if (typeof role === "string" && role !== "assistant") setRole(message, role);
  const content = m["content"];
  if (typeof content === "string") message.content = content;
  const reasoning = m["reasoning"];
  if (typeof reasoning === "string") message.reasoning = reasoning;
  const out: Choice = { index: int(c["index"]), message, finishReason: finishReasonFromJson(c["finish_reason"]) };
  if (out.finishReason === FinishReason.FINISH_REASON_OTHER) out.finishReasonRaw = c["finish_reason"] as string;
  if (isJsonObject(c["logprobs"])) out.logprobs = logprobsFromJson(c["logprobs"]);
  if (isJsonObject(c["reasoning_logprobs"])) out.reasoningLogprobs = logprobsFromJson(c["reasoning_logprobs"]);
  return out;
}

function chunkChoiceFromJson(value: unknown): ChunkChoice {
  const c = object(value, "chunk.choices[]");
  const d = c["delta"];
  const delta: Delta = { role: Role.ROLE_UNSPECIFIED, toolCalls: [] };
  if (isJsonObject(d)) {
    const role = d["role"];
    if (typeof role === "string") setRole(delta, role);
    const content = d["content"];
    if (typeof content === "string") delta.content = content;
    const reasoning = d["reasoning"];
    if (typeof reasoning === "string") delta.reasoning = reasoning;
    const calls = d["tool_calls"];
    if (Array.isArray(calls)) delta.toolCalls = calls.map(toolCallDeltaFromJson);
  }
  const out: ChunkChoice = { index: int(c["index"]), delta, finishReason: finishReasonFromJson(c["finish_reason"]) };
  if (out.finishReason === FinishReason.FINISH_REASON_OTHER) out.finishReasonRaw = c["finish_reason"] as string;
  if (isJsonObject(c["logprobs"])) out.logprobs = logprobsFromJson(c["logprobs"]);
  if (isJsonObject(c["reasoning_logprobs"])) out.reasoningLogprobs = logprobsFromJson(c["reasoning_logprobs"]);
  return out;
}

function toolCallsFromJson(value: unknown): ToolCall[] {
  if (!Array.isArray(value)) return [];
  return value.map((v): ToolCall => {
    const c = object(v, "tool_calls[]");
    const f = isJsonObject(c["function"]) ? c["function"] : {};
    return {
      id: str(c["id"]),
      type: typeof c["type"] === "string" ? c["type"] : "function",
      function: { name: str(f["name"]), arguments: str(f["arguments"]) },
    };
  });
}

function toolCallDeltaFromJson(value: unknown): ToolCallDelta {
  const c = object(value, "delta.tool_calls[]");
  const out: ToolCallDelta = { index: int(c["index"]) };
  const id = c["id"];
  if (typeof id === "string") out.id = id;
  const type = c["type"];
  if (typeof type === "string") out.type = type;
  const f = c["function"];
  if (isJsonObject(f)) {
    const fn: { name?: string; arguments?: string } = {};
    if (typeof f["name"] === "string") fn.name = f["name"];
    if (typeof f["arguments"] === "string") fn.arguments = f["arguments"];
    out.function = fn;
  }
  return out;
}

/** A role string: the known ones as themselves, anything else as ROLE_OTHER with the string in role_raw. */
function setRole(target: { role: Role; roleRaw?: string | undefined }, role: string): void {
  const known = roles.fromWire(role);
  target.role = known ?? Role.ROLE_OTHER;
  if (known === undefined) target.roleRaw = role;
}

function finishReasonFromJson(value: unknown): FinishReason {
  if (typeof value !== "string") return FinishReason.FINISH_REASON_UNSPECIFIED;
  // An unknown non-null reason still means "finished"; which one is kept in finish_reason_raw.
  return finishReasons.fromWire(value) ?? FinishReason.FINISH_REASON_OTHER;
}

function usageFromJson(u: JsonObject): Usage {
  const out: Usage = {
    promptTokens: int(u["prompt_tokens"]),
    completionTokens: int(u["completion_tokens"]),
    totalTokens: int(u["total_tokens"]),
  };
  const images = u["image_tokens"];
  if (typeof images === "number") out.imageTokens = int(images);
  const p = u["prompt_tokens_details"];
  if (isJsonObject(p)) out.promptTokensDetails = { cachedTokens: int(p["cached_tokens"]) };
  const c = u["completion_tokens_details"];
  if (isJsonObject(c)) {
    out.completionTokensDetails = {
      reasoningTokens: int(c["reasoning_tokens"]),
      acceptedPredictionTokens: int(c["accepted_prediction_tokens"]),
      rejectedPredictionTokens: int(c["rejected_prediction_tokens"]),
    };
  }
  return out;
}

function timeInfoFromJson(t: JsonObject): TimeInfo {
  const out: TimeInfo = {};
  if (typeof t["queue_time"] === "number") out.queueTime = t["queue_time"];
  if (typeof t["prompt_time"] === "number") out.promptTime = t["prompt_time"];
  if (typeof t["completion_time"] === "number") out.completionTime = t["completion_time"];
  if (typeof t["total_time"] === "number") out.totalTime = t["total_time"];
  if (typeof t["created"] === "number") out.created = t["created"];
  return out;
}

function logprobsFromJson(l: JsonObject): Logprobs {
  return { content: tokenLogprobs(l["content"]), refusal: tokenLogprobs(l["refusal"]) };
}

function tokenLogprobs(value: unknown): TokenLogprob[] {
  if (!Array.isArray(value)) return [];
  return value.map((v): TokenLogprob => {
    const t = isJsonObject(v) ? v : {};
    const top = t["top_logprobs"];
    return {
      token: str(t["token"]),
      logprob: num(t["logprob"]),
      bytes: intArray(t["bytes"]),
      topLogprobs: Array.isArray(top)
        ? top.map((x) => {
            const a = isJsonObject(x) ? x : {};
            return { token: str(a["token"]), logprob: num(a["logprob"]), bytes: intArray(a["bytes"]) };
          })
        : [],
    };
  });
}

function object(v: unknown, what: string): JsonObject {
  if (isJsonObject(v)) return v;
  throw badResponse(`${what} is not an object`);
}

function array(v: unknown, what: string): unknown[] {
  if (Array.isArray(v)) return v;
  throw badResponse(`${what} is not an array`);
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function num(v: unknown): number {
  return typeof v === "number" ? v : 0;
}

/** Integers for int32/int64 fields; a fractional upstream value is truncated, not rejected. */
function int(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) ? Math.trunc(v) : 0;
}

function intArray(v: unknown): number[] {
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === "number") : [];
}

export function badResponse(detail: string): ProviderError {
  return new ProviderError({
    reason: Reason.UPSTREAM_BAD_RESPONSE,
    message: `Cerebras sent a response the gateway cannot read: ${detail}`,
  });
}
