/**
 * A port already in use is a configuration problem: the process says which variable and
 * which address, in one line, and exits 2 (as for any bad environment), with no
 * unrelated error (the model catalog's refresh, aborted by the unwinding) before it.
 */
import { createServer, type Server } from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { spawnGateway, type GatewayProcess } from "../helpers/gateway-process.js";

/** A TCP listener on a free loopback port, held for the test. */
async function occupy(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

let held: Server | undefined;
let p: GatewayProcess | undefined;
afterEach(async () => {
  p?.kill();
  await new Promise<void>((resolve) => (held ? held.close(() => resolve()) : resolve()));
  held = undefined;
});

describe("a port already in use", () => {
  for (const variable of ["GRPC_PORT", "HTTP_PORT", "METRICS_PORT"] as const) {
    it(`(${variable}) exits 2 with one message naming ${variable} and the address, and no catalog error`, async () => {
      const { server, port } = await occupy();
      held = server;
      const env: Record<string, string> = { GRPC_PORT: "0", HTTP_PORT: "0", FAKE_UPSTREAM_TOKEN_DELAY_MS: "0", [variable]: String(port) };
      if (variable === "METRICS_PORT") env["HTTP_ENABLED"] = "false";
      p = spawnGateway(env);
      expect(await p.exited).toBe(2);
      const stderr = p.stderr();
      expect(stderr).toContain(`${variable}: 127.0.0.1:${port} is already in use`);
      expect(stderr.trim().split("\n")).toHaveLength(1);
      const messages = p.lines().map((l) => String(l["msg"]));
      expect(messages.filter((m) => /catalog/i.test(m))).toEqual([]);
      // No error line of the gateway's own (grpc-js logs its bind failure in its own words, as JSON on stdout).
      expect(p.lines().filter((l) => Number(l["level"]) >= 50 && l["component"] !== "grpc-js")).toEqual([]);
    });
  }
});
