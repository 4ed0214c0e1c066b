/**
 * Test values for the generated encoders, made from the descriptors: for every field of a
 * message, the message with that field set to each of a list of values chosen for its type
 * (defaults, boundaries, negative numbers, int64 near 2^53, non-ASCII and lone surrogates,
 * empty and non-empty lists and maps, every oneof case, optional presence, nested
 * messages, Struct values), as ts-proto's objects, so a field added to the proto is tested
 * without a test written for it. Plus values of the wrong JS type, for the fallback path.
 *
 * The ts-proto shapes are rebuilt here from the descriptors (property names, oneof
 * unions, Struct as plain objects) independently of the plugin; a name this file got wrong
 * would show as a field that never changes ts-proto's bytes (`changesBytes` in the tests).
 */
import { ScalarType, type DescField, type DescFile, type DescMessage, type DescOneof } from "@bufbuild/protobuf";
import { expect, vi } from "vitest";

/** A ts-proto message module's message object (`X.encode`, `X.fromPartial`). */
export interface MessageFns {
  encode(message: unknown): { finish(): Uint8Array };
  fromPartial(object: unknown): Record<string, unknown>;
}

export interface FieldCase {
  readonly label: string;
  readonly value: unknown;
}

const STRUCT = "google.protobuf.Struct";
const VALUE = "google.protobuf.Value";
const LIST_VALUE = "google.protobuf.ListValue";
const WRAPPER = /^google\.protobuf\.(Double|Float|Int64|UInt64|Int32|UInt32|Bool|String|Bytes)Value$/;

/** ts-proto's property name for a field or oneof (snake_case to camelCase when it has an underscore). */
export function propertyName(name: string): string {
  if (!name.includes("_")) return name;
  const hasLower = /[a-z]/.test(name);
  return name
    .split("_")
    .map((w, i) => {
      const word = hasLower ? w : w.toLowerCase();
      return i === 0 ? word : word.charAt(0).toUpperCase() + word.slice(1);
    })
    .join("");
}

/** ts-proto's exported name of a message: its path in the package, "." → "_". */
export function tsName(m: DescMessage): string {
  const pkg = m.file.proto.package;
  return (pkg === "" ? m.typeName : m.typeName.slice(pkg.length + 1)).replace(/\./g, "_");
}

const STRINGS: readonly (readonly [string, string])[] = [
  ["empty", ""],
  ["ASCII", "a"],
  ["2-byte UTF-8", "é"],
  ["3-byte UTF-8", "東京"],
  ["emoji (a surrogate pair)", "🙂"],
  ["lone high surrogate", "x\ud800y"],
  ["lone low surrogate", "\udc00"],
  ["trailing high surrogate", "🙂\ud83d"],
  ["reversed surrogate pair", "\ude00\ud83d"],
  ["UTF-8 length boundaries", "\u0000\u007f\u0080\u07ff\u0800\uffff\u{10000}\u{10ffff}"],
  ["12 units, non-ASCII last", "abcdefghijké"],
  ["13 units, non-ASCII last", "abcdefghijklé"],
  ["13 units, emoji at the end", "abcdefghijk🙂"],
  ["16 ASCII bytes", "abcdefghijklmnop"],
  ["17 ASCII bytes", "abcdefghijklmnopq"],
  ["127 bytes", "x".repeat(127)],
  ["128 bytes (2-byte length)", "x".repeat(128)],
  ["100 × é", "é".repeat(100)],
  ["lone surrogates in a long string", `${"a".repeat(40)}\ud800${"b".repeat(40)}\udfff`],
  ["16384 bytes (3-byte length)", "z".repeat(16384)],
  ["6000 × 東", "東".repeat(6000)],
];

const INT32 = [0, -0, 1, 127, 128, 300, 16383, 16384, -1, -128, 2147483647, -2147483648];
const UINT32 = [0, 1, 127, 128, 2 ** 31, 4294967295];
const INT64 = [0, 1, -1, 127, 128, 2 ** 31, 2 ** 32 - 1, 2 ** 32, -(2 ** 32) - 1, 2 ** 35, 2 ** 42 + 5, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53, 2 ** 53 + 2, 2 ** 62, -(2 ** 63), 2 ** 63 - 1024];
const UINT64 = [0, 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 63, 2 ** 64 - 2048];
const DOUBLES = [0, -0, 1, -1.5, 0.1, 1e-300, Number.MAX_VALUE, Number.MIN_VALUE, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53 + 2];
const FLOATS = [0, -0, 1.5, 0.1, 3.4028234663852886e38, 1e-46, -2.5e-40, Number.NaN, Number.POSITIVE_INFINITY];

