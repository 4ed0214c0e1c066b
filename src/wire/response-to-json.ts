/**
 * ChatCompletion / ChatCompletionChunk / Model (proto) → the JSON the OpenAI API returns:
 * the HTTP shim's way out, the mirror of response.ts. Snake_case, plus Cerebras'
 * `time_info`, `reasoning` and `service_tier_used`.
 *
 * Keys OpenAI's schema requires are always written (null when there is no value:
 * `message.content`, `message.refusal`, `choices[].logprobs`, a chunk choice's
 * `finish_reason`); optional keys with no value are left out rather than filled with
 * defaults (no `system_fingerprint: ""`, no empty `tool_calls`, no zero usage).
 */
import type {
  ChatCompletion,
  ChatCompletionChunk,
  Choice,
  ChunkChoice,
  Logprobs,
  TimeInfo,
  TokenLogprob,
  ToolCallDelta,
  Usage,
} from "../../gen/aigateway/v1/chat.js";
import { FinishReason, Role } from "../../gen/aigateway/v1/chat.js";
import type { Model } from "../../gen/aigateway/v1/models.js";
import { finishReasons, roles } from "./enums.js";
import type {
  ChatCompletionChunkJson,
  ChatCompletionJson,
  ChoiceJson,
  ChunkChoiceJson,
  LogprobsJson,
  TimeInfoJson,
  TokenLogprobJson,
  ToolCallDeltaJson,
  UsageJson,
} from "./schema.js";

/** One entry of OpenAI's `GET /v1/models` list. */
export interface ModelJson {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
}

export function chatCompletionToJson(c: ChatCompletion): ChatCompletionJson {
  const out: ChatCompletionJson = { id: c.id, object: "chat.completion", created: c.created, model: c.model, choices: c.choices.map(choiceToJson) };
  if (c.systemFingerprint !== "") out.system_fingerprint = c.systemFingerprint;
  fillCommon(c, out);
  return out;
}

export function chatCompletionChunkToJson(c: ChatCompletionChunk): ChatCompletionChunkJson {
  const out: ChatCompletionChunkJson = { id: c.id, object: "chat.completion.chunk", created: c.created, model: c.model, choices: c.choices.map(chunkChoiceToJson) };
  if (c.systemFingerprint !== "") out.system_fingerprint = c.systemFingerprint;
  fillCommon(c, out);
  return out;
}

export function modelToJson(m: Model): ModelJson {
  return { id: m.id, object: "model", created: m.created, owned_by: m.ownedBy };
}

function fillCommon(c: ChatCompletion | ChatCompletionChunk, out: ChatCompletionJson | ChatCompletionChunkJson): void {
  if (c.usage !== undefined) out.usage = usageToJson(c.usage);
  if (c.timeInfo !== undefined) out.time_info = timeInfoToJson(c.timeInfo);
  if (c.serviceTier !== undefined) out.service_tier = c.serviceTier;
  if (c.serviceTierUsed !== undefined) out.service_tier_used = c.serviceTierUsed;
}

function choiceToJson(c: Choice): ChoiceJson {
  const m = c.message;
  const message: ChoiceJson["message"] = { role: roleToJson(m?.role, m?.roleRaw) ?? "assistant", content: m?.content ?? null, refusal: null };
  if (m?.reasoning !== undefined) message.reasoning = m.reasoning;
  if (m !== undefined && m.toolCalls.length > 0) {
    message.tool_calls = m.toolCalls.map((t) => ({
      id: t.id,
      type: "function" as const,
      function: { name: t.function?.name ?? "", arguments: t.function?.arguments ?? "" },
    }));
  }
  const out: ChoiceJson = { index: c.index, message, logprobs: null, finish_reason: finishReason(c.finishReason, c.finishReasonRaw) };
  if (c.logprobs !== undefined) out.logprobs = logprobsToJson(c.logprobs);
  if (c.reasoningLogprobs !== undefined) out.reasoning_logprobs = logprobsToJson(c.reasoningLogprobs);
  return out;
}

