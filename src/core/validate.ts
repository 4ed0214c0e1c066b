/**
 * Semantic checks on a decoded ChatCompletionRequest, run before any upstream call so a
 * bad request fails fast, names its field, and spends no Cerebras quota.
 *
 * Why not zod here: the request is already typed (decoded protobuf or zod-parsed JSON
 * from the HTTP shim), and nearly every rule is cross-field (which fields a message may
 * carry depends on its role). A direct checker reads as the rule list it is, allocates
 * nothing when the request is valid, and both transports share it. Paths use the proto
 * field names (`messages.0.tool_call_id`), as google.rpc.BadRequest expects.
 */
import {
  ReasoningEffort,
  ReasoningFormat,
  Role,
  ServiceTier,
  ToolChoiceMode,
  type ChatCompletionRequest,
  type ContentPart,
  type Message,
} from "../../gen/aigateway/v1/chat.js";
// A leaf helper of the codec's (no imports of its own): the same JSON-shape rules as the shim's.
import { isJsonObject, jsonDepthExceeds } from "../wire/json.js";
import { clip, MAX_VIOLATIONS, type FieldViolation } from "./errors.js";

/** Upstream limits (CEREBRAS_API.md §2). */
const MAX_STOP_SEQUENCES = 4;
const MAX_TOP_LOGPROBS = 20;
const MAX_PROMPT_CACHE_KEY = 1024;
const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;
const IMAGE_DATA_URI = /^data:image\/(png|jpeg|jpg);base64,/;
const TOKEN_ID = /^\d+$/;
/**
 * Longest model id accepted (Cerebras ids are under 40 characters; dedicated endpoints'
 * too). Refused at the door: a longer one is no model, and must not reach logs, metric
 * labels or error details.
 */
export const MAX_MODEL_ID = 256;

/**
 * Deepest a JSON value (tool parameters, a response_format schema, model_parameters) may
 * nest, counting objects and arrays. JSON Schemas need a fraction of it; the bound keeps
 * every recursive step after the door (zod, JSON.stringify, the generated protobuf
 * decoder, whose limit of 100 message levels a JSON object spends three of) safe.
 */
export const MAX_JSON_DEPTH = 32;

/** The violation for a JSON value nested past MAX_JSON_DEPTH at `field`. */
export function jsonTooDeep(field: string): FieldViolation {
  return { field, description: JSON_TOO_DEEP };
}

export const JSON_TOO_DEEP = `nests deeper than ${MAX_JSON_DEPTH} levels (objects and arrays)`;

export interface ValidateOptions {
  /** Streaming requests may not ask for json_object output (upstream rule). */
  readonly stream: boolean;
  /** Upper bound on messages per request. */
  readonly maxMessages: number;
}

/**
 * Returns the violations found; an empty array means the request is valid. Checking
 * stops at MAX_VIOLATIONS + 1 (the last one only says "there are more"), so a request of
 * a hundred thousand mistakes costs no more to refuse than one of twenty-one.
 */
export function validateChatRequest(req: ChatCompletionRequest, opts: ValidateOptions): FieldViolation[] {
  const out: FieldViolation[] = [];
  const bad = (field: string, description: string): void => {
    out.push({ field, description });
    if (out.length > MAX_VIOLATIONS) throw ENOUGH;
  };
  try {
    const model = modelIdViolation(req.model, "model");
    if (model !== undefined) bad(model.field, model.description);
    if (req.messages.length === 0) bad("messages", "at least one message is required");
    else if (req.messages.length > opts.maxMessages) bad("messages", `at most ${opts.maxMessages} messages are allowed`);
    for (let i = 0; i < req.messages.length; i++) checkMessage(req.messages[i]!, `messages.${i}`, bad);
    checkToolCallPairing(req.messages, bad);

    checkTools(req, bad);
    checkResponseFormat(req, opts.stream, bad);
    checkPrediction(req, bad);
    checkSampling(req, bad);
  } catch (err) {
    if (err !== ENOUGH) throw err;
  }
  return out;
}