/** A Struct whose values cover every Value kind, nesting, key orders and keys ts-proto treats specially. */
function structSample(): Record<string, unknown> {
  return {
    a: null,
    yes: true,
    no: false,
    n: 1.5,
    zero: 0,
    negZero: -0,
    big: 2 ** 60,
    nan: Number.NaN,
    s: "x",
    e: "",
    u: "é🙂\ud800",
    list: [1, "a", null, true, [], {}, [[]], undefined, { k: [null] }],
    obj: { nested: { deep: [{}], t: "東" } },
    "": "empty key",
    "2": "integer keys come first",
    "1": 2,
    skipped: undefined,
    ...(JSON.parse('{"__proto__": {"x": 1}}') as object), // an own "__proto__" key, as JSON.parse makes it
    long: "y".repeat(200),
  };
}

const TIMESTAMP = "google.protobuf.Timestamp";
const FIELD_MASK = "google.protobuf.FieldMask";

function valueSamples(typeName: string): (readonly [string, unknown])[] {
  if (typeName === STRUCT) return [["empty Struct", {}], ["every Value kind", structSample()], ["an array as a Struct", [1, 2]], ["a Date (no own keys)", new Date(0)]];
  if (typeName === LIST_VALUE) return [["empty list", []], ["mixed list", [1, "a", null, false, {}, [2]]], ["holes and undefined", [undefined, , 3]]];
  return [
    ["null", null],
    ["true", true],
    ["0", 0],
    ["-0", -0],
    ["string", "é🙂"],
    ["empty list", []],
    ["empty object", {}],
    ["nested", [1, { a: [null, "x"] }]],
  ];
}

function scalarSamples(scalar: ScalarType): (readonly [string, unknown])[] {
  const num = (xs: readonly number[]) => xs.map((x) => [Object.is(x, -0) ? "-0" : String(x), x] as const);
  switch (scalar) {
    case ScalarType.STRING:
      return STRINGS.map(([l, s]) => [l, s] as const);
    case ScalarType.BYTES:
      return [["empty", Buffer.alloc(0)], ["3 bytes", Buffer.from([0, 1, 255])], ["200 bytes", Buffer.alloc(200, 7)]];
    case ScalarType.BOOL:
      return [["false", false], ["true", true]];
    case ScalarType.DOUBLE:
      return num(DOUBLES);
    case ScalarType.FLOAT:
      return num(FLOATS);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return num(INT32);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return num(UINT32);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return num(INT64);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return num(UINT64);
  }
}

/** Builds ts-proto objects for the messages of a set of modules. */
export class CaseMaker {
  constructor(private readonly fns: (m: DescMessage) => MessageFns) {}

  /** The message with every field at its default (ts-proto's own base object). */
  base(m: DescMessage): Record<string, unknown> {
    return this.fns(m).fromPartial({});
  }

  /** A message with every field set to a non-default value (nested messages to `depth` levels). */
  full(m: DescMessage, depth = 0): Record<string, unknown> {
    const out = this.base(m);
    for (const f of m.fields) {
      if (f.oneof !== undefined) {
        if (f.oneof.fields[0] === f) out[propertyName(f.oneof.name)] = { $case: propertyName(f.name), value: this.one(f, depth) };
        continue;
      }
      const key = propertyName(f.name);
      if (f.fieldKind === "list") out[key] = [this.one(f, depth), this.one(f, depth)];
      else if (f.fieldKind === "map") out[key] = { a: this.one(f, depth), "é": this.one(f, depth) };
      else out[key] = this.one(f, depth);
    }
    return out;
  }

  /** One representative non-default value of a field's element type. */
  private one(f: DescField, depth: number): unknown {
    if (f.message !== undefined) {
      if (f.message.typeName === STRUCT) return { k: "v", n: [1, null] };
      if (f.message.typeName === VALUE) return { v: [true] };
      if (f.message.typeName === LIST_VALUE) return ["x", 2];
      if (f.message.typeName === TIMESTAMP) return new Date(1761231233730);
      if (f.message.typeName === FIELD_MASK) return ["a.b", "c"];
      if (WRAPPER.test(f.message.typeName)) return representative(scalarSamples(f.message.fields[0]!.scalar!));
      return depth >= 3 ? this.base(f.message) : this.full(f.message, depth + 1);
    }
    if (f.enum !== undefined) return f.enum.values[1]?.number ?? 1;
    return representative(scalarSamples(f.scalar!));
  }

