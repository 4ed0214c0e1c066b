/**
 * What a call reserves, and what it is charged when it ends. The reservation mirrors
 * Cerebras' limiter (CEREBRAS_API.md §5.4): the estimated prompt plus the completion's
 * maximum. The charge:
 *
 * 1. The upstream reported usage (every success; a stream's last chunk): prompt +
 *    completion tokens as reported, and usage.costUsd (catalog prices).
 * 2. Otherwise, if the upstream took the request in (it answered 200 and the stream
 *    failed later, or the caller left while a request was out): the estimated prompt plus
 *    what the stream delivered before it ended (estimated from the delivered text; 0 for
 *    a unary call), priced the same way.
 * 3. Otherwise (the upstream refused it with an error status, or could not be reached):
 *    no tokens and no cost.
 *
 * The request itself always counts, once admitted. Settlement gives back the difference
 * between reservation and charge (or takes the shortfall, when the usage exceeded the
 * estimate).
 */
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { Model, ModelPricing } from "../../gen/aigateway/v1/models.js";
import type { CallOutcome } from "../core/admission.js";
import { estimatePromptTokens } from "./estimator.js";

/** What one call holds, by resource. */
export interface Amounts {
  readonly requests: number;
  readonly tokens: number;
  /** undefined: the model's price is unknown, so no USD limit applies to the call. */
  readonly usd: number | undefined;
}

export interface Reserve extends Amounts {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Why completionTokens is what it is, for a refusal's message. */
  readonly completionFrom: "max_completion_tokens" | "max_tokens" | "the model's limit" | "the default";
}

/**
 * The completion tokens a call may use: its max_completion_tokens (or deprecated
 * max_tokens); unset or -1 ("up to the maximum"): the model's limit from the catalog,
 * else QUOTA_DEFAULT_COMPLETION_TOKENS.
 */
export function completionBudget(request: ChatCompletionRequest, model: Model | undefined, fallback: number): Pick<Reserve, "completionTokens" | "completionFrom"> {
  const own = request.maxCompletionTokens ?? request.maxTokens;
  if (own !== undefined && own >= 0) return { completionTokens: own, completionFrom: request.maxCompletionTokens !== undefined ? "max_completion_tokens" : "max_tokens" };
  if (model?.maxCompletionTokens !== undefined) return { completionTokens: model.maxCompletionTokens, completionFrom: "the model's limit" };
  return { completionTokens: fallback, completionFrom: "the default" };
}

export function reserveFor(request: ChatCompletionRequest, model: Model | undefined, pricing: ModelPricing | undefined, fallback: number): Reserve {
  const promptTokens = estimatePromptTokens(request);
  const budget = completionBudget(request, model, fallback);
  return {
    requests: 1,
    promptTokens,
    ...budget,
    tokens: promptTokens + budget.completionTokens,
    usd: priced(promptTokens, budget.completionTokens, pricing),
  };
}

/** The charge for a call that ended with `outcome` (the rules in the file comment). */
export function chargeFor(outcome: CallOutcome, reserved: Reserve, deliveredTokens: number, pricing: ModelPricing | undefined): Amounts {
  const usage = outcome.usage;
  if (usage !== undefined) {
    return { requests: 1, tokens: usage.promptTokens + usage.completionTokens, usd: usage.costUsd ?? priced(usage.promptTokens, usage.completionTokens, pricing) ?? 0 };
  }
  if (outcome.processed) {
    return { requests: 1, tokens: reserved.promptTokens + deliveredTokens, usd: priced(reserved.promptTokens, deliveredTokens, pricing) ?? 0 };
  }
  return { requests: 1, tokens: 0, usd: 0 };
}

function priced(prompt: number, completion: number, pricing: ModelPricing | undefined): number | undefined {
  if (pricing?.prompt === undefined || pricing.completion === undefined) return undefined;
  return prompt * pricing.prompt + completion * pricing.completion;
}
