/**
 * OpenAI/Cerebras request JSON → ChatCompletionRequest (proto): the HTTP shim's way in,
 * the mirror of request.ts. The JSON is checked with the one schema (ChatRequestJson),
 * then mapped; the core's own validation runs afterwards, so both transports share
 * every semantic rule and only the JSON-shape rules live here.
 *
 * OpenAI-only fields are handled first, by openai-fields.ts (translated, refused, or
 * accepted and dropped: see there); so are the output-only fields of an assistant message
 * (`refusal`, `annotations`) that clients send back when they append a returned message
 * to the conversation. Any other field, at any depth, is a 400 that names it: a typo
 * must not be silently ignored.
 *
 * JSON Schemas (tool parameters, response_format's schema) are taken from the caller's
 * own text when it is given (json-spans.ts) and travel as parameters_json / schema_json,
 * so their key order reaches Cerebras byte for byte.
 */
import type { z } from "zod";
import type {
  ChatCompletionRequest,
  ContentPart,
  ContentParts,
  Message,
  Prediction,
  ResponseFormat,
  Tool,
  ToolChoice,
} from "../../gen/aigateway/v1/chat.js";
import { ReasoningEffort, ReasoningFormat, Role, ServiceTier } from "../../gen/aigateway/v1/chat.js";
import { clip, Code, GatewayError, MAX_VIOLATIONS, Reason, type FieldViolation } from "../core/errors.js";
import { reasoningEfforts, reasoningFormats, roles, serviceTiers, toolChoiceModes } from "./enums.js";
import { findSpans, type JsonPath, type Want } from "./json-spans.js";
import { isJsonObject } from "./json.js";
import { jsonPathOf, translateOpenAiFields } from "./openai-fields.js";
import { ChatRequestJson, type ContentPartJson } from "./schema.js";

const KNOWN_FIELDS = new Set(Object.keys(ChatRequestJson.shape));

type Parsed = z.output<typeof ChatRequestJson>;
type ParsedMessage = Parsed["messages"][number];

export interface DecodeOptions {
  /** The body as the caller sent it: JSON Schemas are taken from it byte for byte. Undefined: from the parsed value (key order as JavaScript keeps it). */
  readonly text?: string | undefined;
  /** DROP_UNSUPPORTED_FIELDS: drop (and log) fields Cerebras cannot honour instead of refusing them. */
  readonly dropUnsupported?: boolean;
}

export interface DecodedChatRequest {
  readonly request: ChatCompletionRequest;
  /** `"stream": true`: answer with server-sent events. */
  readonly stream: boolean;
  /** Dotted paths of the fields accepted and dropped (for the log line). */
  readonly ignored: readonly string[];
  /** The caller used legacy `functions`: answer in the legacy shape (`function_call`). */
  readonly legacyFunctions: boolean;
  /** Turns a proto field path of a later refusal (the core's checks) into the caller's JSON path. */
  readonly callerPath: (field: string) => string;
}

/**
 * Decodes a parsed JSON body. Throws an INVALID_ARGUMENT GatewayError whose field
 * violations name every bad field by its dotted JSON path (`messages.0.content`), as the
 * caller wrote it (`functions.0.name`, not the `tools.0.function.name` it became).
 */
export function chatRequestFromJson(value: unknown, options: DecodeOptions = {}): DecodedChatRequest {
  if (!isJsonObject(value)) {
    throw new GatewayError({
      code: Code.INVALID_ARGUMENT,
      reason: Reason.INVALID_REQUEST,
      message: `invalid request: the body must be a JSON object, not ${typeName(value)}`,
    });
  }
  const translated = translateOpenAiFields(value, options.dropUnsupported === true);
  const { body, ignored, renames } = translated;
  const callerPath = (field: string): string => jsonPathOf(field, renames);

  // Each list stops one past MAX_VIOLATIONS (which says "there are more"), as the core's checks do.
  const violations: FieldViolation[] = translated.violations.slice(0, MAX_VIOLATIONS + 1);
  for (const key of Object.keys(body)) if (!KNOWN_FIELDS.has(key) && violations.length <= MAX_VIOLATIONS) violations.push(unknownField(clip(key)));
  const parsed = ChatRequestJson.safeParse(body);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      if (violations.length > MAX_VIOLATIONS) break;
      violations.push(violationFrom(issue, body));
    }
  } else if (violations.length === 0) {
    // zod strips unknown keys; whatever the output lacks, the schema did not know.
    unknownKeys(body, parsed.data, "", violations);
  }
  if (!parsed.success || violations.length > 0) throw GatewayError.invalidArgument(violations.map((v) => ({ field: callerPath(v.field), description: v.description })));
  const request = toProto(parsed.data);
  // Only a request with a schema pays for the pass over its text.
  if (options.text !== undefined && hasSchema(request)) keepSchemaText(request, options.text, translated.legacyFunctions);
  return { request, stream: parsed.data.stream === true, ignored, legacyFunctions: translated.legacyFunctions, callerPath };
}

