/**
 * The gateway as a process, as `npm start` runs it (from the build in dist/, which
 * `npm test` makes first): fake-upstream mode on a fresh machine, a clean SIGTERM, and
 * start-up refusals with exit code 2. And `npm start` itself: its signals reach the
 * gateway (no orphan left behind), and Ctrl-C drains once.
 */
import { readFileSync } from "node:fs";
import { credentials } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ChatServiceClient } from "../gen/aigateway/v1/chat.js";
import { childPids, descendantPids, isAlive, spawnGateway, spawnNpmStart } from "./helpers/gateway-process.js";
import { create, userRequest } from "./helpers/harness.js";

describe("the gateway process", () => {
  it("starts on the embedded fake upstream without a key, says so, serves, and exits 0 on SIGTERM", async () => {
    const p = spawnGateway({ GRPC_PORT: "0", FAKE_UPSTREAM_TOKEN_DELAY_MS: "0" });
    try {
      const listening = await p.line("listening");
      expect(p.lines().some((l) => String(l["msg"]).startsWith("fake-upstream mode"))).toBe(true);
      expect(listening["upstream"]).toBe("fake");
      const client = new ChatServiceClient(String(listening["grpc"]), credentials.createInsecure());
      const res = await create(client, userRequest("hello process"));
      client.close();
      expect(res.choices[0]!.message!.content).toBe("Echo: hello process");
      expect(await p.stop()).toBe(0);
      expect(p.lines().map((l) => l["msg"])).toEqual(expect.arrayContaining(["call", "shutting down", "stopped"]));
    } finally {
      p.kill();
    }
  });

  it("refuses to start in production without CEREBRAS_API_KEY", async () => {
    const p = spawnGateway({ NODE_ENV: "production", GRPC_PORT: "0" });
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toContain("CEREBRAS_API_KEY: is required when NODE_ENV=production");
  });

  it("lists every bad variable and exits 2", async () => {
    const p = spawnGateway({ GRPC_PORT: "not-a-port", LOG_LEVEL: "chatty" });
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toMatch(/GRPC_PORT: .*\n.*LOG_LEVEL: /);
  });

  it("a second signal a second or more after the first exits at once, without waiting for the drain", async () => {
    const p = spawnGateway({ GRPC_PORT: "0", SHUTDOWN_DELAY_S: "30" });
    try {
      await p.line("listening");
      p.child.kill("SIGTERM");
      await p.line("shutting down");
      // Past the window in which a repeat counts as the same signal delivered twice.
      await new Promise((resolve) => setTimeout(resolve, 1200));
      p.child.kill("SIGTERM");
      expect(await p.exited).toBe(1);
      expect(p.lines().map((l) => l["msg"])).toContain("second signal: exiting now");
    } finally {
      p.kill();
    }
  });
});

describe("npm start", () => {
  // Fresh from `npm test` the build is up to date and `npm start` only checks it; run
  // alone after an edit, it compiles first.
  const STARTS_WITHIN_MS = 60_000;

  it("forwards SIGTERM to the gateway, which drains and exits: no orphan is left running", { timeout: 90_000 }, async () => {
    const npm = spawnNpmStart({ GRPC_PORT: "0", FAKE_UPSTREAM_TOKEN_DELAY_MS: "0" });
    let started: number[] = [];
    try {
      await npm.line("listening", undefined, STARTS_WITHIN_MS);
      started = descendantPids(npm.child.pid!);
      // `exec node …`: the gateway is npm's own child, not a shell's (a shell would die of the SIGTERM and leave node running).
      const children = childPids(npm.child.pid!);
      expect(children).toHaveLength(1);
      expect(readFileSync(`/proc/${children[0]!}/cmdline`, "utf8").split("\0")).toEqual([expect.stringMatching(/node$/), "dist/src/main.js", ""]);
      npm.child.kill("SIGTERM");
      expect(await npm.exited).toBe(0);
      expect(npm.lines().map((l) => l["msg"])).toEqual(expect.arrayContaining(["shutting down", "stopped"]));
      expect(started.filter(isAlive)).toEqual([]);
    } finally {
      npm.kill();
      for (const pid of started.filter(isAlive)) process.kill(pid, "SIGKILL");
    }
  });

  it("Ctrl-C (SIGINT to the terminal's whole process group) drains once and exits 0", { timeout: 90_000 }, async () => {
    const npm = spawnNpmStart({ GRPC_PORT: "0", FAKE_UPSTREAM_TOKEN_DELAY_MS: "0" }, { detached: true });
    try {
      await npm.line("listening", undefined, STARTS_WITHIN_MS);
      // The terminal signals npm and the gateway alike; npm then forwards its copy.
      process.kill(-npm.child.pid!, "SIGINT");
      expect(await npm.exited).toBe(0);
      const messages = npm.lines().map((l) => l["msg"]);
      expect(messages).toEqual(expect.arrayContaining(["shutting down", "stopped"]));
      expect(messages).not.toContain("second signal: exiting now");
    } finally {
      try {
        process.kill(-npm.child.pid!, "SIGKILL");
      } catch {
        // the group is gone
      }
    }
  });
});
