/**
 * The package as another service would use it: `import … from "cerebras-grpc-gateway"`
 * resolved through package.json "exports" to the build in dist/ (which `npm test`
 * makes first), in a separate Node process. Runs the README's TypeScript example (it is
 * plain JavaScript too) against a gateway on loopback, so the example cannot rot.
 *
 * And from another project, as the README tells one to: the `npm pack` tarball unpacked
 * into a project outside this checkout, the example run and type-checked there.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startHarness, type Harness } from "../helpers/harness.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Runs an ES module placed inside the package, so the package can import itself by name. */
async function runInPackage(source: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(ROOT, "dist", `.package-entry-${process.pid}-${Date.now()}.mjs`);
  await writeFile(file, source);
  try {
    return await new Promise((resolve) => {
      execFile(process.execPath, [file], { cwd: ROOT, timeout: 20_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr });
      });
    });
  } finally {
    await rm(file, { force: true });
  }
}

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => {
  await h.close();
});

it("exports the client, the shared error type, the helpers and the generated messages", async () => {
  const { code, stdout, stderr } = await runInPackage(`
    import * as pkg from "cerebras-grpc-gateway";
    import { GatewayError as CoreError } from "./src/core/errors.js";
    console.log(JSON.stringify({
      names: Object.keys(pkg).sort(),
      sameErrorClass: pkg.GatewayError === CoreError,
      request: pkg.ChatCompletionRequest.fromPartial({ messages: [pkg.textMessage(pkg.Role.ROLE_USER, "x")] }).messages.length,
    }));
  `);
  expect(code, stderr).toBe(0);
  const out = JSON.parse(stdout) as { names: string[]; sameErrorClass: boolean; request: number };
  expect(out.names).toEqual(
    expect.arrayContaining(["GatewayClient", "GatewayError", "Code", "Reason", "isRetryable", "toGatewayError", "ChatCompletionRequest", "ChatCompletionChunk", "Role", "Model", "ChatServiceClient"]),
  );
  expect(out.sameErrorClass).toBe(true);
  expect(out.request).toBe(1);
});

it("the README's TypeScript example runs", async () => {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const example = /### TypeScript[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(example, "README.md has the TypeScript client example").toBeDefined();
  expect(example).toContain("127.0.0.1:50051");
  const { code, stdout, stderr } = await runInPackage(example!.replaceAll("127.0.0.1:50051", h.address));
  expect(code, stderr).toBe(0);
  expect(stdout).toBe("Echo: Say hi\nEcho: Say hi");
});

const run = promisify(execFile);

/** The README's TypeScript example, pointed at the harness's gateway. */
async function readmeExample(): Promise<string> {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const example = /### TypeScript[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  if (example === undefined) throw new Error("README.md has no TypeScript client example");
  return example.replaceAll("127.0.0.1:50051", h.address);
}

it("another project uses the npm pack tarball: the example runs and type-checks there", { timeout: 90_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), "aigw-consumer-"));
  try {
    // prepack builds first (a no-op when dist/ is up to date).
    const { stdout: packed } = await run("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: ROOT, timeout: 60_000 });
    const tarball = join(dir, packed.trim().split("\n").at(-1)!);
    const { stdout: listing } = await run("tar", ["-tzf", tarball]);
    const files = listing.split("\n").filter(Boolean);
    expect(files).toEqual(expect.arrayContaining(["package/package.json", "package/dist/src/index.js", "package/dist/src/index.d.ts", "package/dist/gen/aigateway/v1/chat.js", "package/proto/aigateway/v1/chat.proto"]));
    expect(files.filter((f) => /^package\/(test|src|bench|scripts|node_modules)\/|\.tsbuildinfo$|\.env/.test(f))).toEqual([]);

    // What `npm install ./cerebras-grpc-gateway-0.1.0.tgz` lays out, without the registry:
    // the package under node_modules, its dependencies linked to this checkout's copies.
    const modules = join(dir, "node_modules");
    await mkdir(modules);
    await run("tar", ["-xzf", tarball, "-C", modules]);
    await rename(join(modules, "package"), join(modules, "cerebras-grpc-gateway"));
    const manifest = JSON.parse(await readFile(join(modules, "cerebras-grpc-gateway", "package.json"), "utf8")) as { dependencies: Record<string, string> };
    for (const dep of [...Object.keys(manifest.dependencies), "@types/node", "typescript"]) {
      await mkdir(dirname(join(modules, dep)), { recursive: true });
      await symlink(join(ROOT, "node_modules", dep), join(modules, dep));
    }
    await writeFile(join(dir, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));

    const example = await readmeExample();
    await writeFile(join(dir, "example.mjs"), example);
    const { stdout } = await run(process.execPath, [join(dir, "example.mjs")], { cwd: dir, timeout: 20_000 });
    expect(stdout).toBe("Echo: Say hi\nEcho: Say hi");

    // TypeScript in the consumer: the types come through the package's "exports".
    await writeFile(join(dir, "example.ts"), example);
    await writeFile(
      join(dir, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2022", strict: true, noEmit: true, types: ["node"] }, files: ["example.ts"] }),
    );
    await run(process.execPath, [join(modules, "typescript", "bin", "tsc"), "-p", dir], { cwd: dir, timeout: 60_000 });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