/**
 * A refusal of the core's (proto paths: `messages.0.content_parts.parts.0`) restated in
 * the caller's JSON paths, message included; any other error is returned as it is.
 */
export function inCallerPaths(err: unknown, callerPath: (field: string) => string): unknown {
  if (!(err instanceof GatewayError) || err.reason !== Reason.INVALID_REQUEST || err.fieldViolations.length === 0) return err;
  const mapped = err.fieldViolations.map((v) => ({ field: callerPath(v.field), description: v.description }));
  const first = mapped[0]!;
  const rest = err.moreViolations ? ` (and more: only the first ${MAX_VIOLATIONS} problems are reported)` : mapped.length > 1 ? ` (and ${mapped.length - 1} more)` : "";
  return new GatewayError({
    code: err.code,
    reason: err.reason,
    message: `invalid request: ${first.field}: ${first.description}${rest}`,
    metadata: err.metadata,
    fieldViolations: mapped,
    moreViolations: err.moreViolations,
    headers: err.headers,
  });
}

function hasSchema(request: ChatCompletionRequest): boolean {
  const format = request.responseFormat?.format;
  return (format?.$case === "jsonSchema" && format.value.schema !== undefined) || request.tools.some((t) => t.function?.parameters !== undefined);
}

/**
 * Puts the caller's own text of each JSON Schema into parameters_json / schema_json. A
 * parsed object would reorder integer-like keys ({"2", "1"} becomes {"1", "2"}); the
 * text keeps them, spacing included. The Struct stays too (the core reads it).
 */
function keepSchemaText(request: ChatCompletionRequest, text: string, legacy: boolean): void {
  const tools = legacy ? "functions" : "tools";
  const want = (path: JsonPath): Want => {
    const [a, b, c, d] = path;
    switch (path.length) {
      case 0:
        return "descend";
      case 1:
        return a === tools || a === "response_format" ? "descend" : "skip";
      case 2:
        return a === tools ? (typeof b === "number" ? "descend" : "skip") : b === "json_schema" ? "descend" : "skip";
      case 3:
        if (a === tools) return legacy ? (c === "parameters" ? "take" : "skip") : c === "function" ? "descend" : "skip";
        return c === "schema" ? "take" : "skip";
      default:
        return a === tools && !legacy && path.length === 4 && d === "parameters" ? "take" : "skip";
    }
  };
  const spans = findSpans(text, want);
  request.tools.forEach((tool, i) => {
    const span = spans.get(legacy ? `functions.${i}.parameters` : `tools.${i}.function.parameters`);
    if (span !== undefined && tool.function?.parameters !== undefined) tool.function.parametersJson = text.slice(span[0], span[1]);
  });
  const format = request.responseFormat?.format;
  const span = spans.get("response_format.json_schema.schema");
  if (format?.$case === "jsonSchema" && format.value.schema !== undefined && span !== undefined) format.value.schemaJson = text.slice(span[0], span[1]);
}

// ---- zod issues → field violations -------------------------------------------------

/** The structural subset of a zod 4 issue this file reads. */
interface Issue {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly expected?: string;
  readonly values?: readonly unknown[];
  readonly options?: readonly unknown[];
  readonly note?: string;
  readonly errors?: readonly (readonly Issue[])[];
}

function unknownField(path: string): FieldViolation {
  return { field: path, description: "unknown field (not part of the chat completions request)" };
}

/** A dotted path whose parts may be the caller's own keys: each is clipped. */
function fieldPath(path: readonly PropertyKey[]): string {
  return path.map((p) => clip(String(p))).join(".");
}

function violationFrom(issue: Issue, root: unknown): FieldViolation {
  // Unions report "Invalid input" at the union's path; the branch that got furthest
  // into the value says what is really wrong, so report its issue instead.
  let path: PropertyKey[] = [...issue.path];
  let current = issue;
  for (let depth = 0; depth < 8 && current.code === "invalid_union" && current.errors && current.note === undefined; depth++) {
    const deepest = deepestIssue(current.errors);
    if (deepest === undefined || deepest.path.length === 0) break;
    path = [...path, ...deepest.path];
    current = deepest;
  }
  return { field: fieldPath(path), description: describe(current, valueAt(root, path)) };
}

