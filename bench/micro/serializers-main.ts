// TEMPORARY: main's hand-written encoders (src/grpc/serializers.ts at f835acf), kept only so
// bench/micro/serializers.ts can measure them against the generated ones in the same run.
/**
 * Hand-written protobuf serializers for the two messages the gRPC server writes: the
 * streamed `ChatCompletionChunk` (once per upstream chunk) and the unary `ChatCompletion`.
 * `withFastSerializers(ChatServiceService)` is the service definition to register.
 *
 * The generated `responseSerialize` is `Buffer.from(X.encode(value).finish())`: a new
 * BinaryWriter with a 128-byte zero-filled buffer of its own (doubled and copied as it
 * grows, a fork per sub-message), `finish()` slicing the bytes into another new
 * ArrayBuffer, and `Buffer.from` copying them once more. grpc-js then copies them into its
 * own length-prefixed frame anyway (`serializeMessage` in
 * @grpc/grpc-js/build/src/server-interceptors.js: `Buffer.allocUnsafe(n + 5)`, then
 * `messageBuffer.copy(output, 5)`, synchronously, in `sendMessage`). Here a size pass
 * first computes the exact length (recording every string's UTF-8 length and every
 * sub-message's length), one Buffer of that size comes from `Buffer.allocUnsafe` (Node's
 * pool for small sizes), and a write pass fills it.
 *
 * Fields 1-5 of a chunk (id, object, created, model, system_fingerprint) are the same on
 * every chunk of a stream and are ≈ 90% of a content chunk's bytes: from a stream's third
 * chunk on, their encoding is copied from a small cache keyed by those five values (see
 * `serializeChunk`).
 *
 * Output is byte-identical to the generated encoder's for every message the fast path
 * accepts: same field order, proto3 defaults (0, "", enum 0) omitted on plain fields,
 * `optional` fields written whenever defined (even "" or 0), negative int32/enum values
 * as 10-byte varints, int64 `created` as a two's-complement varint, doubles
 * little-endian, strings as UTF-8 with lone surrogates replaced by U+FFFD (as TextEncoder
 * and Buffer both do).
 *
 * The fast path covers every field of both messages and their sub-messages except
 * `logprobs` / `reasoning_logprobs`. Anything it does not cover — logprobs, a value of an
 * unexpected JS type (a string where a number belongs, a non-integer int32, an int64
 * beyond 2^53, a null sub-message…) — goes to the generated encoder, unchanged, so that
 * the result (bytes or thrown error) is the generated one.
 *
 * test/unit/serializers.test.ts checks the bytes against the generated encoder and fails
 * if the proto gains or changes a field (FAST_PATH_FIELDS below);
 * bench/micro/serializers.ts measures both.
 */
import {
  ChatCompletion,
  ChatCompletionChunk,
  ChatServiceService,
  type AssistantMessage,
  type Choice,
  type ChunkChoice,
  type CompletionTokensDetails,
  type Delta,
  type FunctionCall,
  type FunctionCallDelta,
  type PromptTokensDetails,
  type TimeInfo,
  type ToolCall,
  type ToolCallDelta,
  type Usage,
} from "../../gen/aigateway/v1/chat.js";

/**
 * Every field of every message the fast path writes, as the proto declares it (label,
 * type, name, number; types without their package). This is what the code below assumes.
 * test/unit/serializers.test.ts renders the descriptor set the same way and fails on any
 * difference, so a field added to (or changed in) the proto cannot be silently dropped or
 * mis-encoded here. `Logprobs` fields are recognised but not encoded: a message that sets
 * one goes to the generated encoder.
 */
