/**
 * The shim's settings: HTTP_ENABLED, HTTP_HOST, HTTP_PORT (and the ephemeral-port rule),
 * MAX_REQUEST_BYTES.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("HTTP shim configuration", () => {
  it("is on by default, on 127.0.0.1:8080, with a 16 MiB body limit", () => {
    expect(loadConfig({})).toMatchObject({ httpEnabled: true, httpHost: "127.0.0.1", httpPort: 8080, maxRequestBytes: 16 * 1024 * 1024 });
  });

  it("HTTP_PORT=0 picks any free port; an unset HTTP_PORT follows GRPC_PORT=0, so ephemeral gateways take no fixed port", () => {
    expect(loadConfig({ HTTP_PORT: "0" }).httpPort).toBe(0);
    expect(loadConfig({ GRPC_PORT: "0" }).httpPort).toBe(0);
    expect(loadConfig({ GRPC_PORT: "0", HTTP_PORT: "9090" }).httpPort).toBe(9090);
    expect(loadConfig({ HTTP_PORT: "" }).httpPort).toBe(8080);
  });

  it.each([
    ["false", false],
    ["0", false],
    ["no", false],
    ["true", true],
    ["1", true],
  ])("HTTP_ENABLED=%s → %s", (value, enabled) => {
    expect(loadConfig({ HTTP_ENABLED: value }).httpEnabled).toBe(enabled);
  });

  it("names each bad variable", () => {
    let err: unknown;
    try {
      loadConfig({ HTTP_ENABLED: "maybe", HTTP_PORT: "70000", MAX_REQUEST_BYTES: "-1" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/HTTP_ENABLED: must be true or false/);
    expect((err as Error).message).toMatch(/HTTP_PORT: must be 0-65535/);
    expect((err as Error).message).toMatch(/MAX_REQUEST_BYTES: must be positive/);
  });
});