function deepestIssue(branches: readonly (readonly Issue[])[]): Issue | undefined {
  let best: Issue | undefined;
  for (const branch of branches) for (const i of branch) if (best === undefined || i.path.length > best.path.length) best = i;
  return best;
}

function describe(issue: Issue, value: unknown): string {
  if (value === undefined && (issue.code === "invalid_type" || issue.note !== undefined)) return "is required";
  switch (issue.code) {
    case "invalid_type":
      return `expected ${issue.expected === "int" ? "an integer" : issue.expected}, got ${typeName(value)}`;
    case "invalid_value":
      return `must be ${oneOf(issue.values ?? [])}`;
    case "invalid_union": {
      if (issue.options !== undefined) return `must be ${oneOf(issue.options)}`; // a discriminator
      const expected = (issue.errors ?? []).map((branch) => expectation(branch[0])).filter((e): e is string => e !== undefined);
      return expected.length > 0 ? `expected ${[...new Set(expected)].join(" or ")}, got ${typeName(value)}` : issue.message;
    }
    default:
      return issue.message;
  }
}

function expectation(issue: Issue | undefined): string | undefined {
  if (issue === undefined) return undefined;
  if (issue.code === "invalid_type") return issue.expected;
  if (issue.code === "invalid_value") return oneOf(issue.values ?? []);
  return undefined;
}

