/**
 * The fake upstream's model catalog, shaped like Cerebras' `/v1/models` and
 * `/public/v1/models` (CEREBRAS_API.md §6). Figures follow the public record as of
 * 2026-11; they are test data, not a source of truth for the gateway.
 */

export interface FakeModel {
  readonly id: string;
  readonly name: string;
  readonly contextLength: number;
  readonly maxCompletionTokens: number;
  /** USD per token, as Cerebras writes them (strings); absent when unpublished. */
  readonly pricing: { readonly prompt: string; readonly completion: string } | undefined;
  readonly reasoning: boolean;
  /** reasoning_effort values the model takes; empty when it takes none. */
  readonly reasoningEfforts: readonly string[];
  readonly vision: boolean;
  readonly deprecated: boolean;
}

export const FAKE_MODELS: readonly FakeModel[] = [
  {
    id: "gpt-oss-120b",
    name: "OpenAI GPT OSS 120B",
    contextLength: 131_072,
    maxCompletionTokens: 40_960,
    pricing: { prompt: "0.00000035", completion: "0.00000075" },
    reasoning: true,
    reasoningEfforts: ["low", "medium", "high"],
    vision: false,
    deprecated: false,
  },
  {
    id: "zai-glm-4.7",
    name: "Z.ai GLM 4.7",
    contextLength: 131_072,
    maxCompletionTokens: 40_960,
    pricing: { prompt: "0.00000225", completion: "0.00000275" },
    reasoning: true,
    reasoningEfforts: ["none"],
    vision: false,
    deprecated: false,
  },
  {
    id: "gemma-4-31b",
    name: "Gemma 4 31B",
    contextLength: 131_072,
    maxCompletionTokens: 32_768,
    pricing: { prompt: "0.0000002", completion: "0.0000004" },
    reasoning: true,
    reasoningEfforts: ["none", "low", "medium", "high"],
    vision: true,
    deprecated: false,
  },
];

export function modelJson(m: FakeModel): Record<string, unknown> {
  return { id: m.id, object: "model", created: 0, owned_by: "Cerebras" };
}

export function publicModelJson(m: FakeModel): Record<string, unknown> {
  return {
    id: m.id,
    name: m.name,
    owned_by: "Cerebras",
    created: 0,
    description: `${m.name} on Cerebras (fake upstream)`,
    capabilities: {
      function_calling: true,
      json_mode: true,
      parallel_tool_calls: true,
      reasoning: m.reasoning,
      response_format: true,
      streaming: true,
      structured_outputs: true,
      tool_choice: true,
      tools: true,
      vision: m.vision,
    },
    limits: { max_context_length: m.contextLength, max_completion_tokens: m.maxCompletionTokens },
    ...(m.pricing ? { pricing: m.pricing } : {}),
    deprecated: m.deprecated,
    preview: false,
  };
}
