/**
 * The hot path for a stream's plain text chunks: an SSE event whose bytes are the
 * stream's previous plain chunk with only the text changed is mapped without JSON.parse.
 *
 * Almost every event of a stream is `{"id":…,"object":…,"created":…,"model":…,
 * "system_fingerprint":…,"choices":[{"delta":{"content":"<text>"},"index":0}]}` with the
 * same bytes around `<text>` (or `"reasoning"` in place of `"content"`). A template is
 * learned from one such event the full mapper (response.ts, the contract's reference)
 * has read: the bytes before the text's opening quote and after its closing quote, and
 * the chunk the mapper made. An event that starts with the same prefix, ends with the
 * same suffix and has between them a JSON string body with nothing to unescape (no
 * quote, backslash or control byte) is that chunk with that text: JSON's grammar reads a
 * string token whole, so nothing else in the event can differ. Anything else — another
 * shape, usage, finish_reason, tool calls, logprobs, an unknown key, an escape — goes to
 * the full mapper, as before.
 *
 * A template is only learned when the mapper's chunk for the event, and for the same
 * event with a sentinel text in place of the text, both equal (deep, strict) the chunk
 * this file would make: so if the mapper ever reads a plain chunk differently (a contract
 * change), no template is learned and every event takes the full path — slower, never
 * different. test/unit/chunk-fast.test.ts holds the two paths equal over an adversarial
 * corpus.
 */
import { isDeepStrictEqual } from "node:util";
import { FinishReason, Role, type ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import { chatCompletionChunkFromJson } from "./response.js";

/** The delta field that carries a plain chunk's text. */
export type TextField = "content" | "reasoning";

export interface ChunkTemplate {
  readonly field: TextField;
  /** The event's bytes up to and including the text's opening quote. */
  readonly prefix: Buffer;
  /** The event's bytes from the text's closing quote. */
  readonly suffix: Buffer;
  /** The chunk's stream-constant members, as the mapper read them (the same strings every time). */
  readonly id: string;
  readonly object: string;
  readonly created: number;
  readonly model: string;
  readonly systemFingerprint: string;
  readonly index: number;
}

/** The chunk a template makes for `text`. */
export function chunkFromTemplate(t: ChunkTemplate, text: string): ChatCompletionChunk {
  const delta = t.field === "content" ? { role: Role.ROLE_UNSPECIFIED, toolCalls: [], content: text } : { role: Role.ROLE_UNSPECIFIED, toolCalls: [], reasoning: text };
  return {
    id: t.id,
    object: t.object,
    created: t.created,
    model: t.model,
    systemFingerprint: t.systemFingerprint,
    choices: [{ index: t.index, delta, finishReason: FinishReason.FINISH_REASON_UNSPECIFIED }],
  };
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The text of `data[start, end)` if it is the template's chunk with another text (see the
 * file comment); undefined otherwise (the caller takes the full path).
 */
export function matchTemplate(t: ChunkTemplate, data: Buffer, start: number, end: number): string | undefined {
  const p = t.prefix;
  const s = t.suffix;
  const textStart = start + p.length;
  const textEnd = end - s.length;
  if (textEnd < textStart) return undefined;
  // Compare the suffix first: it is short, and where chunks of a stream differ (finish_reason, usage).
  if (data.compare(s, 0, s.length, textEnd, end) !== 0) return undefined;
  if (data.compare(p, 0, p.length, start, textStart) !== 0) return undefined;
  for (let i = textStart; i < textEnd; i++) {
    const c = data[i]!;
    if (c < 0x20 || c === QUOTE || c === BACKSLASH) return undefined;
  }
  return data.toString("utf8", textStart, textEnd);
}

/** Text no upstream sends, to check a template's text is the one thing it varies (JSON escapes). */
const SENTINEL_JSON = "\\u0000gateway-template\\u0001";
const SENTINEL = "\u0000gateway-template\u0001";

/**
 * A template from an event the full mapper read as `chunk`, when the chunk is a plain text
 * chunk (one choice, its delta only `content` or only `reasoning`, nothing else) whose
 * text token can be located and verified; undefined otherwise.
 */
export function learnTemplate(data: Buffer, start: number, end: number, chunk: ChatCompletionChunk): ChunkTemplate | undefined {
  const choice = chunk.choices.length === 1 ? chunk.choices[0]! : undefined;
  const delta = choice?.delta;
  if (choice === undefined || delta === undefined) return undefined;
  const field: TextField | undefined = delta.content !== undefined && delta.reasoning === undefined ? "content" : delta.reasoning !== undefined && delta.content === undefined ? "reasoning" : undefined;
  if (field === undefined) return undefined;
  const text = field === "content" ? delta.content! : delta.reasoning!;
  const candidate: ChunkTemplate = {
    field,
    prefix: Buffer.alloc(0),
    suffix: Buffer.alloc(0),
    id: chunk.id,
    object: chunk.object,
    created: chunk.created,
    model: chunk.model,
    systemFingerprint: chunk.systemFingerprint,
    index: choice.index,
  };
  // The mapper's chunk must be exactly what the template would make: nothing else set.
  if (!isDeepStrictEqual(chunk, chunkFromTemplate(candidate, text))) return undefined;

  // The text's token: the last `"content":"` (or reasoning) key — a key, since a string's
  // own quotes are escaped — and its closing quote.
  const key = field === "content" ? CONTENT_KEY : REASONING_KEY;
  const at = data.lastIndexOf(key, end - 1);
  if (at < start) return undefined;
  const open = at + key.length; // first byte of the text
  let close = open;
  while (close < end && data[close] !== QUOTE) close += data[close] === BACKSLASH ? 2 : 1;
  if (close >= end) return undefined;
  const prefix = Buffer.from(data.subarray(start, open));
  const suffix = Buffer.from(data.subarray(close, end));
  const t: ChunkTemplate = { ...candidate, prefix, suffix };

  // The token found must be the one the mapper read as the text: the same event with a
  // sentinel text in its place maps to the template's chunk with the sentinel.
  let probe: unknown;
  try {
    probe = JSON.parse(`${prefix.toString("utf8")}${SENTINEL_JSON}${suffix.toString("utf8")}`);
  } catch {
    return undefined;
  }
  let mapped: ChatCompletionChunk;
  try {
    mapped = chatCompletionChunkFromJson(probe);
  } catch {
    return undefined;
  }
  return isDeepStrictEqual(mapped, chunkFromTemplate(t, SENTINEL)) ? t : undefined;
}

const CONTENT_KEY = Buffer.from('"content":"');
const REASONING_KEY = Buffer.from('"reasoning":"');
