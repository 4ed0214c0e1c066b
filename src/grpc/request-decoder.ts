/**
 * The gRPC request deserializers: the generated decoders, behind a door that refuses
 * what they cannot handle as the caller's mistake it is, not as INTERNAL.
 *
 * grpc-js turns any throw from a deserializer into INTERNAL "Error deserializing
 * request". Two inputs make the generated decoder throw: JSON values (google.protobuf
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
import type { ChatServiceService } from "../../gen/aigateway/v1/chat.js";
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
  const wrap = <T>(decode: (bytes: Buffer) => T): ((bytes: Buffer) => T) => (bytes) => checkedDecode(bytes, fields, decode);
  return {
    ...definition,
    createChatCompletion: { ...definition.createChatCompletion, requestDeserialize: wrap(definition.createChatCompletion.requestDeserialize) },
    streamChatCompletion: { ...definition.streamChatCompletion, requestDeserialize: wrap(definition.streamChatCompletion.requestDeserialize) },
  };
}

function checkedDecode<T>(bytes: Buffer, fields: FieldNode, decode: (bytes: Buffer) => T): T {
  let tooDeep: string | undefined;
  try {
    tooDeep = deepJsonField(bytes, fields);
    if (tooDeep === undefined) return decode(bytes);
  } catch {
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

interface Frame {
  readonly node: FieldNode;
  readonly end: number;
  /** Proto path of this message ("tools.0.function"); inside a JSON value, the value's field. */
  readonly path: string;
  readonly depth: number;
  /** Set inside a JSON value: the path of its field, which is what a violation names. */
  readonly jsonField: string | undefined;
  /** Occurrences so far of each repeated field, for the index in the path. */
  readonly seen: Map<number, number>;
}

/**
 * The proto path of the first Struct-typed field whose JSON nests deeper than
 * MAX_JSON_DEPTH, or undefined. Iterative with an explicit stack, which never grows
 * past MAX_JSON_DEPTH levels (three frames each) plus the schema's own nesting. Throws
 * on bytes that are not protobuf.
 */
function deepJsonField(bytes: Uint8Array, root: FieldNode): string | undefined {
  const reader = new BinaryReader(bytes);
  const stack: Frame[] = [{ node: root, end: bytes.length, path: "", depth: 0, jsonField: undefined, seen: new Map() }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (reader.pos >= top.end) {
      if (reader.pos > top.end) throw new Error("a field runs past its message");
      stack.pop();
      continue;
    }
    const [number, wireType] = reader.tag();
    const field = top.node.fields.get(number);
    if (field === undefined || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType, number);
      continue;
    }
    const length = reader.uint32();
    const end = reader.pos + length;
    if (end > top.end) throw new Error("a field runs past its message");
    let path = top.path;
    if (top.jsonField === undefined) {
      const index = top.seen.get(number) ?? 0;
      top.seen.set(number, index + 1);
      path = `${top.path}${top.path === "" ? "" : "."}${field.name}${field.repeated ? `.${index}` : ""}`;
    }
    const jsonField = top.jsonField ?? (field.json ? path : undefined);
    const depth = top.depth + (field.json ? 1 : 0);
    if (depth > MAX_JSON_DEPTH) return jsonField;
    stack.push({ node: field.type, end, path, depth, jsonField, seen: new Map() });
  }
  return undefined;
}