export const FAST_PATH_FIELDS: Readonly<Record<string, readonly string[]>> = {
  ChatCompletionChunk: [
    "string id = 1",
    "string object = 2",
    "int64 created = 3",
    "string model = 4",
    "string system_fingerprint = 5",
    "repeated ChunkChoice choices = 6",
    "Usage usage = 7",
    "TimeInfo time_info = 8",
    "optional string service_tier = 9",
    "optional string service_tier_used = 10",
  ],
  ChunkChoice: ["int32 index = 1", "Delta delta = 2", "FinishReason finish_reason = 3", "Logprobs logprobs = 4", "Logprobs reasoning_logprobs = 5"],
  Delta: ["Role role = 1", "optional string content = 2", "optional string reasoning = 3", "repeated ToolCallDelta tool_calls = 4"],
  ToolCallDelta: ["int32 index = 1", "optional string id = 2", "optional string type = 3", "FunctionCallDelta function = 4"],
  FunctionCallDelta: ["optional string name = 1", "optional string arguments = 2"],
  ChatCompletion: [
    "string id = 1",
    "string object = 2",
    "int64 created = 3",
    "string model = 4",
    "string system_fingerprint = 5",
    "repeated Choice choices = 6",
    "Usage usage = 7",
    "TimeInfo time_info = 8",
    "optional string service_tier = 9",
    "optional string service_tier_used = 10",
  ],
  Choice: ["int32 index = 1", "AssistantMessage message = 2", "FinishReason finish_reason = 3", "Logprobs logprobs = 4", "Logprobs reasoning_logprobs = 5"],
  AssistantMessage: ["Role role = 1", "optional string content = 2", "optional string reasoning = 3", "repeated ToolCall tool_calls = 4"],
  ToolCall: ["string id = 1", "string type = 2", "FunctionCall function = 3"],
  FunctionCall: ["string name = 1", "string arguments = 2"],
  Usage: [
    "int32 prompt_tokens = 1",
    "int32 completion_tokens = 2",
    "int32 total_tokens = 3",
    "PromptTokensDetails prompt_tokens_details = 4",
    "CompletionTokensDetails completion_tokens_details = 5",
    "optional double cost_usd = 6",
  ],
  PromptTokensDetails: ["int32 cached_tokens = 1"],
  CompletionTokensDetails: ["int32 reasoning_tokens = 1", "int32 accepted_prediction_tokens = 2", "int32 rejected_prediction_tokens = 3"],
  TimeInfo: [
    "optional double queue_time = 1",
    "optional double prompt_time = 2",
    "optional double completion_time = 3",
    "optional double total_time = 4",
    "optional double created = 5",
  ],
};

/** Message types the fast path does not encode (a message that contains one falls back). */
export const FALLBACK_TYPES: readonly string[] = ["Logprobs"];

/** Encodes a chunk; bytes identical to the generated encoder's. The Buffer is the caller's. */
export function serializeChunk(chunk: ChatCompletionChunk): Buffer {
  // Fields 1-5 (id, object, created, model, system_fingerprint) are the same on every
  // chunk of a stream: their bytes come from the header cache once a stream's second
  // chunk has put them there. (Not on the first chunk: when more streams than entries
  // take turns, every chunk misses, and a miss should cost no more than a key update.)
  const id = chunk.id;
  const key = headerKeys[typeof id === "string" ? headerSlot(id) : 0]!;
  const sameKey =
    key.id === id && key.created === chunk.created && key.model === chunk.model && key.systemFingerprint === chunk.systemFingerprint && key.object === chunk.object;
  const cached = sameKey ? key.bytes : undefined;
  let headerSize = 0;
  let bodySize = 0;
  for (let attempt = 0; ; attempt++) {
    top = 0;
    headerSize = cached !== undefined ? cached.length : sizeHeader(chunk);
    bodySize = headerSize < 0 ? FALLBACK : sizeChunkBody(chunk);
    if (bodySize < 0) return wrap(ChatCompletionChunk.encode(chunk).finish());
    if (top <= slots.length || attempt > 0) break;
    slots = new Int32Array(top * 2);
  }
  const buf = Buffer.allocUnsafe(headerSize + bodySize);
  read = 0;
  let end: number;
  if (cached !== undefined) {
    buf.set(cached, 0); // TypedArray#set: a builtin, no C++ call
    end = headerSize;
  } else if (sameKey && headerSize <= HEADER_MAX) {
    // The stream's second chunk: encode the header into its cache entry, then copy it.
    const bytes = headerCache.subarray(key.offset, key.offset + headerSize);
    end = writeHeader(bytes, 0, chunk);
    buf.set(bytes, 0);
    if (end === headerSize) key.bytes = bytes;
  } else {
    end = writeHeader(buf, 0, chunk);
    if (!sameKey) {
      key.id = chunk.id;
      key.object = chunk.object;
      key.created = chunk.created;
      key.model = chunk.model;
      key.systemFingerprint = chunk.systemFingerprint;
      key.bytes = undefined;
    }
  }
  // The two passes disagreeing would be a bug here; never send bytes allocUnsafe left unwritten.
  if (end !== headerSize || writeChunkBody(buf, headerSize, chunk) !== buf.length) return wrap(ChatCompletionChunk.encode(chunk).finish());
  return buf;
}

/** Encodes a completion; bytes identical to the generated encoder's. The Buffer is the caller's. */
export function serializeCompletion(completion: ChatCompletion): Buffer {
  let size = 0;
  for (let attempt = 0; ; attempt++) {
    top = 0;
    const headerSize = sizeHeader(completion);
    const bodySize = headerSize < 0 ? FALLBACK : sizeCompletionBody(completion);
    if (bodySize < 0) return wrap(ChatCompletion.encode(completion).finish());
    size = headerSize + bodySize;
    if (top <= slots.length || attempt > 0) break;
    slots = new Int32Array(top * 2);
  }
  const buf = Buffer.allocUnsafe(size);
  read = 0;
  // The two passes disagreeing would be a bug here; never send bytes allocUnsafe left unwritten.
  if (writeCompletionBody(buf, writeHeader(buf, 0, completion), completion) !== size) return wrap(ChatCompletion.encode(completion).finish());
  return buf;
}