function oneOf(values: readonly unknown[]): string {
  const quoted = values.map((v) => JSON.stringify(v));
  return quoted.length === 1 ? quoted[0]! : `one of ${quoted.join(", ")}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const key of path) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

/** Appends the paths of keys present in `input` but stripped from zod's `output`. */
function unknownKeys(input: unknown, output: unknown, path: string, out: FieldViolation[]): void {
  if (input === output) return; // passed through untouched (z.unknown): nothing was stripped below
  if (Array.isArray(input) && Array.isArray(output)) {
    for (let i = 0; i < input.length && out.length <= MAX_VIOLATIONS; i++) unknownKeys(input[i], output[i], `${path}${i}.`, out);
  } else if (isJsonObject(input) && isJsonObject(output)) {
    for (const key of Object.keys(input)) {
      if (out.length > MAX_VIOLATIONS) return;
      // Own keys only: `"__proto__" in output` is true of every object.
      if (!Object.hasOwn(output, key)) out.push(unknownField(path + clip(key)));
      else unknownKeys(input[key], output[key], `${path}${clip(key)}.`, out);
    }
  }
}

// ---- parsed JSON → proto -------------------------------------------------------------

function toProto(d: Parsed): ChatCompletionRequest {
  const req: ChatCompletionRequest = {
    model: d.model,
    messages: d.messages.map(messageToProto),
    tools: (d.tools ?? []).map(toolToProto),
    stop: d.stop == null ? [] : typeof d.stop === "string" ? [d.stop] : d.stop,
    logitBias: d.logit_bias ?? {},
    // zod checked the strings against the same wire values, so fromWire always finds them.
    reasoningEffort: d.reasoning_effort == null ? ReasoningEffort.REASONING_EFFORT_UNSPECIFIED : reasoningEfforts.fromWire(d.reasoning_effort)!,
    reasoningFormat: d.reasoning_format == null ? ReasoningFormat.REASONING_FORMAT_UNSPECIFIED : reasoningFormats.fromWire(d.reasoning_format)!,
    serviceTier: d.service_tier == null ? ServiceTier.SERVICE_TIER_UNSPECIFIED : serviceTiers.fromWire(d.service_tier)!,
  };
  if (d.tool_choice != null) req.toolChoice = toolChoiceToProto(d.tool_choice);
  if (d.parallel_tool_calls != null) req.parallelToolCalls = d.parallel_tool_calls;
  if (d.response_format != null) req.responseFormat = responseFormatToProto(d.response_format);
  if (d.temperature != null) req.temperature = d.temperature;
  if (d.top_p != null) req.topP = d.top_p;
  if (d.max_tokens != null) req.maxTokens = d.max_tokens;
  if (d.max_completion_tokens != null) req.maxCompletionTokens = d.max_completion_tokens;
  if (d.min_tokens != null) req.minTokens = d.min_tokens;
  if (d.min_completion_tokens != null) req.minCompletionTokens = d.min_completion_tokens;
  if (d.seed != null) req.seed = d.seed;
  if (d.logprobs != null) req.logprobs = d.logprobs;
  if (d.top_logprobs != null) req.topLogprobs = d.top_logprobs;
  if (d.frequency_penalty != null) req.frequencyPenalty = d.frequency_penalty;
  if (d.presence_penalty != null) req.presencePenalty = d.presence_penalty;
  if (d.prediction != null) req.prediction = predictionToProto(d.prediction.content);
  if (d.user != null) req.user = d.user;
  if (d.stream_options != null) {
    req.streamOptions = d.stream_options.include_usage == null ? {} : { includeUsage: d.stream_options.include_usage };
  }
  if (d.n != null) req.n = d.n;
  if (d.clear_thinking != null) req.clearThinking = d.clear_thinking;
  if (d.prompt_cache_key != null) req.promptCacheKey = d.prompt_cache_key;
  if (d.model_parameters != null) req.modelParameters = d.model_parameters;
  return req;
}

function messageToProto(m: ParsedMessage): Message {
  const out: Message = { role: roles.fromWire(m.role) ?? Role.ROLE_UNSPECIFIED, toolCalls: [], toolCallId: "" };
  switch (m.role) {
    case "assistant":
      if (m.content != null) out.contentKind = textContent(m.content);
      if (m.name != null) out.name = m.name;
      if (m.tool_calls != null) {
        out.toolCalls = m.tool_calls.map((c) => {
          const call: Message["toolCalls"][number] = { id: c.id, type: c.type, function: { name: c.function.name, arguments: c.function.arguments } };
          if (c.index != null) call.index = c.index;
          return call;
        });
      }
      if (typeof m.reasoning === "string") out.reasoning = m.reasoning;
      else if (m.reasoning != null) out.reasoningParts = textParts(m.reasoning);
      break;
    case "tool":
      out.contentKind = textContent(m.content);
      out.toolCallId = m.tool_call_id;
      if (m.name != null) out.name = m.name;
      break;
    default:
      out.contentKind =
        typeof m.content === "string" ? { $case: "content", value: m.content } : { $case: "contentParts", value: { parts: m.content.map(partToProto) } };
      if (m.name != null) out.name = m.name;
  }
  return out;
}

function partToProto(p: z.output<typeof ContentPartJson>): ContentPart {
  if (p.type === "text") return { part: { $case: "text", value: p.text } };
  if (p.type === "image") return { part: { $case: "image", value: p.image } };
  const image: { url: string; detail?: string } = { url: p.image_url.url };
  if (p.image_url.detail != null) image.detail = p.image_url.detail;
  return { part: { $case: "imageUrl", value: image } };
}

function textContent(c: string | ReadonlyArray<{ text: string }>): NonNullable<Message["contentKind"]> {
  return typeof c === "string" ? { $case: "content", value: c } : { $case: "contentParts", value: textParts(c) };
}

function textParts(parts: ReadonlyArray<{ text: string }>): ContentParts {
  return { parts: parts.map((p) => ({ part: { $case: "text", value: p.text } })) };
}

function toolToProto(t: NonNullable<Parsed["tools"]>[number]): Tool {
  const f = t.function;
  const fn: NonNullable<Tool["function"]> = { name: f.name };
  if (f.description != null) fn.description = f.description;
  if (f.parameters != null) fn.parameters = f.parameters;
  if (f.strict != null) fn.strict = f.strict;
  return { function: fn };
}

function toolChoiceToProto(c: NonNullable<Parsed["tool_choice"]>): ToolChoice {
  if (typeof c === "string") return { choice: { $case: "mode", value: toolChoiceModes.fromWire(c)! } };
  return { choice: { $case: "functionName", value: c.function.name } };
}

function responseFormatToProto(f: NonNullable<Parsed["response_format"]>): ResponseFormat {
  switch (f.type) {
    case "text":
      return { format: { $case: "text", value: {} } };
    case "json_object":
      return { format: { $case: "jsonObject", value: {} } };
    case "json_schema": {
      const s = f.json_schema;
      const value: Extract<NonNullable<ResponseFormat["format"]>, { $case: "jsonSchema" }>["value"] = { name: s.name };
      if (s.description != null) value.description = s.description;
      if (s.schema != null) value.schema = s.schema;
      if (s.strict != null) value.strict = s.strict;
      return { format: { $case: "jsonSchema", value } };
    }
  }
}

function predictionToProto(content: string | ReadonlyArray<{ text: string }>): Prediction {
  return { contentKind: textContent(content) };
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number" && !Number.isInteger(v)) return "a fractional number";
  return typeof v;
}
