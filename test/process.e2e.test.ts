/**
 * The gateway as a process, as `npm start` runs it (from the build in dist/, which
 * `npm test` makes first): fake-upstream mode on a fresh machine, a clean SIGTERM, and
 * start-up refusals with exit code 2.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { fileURLToPath } from "node:url";
import { credentials } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ChatServiceClient } from "../gen/aigateway/v1/chat.js";
import { create, userRequest } from "./helpers/harness.js";

const MAIN = fileURLToPath(new URL("../dist/src/main.js", import.meta.url));

function run(env: Record<string, string>): { child: ChildProcessWithoutNullStreams; lines: () => Array<Record<string, unknown>>; stderr: () => string; exited: Promise<number | null> } {
  // Only what the test sets: a developer's own CEREBRAS_API_KEY must not leak in.
  const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env["PATH"] ?? "", ...env } });
  let out = "";
  let err = "";
  child.stdout.on("data", (b: Buffer) => (out += b.toString()));
  child.stderr.on("data", (b: Buffer) => (err += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    child,
    lines: () => out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>),
    stderr: () => err,
    exited,
  };
}

async function waitForLine(p: ReturnType<typeof run>, msg: string): Promise<Record<string, unknown>> {
  const end = Date.now() + 10_000;
  for (;;) {
    const line = p.lines().find((l) => l["msg"] === msg);
    if (line) return line;
    if (Date.now() > end || p.child.exitCode !== null) throw new Error(`no "${msg}" line; stderr: ${p.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("the gateway process", () => {
  it("starts on the embedded fake upstream without a key, says so, serves, and exits 0 on SIGTERM", async () => {
    const p = run({ GRPC_PORT: "0", FAKE_UPSTREAM_TOKEN_DELAY_MS: "0" });
    try {
      const listening = await waitForLine(p, "listening");
      expect(p.lines().some((l) => String(l["msg"]).startsWith("fake-upstream mode"))).toBe(true);
      expect(listening["upstream"]).toBe("fake");
      const client = new ChatServiceClient(String(listening["grpc"]), credentials.createInsecure());
      const res = await create(client, userRequest("hello process"));
      client.close();
      expect(res.choices[0]!.message!.content).toBe("Echo: hello process");
      p.child.kill("SIGTERM");
      expect(await p.exited).toBe(0);
      expect(p.lines().map((l) => l["msg"])).toEqual(expect.arrayContaining(["call", "shutting down", "stopped"]));
    } finally {
      p.child.kill("SIGKILL");
    }
  });

  it("refuses to start in production without CEREBRAS_API_KEY", async () => {
    const p = run({ NODE_ENV: "production", GRPC_PORT: "0" });
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toContain("CEREBRAS_API_KEY: is required when NODE_ENV=production");
  });

  it("lists every bad variable and exits 2", async () => {
    const p = run({ GRPC_PORT: "not-a-port", LOG_LEVEL: "chatty" });
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toMatch(/GRPC_PORT: .*\n.*LOG_LEVEL: /);
  });
});