/** A model id the gateway refuses to handle at all (too long to be one), as a violation of `field`. */
export function modelIdViolation(id: string, field: string): FieldViolation | undefined {
  return id.length > MAX_MODEL_ID ? { field, description: `at most ${MAX_MODEL_ID} characters (got ${id.length})` } : undefined;
}

/** Thrown by a Report past MAX_VIOLATIONS to stop the checks at once. */
const ENOUGH = Symbol("enough violations");

type Report = (field: string, description: string) => void;

function checkMessage(m: Message, path: string, bad: Report): void {
  const role = m.role;
  // ROLE_OTHER is output-only (an upstream role the contract does not know): no request can send it.
  if (role === Role.ROLE_UNSPECIFIED || role === Role.ROLE_OTHER || !isKnown(Role, role)) {
    bad(`${path}.role`, "is required (system, developer, user, assistant or tool)");
    return;
  }
  const content = m.contentKind;
  const hasToolCalls = m.toolCalls.length > 0;

  if (role === Role.ROLE_ASSISTANT) {
    if (content === undefined && !hasToolCalls) bad(`${path}.content`, "an assistant message needs content or tool_calls");
  } else {
    if (content === undefined) bad(`${path}.content`, `a ${roleName(role)} message needs content`);
    if (hasToolCalls) bad(`${path}.tool_calls`, "only assistant messages carry tool_calls");
    if (m.reasoning !== undefined) bad(`${path}.reasoning`, "only assistant messages carry reasoning");
    if (m.reasoningParts !== undefined) bad(`${path}.reasoning_parts`, "only assistant messages carry reasoning");
  }
  if (m.reasoningParts !== undefined && role === Role.ROLE_ASSISTANT) {
    if (m.reasoning !== undefined) bad(`${path}.reasoning_parts`, "set reasoning or reasoning_parts, not both");
    checkParts(m.reasoningParts.parts, `${path}.reasoning_parts.parts`, false, bad);
  }
  if (role === Role.ROLE_TOOL) {
    if (m.toolCallId === "") bad(`${path}.tool_call_id`, "a tool message must name the tool call it answers");
  } else if (m.toolCallId !== "") {
    bad(`${path}.tool_call_id`, "only tool messages carry tool_call_id");
  }

  if (content?.$case === "contentParts") {
    const imagesAllowed = role === Role.ROLE_USER || role === Role.ROLE_SYSTEM || role === Role.ROLE_DEVELOPER;
    checkParts(content.value.parts, `${path}.content_parts.parts`, imagesAllowed, bad);
  }

  for (let i = 0; i < m.toolCalls.length; i++) {
    const call = m.toolCalls[i]!;
    const p = `${path}.tool_calls.${i}`;
    if (call.id === "") bad(`${p}.id`, "is required");
    if (call.type !== "" && call.type !== "function") bad(`${p}.type`, 'must be "function"');
    if (call.function === undefined) bad(`${p}.function`, "is required");
    else if (!FUNCTION_NAME.test(call.function.name)) bad(`${p}.function.name`, "must be 1-64 characters of a-z, A-Z, 0-9, _ or -");
  }
}

/**
 * Cerebras API v2 rules: every tool call of an assistant message is answered by a tool
 * message immediately after it, no tool message answers anything else, and tool-call ids
 * are unique in the conversation.
 */
