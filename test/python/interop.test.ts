/**
 * The contract from another gRPC implementation: Python's grpcio (Debian's
 * python3-grpcio and python3-protobuf, installed by .ci/run for /usr/bin/python3) with
 * the stubs in gen/python, against the gateway and fake Cerebras on loopback. Also runs
 * the README's Python example as written, so it cannot rot.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_DOMAIN } from "../../src/core/errors.js";
import { startHarness, type Harness } from "../helpers/harness.js";

/** Debian's interpreter, where python3-grpcio lives (not whatever `python3` is first on PATH). */
const PYTHON = "/usr/bin/python3";
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SCRIPT = join(ROOT, "test/python/interop_client.py");

function python(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(PYTHON, [...args], { env: { PATH: process.env["PATH"] ?? "", ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : 1, stdout, stderr });
    });
  });
}

let h: Harness;
beforeAll(async () => {
  const probe = await python(["-c", "import grpc, google.protobuf"]);
  if (probe.code !== 0) {
    throw new Error(`${PYTHON} cannot import grpc and protobuf: install Debian's python3-grpcio and python3-protobuf (.ci/run does).\n${probe.stderr}`);
  }
  h = await startHarness();
});
afterAll(async () => {
  await h?.close();
});

describe("Python (grpcio) client with the generated stubs", () => {
  it("unary, streaming, models, and errors whose grpc-status-details-bin decodes to google.rpc.ErrorInfo", async () => {
    const { code, stdout, stderr } = await python([SCRIPT, h.address]);
    expect(code, stderr).toBe(0);
    const report = JSON.parse(stdout) as Record<string, Record<string, unknown>>;

    expect(report["unary"]).toEqual({ content: "Echo: hello from python", finishReason: "FINISH_REASON_STOP", totalTokens: expect.any(Number), requestIdHeader: "py-unary-1" });
    expect(report["streaming"]).toMatchObject({ content: "Echo: stream to python", finishReason: "FINISH_REASON_STOP", completionTokens: expect.any(Number) });
    expect(report["streaming"]!["chunks"]).toBeGreaterThan(3);
    expect(report["models"]).toContain("gpt-oss-120b");

    expect(report["invalidRequest"]).toMatchObject({
      code: "INVALID_ARGUMENT",
      statusCode: 3,
      errorInfoCount: 1,
      errorInfo: { reason: "INVALID_REQUEST", domain: ERROR_DOMAIN, metadata: { requestId: expect.any(String) } },
      fieldViolations: [{ field: "messages", description: "at least one message is required" }],
    });
    expect(report["invalidRequest"]!["statusMessage"]).toBe(report["invalidRequest"]!["message"]);

    // Streaming RPC, refused before the first chunk by the gateway's catalog check.
    expect(report["modelNotFound"]).toMatchObject({
      code: "NOT_FOUND",
      statusCode: 5,
      errorInfoCount: 1,
      errorInfo: { reason: "MODEL_NOT_FOUND", domain: ERROR_DOMAIN, metadata: { model: "no-such-model" } },
      fieldViolations: [{ field: "model", description: 'unknown model "no-such-model"' }],
    });
  });

  it("the README's Python example runs as written", async () => {
    const readme = await readFile(join(ROOT, "README.md"), "utf8");
    const example = /```python\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(example, "README.md has a ```python block").toBeDefined();
    expect(example).toContain("127.0.0.1:50051");
    const dir = await mkdtemp(join(tmpdir(), "aigw-readme-"));
    try {
      const file = join(dir, "example.py");
      await writeFile(file, example!.replaceAll("127.0.0.1:50051", h.address));
      const { code, stdout, stderr } = await python([file], { PYTHONPATH: join(ROOT, "gen/python") });
      expect(code, stderr).toBe(0);
      expect(stdout).toContain("Echo: Say hi");
      expect(stdout).toMatch(/INVALID_ARGUMENT INVALID_REQUEST \{'requestId': '[\w-]+'\}/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