/**
 * A copy of the ChatService definition whose response serializers are the ones above.
 * Request (de)serializers and response deserializers are unchanged, so the copy can also
 * back a client. Use: `server.addService(withFastSerializers(ChatServiceService), impl)`.
 */
export function withFastSerializers(definition: typeof ChatServiceService = ChatServiceService): typeof ChatServiceService {
  return {
    ...definition,
    createChatCompletion: { ...definition.createChatCompletion, responseSerialize: serializeCompletion },
    streamChatCompletion: { ...definition.streamChatCompletion, responseSerialize: serializeChunk },
  };
}

/**
 * The generated encoder's bytes as a Buffer. finish() returns a fresh copy that nothing
 * else holds, so large ones are wrapped rather than copied; small ones are copied into
 * Node's Buffer pool, which measured no slower than wrapping their own small ArrayBuffers.
 */
function wrap(u8: Uint8Array): Buffer {
  return u8.byteLength < WRAP_MIN ? Buffer.from(u8) : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/** Buffer.allocUnsafe's pool threshold: below it, Buffer.from(u8) copies into the pool. */
const WRAP_MIN = Buffer.poolSize >>> 1;

// ---------------------------------------------------------------------------------------
// Sizes. The size pass records, in pre-order, the UTF-8 length of every string it will
// write and the length of every sub-message; the write pass consumes them in the same
// order. Each size function returns the body's byte count, or -1 for "not the fast path".
// `slots` grows (and the size pass reruns) when a message needs more entries: writes past
// the end of a typed array are dropped, so the overflow is detected by `top` afterwards.

let slots = new Int32Array(256);
let top = 0;
let read = 0;

// The header cache: the encoded fields 1-5 of recent streams, in a direct-mapped table
// indexed by a hash of the id (so concurrent streams mostly keep their own entry). An
// entry is used only if all five values are equal (===) to the ones it was encoded from,
// so a collision or a changed field costs a miss, never wrong bytes.

interface HeaderKey {
  id: unknown;
  object: unknown;
  created: unknown;
  model: unknown;
  systemFingerprint: unknown;
  /** The encoded fields (a view of `headerCache`), once the key has been seen twice in a row. */
  bytes: Buffer | undefined;
  /** This entry's place in `headerCache`. */
  readonly offset: number;
}

const HEADER_SLOTS = 1024; // a power of 2
const HEADER_MAX = 192; // bytes per entry (a typical header is 110-140); longer headers are not cached
const headerCache = Buffer.alloc(HEADER_SLOTS * HEADER_MAX);
// Keys start as a value no chunk field can be equal to (a symbol), so no entry hits before it is filled.
const NO_KEY = Symbol("empty");
const headerKeys: HeaderKey[] = Array.from({ length: HEADER_SLOTS }, (_, i) => ({
  id: NO_KEY,
  object: NO_KEY,
  created: NO_KEY,
  model: NO_KEY,
  systemFingerprint: NO_KEY,
  bytes: undefined,
  offset: i * HEADER_MAX,
}));

/**
 * Cache index of an id: a hash of its length and eight of its characters, spread over the
 * string (Cerebras ids are "chatcmpl-" and a random UUID; counters vary at the end).
 */
function headerSlot(id: string): number {
  const l = id.length;
  if (l < 8) return l;
  let h = l;
  h = (h * 31 + id.charCodeAt(l - 1)) | 0;
  h = (h * 31 + id.charCodeAt(l - 2)) | 0;
  h = (h * 31 + id.charCodeAt(l - 3)) | 0;
  h = (h * 31 + id.charCodeAt(l - 4)) | 0;
  h = (h * 31 + id.charCodeAt(l >> 1)) | 0;
  h = (h * 31 + id.charCodeAt(l >> 2)) | 0;
  h = (h * 31 + id.charCodeAt((l * 3) >> 2)) | 0;
  h = (h * 31 + id.charCodeAt(l >> 3)) | 0;
  return (h ^ (h >>> 8) ^ (h >>> 16)) & (HEADER_SLOTS - 1);
}

const FALLBACK = -1;

/** Strings up to this many UTF-16 units are measured in JS; longer ones by Buffer.byteLength. */
const SHORT_STRING = 12;
/** ASCII strings up to this many bytes are written byte by byte; longer ones natively. */
const SHORT_WRITE = 16;

function utf8Length(s: string): number {
  const len = s.length;
  if (len > SHORT_STRING) return Buffer.byteLength(s, "utf8");
  let n = len;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      n += 1;
    } else if (c >= 0xd800 && c < 0xdc00 && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      i++;
      n += 2; // a surrogate pair: 2 units, 4 bytes
    } else {
      n += 2; // other BMP characters and lone surrogates (U+FFFD): 3 bytes
    }
  }
  return n;
}

