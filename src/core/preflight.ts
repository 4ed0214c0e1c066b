/**
 * Checks that need the catalog: the model exists, and the request fits what it takes
 * (token limit, images, reasoning effort). They mirror the upstream's own rules, so the
 * caller learns faster and no quota is reserved for a request that would fail.
 */
import { ReasoningEffort, type ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { Model } from "../../gen/aigateway/v1/models.js";
import { Code, GatewayError, Reason, type FieldViolation } from "./errors.js";
import { REASONING_EFFORTS } from "./model-rules.js";

export function unknownModel(id: string): GatewayError {
  return new GatewayError({
    code: Code.NOT_FOUND,
    reason: Reason.MODEL_NOT_FOUND,
    message: `model "${id}" is not in the catalog (ListModels shows what is available)`,
    metadata: { model: id },
    fieldViolations: [{ field: "model", description: `unknown model "${id}"` }],
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
    req.messages.forEach((m, i) => {
      if (m.contentKind?.$case !== "contentParts") return;
      const parts = m.contentKind.value.parts;
      for (let j = 0; j < parts.length; j++) {
        if (parts[j]!.part?.$case === "imageUrl") {
          out.push({ field: `messages.${i}.content_parts.parts.${j}.image_url`, description: `${model.id} does not take images` });
        }
      }
    });
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
