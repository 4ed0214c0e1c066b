/**
 * The gRPC request deserializers: the generated decoders, behind a door that refuses
 * what they cannot handle as the caller's mistake it is, not as INTERNAL.
 *
 * grpc-js turns any throw from a deserializer into INTERNAL "Error deserializing
 * request". The decoder reads strings strictly (invalid UTF-8 is refused, as protobuf
 * requires of `string` fields, instead of becoming U+FFFD), and a seed beyond ±2^53
 * (what a JavaScript number holds exactly) is named as such. Two other inputs make the
 * generated decoder throw: JSON values (google.protobuf
 * Struct) nested past its limit of 100 message levels (a JSON object spends three), and
 * bytes that are not the message at all. So, before decoding, one iterative pass over
 * the fields that can hold a Struct (found from the descriptor set, not listed by hand)
 * measures their JSON depth; past MAX_JSON_DEPTH, or when decoding fails anyway, the
 * "request" handed to grpc-js is a placeholder registered here with the refusal, which
 * the handler adapter throws before anything else (handlers.ts: `decodeRefusal`).
 */
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { FieldDescriptorProto_Label, FieldDescriptorProto_Type, FileDescriptorSetSchema, type DescriptorProto } from "@bufbuild/protobuf/wkt";
import { ChatCompletionRequest, type ChatServiceService } from "../../gen/aigateway/v1/chat.js";
import { DESCRIPTOR_SET_BASE64 } from "../../gen/descriptor.js";
import { Code, GatewayError, Reason } from "../core/errors.js";
import { jsonTooDeep, MAX_JSON_DEPTH } from "../core/validate.js";

/** The two JSON container types: entering one is one level of JSON nesting. */
const JSON_LEVELS = new Set(["google.protobuf.Struct", "google.protobuf.ListValue"]);

/** Requests the handler adapters must refuse, with why. */
const refusals = new WeakMap<object, GatewayError>();

/** The refusal a deserializer registered for `request`, if it is a placeholder. */
export function decodeRefusal(request: unknown): GatewayError | undefined {
  return typeof request === "object" && request !== null ? refusals.get(request) : undefined;
}

/**
 * A copy of the ChatService definition whose request deserializers go through the door
 * above (responses are untouched, so it composes with withFastSerializers).
 */