  /** The values of one element of a field (a list's element, a map's value, the field itself). */
  private samples(f: DescField): (readonly [string, unknown])[] {
    if (f.message !== undefined) {
      const t = f.message.typeName;
      if (t === STRUCT || t === VALUE || t === LIST_VALUE) return valueSamples(t);
      // ts-proto's representations of these two (useDate; FieldMask.wrap).
      if (t === TIMESTAMP) return [["the epoch", new Date(0)], ["a date", new Date(1761231233730)]];
      if (t === FIELD_MASK) return [["no paths", []], ["two paths", ["a.b", "c"]]];
      if (WRAPPER.test(t)) return scalarSamples(f.message.fields[0]!.scalar!);
      return [["all defaults", this.base(f.message)], ["every field set", this.full(f.message, 1)]];
    }
    if (f.enum !== undefined) {
      return [...f.enum.values.map((v) => [v.name, v.number] as const), ["unknown value 99", 99], ["negative -3", -3]];
    }
    return scalarSamples(f.scalar!);
  }

  /** `m` with the member that holds field `f` set to each sample, labelled. */
  cases(m: DescMessage, f: DescField): FieldCase[] {
    const base = this.base(m);
    const key = f.oneof !== undefined ? propertyName(f.oneof.name) : propertyName(f.name);
    const withValue = (label: string, v: unknown): FieldCase => ({ label, value: { ...base, [key]: v } });
    if (f.oneof !== undefined) return this.samples(f).map(([l, v]) => withValue(`${propertyName(f.name)} = ${l}`, { $case: propertyName(f.name), value: v }));
    const samples = this.samples(f);
    if (f.fieldKind === "list") {
      return [withValue("[]", []), ...samples.map(([l, v]) => withValue(`[${l}]`, [v])), withValue("every sample", samples.map(([, v]) => v))];
    }
    if (f.fieldKind === "map") {
      const entries = Object.fromEntries(samples.map(([, v], i) => [`key ${i} é`, v]));
      return [withValue("{}", {}), withValue("empty key", { "": samples[0]![1] }), withValue("integer-like keys", { "10": samples[1]?.[1], "2": samples[0]![1] }), withValue("every sample", entries)];
    }
    // Absent where the property may be undefined (optional fields, messages), then every sample.
    const absent = f.proto.proto3Optional || f.fieldKind === "message" ? [withValue("undefined", undefined)] : [];
    return [...absent, ...samples.map(([l, v]) => withValue(l, v))];
  }

  /** Every member case of `m`: one group per field (a oneof's fields each). */
  groups(m: DescMessage): { field: DescField; cases: FieldCase[] }[] {
    return m.fields.map((field) => ({ field, cases: this.cases(m, field) }));
  }

  /** Values of the wrong JS type for a field: the fast path must give ts-proto's result (bytes or error). */
  wrongTypes(m: DescMessage, f: DescField | DescOneof): FieldCase[] {
    const base = this.base(m);
    const key = propertyName(f.name);
    const bad: unknown[] =
      f.kind === "oneof"
        ? [null, 5, "text", { $case: "noSuchCase", value: 1 }, ...f.fields.map((x) => ({ $case: propertyName(x.name), value: x.message === undefined ? {} : "not a message" })), ...f.fields.map((x) => ({ $case: propertyName(x.name) }))]
        : f.fieldKind === "list"
          ? [undefined, null, "ab", new Set([1]), [null], [{}], ["1"], [1.5]]
          : f.fieldKind === "map"
            ? [undefined, null, { a: null }, { a: "1" }, { a: {} }]
            : f.fieldKind === "message"
              ? [null, "x", 5, [], () => 1, f.message.typeName === STRUCT ? { deep: nest(200) } : {}, f.message.typeName === STRUCT ? { b: BigInt(1) } : { x: 1 }]
              : [undefined, null, "3", "x", 1.5, 2 ** 31, 2 ** 64, -(2 ** 64), true, {}, BigInt(3), Symbol("s")];
    return bad.map((v, i) => ({ label: `wrong type #${i}: ${describe(v)}`, value: { ...base, [key]: v } }));
  }
}

