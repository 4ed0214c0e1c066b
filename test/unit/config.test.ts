/**
 * Environment → Config: defaults, and one error that lists every bad variable.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("loadConfig", () => {
  it("has working defaults (fake-upstream mode when no key is set)", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      cerebrasApiKey: undefined,
      cerebrasBaseUrl: "https://api.cerebras.ai",
      requestTimeoutMs: 300_000,
      grpcPort: 50051,
      defaultModel: "gpt-oss-120b",
      logLevel: "info",
      production: false,
    });
  });

  it("treats empty variables as unset", () => {
    expect(loadConfig({ GRPC_PORT: "", CEREBRAS_API_KEY: "" }).grpcPort).toBe(50051);
    expect(loadConfig({ CEREBRAS_API_KEY: "" }).cerebrasApiKey).toBeUndefined();
  });

  it("lists every bad variable in one error", () => {
    let err: unknown;
    try {
      loadConfig({ GRPC_PORT: "70000", REQUEST_TIMEOUT_S: "soon", LOG_LEVEL: "loud", CEREBRAS_BASE_URL: "ftp://x" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    for (const name of ["GRPC_PORT", "REQUEST_TIMEOUT_S", "LOG_LEVEL", "CEREBRAS_BASE_URL"]) expect(message).toContain(name);
  });

  it("refuses to run on the fake upstream in production", () => {
    expect(() => loadConfig({ NODE_ENV: "production" })).toThrow(/CEREBRAS_API_KEY: is required when NODE_ENV=production/);
    expect(loadConfig({ NODE_ENV: "production", CEREBRAS_API_KEY: "csk-x", GATEWAY_AUTH: "none" }).production).toBe(true);
  });

  it("never echoes the API key in an error", () => {
    expect(() => loadConfig({ CEREBRAS_API_KEY: "csk-secret-value", GRPC_PORT: "-1" })).toThrow(ConfigError);
    try {
      loadConfig({ CEREBRAS_API_KEY: "csk-secret-value", GRPC_PORT: "-1" });
    } catch (e) {
      expect((e as Error).message).not.toContain("csk-secret-value");
    }
  });

  it("fleet: connections age out after 300 s by default, with a grace that outlasts REQUEST_TIMEOUT_S; 0 turns the age off", () => {
    expect(loadConfig({})).toMatchObject({
      grpcConnections: { maxAgeMs: 300_000, maxAgeGraceMs: 305_000, keepaliveTimeMs: 60_000, keepaliveTimeoutMs: 20_000 },
      httpKeepAliveTimeoutMs: 65_000,
    });
    expect(loadConfig({ REQUEST_TIMEOUT_S: "30" }).grpcConnections.maxAgeGraceMs).toBe(35_000);
    expect(loadConfig({ GRPC_MAX_CONNECTION_AGE_S: "1.5", GRPC_MAX_CONNECTION_AGE_GRACE_S: "2" }).grpcConnections).toMatchObject({ maxAgeMs: 1500, maxAgeGraceMs: 2000 });
    expect(loadConfig({ GRPC_MAX_CONNECTION_AGE_S: "0" }).grpcConnections.maxAgeMs).toBeUndefined();
  });

  it("fleet: refuses a negative age and a keepalive under a second, naming both", () => {
    expect(() => loadConfig({ GRPC_MAX_CONNECTION_AGE_S: "-1", GRPC_KEEPALIVE_TIME_S: "0.5" })).toThrow(/GRPC_MAX_CONNECTION_AGE_S: must be at least 0\n {2}GRPC_KEEPALIVE_TIME_S: must be at least 1/);
  });
});
