/**
 * scripts/protoc-gen-fast-encode.mjs on a fixture that uses every construct it handles
 * (test/fixtures/fast-encode: every scalar type plain, optional, repeated packed and not,
 * maps, oneofs, Struct/Value/ListValue, wrappers, Duration/Any/Empty, messages across
 * files, multi-byte tags, odd names, and the constructs with no fast path), compiled here
 * with buf, ts-proto (with buf.gen.yaml's options) and the plugin, into test/.generated/.
 * The generated encoders must give ts-proto's bytes for every case made from the
 * descriptors, by the fast path except for the fields listed in SLOW_FIELDS.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createFileRegistry, fromBinary, type DescField, type DescFile, type DescMessage } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { EncoderCheck, messagesOf, type FieldCase, type FileModules } from "../helpers/encode-cases.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURE = "test/fixtures/fast-encode";
const OUT = join(ROOT, "test/.generated/fast-encode");
const BUF = join(ROOT, "node_modules/.bin/buf");

// ts-proto with exactly the options the contract is generated with: the shapes the plugin mirrors.
const genConfig = parse(readFileSync(join(ROOT, "buf.gen.yaml"), "utf8")) as { plugins: { local?: string | string[]; opt?: string[] }[] };
const tsProto = genConfig.plugins.find((p) => String(p.local).includes("protoc-gen-ts_proto"));
if (tsProto === undefined) throw new Error("buf.gen.yaml has no ts-proto plugin");
const template = {
  version: "v2",
  clean: true,
  plugins: [
    { local: tsProto.local, out: OUT, strategy: "all", opt: tsProto.opt ?? [] },
    { local: ["node", "scripts/protoc-gen-fast-encode.mjs"], out: OUT, strategy: "all", opt: ["package=fixture"] },
  ],
};
execFileSync(BUF, ["generate", FIXTURE, "--template", JSON.stringify(template)], { cwd: ROOT, timeout: 60_000, stdio: ["ignore", "ignore", "pipe"] });

// The fixture's descriptors, with the WKTs it imports, from the same compiler.
const image = execFileSync(BUF, ["build", FIXTURE, "--as-file-descriptor-set", "-o", "-"], { cwd: ROOT, timeout: 60_000, maxBuffer: 64 << 20 });
const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, image));

const modules = new Map<DescFile, FileModules>();
const generated: DescFile[] = [];
for (const file of registry.files) {
  let enc: Record<string, unknown>;
  try {
    enc = (await import(/* @vite-ignore */ join(OUT, `${file.name}.encode.ts`))) as Record<string, unknown>;
  } catch {
    continue; // not generated: nothing of the fixture reaches it (or it has no fast path: Timestamp, FieldMask)
  }
  modules.set(file, { ts: (await import(/* @vite-ignore */ join(OUT, `${file.name}.ts`))) as Record<string, unknown>, enc });
  generated.push(file);
}
const check = new EncoderCheck(modules);
const { maker } = check;
const slowFields = new Set(generated.flatMap((f) => (modules.get(f)!.enc["SLOW_FIELDS"] as string[]).map((s) => s.slice(0, s.indexOf(":")))));

const isSlow = (m: DescMessage, f: DescField): boolean => slowFields.has(`${m.typeName}.${f.name}`);
/** A message that holds, at any depth, a field with no fast path. */
function reachesSlow(m: DescMessage, seen = new Set<DescMessage>()): boolean {
  if (seen.has(m)) return false;
  seen.add(m);
  return m.fields.some((f) => isSlow(m, f) || (f.message !== undefined && modules.has(f.message.file) && reachesSlow(f.message, seen)));
}

const messages = generated.flatMap(messagesOf).filter((m) => !["google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"].includes(m.typeName));

describe("protoc-gen-fast-encode on every construct it handles", () => {
  it("generates for the fixture and the messages it reaches, and nothing else", () => {
    expect(generated.map((f) => f.name).sort()).toEqual(["fixture/v1/all_types", "fixture/v1/other", "google/protobuf/any", "google/protobuf/duration", "google/protobuf/empty", "google/protobuf/struct"]);
  });

  it("lists the fields that have no fast path, and only those", () => {
    expect([...slowFields].sort()).toEqual([
      "fixture.v1.Maps.int32_string",
      "fixture.v1.Maps.string_struct",
      "fixture.v1.Maps.string_wrapper",
      "fixture.v1.WellKnown.mask",
      "fixture.v1.WellKnown.timestamp",
    ]);
  });

  it("keeps same-named messages of other packages apart (fixture.v1.Empty, google.protobuf.Empty)", () => {
    const everything = registry.getMessage("fixture.v1.Everything")!;
    const value = maker.full(everything);
    check.expectSame(everything, { label: "every field set", value }, "any");
    const empty = registry.getMessage("fixture.v1.Empty")!;
    check.expectSame(empty, { label: "fixture.v1.Empty", value: {} }, "fast");
    const encoders = modules.get(everything.file)!.enc["FixtureServiceResponseEncoders"] as Record<string, unknown>;
    expect(Object.keys(encoders)).toEqual(["/fixture.v1.FixtureService/Get", "/fixture.v1.FixtureService/Other", "/fixture.v1.FixtureService/Nothing"]);
    expect(encoders["/fixture.v1.FixtureService/Nothing"]).toBe(modules.get(registry.getMessage("google.protobuf.Empty")!.file)!.enc["encodeEmpty"]);
  });

  describe.each(messages.map((m) => [m.typeName, m] as const))("%s", (_, m) => {
    const path = reachesSlow(m) ? "any" : "fast";
    it("with every field at its default, and with every field set", () => {
      check.expectSame(m, { label: "all defaults", value: maker.base(m) }, "fast");
      check.expectSame(m, { label: "every field set", value: maker.full(m) }, path);
      check.expectSame(m, { label: "every field set, 6 levels deep", value: maker.full(m, -3) }, path);
    });

    const groups = maker.groups(m);
    if (groups.length > 0) {
      it.each(groups.map((g) => [g.field.name, g] as const))("field %s, set to each test value", (_, g: { field: DescField; cases: FieldCase[] }) => {
        const defaults = check.reference(m, maker.base(m));
        const fieldPath = isSlow(m, g.field) || (g.field.message !== undefined && modules.has(g.field.message.file) && reachesSlow(g.field.message)) ? "any" : "fast";
        let changed = false;
        for (const c of g.cases) {
          const bytes = check.expectSame(m, c, fieldPath);
          if (bytes !== undefined && !bytes.equals(defaults)) changed = true;
        }
        expect(changed, `${m.typeName}.${g.field.name}: no case changed ts-proto's bytes`).toBe(true);
      });
    }

    it("gives ts-proto's result (bytes or error) for values of the wrong JS type", () => {
      for (const member of new Set(m.fields.map((f) => f.oneof ?? f))) for (const c of maker.wrongTypes(m, member)) check.expectSame(m, c, "any");
    });
  });
});
