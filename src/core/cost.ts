/**
 * What a call cost: usage × the model's prices. Cached prompt tokens are priced apart
 * when the catalog (or an override) gives them a price. Unknown prices give an unknown
 * cost, never 0.
 */
import type { Usage } from "../../gen/aigateway/v1/chat.js";
import type { ModelPricing } from "../../gen/aigateway/v1/models.js";

export function costUsd(usage: Usage, pricing: ModelPricing | undefined): number | undefined {
  if (pricing?.prompt === undefined || pricing.completion === undefined) return undefined;
  const cached = Math.min(usage.promptTokensDetails?.cachedTokens ?? 0, usage.promptTokens);
  const cost = (usage.promptTokens - cached) * pricing.prompt + cached * (pricing.cachedPrompt ?? pricing.prompt) + usage.completionTokens * pricing.completion;
  // Per-token prices are tiny decimals: round away float noise below a billionth of a cent.
  return Math.round(cost * 1e12) / 1e12;
}