function varint32Size(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Size of a tag (1 byte: every field number here is < 16), length prefix and string. */
function stringField(s: string): number {
  const l = utf8Length(s);
  slots[top++] = l;
  return 1 + varint32Size(l) + l;
}

/** Size of an int32/enum field with a non-zero value, or FALLBACK if not an int32. */
function int32Field(v: number): number {
  if ((v | 0) !== v) return FALLBACK;
  return v < 0 ? 11 : 1 + varint32Size(v);
}

/** Size of the int64 varint of a safe integer (the generated encoder's `int64(number)`). */
function int64Size(v: number): number {
  if (v >= 0) {
    if (v <= 0xffffffff) return varint32Size(v);
    // 33 to 53 significant bits.
    let n = 5;
    for (let x = Math.floor(v / 0x800000000); x > 0; x = Math.floor(x / 128)) n++;
    return n;
  }
  return 10;
}

function sizeSubmessage(l: number): number {
  return 1 + varint32Size(l) + l;
}

/** Fields 1-5, the same in ChatCompletionChunk and ChatCompletion. */
function sizeHeader(c: ChatCompletionChunk | ChatCompletion): number {
  let n = 0;
  const { id, object, created, model, systemFingerprint } = c;
  if (typeof id !== "string" || typeof object !== "string" || typeof model !== "string" || typeof systemFingerprint !== "string") return FALLBACK;
  if (id !== "") n += stringField(id);
  if (object !== "") n += stringField(object);
  if (created !== 0) {
    if (!Number.isSafeInteger(created)) return FALLBACK;
    n += 1 + int64Size(created);
  }
  if (model !== "") n += stringField(model);
  if (systemFingerprint !== "") n += stringField(systemFingerprint);
  return n;
}

/** Fields 6-10 of a chunk. */
function sizeChunkBody(c: ChatCompletionChunk): number {
  let n = 0;
  const choices = c.choices;
  if (!Array.isArray(choices)) return FALLBACK;
  for (let i = 0; i < choices.length; i++) {
    const slot = top++;
    const l = sizeChunkChoice(choices[i]!);
    if (l < 0) return FALLBACK;
    slots[slot] = l;
    n += sizeSubmessage(l);
  }
  const tail = sizeTail(c.usage, c.timeInfo, c.serviceTier, c.serviceTierUsed);
  if (tail < 0) return FALLBACK;
  return n + tail;
}

/** Fields 6-10 of a completion. */
function sizeCompletionBody(c: ChatCompletion): number {
  let n = 0;
  const choices = c.choices;
  if (!Array.isArray(choices)) return FALLBACK;
  for (let i = 0; i < choices.length; i++) {
    const slot = top++;
    const l = sizeChoice(choices[i]!);
    if (l < 0) return FALLBACK;
    slots[slot] = l;
    n += sizeSubmessage(l);
  }
  const tail = sizeTail(c.usage, c.timeInfo, c.serviceTier, c.serviceTierUsed);
  if (tail < 0) return FALLBACK;
  return n + tail;
}

/** Fields 7-10, the same in ChatCompletionChunk and ChatCompletion. */
function sizeTail(usage: Usage | undefined, timeInfo: TimeInfo | undefined, serviceTier: string | undefined, serviceTierUsed: string | undefined): number {
  let n = 0;
  if (usage !== undefined) {
    const slot = top++;
    const l = sizeUsage(usage);
    if (l < 0) return FALLBACK;
    slots[slot] = l;
    n += sizeSubmessage(l);
  }
  if (timeInfo !== undefined) {
    const l = sizeTimeInfo(timeInfo);
    if (l < 0) return FALLBACK;
    n += sizeSubmessage(l); // no slot: recomputed cheaply when written
  }
  if (serviceTier !== undefined) {
    if (typeof serviceTier !== "string") return FALLBACK;
    n += stringField(serviceTier);
  }
  if (serviceTierUsed !== undefined) {
    if (typeof serviceTierUsed !== "string") return FALLBACK;
    n += stringField(serviceTierUsed);
  }
  return n;
}

function sizeChunkChoice(c: ChunkChoice): number {
  if (typeof c !== "object" || c === null) return FALLBACK;
  if (c.logprobs !== undefined || c.reasoningLogprobs !== undefined) return FALLBACK;
  let n = 0;
  const { index, delta, finishReason } = c;
  if (index !== 0) {
    const l = int32Field(index);
    if (l < 0) return FALLBACK;
    n += l;
  }
  if (delta !== undefined) {
    const slot = top++;
    const l = sizeDelta(delta);
    if (l < 0) return FALLBACK;
    slots[slot] = l;
    n += sizeSubmessage(l);
  }
  if (finishReason !== 0) {
    const l = int32Field(finishReason);
    if (l < 0) return FALLBACK;
    n += l;
  }
  return n;
}

function sizeDelta(d: Delta): number {
  if (typeof d !== "object" || d === null) return FALLBACK;
  let n = 0;
  const { role, content, reasoning, toolCalls } = d;
  if (role !== 0) {
    const l = int32Field(role);
    if (l < 0) return FALLBACK;
    n += l;
  }
  if (content !== undefined) {
    if (typeof content !== "string") return FALLBACK;
    n += stringField(content);
  }
  if (reasoning !== undefined) {
    if (typeof reasoning !== "string") return FALLBACK;
    n += stringField(reasoning);
  }
  if (!Array.isArray(toolCalls)) return FALLBACK;
  for (let i = 0; i < toolCalls.length; i++) {
    const slot = top++;
    const l = sizeToolCallDelta(toolCalls[i]!);
    if (l < 0) return FALLBACK;
    slots[slot] = l;
    n += sizeSubmessage(l);
  }
  return n;
}

function sizeToolCallDelta(t: ToolCallDelta): number {
  if (typeof t !== "object" || t === null) return FALLBACK;
  let n = 0;
  const { index, id, type } = t;
  const fn = t.function;
  if (index !== 0) {
    const l = int32Field(index);
    if (l < 0) return FALLBACK;
    n += l;
  }
  if (id !== undefined) {
    if (typeof id !== "string") return FALLBACK;
    n += stringField(id);
  }
  if (type !== undefined) {
    if (typeof type !== "string") return FALLBACK;
    n += stringField(type);
  }
  if (fn !== undefined) {
    const slot = top++;
    const l = sizeFunctionCallDelta(fn);
    if (l < 0) return FALLBACK;
    slots[slot] = l;
    n += sizeSubmessage(l);
  }
  return n;
}

function sizeFunctionCallDelta(f: FunctionCallDelta): number {
  if (typeof f !== "object" || f === null) return FALLBACK;
  let n = 0;
  const { name } = f;
  const args = f.arguments;
  if (name !== undefined) {
    if (typeof name !== "string") return FALLBACK;
    n += stringField(name);
  }
  if (args !== undefined) {
    if (typeof args !== "string") return FALLBACK;
    n += stringField(args);
  }
  return n;
}

function sizeChoice(c: Choice): number {
  if (typeof c !== "object" || c === null) return FALLBACK;
  if (c.logprobs !== undefined || c.reasoningLogprobs !== undefined) return FALLBACK;
  let n = 0;
  const { index, message, finishReason } = c;
  if (index !== 0) {
    const l = int32Field(index);
    if (l < 0) return FALLBACK;
    n += l;
  }
  if (message !== undefined) {
    const slot = top++;
    const l = sizeAssistantMessage(message);
    if (l < 0) return FALLBACK;
    slots[slot] = l;
    n += sizeSubmessage(l);
  }
  if (finishReason !== 0) {
    const l = int32Field(finishReason);
    if (l < 0) return FALLBACK;
    n += l;
  }
  return n;
}

function sizeAssistantMessage(m: AssistantMessage): number {
  if (typeof m !== "object" || m === null) return FALLBACK;
  let n = 0;
  const { role, content, reasoning, toolCalls } = m;
  if (role !== 0) {
    const l = int32Field(role);
    if (l < 0) return FALLBACK;
    n += l;
  }
  if (content !== undefined) {
    if (typeof content !== "string") return FALLBACK;
    n += stringField(content);
  }
  if (reasoning !== undefined) {
    if (typeof reasoning !== "string") return FALLBACK;
    n += stringField(reasoning);
  }
  if (!Array.isArray(toolCalls)) return FALLBACK;
  for (let i = 0; i < toolCalls.length; i++) {
    const slot = top++;
    const l = sizeToolCall(toolCalls[i]!);
    if (l < 0) return FALLBACK;
    slots[slot] = l;
    n += sizeSubmessage(l);
  }
  return n;
}

function sizeToolCall(t: ToolCall): number {
  if (typeof t !== "object" || t === null) return FALLBACK;
  let n = 0;
  const { id, type } = t;
  const fn = t.function;
  if (typeof id !== "string" || typeof type !== "string") return FALLBACK;
  if (id !== "") n += stringField(id);
  if (type !== "") n += stringField(type);
  if (fn !== undefined) {
    const slot = top++;
    const l = sizeFunctionCall(fn);
    if (l < 0) return FALLBACK;
    slots[slot] = l;
    n += sizeSubmessage(l);
  }
  return n;
}

function sizeFunctionCall(f: FunctionCall): number {
  if (typeof f !== "object" || f === null) return FALLBACK;
  let n = 0;
  const { name } = f;
  const args = f.arguments;
  if (typeof name !== "string" || typeof args !== "string") return FALLBACK;
  if (name !== "") n += stringField(name);
  if (args !== "") n += stringField(args);
  return n;
}

function sizeUsage(u: Usage): number {
  if (typeof u !== "object" || u === null) return FALLBACK;
  let n = 0;
  const { promptTokens, completionTokens, totalTokens, promptTokensDetails, completionTokensDetails, costUsd } = u;
  if (promptTokens !== 0) {
    const l = int32Field(promptTokens);
    if (l < 0) return FALLBACK;
    n += l;
  }
  if (completionTokens !== 0) {
    const l = int32Field(completionTokens);
    if (l < 0) return FALLBACK;
    n += l;
  }
  if (totalTokens !== 0) {
    const l = int32Field(totalTokens);
    if (l < 0) return FALLBACK;
    n += l;
  }
  if (promptTokensDetails !== undefined) {
    const slot = top++;
    const l = sizePromptTokensDetails(promptTokensDetails);
    if (l < 0) return FALLBACK;
    slots[slot] = l;
    n += sizeSubmessage(l);
  }
  if (completionTokensDetails !== undefined) {
    const slot = top++;
    const l = sizeCompletionTokensDetails(completionTokensDetails);
    if (l < 0) return FALLBACK;
    slots[slot] = l;
    n += sizeSubmessage(l);
  }
  if (costUsd !== undefined) {
    if (typeof costUsd !== "number") return FALLBACK;
    n += 9;
  }
  return n;
}

function sizePromptTokensDetails(p: PromptTokensDetails): number {
  if (typeof p !== "object" || p === null) return FALLBACK;
  const { cachedTokens } = p;
  return cachedTokens === 0 ? 0 : int32Field(cachedTokens);
}

function sizeCompletionTokensDetails(d: CompletionTokensDetails): number {
  if (typeof d !== "object" || d === null) return FALLBACK;
  let n = 0;
  const { reasoningTokens, acceptedPredictionTokens, rejectedPredictionTokens } = d;
  if (reasoningTokens !== 0) {
    const l = int32Field(reasoningTokens);
    if (l < 0) return FALLBACK;
    n += l;
  }
  if (acceptedPredictionTokens !== 0) {
    const l = int32Field(acceptedPredictionTokens);
    if (l < 0) return FALLBACK;
    n += l;
  }
  if (rejectedPredictionTokens !== 0) {
    const l = int32Field(rejectedPredictionTokens);
    if (l < 0) return FALLBACK;
    n += l;
  }
  return n;
}

function sizeTimeInfo(t: TimeInfo): number {
  if (typeof t !== "object" || t === null) return FALLBACK;
  let n = 0;
  const { queueTime, promptTime, completionTime, totalTime, created } = t;
  if (queueTime !== undefined) {
    if (typeof queueTime !== "number") return FALLBACK;
    n += 9;
  }
  if (promptTime !== undefined) {
    if (typeof promptTime !== "number") return FALLBACK;
    n += 9;
  }
  if (completionTime !== undefined) {
    if (typeof completionTime !== "number") return FALLBACK;
    n += 9;
  }
  if (totalTime !== undefined) {
    if (typeof totalTime !== "number") return FALLBACK;
    n += 9;
  }
  if (created !== undefined) {
    if (typeof created !== "number") return FALLBACK;
    n += 9;
  }
  return n;
}

// ---------------------------------------------------------------------------------------
// Writes. Only called after the size pass accepted the message, so no checks here. Each
// returns the position after what it wrote.

function varint32(buf: Buffer, pos: number, v: number): number {
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

/** A plain int32/enum field: its tag and value, or nothing at the proto3 default 0. */
function int32Tagged(buf: Buffer, pos: number, tag: number, v: number): number {
  if (v === 0) return pos;
  buf[pos++] = tag;
  return int32(buf, pos, v);
}

function int32(buf: Buffer, pos: number, v: number): number {
  if (v >= 0) return varint32(buf, pos, v);
  // Sign-extended to 64 bits: 10 bytes.
  for (let i = 0; i < 9; i++) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>= 7;
  }
  buf[pos++] = 1;
  return pos;
}

/** A safe integer as a two's-complement int64 varint (ported from BinaryWriter.writeVarint64). */
function int64(buf: Buffer, pos: number, v: number): number {
  if (v >= 0 && v <= 0xffffffff) return varint32(buf, pos, v);
  const hiPart = Math.floor(v / 0x100000000);
  const lo = (v - hiPart * 0x100000000) | 0;
  const hi = hiPart | 0;
  for (let i = 0; i < 28; i = i + 7) {
    const shift = lo >>> i;
    const hasNext = !(shift >>> 7 === 0 && hi === 0);
    buf[pos++] = (hasNext ? shift | 0x80 : shift) & 0xff;
    if (!hasNext) return pos;
  }
  const splitBits = ((lo >>> 28) & 0x0f) | ((hi & 0x07) << 4);
  const hasMoreBits = !(hi >> 3 === 0);
  buf[pos++] = (hasMoreBits ? splitBits | 0x80 : splitBits) & 0xff;
  if (!hasMoreBits) return pos;
  for (let i = 3; i < 31; i = i + 7) {
    const shift = hi >>> i;
    const hasNext = !(shift >>> 7 === 0);
    buf[pos++] = (hasNext ? shift | 0x80 : shift) & 0xff;
    if (!hasNext) return pos;
  }
  buf[pos++] = (hi >>> 31) & 0x01;
  return pos;
}

/** Tag, length and UTF-8 bytes of a string whose length the size pass recorded. */
function string(buf: Buffer, pos: number, tag: number, s: string): number {
  const l = slots[read++]!;
  buf[pos++] = tag;
  pos = l < 0x80 ? ((buf[pos] = l), pos + 1) : varint32(buf, pos, l);
  if (l === s.length) {
    // ASCII.
    if (l <= SHORT_WRITE) {
      for (let i = 0; i < l; i++) buf[pos + i] = s.charCodeAt(i);
    } else {
      (buf as NativeWriters).latin1Write(s, pos, l);
    }
  } else {
    (buf as NativeWriters).utf8Write(s, pos, l);
  }
  return pos + l;
}

/** Tag and length of a sub-message whose length the size pass recorded. */
function submessage(buf: Buffer, pos: number, tag: number): number {
  const l = slots[read++]!;
  buf[pos++] = tag;
  return l < 0x80 ? ((buf[pos] = l), pos + 1) : varint32(buf, pos, l);
}

function double(buf: Buffer, pos: number, tag: number, v: number): number {
  buf[pos++] = tag;
  buf.writeDoubleLE(v, pos);
  return pos + 8;
}

function writeHeader(buf: Buffer, pos: number, c: ChatCompletionChunk | ChatCompletion): number {
  if (c.id !== "") pos = string(buf, pos, 10, c.id);
  if (c.object !== "") pos = string(buf, pos, 18, c.object);
  if (c.created !== 0) {
    buf[pos++] = 24;
    pos = int64(buf, pos, c.created);
  }
  if (c.model !== "") pos = string(buf, pos, 34, c.model);
  if (c.systemFingerprint !== "") pos = string(buf, pos, 42, c.systemFingerprint);
  return pos;
}

function writeChunkBody(buf: Buffer, pos: number, c: ChatCompletionChunk): number {
  const choices = c.choices;
  for (let i = 0; i < choices.length; i++) {
    pos = submessage(buf, pos, 50);
    pos = writeChunkChoice(buf, pos, choices[i]!);
  }
  return writeTail(buf, pos, c.usage, c.timeInfo, c.serviceTier, c.serviceTierUsed);
}

function writeCompletionBody(buf: Buffer, pos: number, c: ChatCompletion): number {
  const choices = c.choices;
  for (let i = 0; i < choices.length; i++) {
    pos = submessage(buf, pos, 50);
    pos = writeChoice(buf, pos, choices[i]!);
  }
  return writeTail(buf, pos, c.usage, c.timeInfo, c.serviceTier, c.serviceTierUsed);
}

function writeTail(buf: Buffer, pos: number, usage: Usage | undefined, timeInfo: TimeInfo | undefined, serviceTier: string | undefined, serviceTierUsed: string | undefined): number {
  if (usage !== undefined) {
    pos = submessage(buf, pos, 58);
    pos = writeUsage(buf, pos, usage);
  }
  if (timeInfo !== undefined) {
    buf[pos++] = 66;
    buf[pos++] = sizeTimeInfo(timeInfo); // at most 45: one byte
    pos = writeTimeInfo(buf, pos, timeInfo);
  }
  if (serviceTier !== undefined) pos = string(buf, pos, 74, serviceTier);
  if (serviceTierUsed !== undefined) pos = string(buf, pos, 82, serviceTierUsed);
  return pos;
}

function writeChunkChoice(buf: Buffer, pos: number, c: ChunkChoice): number {
  pos = int32Tagged(buf, pos, 8, c.index);
  const d = c.delta;
  if (d !== undefined) {
    pos = submessage(buf, pos, 18);
    pos = writeDelta(buf, pos, d);
  }
  pos = int32Tagged(buf, pos, 24, c.finishReason);
  return pos;
}

function writeDelta(buf: Buffer, pos: number, d: Delta): number {
  pos = int32Tagged(buf, pos, 8, d.role);
  if (d.content !== undefined) pos = string(buf, pos, 18, d.content);
  if (d.reasoning !== undefined) pos = string(buf, pos, 26, d.reasoning);
  const calls = d.toolCalls;
  for (let i = 0; i < calls.length; i++) {
    pos = submessage(buf, pos, 34);
    pos = writeToolCallDelta(buf, pos, calls[i]!);
  }
  return pos;
}

function writeToolCallDelta(buf: Buffer, pos: number, t: ToolCallDelta): number {
  pos = int32Tagged(buf, pos, 8, t.index);
  if (t.id !== undefined) pos = string(buf, pos, 18, t.id);
  if (t.type !== undefined) pos = string(buf, pos, 26, t.type);
  const fn = t.function;
  if (fn !== undefined) {
    pos = submessage(buf, pos, 34);
    if (fn.name !== undefined) pos = string(buf, pos, 10, fn.name);
    if (fn.arguments !== undefined) pos = string(buf, pos, 18, fn.arguments);
  }
  return pos;
}

function writeChoice(buf: Buffer, pos: number, c: Choice): number {
  pos = int32Tagged(buf, pos, 8, c.index);
  const m = c.message;
  if (m !== undefined) {
    pos = submessage(buf, pos, 18);
    pos = writeAssistantMessage(buf, pos, m);
  }
  pos = int32Tagged(buf, pos, 24, c.finishReason);
  return pos;
}

function writeAssistantMessage(buf: Buffer, pos: number, m: AssistantMessage): number {
  pos = int32Tagged(buf, pos, 8, m.role);
  if (m.content !== undefined) pos = string(buf, pos, 18, m.content);
  if (m.reasoning !== undefined) pos = string(buf, pos, 26, m.reasoning);
  const calls = m.toolCalls;
  for (let i = 0; i < calls.length; i++) {
    pos = submessage(buf, pos, 34);
    pos = writeToolCall(buf, pos, calls[i]!);
  }
  return pos;
}

function writeToolCall(buf: Buffer, pos: number, t: ToolCall): number {
  if (t.id !== "") pos = string(buf, pos, 10, t.id);
  if (t.type !== "") pos = string(buf, pos, 18, t.type);
  const fn = t.function;
  if (fn !== undefined) {
    pos = submessage(buf, pos, 26);
    if (fn.name !== "") pos = string(buf, pos, 10, fn.name);
    if (fn.arguments !== "") pos = string(buf, pos, 18, fn.arguments);
  }
  return pos;
}

function writeUsage(buf: Buffer, pos: number, u: Usage): number {
  pos = int32Tagged(buf, pos, 8, u.promptTokens);
  pos = int32Tagged(buf, pos, 16, u.completionTokens);
  pos = int32Tagged(buf, pos, 24, u.totalTokens);
  const p = u.promptTokensDetails;
  if (p !== undefined) {
    pos = submessage(buf, pos, 34);
    if (p.cachedTokens !== 0) {
      buf[pos++] = 8;
      pos = int32(buf, pos, p.cachedTokens);
    }
  }
  const d = u.completionTokensDetails;
  if (d !== undefined) {
    pos = submessage(buf, pos, 42);
    if (d.reasoningTokens !== 0) {
      buf[pos++] = 8;
      pos = int32(buf, pos, d.reasoningTokens);
    }
    if (d.acceptedPredictionTokens !== 0) {
      buf[pos++] = 16;
      pos = int32(buf, pos, d.acceptedPredictionTokens);
    }
    if (d.rejectedPredictionTokens !== 0) {
      buf[pos++] = 24;
      pos = int32(buf, pos, d.rejectedPredictionTokens);
    }
  }
  if (u.costUsd !== undefined) pos = double(buf, pos, 49, u.costUsd);
  return pos;
}

function writeTimeInfo(buf: Buffer, pos: number, t: TimeInfo): number {
  if (t.queueTime !== undefined) pos = double(buf, pos, 9, t.queueTime);
  if (t.promptTime !== undefined) pos = double(buf, pos, 17, t.promptTime);
  if (t.completionTime !== undefined) pos = double(buf, pos, 25, t.completionTime);
  if (t.totalTime !== undefined) pos = double(buf, pos, 33, t.totalTime);
  if (t.created !== undefined) pos = double(buf, pos, 41, t.created);
  return pos;
}

// Buffer's native string writers (on Buffer.prototype since Node 0.x, not in @types/node):
// `buf.write(s, offset, length, encoding)` without the encoding lookup and argument checks.
type NativeWriters = Buffer & {
  utf8Write(s: string, offset: number, length: number): number;
  latin1Write(s: string, offset: number, length: number): number;
};
