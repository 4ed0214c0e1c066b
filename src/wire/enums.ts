/**
 * Proto enums ⇄ the OpenAI/Cerebras wire strings, both directions from one table each.
 */
import {
  FinishReason,
  ReasoningEffort,
  ReasoningFormat,
  Role,
  ServiceTier,
  ToolChoiceMode,
} from "../../gen/aigateway/v1/chat.js";

/** A two-way map between a proto enum and its wire strings. Unspecified maps to undefined. */
class EnumCodec<E extends number, S extends string> {
  private readonly toWireMap = new Map<number, S>();
  private readonly fromWireMap = new Map<string, E>();
  readonly wireValues: readonly S[];

  constructor(pairs: ReadonlyArray<readonly [E, S]>) {
    for (const [e, s] of pairs) {
      this.toWireMap.set(e, s);
      this.fromWireMap.set(s, e);
    }
    this.wireValues = pairs.map(([, s]) => s);
  }

  toWire(value: E): S | undefined {
    return this.toWireMap.get(value);
  }

  fromWire(value: string): E | undefined {
    return this.fromWireMap.get(value);
  }
}

export const roles = new EnumCodec<Role, "system" | "developer" | "user" | "assistant" | "tool">([
  [Role.ROLE_SYSTEM, "system"],
  [Role.ROLE_DEVELOPER, "developer"],
  [Role.ROLE_USER, "user"],
  [Role.ROLE_ASSISTANT, "assistant"],
  [Role.ROLE_TOOL, "tool"],
]);

export const finishReasons = new EnumCodec<FinishReason, "stop" | "length" | "content_filter" | "tool_calls">([
  [FinishReason.FINISH_REASON_STOP, "stop"],
  [FinishReason.FINISH_REASON_LENGTH, "length"],
  [FinishReason.FINISH_REASON_CONTENT_FILTER, "content_filter"],
  [FinishReason.FINISH_REASON_TOOL_CALLS, "tool_calls"],
]);

export const toolChoiceModes = new EnumCodec<ToolChoiceMode, "none" | "auto" | "required">([
  [ToolChoiceMode.TOOL_CHOICE_MODE_NONE, "none"],
  [ToolChoiceMode.TOOL_CHOICE_MODE_AUTO, "auto"],
  [ToolChoiceMode.TOOL_CHOICE_MODE_REQUIRED, "required"],
]);

export const reasoningEfforts = new EnumCodec<ReasoningEffort, "none" | "low" | "medium" | "high">([
  [ReasoningEffort.REASONING_EFFORT_NONE, "none"],
  [ReasoningEffort.REASONING_EFFORT_LOW, "low"],
  [ReasoningEffort.REASONING_EFFORT_MEDIUM, "medium"],
  [ReasoningEffort.REASONING_EFFORT_HIGH, "high"],
]);

export const reasoningFormats = new EnumCodec<ReasoningFormat, "none" | "parsed" | "text_parsed" | "raw" | "hidden">([
  [ReasoningFormat.REASONING_FORMAT_NONE, "none"],
  [ReasoningFormat.REASONING_FORMAT_PARSED, "parsed"],
  [ReasoningFormat.REASONING_FORMAT_TEXT_PARSED, "text_parsed"],
  [ReasoningFormat.REASONING_FORMAT_RAW, "raw"],
  [ReasoningFormat.REASONING_FORMAT_HIDDEN, "hidden"],
]);

export const serviceTiers = new EnumCodec<ServiceTier, "auto" | "default" | "flex" | "priority">([
  [ServiceTier.SERVICE_TIER_AUTO, "auto"],
  [ServiceTier.SERVICE_TIER_DEFAULT, "default"],
  [ServiceTier.SERVICE_TIER_FLEX, "flex"],
  [ServiceTier.SERVICE_TIER_PRIORITY, "priority"],
]);
