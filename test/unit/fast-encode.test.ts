/**
 * The generated fast encoders (gen/**\/*.encode.ts, scripts/protoc-gen-fast-encode.mjs)
 * against ts-proto's encoder, byte for byte, for every message of the contract, over cases
 * made from the descriptors (test/helpers/encode-cases.ts): a new field or message is
 * tested without a test written for it. test/unit/fast-encode-plugin.test.ts does the
 * same for a fixture with every construct the plugin handles.
 */
import { createFileRegistry, fromBinary, type DescFile } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { DESCRIPTOR_SET_BASE64 } from "../../gen/descriptor.js";
import { EncoderCheck, messagesOf, type FieldCase, type FileModules } from "../helpers/encode-cases.js";

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, base64Decode(DESCRIPTOR_SET_BASE64)));
const contract = [...registry.files].filter((f) => f.proto.package.startsWith("aigateway."));

/** ts-proto's module and the generated encoders of each contract file (paths from the file's name, as buf.gen.yaml lays them out). */
const modules = new Map<DescFile, FileModules>();
for (const file of contract) {
  const load = (suffix: string) => import(/* @vite-ignore */ new URL(`../../gen/${file.name}${suffix}`, import.meta.url).pathname) as Promise<Record<string, unknown>>;
  modules.set(file, { ts: await load(".ts"), enc: await load(".encode.ts") });
}
const check = new EncoderCheck(modules);
const { maker } = check;
const all = contract.flatMap(messagesOf);

describe("the generated encoders match ts-proto byte for byte", () => {
  it("covers the contract: every file, every message", () => {
    expect(contract.map((f) => f.name).sort()).toEqual(["aigateway/v1/chat", "aigateway/v1/models"]);
    for (const m of all) expect(() => check.encoder(m), m.typeName).not.toThrow();
  });

  describe.each(all.map((m) => [m.typeName, m] as const))("%s", (_, m) => {
    it("with every field at its default, and with every field set", () => {
      check.expectSame(m, { label: "all defaults", value: maker.base(m) }, "fast");
      check.expectSame(m, { label: "every field set", value: maker.full(m) }, "fast");
      check.expectSame(m, { label: "every field set, 6 levels deep", value: maker.full(m, -3) }, "fast");
    });

    const groups = maker.groups(m);
    if (groups.length > 0) {
      it.each(groups.map((g) => [g.field.name, g.cases] as const))("field %s, set to each test value", (name, cases: FieldCase[]) => {
        const defaults = check.reference(m, maker.base(m));
        let changed = false;
        for (const c of cases) {
          const bytes = check.expectSame(m, c, "fast");
          if (bytes !== undefined && !bytes.equals(defaults)) changed = true;
        }
        // A field whose every value leaves ts-proto's bytes unchanged was set under a name ts-proto does not read.
        expect(changed, `${m.typeName}.${name}: no case changed ts-proto's bytes`).toBe(true);
      });
    }

    it("gives ts-proto's result (bytes or error) for values of the wrong JS type", () => {
      for (const member of new Set(m.fields.map((f) => f.oneof ?? f))) for (const c of maker.wrongTypes(m, member)) check.expectSame(m, c, "any");
      check.expectSame(m, { label: "null as the message", value: null }, "any");
      check.expectSame(m, { label: "a string as the message", value: "x" }, "any");
    });
  });

  it("returns a Buffer of its own: later calls do not change it", () => {
    const m = registry.getMessage("aigateway.v1.ChatCompletionChunk")!;
    const first = check.encoder(m)(maker.full(m));
    const copy = Buffer.from(first);
    for (let i = 0; i < 500; i++) check.encoder(m)(maker.full(m));
    expect(first.equals(copy)).toBe(true);
  });

  it("grows its length table for a message with more strings than it holds", () => {
    const m = registry.getMessage("aigateway.v1.ChatCompletionRequest")!;
    const value = { ...maker.base(m), stop: Array.from({ length: 5000 }, (_, i) => `stop ${i} é`) };
    check.expectSame(m, { label: "5000 stop strings", value }, "fast");
    check.expectSame(m, { label: "again, with the grown table", value }, "fast");
  });
});
