/**
 * The README stays true where a new user reads it first:
 * - every `buf curl` command in it runs as written against a gateway on the fake upstream
 *   (the port swapped for this test's), so no example needs a setting it does not name;
 * - what it says `buf curl` shows of an error's details is what `buf curl` shows;
 * - the quick start names, in one apt-get line, every Debian package `npm test` needs
 *   (the ones `.ci/run` installs for the tests);
 * - it does not say the HTTP shim skips caller keys (it checks them: ops/auth.e2e.test.ts).
 */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "../helpers/harness.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
let readme = "";
let h: Harness;

beforeAll(async () => {
  readme = await readFile(join(ROOT, "README.md"), "utf8");
  h = await startHarness({ fake: { tokenDelayMs: 0 } });
});
afterAll(async () => {
  await h.close();
});

function run(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile("bash", ["-c", command], { cwd: ROOT, timeout: 30_000, env: { PATH: process.env["PATH"] ?? "", HOME: process.env["HOME"] ?? "/tmp" } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr });
    });
  });
}

/** The shell commands of the README's ```sh blocks, continuation lines joined, comments dropped. */
function shellCommands(text: string): string[] {
  const out: string[] = [];
  for (const block of text.matchAll(/```sh\n([\s\S]*?)```/g)) {
    let current = "";
    for (const raw of block[1]!.split("\n")) {
      const line = raw.replace(/\s+#.*$/, "");
      current += line.endsWith("\\") ? line.slice(0, -1) : line;
      if (!line.endsWith("\\")) {
        if (current.trim() !== "") out.push(current.trim());
        current = "";
      }
    }
  }
  return out;
}

describe("the README's buf curl commands", () => {
  it("run as written (plaintext ones; the TLS one needs certificates)", { timeout: 120_000 }, async () => {
    const commands = shellCommands(readme).filter((c) => c.startsWith("npx buf curl") && !c.includes("https://"));
    expect(commands.length).toBeGreaterThanOrEqual(4);
    for (const command of commands) {
      const r = await run(command.replaceAll("127.0.0.1:50051", h.address));
      expect(r.code, `${command}\n${r.stderr}`).toBe(0);
    }
  });

  it("show an error's details as the README says: type names, bytes in base64", async () => {
    const r = await run(`npx buf curl --protocol grpc --http2-prior-knowledge -d '{}' http://${h.address}/aigateway.v1.ChatService/CreateChatCompletion`);
    expect(r.code).not.toBe(0);
    const shown = JSON.parse(r.stderr.slice(r.stderr.indexOf("{"))) as { details: Array<{ type: string; value: unknown }> };
    expect(shown.details.map((d) => d.type)).toEqual(["google.rpc.ErrorInfo", "google.rpc.BadRequest"]);
    expect(shown.details.every((d) => typeof d.value === "string" && /^[A-Za-z0-9+/_-]+=*$/.test(d.value))).toBe(true);
    expect(readme).toMatch(/`buf curl` prints them with their type names and their bytes in base64/);
    expect(readme).not.toMatch(/grpcurl and `buf curl` decode them/);
  });
});

describe("the quick start", () => {
  it("names, in one apt-get line, every Debian package the tests need (.ci/run installs them)", async () => {
    const quickStart = /## Quick start\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? "";
    const line = /sudo apt-get install[^\n]*/.exec(quickStart)?.[0] ?? "";
    const ci = await readFile(join(ROOT, ".ci/run"), "utf8");
    const ciPackages = (/APT_PACKAGES="([^"]+)"/.exec(ci)?.[1] ?? "").split(/\s+/);
    // The code generators (protobuf-compiler*) are for `npm run generate`, not for `npm test`.
    const forTests = ciPackages.filter((p) => !p.startsWith("protobuf-compiler"));
    expect(forTests).toEqual(expect.arrayContaining(["python3-grpcio", "python3-protobuf", "redis-server"]));
    for (const p of forTests) expect(line, `the quick start's apt-get line names ${p}`).toContain(p);
    expect(quickStart).toContain("npm test");
  });
});

describe("the HTTP shim section", () => {
  it("does not say caller keys go unchecked", () => {
    const section = /## The OpenAI-compatible HTTP API\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? "";
    expect(section).not.toMatch(/does not check the caller's API key/);
    expect(section).not.toMatch(/required by the SDK but not checked/);
    expect(section).toMatch(/GATEWAY_API_KEYS/);
  });
});
