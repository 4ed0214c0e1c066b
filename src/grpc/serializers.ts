/**
 * The gRPC reply serializers: the generated fast encoders (gen/**\/*.encode.ts, from
 * scripts/protoc-gen-fast-encode.mjs: one size pass, one exact-sized Buffer, ts-proto's
 * bytes) hooked into grpc-js's service definitions, plus the one thing the schema does not
 * say: which fields of a streamed chunk stay the same for the whole stream.
 * `withFastSerializers(ChatServiceService)` and `withFastModelSerializers(ModelServiceService)`
 * are the service definitions to register.
 *
 * The generated `responseSerialize` is `Buffer.from(X.encode(value).finish())`: a
 * BinaryWriter's growing buffer, a fork per sub-message, a `finish()` copy and a
 * `Buffer.from` copy. grpc-js then copies the bytes into its own length-prefixed frame
 * anyway (`serializeMessage` in @grpc/grpc-js/build/src/server-interceptors.js), so the
 * Buffer returned here is used once, synchronously.
 *
 * The per-stream header cache: a chunk's id, object, created, model and system_fingerprint
 * are the same on every chunk of a stream and are ≈ 90% of a content chunk's bytes. When
 * they are the message's leading members (they are: fields 1-5, written first), their
 * encoding is copied, from a stream's third chunk on, from a small cache keyed by those
 * five values; the rest of the chunk is written by the generated ranged encoder after them.
 */
import {
  ChatServiceService,
  type ChatCompletionChunk,
} from "../../gen/aigateway/v1/chat.js";
import {
  ChatCompletionChunkMembers,
  ChatServiceResponseEncoders,
  encodeChatCompletionChunk,
  sizeChatCompletionChunkRange,
  writeChatCompletionChunkRange,
} from "../../gen/aigateway/v1/chat.encode.js";
import { ModelServiceService } from "../../gen/aigateway/v1/models.js";
import { ModelServiceResponseEncoders } from "../../gen/aigateway/v1/models.encode.js";
import { beginSize, beginWrite, FALLBACK, grew } from "../../gen/encode-runtime.js";

/** The members of a chunk that are the same on every chunk of a stream (what the cache keys on). */
const STREAM_CONSTANT = ["id", "object", "created", "model", "systemFingerprint"] as const satisfies readonly (keyof ChatCompletionChunk)[];

/**
 * How many of the chunk's leading members (in the order they are written) are stream
 * constants: the cached header is the encoding of members [0, HEADER_END). 0 disables the
 * cache (a reordered proto still encodes correctly, only without it).
 */
export const HEADER_END = leadingRun(ChatCompletionChunkMembers, STREAM_CONSTANT);
const MEMBER_COUNT = ChatCompletionChunkMembers.length;

function leadingRun(members: readonly string[], constant: readonly string[]): number {
  let n = 0;
  while (n < members.length && constant.includes(members[n]!)) n++;
  return n;
}

/** Encodes a chunk; bytes identical to ts-proto's `ChatCompletionChunk.encode`. The Buffer is the caller's. */
export function serializeChunk(chunk: ChatCompletionChunk): Buffer {
  if (HEADER_END === 0) return encodeChatCompletionChunk(chunk);
  const id = chunk.id;
  const key = headerKeys[typeof id === "string" ? headerSlot(id) : 0]!;
  if (key.id !== id || key.created !== chunk.created || key.model !== chunk.model || key.systemFingerprint !== chunk.systemFingerprint || key.object !== chunk.object) {
    // A new stream (or another one in this entry): encoded whole, its key remembered. Its
    // header is cached from its second chunk on, not from this one: when more streams than
    // entries take turns, every chunk misses, and a miss should cost no more than a key update.
    key.id = id;
    key.object = chunk.object;
    key.created = chunk.created;
    key.model = chunk.model;
    key.systemFingerprint = chunk.systemFingerprint;
    key.bytes = undefined;
    return encodeChatCompletionChunk(chunk);
  }
  const cached = key.bytes;
  let headerSize = 0;
  let bodySize = 0;
  for (let attempt = 0; attempt < 2; attempt++) {
    beginSize();
    headerSize = cached !== undefined ? cached.length : sizeChatCompletionChunkRange(chunk, 0, HEADER_END);
    bodySize = headerSize < 0 || headerSize > HEADER_MAX ? FALLBACK : sizeChatCompletionChunkRange(chunk, HEADER_END, MEMBER_COUNT);
    if (bodySize < 0 || !grew()) break;
  }
  // A value the fast path does not take, or a header too long to cache: encoded whole
  // (the generated entry point hands what it does not take to ts-proto).
  if (bodySize < 0) return encodeChatCompletionChunk(chunk);
  const buf = Buffer.allocUnsafe(headerSize + bodySize);
  beginWrite();
  let end = headerSize;
  if (cached !== undefined) {
    buf.set(cached, 0); // TypedArray#set: a builtin, no C++ call
  } else {
    // The stream's second chunk: encode the header into its cache entry, then copy it.
    const bytes = headerCache.subarray(key.offset, key.offset + headerSize);
    end = writeChatCompletionChunkRange(bytes, 0, chunk, 0, HEADER_END);
    buf.set(bytes, 0);
    if (end === headerSize) key.bytes = bytes;
  }
  // The two passes disagreeing would be a bug here; never send bytes allocUnsafe left unwritten.
  if (end !== headerSize || writeChatCompletionChunkRange(buf, headerSize, chunk, HEADER_END, MEMBER_COUNT) !== buf.length) return encodeChatCompletionChunk(chunk);
  return buf;
}

/**
 * A copy of the ChatService definition whose response serializers are the generated fast
 * encoders (the stream's with the header cache above). Request (de)serializers and
 * response deserializers are unchanged, so the copy can also back a client. Use:
 * `server.addService(withFastSerializers(ChatServiceService), impl)`.
 */
export function withFastSerializers(definition: typeof ChatServiceService = ChatServiceService): typeof ChatServiceService {
  return withEncoders(definition, { ...ChatServiceResponseEncoders, [ChatServiceService.streamChatCompletion.path]: serializeChunk });
}

/** The same for ModelService: `server.addService(withFastModelSerializers(ModelServiceService), impl)`. */
export function withFastModelSerializers(definition: typeof ModelServiceService = ModelServiceService): typeof ModelServiceService {
  return withEncoders(definition, ModelServiceResponseEncoders);
}

interface MethodDefinition {
  readonly path: string;
  readonly responseSerialize: (value: never) => Buffer;
}

/** `definition` with each method's responseSerialize replaced by the encoder for its path, if there is one. */
function withEncoders<D extends Readonly<Record<string, MethodDefinition>>>(definition: D, encoders: Readonly<Record<string, (value: never) => Buffer>>): D {
  const out: Record<string, MethodDefinition> = { ...definition };
  for (const [name, method] of Object.entries(definition)) {
    const encode = encoders[method.path];
    if (encode !== undefined) out[name] = { ...method, responseSerialize: encode };
  }
  // The generated table maps each path to the encoder of that method's output type, so the
  // copy has the definition's types.
  return out as D;
}

// ---------------------------------------------------------------------------------------
// The header cache: the encoded leading members of recent streams, in a direct-mapped table
// indexed by a hash of the id (so concurrent streams mostly keep their own entry). An entry
// is used only if all five values are equal (===) to the ones it was encoded from, so a
// collision or a changed field costs a miss, never wrong bytes.

interface HeaderKey {
  id: unknown;
  object: unknown;
  created: unknown;
  model: unknown;
  systemFingerprint: unknown;
  /** The encoded header (a view of `headerCache`), once the key has been seen twice in a row. */
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
