/**
 * The package as another service would use it: `import … from "cerebras-grpc-gateway"`
 * resolved through package.json "exports" to the build in dist/ (which `npm test`
 * makes first), in a separate Node process. Runs the README's TypeScript example (it is
 * plain JavaScript too) against a gateway on loopback, so the example cannot rot.
 */
import { execFile } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
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
