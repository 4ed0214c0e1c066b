/**
 * Per-model request rules Cerebras enforces that its catalog does not describe. Each
 * applies only to a model the current catalog lists, so a retired model's rule is inert.
 * Source: CEREBRAS_API.md §2 (Cerebras docs and live probes, 2026).
 */
import { ReasoningEffort } from "../../gen/aigateway/v1/chat.js";

const { REASONING_EFFORT_NONE: NONE, REASONING_EFFORT_LOW: LOW, REASONING_EFFORT_MEDIUM: MEDIUM, REASONING_EFFORT_HIGH: HIGH } = ReasoningEffort;

/** reasoning_effort values each model takes; gpt-oss-120b answers 400 to "none". */
export const REASONING_EFFORTS: ReadonlyMap<string, readonly ReasoningEffort[]> = new Map([
  ["gpt-oss-120b", [LOW, MEDIUM, HIGH]],
  ["zai-glm-4.7", [NONE]],
  ["gemma-4-31b", [NONE, LOW, MEDIUM, HIGH]],
]);