/** A sample that is not the type's default (the third, or the last of a short list). */
function representative(samples: readonly (readonly [string, unknown])[]): unknown {
  return samples[Math.min(2, samples.length - 1)]![1];
}

function nest(depth: number): unknown {
  let v: unknown = "bottom";
  for (let i = 0; i < depth; i++) v = { v };
  return v;
}

function describe(v: unknown): string {
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "function") return "a function";
  if (typeof v === "symbol") return v.toString();
  if (v instanceof Set) return "a Set";
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 60)}…` : s;
  } catch {
    return String(v);
  }
}

// ---------------------------------------------------------------------------------------
// Comparing a generated encoder with ts-proto's

/** ts-proto's module and the generated encoders' module of one .proto file. */
export interface FileModules {
  readonly ts: Record<string, unknown>;
  readonly enc: Record<string, unknown>;
}

type Outcome = { bytes: Buffer; path: "fast" | "fallback" } | { error: string };

/**
 * The generated encoders of a set of files against ts-proto's: `expectSame` encodes a case
 * with both and expects the same bytes (or the same error) and, when asked, the fast path.
 */
export class EncoderCheck {
  readonly maker: CaseMaker;

  constructor(private readonly modules: ReadonlyMap<DescFile, FileModules>) {
    this.maker = new CaseMaker((m) => this.fns(m));
  }

  fns(m: DescMessage): MessageFns {
    const fns = this.modules.get(m.file)?.ts[tsName(m)] as MessageFns | undefined;
    if (fns === undefined) throw new Error(`no ts-proto module for ${m.typeName}`);
    return fns;
  }

  encoder(m: DescMessage): (value: unknown) => Buffer {
    const encode = this.modules.get(m.file)?.enc[`encode${tsName(m)}`];
    if (typeof encode !== "function") throw new Error(`${m.file.name}.encode.ts has no encode${tsName(m)}`);
    return encode as (value: unknown) => Buffer;
  }

  /** ts-proto's bytes of a value. */
  reference(m: DescMessage, value: unknown): Buffer {
    return Buffer.from(this.fns(m).encode(value).finish());
  }

  /** Expects ts-proto's result from the generated encoder; returns ts-proto's bytes (undefined when it throws). */
  expectSame(m: DescMessage, c: FieldCase, path: "fast" | "any"): Buffer | undefined {
    let want: { bytes: Buffer } | { error: string };
    try {
      want = { bytes: this.reference(m, c.value) };
    } catch (err) {
      want = { error: String(err) };
    }
    const got = this.run(m, c.value);
    const where = `${m.typeName} with ${c.label}`;
    if ("error" in want) {
      expect(got, `${where}: ts-proto throws ${want.error}`).toEqual({ error: want.error });
      return undefined;
    }
    if (!("bytes" in got)) throw new Error(`${where}: threw ${got.error}`);
    expect(Buffer.isBuffer(got.bytes), where).toBe(true);
    // Not toEqual on long Buffers: the diff would be unreadable.
    expect(got.bytes.equals(want.bytes), `${where}: got ${got.bytes.subarray(0, 48).toString("hex")}…, want ${want.bytes.subarray(0, 48).toString("hex")}…`).toBe(true);
    if (path === "fast") expect(got.path, `${where} took ts-proto's encoder`).toBe("fast");
    return want.bytes;
  }

  /** The generated encoder's result, and whether it used ts-proto's (spied on). */
  private run(m: DescMessage, value: unknown): Outcome {
    const spy = vi.spyOn(this.fns(m), "encode");
    try {
      const bytes = this.encoder(m)(value);
      return { bytes, path: spy.mock.calls.length === 0 ? "fast" : "fallback" };
    } catch (err) {
      return { error: String(err) };
    } finally {
      spy.mockRestore();
    }
  }
}

/** The messages of a file, nested ones included (map entries are not messages of their own in ts-proto). */
export function messagesOf(file: DescFile): DescMessage[] {
  const out: DescMessage[] = [];
  const walk = (m: DescMessage): void => {
    if (!m.proto.options?.mapEntry) out.push(m);
    m.nestedMessages.forEach(walk);
  };
  file.messages.forEach(walk);
  return out;
}