function chunkChoiceToJson(c: ChunkChoice): ChunkChoiceJson {
  const delta: ChunkChoiceJson["delta"] = {};
  const d = c.delta;
  if (d !== undefined) {
    const role = roleToJson(d.role, d.roleRaw);
    if (role !== undefined) delta.role = role;
    if (d.content !== undefined) delta.content = d.content;
    if (d.reasoning !== undefined) delta.reasoning = d.reasoning;
    if (d.toolCalls.length > 0) delta.tool_calls = d.toolCalls.map(toolCallDeltaToJson);
  }
  const out: ChunkChoiceJson = { index: c.index, delta, finish_reason: finishReason(c.finishReason, c.finishReasonRaw) };
  if (c.logprobs !== undefined) out.logprobs = logprobsToJson(c.logprobs);
  if (c.reasoningLogprobs !== undefined) out.reasoning_logprobs = logprobsToJson(c.reasoningLogprobs);
  return out;
}

function toolCallDeltaToJson(t: ToolCallDelta): ToolCallDeltaJson {
  const out: ToolCallDeltaJson = { index: t.index };
  if (t.id !== undefined) out.id = t.id;
  if (t.type !== undefined) out.type = t.type;
  if (t.function !== undefined) {
    const fn: { name?: string; arguments?: string } = {};
    if (t.function.name !== undefined) fn.name = t.function.name;
    if (t.function.arguments !== undefined) fn.arguments = t.function.arguments;
    out.function = fn;
  }
  return out;
}

/** FINISH_REASON_OTHER is written as the upstream's own string (finish_reason_raw). */
function finishReason(r: FinishReason, raw: string | undefined): string | null {
  if (r === FinishReason.FINISH_REASON_OTHER) return raw ?? "other";
  return finishReasons.toWire(r) ?? null;
}

/** ROLE_OTHER is written as the upstream's own string (role_raw); unspecified as nothing. */
function roleToJson(r: Role | undefined, raw: string | undefined): string | undefined {
  if (r === Role.ROLE_OTHER) return raw ?? "other";
  return r === undefined ? undefined : roles.toWire(r);
}

function usageToJson(u: Usage): UsageJson {
  const out: UsageJson = { prompt_tokens: u.promptTokens, completion_tokens: u.completionTokens, total_tokens: u.totalTokens };
  if (u.promptTokensDetails !== undefined) out.prompt_tokens_details = { cached_tokens: u.promptTokensDetails.cachedTokens };
  const c = u.completionTokensDetails;
  if (c !== undefined) {
    out.completion_tokens_details = {
      reasoning_tokens: c.reasoningTokens,
      accepted_prediction_tokens: c.acceptedPredictionTokens,
      rejected_prediction_tokens: c.rejectedPredictionTokens,
    };
  }
  if (u.imageTokens !== undefined) out.image_tokens = u.imageTokens;
  if (u.costUsd !== undefined) out.cost_usd = u.costUsd;
  return out;
}

function timeInfoToJson(t: TimeInfo): TimeInfoJson {
  const out: TimeInfoJson = {};
  if (t.queueTime !== undefined) out.queue_time = t.queueTime;
  if (t.promptTime !== undefined) out.prompt_time = t.promptTime;
  if (t.completionTime !== undefined) out.completion_time = t.completionTime;
  if (t.totalTime !== undefined) out.total_time = t.totalTime;
  if (t.created !== undefined) out.created = t.created;
  return out;
}

function logprobsToJson(l: Logprobs): LogprobsJson {
  return {
    content: l.content.length > 0 ? l.content.map(tokenLogprobToJson) : null,
    refusal: l.refusal.length > 0 ? l.refusal.map(tokenLogprobToJson) : null,
  };
}

function tokenLogprobToJson(t: TokenLogprob): TokenLogprobJson {
  return {
    token: t.token,
    logprob: t.logprob,
    bytes: t.bytes.length > 0 ? t.bytes : null,
    top_logprobs: t.topLogprobs.map((a) => ({ token: a.token, logprob: a.logprob, bytes: a.bytes.length > 0 ? a.bytes : null })),
  };
}
