/**
 * The gateway as a process, as `npm start` runs it (from the build in dist/, which
 * `npm test` makes first): fake-upstream mode on a fresh machine, a clean SIGTERM, and
 * start-up refusals with exit code 2.
 */
import { credentials } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ChatServiceClient } from "../gen/aigateway/v1/chat.js";
import { spawnGateway } from "./helpers/gateway-process.js";
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
});