export function withRequestChecks(definition: typeof ChatServiceService): typeof ChatServiceService {
  const fields = structFields("aigateway.v1.ChatCompletionRequest");
  // Both methods take a ChatCompletionRequest: the generated decoder, over a strict reader.
  const requestDeserialize = (bytes: Buffer): ChatCompletionRequest => checkedDecode(bytes, fields, decodeStrict);
  return {
    ...definition,
    createChatCompletion: { ...definition.createChatCompletion, requestDeserialize },
    streamChatCompletion: { ...definition.streamChatCompletion, requestDeserialize },
  };
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Thrown (by TextDecoder) for a string field that is not UTF-8. */
class NotUtf8 extends Error {}

function decodeStrict(bytes: Buffer): ChatCompletionRequest {
  return ChatCompletionRequest.decode(
    new BinaryReader(bytes, (b) => {
      try {
        return strictUtf8.decode(b);
      } catch {
        throw new NotUtf8();
      }
    }),
  );
}

/** ChatCompletionRequest.seed's field number: the request's only int64. */
const SEED_FIELD = 14;

/** Whether the top-level seed holds more than a JavaScript number can (the generated decoder throws on it). */
function seedOutOfRange(bytes: Uint8Array): boolean {
  try {
    const r = new BinaryReader(bytes);
    while (r.pos < r.len) {
      const [number, wireType] = r.tag();
      if (number === SEED_FIELD && wireType === WireType.Varint) {
        const seed = BigInt(r.int64());
        if (seed > BigInt(Number.MAX_SAFE_INTEGER) || seed < BigInt(Number.MIN_SAFE_INTEGER)) return true;
      } else {
        r.skip(wireType);
      }
    }
  } catch {
    // not protobuf at all: the generic refusal says so
  }
  return false;
}

function checkedDecode<T>(bytes: Buffer, fields: FieldNode, decode: (bytes: Buffer) => T): T {
  let tooDeep: string | undefined;
  try {
    tooDeep = deepJsonField(bytes, fields);
    if (tooDeep === undefined) return decode(bytes);
  } catch (err) {
    if (err instanceof NotUtf8) {
      return refused<T>(new GatewayError({ code: Code.INVALID_ARGUMENT, reason: Reason.INVALID_REQUEST, message: "invalid request: a string field is not valid UTF-8" }));
    }
    if (seedOutOfRange(bytes)) {
      return refused<T>(GatewayError.invalidArgument([{ field: "seed", description: `must be between ${Number.MIN_SAFE_INTEGER} and ${Number.MAX_SAFE_INTEGER} (±2^53 - 1)` }]));
    }
    // Not a ChatCompletionRequest at all (a truncated varint, a length past the end…).
    return refused<T>(
      new GatewayError({ code: Code.INVALID_ARGUMENT, reason: Reason.INVALID_REQUEST, message: "invalid request: the message is not a valid aigateway.v1.ChatCompletionRequest" }),
    );
  }
  return refused<T>(GatewayError.invalidArgument([jsonTooDeep(tooDeep)]));
}

function refused<T>(error: GatewayError): T {
  const placeholder = {};
  refusals.set(placeholder, error);
  // Never read as a request: the handler adapter throws the refusal first.
  return placeholder as T;
}

// ---- which fields can hold JSON, from the descriptor set ---------------------------

/** A message type, reduced to its fields that lead to a Struct (others are skipped unread). */
interface FieldNode {
  readonly fields: Map<number, { readonly name: string; readonly repeated: boolean; readonly json: boolean; readonly type: FieldNode }>;
}

/** The tree of Struct-bearing fields under `root` (cyclic through Struct ↔ Value ↔ ListValue). */
function structFields(root: string): FieldNode {
  const types = new Map<string, DescriptorProto>();
  for (const file of fromBinary(FileDescriptorSetSchema, Buffer.from(DESCRIPTOR_SET_BASE64, "base64")).file) {
    const index = (scope: string, messages: readonly DescriptorProto[]): void => {
      for (const m of messages) {
        types.set(scope + m.name, m);
        index(`${scope}${m.name}.`, m.nestedType);
      }
    };
    index(file.package ? `${file.package}.` : "", file.messageType);
  }
  const messageFields = (name: string) =>
    (types.get(name)?.field ?? []).filter((f) => f.type === FieldDescriptorProto_Type.MESSAGE).map((f) => ({ f, type: f.typeName.replace(/^\./, "") }));

  // Types from which a Struct can be reached.
  const leadsToJson = new Set<string>(JSON_LEVELS);
  for (let grew = true; grew; ) {
    grew = false;
    for (const name of types.keys()) {
      if (leadsToJson.has(name) || !messageFields(name).some(({ type }) => leadsToJson.has(type))) continue;
      leadsToJson.add(name);
      grew = true;
    }
  }
  const nodes = new Map<string, FieldNode>();
  const node = (name: string): FieldNode => {
    let n = nodes.get(name);
    if (n !== undefined) return n;
    n = { fields: new Map() };
    nodes.set(name, n);
    for (const { f, type } of messageFields(name)) {
      if (!leadsToJson.has(type)) continue;
      n.fields.set(f.number, { name: f.name, repeated: f.label === FieldDescriptorProto_Label.REPEATED, json: JSON_LEVELS.has(type), type: node(type) });
    }
    return n;
  };
  return node(root);
}

// ---- the depth pass ---------------------------------------------------------------

/**
 * The proto path of the first Struct-typed field whose JSON nests deeper than
 * MAX_JSON_DEPTH, or undefined. One pass over the bytes with an explicit stack (which
 * never grows past MAX_JSON_DEPTH levels, three frames each, plus the schema's own
 * nesting), skipping every field that cannot lead to a Struct, or is too short to nest
 * past the limit, without looking inside; no allocation per field. Throws on bytes that
 * are not protobuf (the generated decoder would throw on the rest).
 */
function deepJsonField(bytes: Uint8Array, root: FieldNode): string | undefined {
  const scan = new Scanner(bytes);
  const nodes: FieldNode[] = [root];
  const ends: number[] = [bytes.length];
  const depths: number[] = [0];
  // Outside JSON values only (a few frames): the path, and repeated fields' counts for its indices.
  const paths: string[] = [""];
  const seen: Array<Map<number, number> | undefined> = [undefined];
  /** Index of the frame of the JSON value being walked (its path names a violation); -1 outside. */
  let jsonFrame = -1;
  let top = 0;
  while (top >= 0) {
    if (scan.pos >= ends[top]!) {
      if (scan.pos > ends[top]!) throw new Error("a field runs past its message");
      if (top === jsonFrame) jsonFrame = -1;
      top--;
      continue;
    }
    const tag = scan.varint32();
    const number = tag >>> 3;
    const wireType = tag & 7;
    const field = wireType === WireType.LengthDelimited ? nodes[top]!.fields.get(number) : undefined;
    if (field === undefined) {
      scan.skip(wireType);
      continue;
    }
    const length = scan.varint32();
    const end = scan.pos + length;
    if (end > ends[top]!) throw new Error("a field runs past its message");
    const depth = depths[top]! + (field.json ? 1 : 0);
    // Each further JSON level costs at least 4 bytes (two message headers: ListValue → Value →
    // ListValue, or more for objects): a field too short to reach the limit is skipped unread.
    if (depth + ((length + 2) >> 2) <= MAX_JSON_DEPTH) {
      scan.pos = end;
      continue;
    }
    top++;
    nodes[top] = field.type;
    ends[top] = end;
    depths[top] = depth;
    if (jsonFrame === -1) {
      let counts = seen[top - 1];
      let path = paths[top - 1]!;
      path += `${path === "" ? "" : "."}${field.name}`;
      if (field.repeated) {
        counts ??= seen[top - 1] = new Map();
        const index = counts.get(number) ?? 0;
        counts.set(number, index + 1);
        path += `.${index}`;
      }
      paths[top] = path;
      seen[top] = undefined;
      if (field.json) jsonFrame = top;
    }
    if (depth > MAX_JSON_DEPTH) return paths[jsonFrame]!;
  }
  return undefined;
}

/** Protobuf wire reading, just enough to find and skip fields. */
class Scanner {
  pos = 0;

  constructor(private readonly buf: Uint8Array) {}

  /** A varint of up to 32 bits (tags, lengths); throws past the end or on a longer one. */
  varint32(): number {
    const buf = this.buf;
    let value = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = buf[this.pos++];
      if (b === undefined) throw new Error("truncated varint");
      value |= (b & 0x7f) << shift;
      if (b < 0x80) return value >>> 0;
    }
    throw new Error("varint too long");
  }

  /** Skips a value of this wire type; groups (proto2) iteratively, however nested. */
  skip(wireType: number): void {
    let groups = 0;
    for (;;) {
      switch (wireType) {
        case WireType.Varint:
          for (let i = 0; ; i++) {
            if (this.pos >= this.buf.length || i >= 10) throw new Error("bad varint");
            if ((this.buf[this.pos++]! & 0x80) === 0) break;
          }
          break;
        case WireType.Bit64:
          this.pos += 8;
          break;
        case WireType.Bit32:
          this.pos += 4;
          break;
        case WireType.LengthDelimited: {
          const length = this.varint32(); // read first: `pos += varint32()` would add to the old pos
          this.pos += length;
          break;
        }
        case WireType.StartGroup:
          groups++;
          break;
        case WireType.EndGroup:
          if (groups === 0) throw new Error("unexpected end group");
          groups--;
          break;
        default:
          throw new Error(`bad wire type ${wireType}`);
      }
      if (this.pos > this.buf.length) throw new Error("a field runs past the message");
      if (groups === 0) return;
      wireType = this.varint32() & 7;
    }
  }
}