function checkToolCallPairing(messages: readonly Message[], bad: Report): void {
  const seen = new Set<string>();
  let open = new Map<string, number>(); // unanswered call id → index of its assistant message
  let answering = false; // inside the run of tool messages after an assistant's tool calls
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    if (m.role === Role.ROLE_TOOL) {
      if (m.toolCallId === "") continue; // reported by checkMessage
      if (answering && open.delete(m.toolCallId)) continue;
      bad(`messages.${i}.tool_call_id`, `"${clip(m.toolCallId)}" does not answer a tool call of the assistant message just before it`);
      continue;
    }
    reportUnanswered(open, bad);
    open = new Map();
    answering = false;
    if (m.role !== Role.ROLE_ASSISTANT) continue;
    for (let j = 0; j < m.toolCalls.length; j++) {
      const id = m.toolCalls[j]!.id;
      if (id === "") continue;
      if (seen.has(id)) bad(`messages.${i}.tool_calls.${j}.id`, `duplicate tool call id "${clip(id)}"`);
      seen.add(id);
      open.set(id, i);
    }
    answering = m.toolCalls.length > 0;
  }
  reportUnanswered(open, bad);
}

function reportUnanswered(open: ReadonlyMap<string, number>, bad: Report): void {
  for (const [id, i] of open) bad(`messages.${i}.tool_calls`, `tool call "${clip(id)}" is not answered by a tool message right after it`);
}

function checkParts(parts: readonly ContentPart[], path: string, imagesAllowed: boolean, bad: Report): void {
  if (parts.length === 0) bad(path, "at least one part is required");
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!.part;
    const p = `${path}.${i}`;
    if (part === undefined) bad(p, "set text, image_url or image");
    else if (part.$case === "image") {
      if (!imagesAllowed) bad(`${p}.image`, "images are allowed in user, system and developer messages only");
      else if (!IMAGE_DATA_URI.test(part.value)) bad(`${p}.image`, "must be a base64 data URI (data:image/png;base64,... or data:image/jpeg;base64,...)");
    } else if (part.$case === "imageUrl") {
      if (!imagesAllowed) bad(`${p}.image_url`, "images are allowed in user, system and developer messages only");
      else if (!IMAGE_DATA_URI.test(part.value.url)) {
        bad(`${p}.image_url.url`, "must be a base64 data URI (data:image/png;base64,... or data:image/jpeg;base64,...)");
      }
    }
  }
}

function checkTools(req: ChatCompletionRequest, bad: Report): void {
  const names = new Set<string>();
  for (let i = 0; i < req.tools.length; i++) {
    const fn = req.tools[i]!.function;
    if (fn === undefined) {
      bad(`tools.${i}.function`, "is required");
      continue;
    }
    if (!FUNCTION_NAME.test(fn.name)) bad(`tools.${i}.function.name`, "must be 1-64 characters of a-z, A-Z, 0-9, _ or -");
    else if (names.has(fn.name)) bad(`tools.${i}.function.name`, `duplicate function name "${fn.name}"`);
    names.add(fn.name);
    if (fn.parametersJson !== undefined) checkJsonText(fn.parametersJson, `tools.${i}.function.parameters_json`, bad);
  }

  const choice = req.toolChoice;
  if (choice === undefined) return;
  if (req.tools.length === 0) {
    bad("tool_choice", "requires tools");
    return;
  }
  const c = choice.choice;
  if (c === undefined) bad("tool_choice", "set mode or function_name");
  else if (c.$case === "mode") {
    if (c.value === ToolChoiceMode.TOOL_CHOICE_MODE_UNSPECIFIED || !isKnown(ToolChoiceMode, c.value)) {
      bad("tool_choice.mode", "must be none, auto or required");
    }
  } else if (!names.has(c.value)) {
    bad("tool_choice.function_name", `no tool named "${clip(c.value)}" in tools`);
  }
}

function checkResponseFormat(req: ChatCompletionRequest, stream: boolean, bad: Report): void {
  const rf = req.responseFormat;
  if (rf === undefined) return;
  const f = rf.format;
  if (f === undefined) bad("response_format", "set text, json_object or json_schema");
  else if (f.$case === "jsonObject" && stream) bad("response_format", "json_object output cannot be streamed; use json_schema or CreateChatCompletion");
  else if (f.$case === "jsonSchema") {
    if (!FUNCTION_NAME.test(f.value.name)) bad("response_format.json_schema.name", "must be 1-64 characters of a-z, A-Z, 0-9, _ or -");
    if (f.value.schemaJson !== undefined) checkJsonText(f.value.schemaJson, "response_format.json_schema.schema_json", bad);
  }
}

