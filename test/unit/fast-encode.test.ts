/**
 * The generated fast encoders (gen/**\/*.encode.ts, scripts/protoc-gen-fast-encode.mjs)
 * against ts-proto's encoder, byte for byte, for every message of the contract, over cases
 * made from the descriptors (test/helpers/encode-cases.ts): a new field or message is
 * tested without a test written for it.
 */
import { createFileRegistry, fromBinary, type DescField, type DescFile, type DescMessage } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it, vi } from "vitest";
import { DESCRIPTOR_SET_BASE64 } from "../../gen/descriptor.js";
import { CaseMaker, tsName, type FieldCase, type MessageFns } from "../helpers/encode-cases.js";

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, base64Decode(DESCRIPTOR_SET_BASE64)));
const contract = [...registry.files].filter((f) => f.proto.package.startsWith("aigateway."));

type Module = Record<string, unknown>;

/** ts-proto's module and the generated encoders of each contract file. */
const modules = new Map<DescFile, { ts: Module; enc: Module }>();
for (const file of contract) {
  // The file's name decides the paths (gen/<name>.ts and gen/<name>.encode.ts), as buf.gen.yaml does.
  const ts = (await import(/* @vite-ignore */ new URL(`../../gen/${file.name}.ts`, import.meta.url).pathname)) as Module;
  const enc = (await import(/* @vite-ignore */ new URL(`../../gen/${file.name}.encode.ts`, import.meta.url).pathname)) as Module;
  modules.set(file, { ts, enc });
}

function messagesOf(file: DescFile): DescMessage[] {
  const out: DescMessage[] = [];
  const walk = (m: DescMessage): void => {
    if (!m.proto.options?.mapEntry) out.push(m);
    m.nestedMessages.forEach(walk);
  };
  file.messages.forEach(walk);
  return out;
}

function fnsOf(m: DescMessage): MessageFns {
  const mod = modules.get(m.file);
  const fns = mod?.ts[tsName(m)] as MessageFns | undefined;
  if (fns === undefined) throw new Error(`no ts-proto module for ${m.typeName}`);
  return fns;
}

function encoderOf(m: DescMessage): (value: unknown) => Buffer {
  const encode = modules.get(m.file)?.enc[`encode${tsName(m)}`];
  if (typeof encode !== "function") throw new Error(`gen/${m.file.name}.encode.ts has no encode${tsName(m)}`);
  return encode as (value: unknown) => Buffer;
}

const maker = new CaseMaker(fnsOf);

type Outcome = { bytes: Buffer; path: "fast" | "fallback" } | { error: string };

/** The generated encoder's result, and whether it used ts-proto's (spied on). */
function fast(m: DescMessage, value: unknown): Outcome {
  const fns = fnsOf(m);
  const spy = vi.spyOn(fns, "encode");
  try {
    const bytes = encoderOf(m)(value);
    return { bytes, path: spy.mock.calls.length === 0 ? "fast" : "fallback" };
  } catch (err) {
    return { error: String(err) };
  } finally {
    spy.mockRestore();
  }
}

function reference(m: DescMessage, value: unknown): { bytes: Buffer } | { error: string } {
  try {
    return { bytes: Buffer.from(fnsOf(m).encode(value).finish()) };
  } catch (err) {
    return { error: String(err) };
  }
}

function expectSame(m: DescMessage, c: FieldCase, path: "fast" | "any"): Buffer | undefined {
  const want = reference(m, c.value);
  const got = fast(m, c.value);
  const where = `${m.typeName} with ${c.label}`;
  if ("error" in want) {
    expect(got, `${where}: ts-proto throws ${want.error}`).toEqual({ error: want.error });
    return undefined;
  }
  expect("bytes" in got, `${where}: threw ${"error" in got ? got.error : ""}`).toBe(true);
  if (!("bytes" in got)) return undefined;
  expect(Buffer.isBuffer(got.bytes), where).toBe(true);
  // Not toEqual on long Buffers: the diff would be unreadable.
  expect(got.bytes.equals(want.bytes), `${where}: got ${got.bytes.subarray(0, 48).toString("hex")}…, want ${want.bytes.subarray(0, 48).toString("hex")}…`).toBe(true);
  if (path === "fast") expect(got.path, `${where} took ts-proto's encoder`).toBe("fast");
  return want.bytes;
}

const all = contract.flatMap(messagesOf);

describe("the generated encoders match ts-proto byte for byte", () => {
  it("covers the contract: every file, every message", () => {
    expect(contract.map((f) => f.name).sort()).toEqual(["aigateway/v1/chat", "aigateway/v1/models"]);
    for (const m of all) expect(() => encoderOf(m), m.typeName).not.toThrow();
  });

  describe.each(all.map((m) => [m.typeName, m] as const))("%s", (_, m) => {
    it("with every field at its default, and with every field set", () => {
      expectSame(m, { label: "all defaults", value: maker.base(m) }, "fast");
      expectSame(m, { label: "every field set", value: maker.full(m) }, "fast");
      expectSame(m, { label: "every field set, deeply", value: maker.full(m, -3) }, "fast");
    });

    const groups = maker.groups(m);
    if (groups.length === 0) return;
    it.each(groups.map((g) => [g.field.name, g] as const))("field %s, set to each test value", (_, g: { field: DescField; cases: FieldCase[] }) => {
      const defaults = Buffer.from(fnsOf(m).encode(maker.base(m)).finish());
      let changed = false;
      for (const c of g.cases) {
        const bytes = expectSame(m, c, "fast");
        if (bytes !== undefined && !bytes.equals(defaults)) changed = true;
      }
      // A field whose every value leaves ts-proto's bytes unchanged was set under a name ts-proto does not read.
      expect(changed, `${m.typeName}.${g.field.name}: no case changed ts-proto's bytes`).toBe(true);
    });

    it("gives ts-proto's result (bytes or error) for values of the wrong JS type", () => {
      const members = [...new Set(m.fields.map((f) => f.oneof ?? f))];
      for (const member of members) for (const c of maker.wrongTypes(m, member)) expectSame(m, c, "any");
      expectSame(m, { label: "null message", value: null }, "any");
      expectSame(m, { label: "a string as the message", value: "x" }, "any");
    });
  });

  it("returns a Buffer of its own: later calls do not change it", () => {
    const m = registry.getMessage("aigateway.v1.ChatCompletionChunk")!;
    const value = maker.full(m);
    const first = encoderOf(m)(value);
    const copy = Buffer.from(first);
    for (let i = 0; i < 500; i++) encoderOf(m)(maker.full(m));
    expect(first.equals(copy)).toBe(true);
  });

  it("grows its length table for a message with more strings than it holds", () => {
    const m = registry.getMessage("aigateway.v1.ChatCompletionRequest")!;
    const value = { ...maker.base(m), stop: Array.from({ length: 5000 }, (_, i) => `stop ${i} é`) };
    expectSame(m, { label: "5000 stop strings", value }, "fast");
    expectSame(m, { label: "again, with the grown table", value }, "fast");
  });
});
