/**
 * Checks that need the catalog: the model exists, and the request fits what it takes
 * (token limit, images, reasoning effort). They mirror the upstream's own rules, so the
 * caller learns faster and no quota is reserved for a request that would fail.
 */
import { ReasoningEffort, type ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { Model } from "../../gen/aigateway/v1/models.js";
import { clip, Code, GatewayError, MAX_VIOLATIONS, Reason, type FieldViolation } from "./errors.js";
import { REASONING_EFFORTS } from "./model-rules.js";

/** The id is the caller's: echoed clipped (it is also refused past MAX_MODEL_ID at the door). */
export function unknownModel(id: string): GatewayError {
  const shown = clip(id);
  return new GatewayError({
    code: Code.NOT_FOUND,
    reason: Reason.MODEL_NOT_FOUND,
    message: `model "${shown}" is not in the catalog (ListModels shows what is available)`,
    metadata: { model: shown },
    fieldViolations: [{ field: "model", description: `unknown model "${shown}"` }],
  });
}

/** Violations of `model`'s limits by `req`; empty when it fits. */
export function checkAgainstModel(req: ChatCompletionRequest, model: Model): FieldViolation[] {
  const out: FieldViolation[] = [];
  const limit = model.maxCompletionTokens;
  if (limit !== undefined) {
    for (const [field, value] of [
      ["max_completion_tokens", req.maxCompletionTokens],
      ["max_tokens", req.maxTokens],
    ] as const) {
      if (value !== undefined && value > limit) out.push({ field, description: `${model.id} generates at most ${limit} tokens` });
    }
  }

  if (model.capabilities !== undefined && !model.capabilities.vision) {
    // Stops one past MAX_VIOLATIONS, as validate.ts does (that one says "there are more").
    images: for (let i = 0; i < req.messages.length; i++) {
      const m = req.messages[i]!;
      if (m.contentKind?.$case !== "contentParts") continue;
      const parts = m.contentKind.value.parts;
      for (let j = 0; j < parts.length; j++) {
        if (parts[j]!.part?.$case !== "imageUrl") continue;
        out.push({ field: `messages.${i}.content_parts.parts.${j}.image_url`, description: `${model.id} does not take images` });
        if (out.length > MAX_VIOLATIONS) break images;
      }
    }
  }

  const effort = req.reasoningEffort;
  if (effort !== ReasoningEffort.REASONING_EFFORT_UNSPECIFIED) {
    const allowed = REASONING_EFFORTS.get(model.id);
    if (model.capabilities !== undefined && !model.capabilities.reasoning) {
      out.push({ field: "reasoning_effort", description: `${model.id} is not a reasoning model` });
    } else if (allowed !== undefined && !allowed.includes(effort)) {
      const names = allowed.map((e) => ReasoningEffort[e]!.replace("REASONING_EFFORT_", "").toLowerCase());
      out.push({ field: "reasoning_effort", description: `${model.id} takes ${names.join(", ")}` });
    }
  }
  return out;
}
