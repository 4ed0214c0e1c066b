/**
 * The vendored google/ protos are google-proto-files' own, byte for byte, at their
 * canonical paths (reflection and other languages resolve imports by those paths).
 */
import { readdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const PACKAGE = dirname(createRequire(import.meta.url).resolve("google-proto-files/package.json"));

describe("vendored google/ protos", () => {
  it("are unchanged copies of google-proto-files", async () => {
    const vendored: string[] = [];
    for (const dir of ["google/api", "google/rpc"]) {
      for (const name of await readdir(join(ROOT, "proto", dir))) vendored.push(`${dir}/${name}`);
    }
    expect(vendored).toEqual(expect.arrayContaining(["google/api/field_behavior.proto", "google/rpc/status.proto", "google/rpc/error_details.proto"]));
    for (const path of vendored) {
      expect(await readFile(join(ROOT, "proto", path), "utf8"), path).toBe(await readFile(join(PACKAGE, path), "utf8"));
    }
  });
});