/**
 * A JSON Schema given as text (parameters_json, schema_json): it is spliced into the
 * upstream body as it is, so it must be one JSON object, nested at most MAX_JSON_DEPTH.
 * Parsed here once to be sure; the parsed value is thrown away (the text is what goes).
 */
function checkJsonText(text: string, field: string, bad: Report): void {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    bad(field, `is not valid JSON (${err instanceof Error ? clip(err.message) : "unparseable"})`);
    return;
  }
  if (!isJsonObject(value)) bad(field, "must be a JSON object (a JSON Schema)");
  else if (jsonDepthExceeds(value, MAX_JSON_DEPTH)) bad(field, JSON_TOO_DEEP);
}

function checkPrediction(req: ChatCompletionRequest, bad: Report): void {
  const content = req.prediction?.contentKind;
  if (content?.$case === "contentParts") checkParts(content.value.parts, "prediction.content_parts.parts", false, bad);
}

function checkSampling(req: ChatCompletionRequest, bad: Report): void {
  range(req.temperature, 0, 2, "temperature", bad);
  range(req.topP, 0, 1, "top_p", bad);
  range(req.frequencyPenalty, -2, 2, "frequency_penalty", bad);
  range(req.presencePenalty, -2, 2, "presence_penalty", bad);
  atLeast(req.maxTokens, -1, "max_tokens", bad);
  atLeast(req.maxCompletionTokens, -1, "max_completion_tokens", bad);
  atLeast(req.minTokens, -1, "min_tokens", bad);
  atLeast(req.minCompletionTokens, -1, "min_completion_tokens", bad);
  atLeast(req.n, 1, "n", bad);
  if (req.topLogprobs !== undefined) {
    range(req.topLogprobs, 0, MAX_TOP_LOGPROBS, "top_logprobs", bad);
    if (req.logprobs !== true) bad("top_logprobs", "requires logprobs");
  }

  if (req.stop.length > MAX_STOP_SEQUENCES) bad("stop", `at most ${MAX_STOP_SEQUENCES} stop sequences are allowed`);
  for (let i = 0; i < req.stop.length; i++) if (req.stop[i] === "") bad(`stop.${i}`, "must not be empty");

  for (const [token, bias] of Object.entries(req.logitBias)) {
    if (!TOKEN_ID.test(token)) bad(`logit_bias.${clip(token)}`, "keys must be token ids (decimal integers)");
    else range(bias, -100, 100, `logit_bias.${clip(token)}`, bad);
  }

  if (!isKnown(ReasoningEffort, req.reasoningEffort)) bad("reasoning_effort", "unknown value");
  if (!isKnown(ReasoningFormat, req.reasoningFormat)) bad("reasoning_format", "unknown value");
  if (!isKnown(ServiceTier, req.serviceTier)) bad("service_tier", "unknown value");
  if (req.promptCacheKey !== undefined && req.promptCacheKey.length > MAX_PROMPT_CACHE_KEY) {
    bad("prompt_cache_key", `at most ${MAX_PROMPT_CACHE_KEY} characters`);
  }
}

function range(v: number | undefined, min: number, max: number, field: string, bad: Report): void {
  if (v !== undefined && !(v >= min && v <= max)) bad(field, `must be between ${min} and ${max}`);
}

function atLeast(v: number | undefined, min: number, field: string, bad: Report): void {
  if (v !== undefined && !(v >= min)) bad(field, `must be at least ${min}`);
}

/** A proto enum value the generated enum knows (not UNRECOGNIZED, not an unknown number). */
function isKnown(e: Record<string, string | number>, v: number): boolean {
  return v >= 0 && typeof e[v] === "string";
}

function roleName(role: Role): string {
  return Role[role]?.replace("ROLE_", "").toLowerCase() ?? "unknown";
}
