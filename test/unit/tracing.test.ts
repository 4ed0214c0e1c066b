/**
 * Which OTEL_* variables turn tracing on, and what an untraced gateway forwards upstream.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { NO_TRACE, PASS_THROUGH, validTraceparent } from "../../src/core/tracing.js";
import { userRequest } from "../helpers/harness.js";

describe("tracing configuration", () => {
  it("is off with no OTEL_* variable, and with only OTEL_SERVICE_NAME", () => {
    expect(loadConfig({}).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_SERVICE_NAME: "gw" }).tracing).toBeUndefined();
  });

  it("is on with an OTLP endpoint or OTEL_TRACES_EXPORTER=otlp, over http/protobuf unless a protocol says otherwise", () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }).tracing).toEqual({ protocol: "http/protobuf" });
    expect(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://collector:4318/v1/traces" }).tracing).toEqual({ protocol: "http/protobuf" });
    expect(loadConfig({ OTEL_TRACES_EXPORTER: "otlp" }).tracing).toEqual({ protocol: "http/protobuf" });
    expect(loadConfig({ OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" }).tracing).toEqual({ protocol: "grpc" });
    // The traces-specific variable wins over the general one.
    expect(loadConfig({ OTEL_TRACES_EXPORTER: "otlp", OTEL_EXPORTER_OTLP_PROTOCOL: "grpc", OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json" }).tracing).toEqual({ protocol: "http/json" });
  });

  it("is off when OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true, whatever else is set", () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_TRACES_EXPORTER: "none" }).tracing).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318", OTEL_SDK_DISABLED: "true" }).tracing).toBeUndefined();
  });

  it("refuses what it cannot honour, naming the variable", () => {
    expect(() => loadConfig({ OTEL_TRACES_EXPORTER: "zipkin", OTEL_EXPORTER_OTLP_PROTOCOL: "thrift", OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toThrow(
      expect.objectContaining({
        constructor: ConfigError,
        message: expect.stringMatching(/OTEL_TRACES_EXPORTER: must be otlp or none[\s\S]*OTEL_EXPORTER_OTLP_ENDPOINT: must be an http\(s\) URL[\s\S]*OTEL_EXPORTER_OTLP_PROTOCOL: must be one of/),
      }),
    );
  });
});

describe("PASS_THROUGH (tracing off)", () => {
  const upstream = { host: "api.cerebras.ai", port: 443 };
  const start = (traceparent: string | undefined, tracestate?: string) => PASS_THROUGH.startCall({ transport: "grpc", method: "CreateChatCompletion", requestId: "r", traceparent, tracestate });

  it("does nothing for a call without trace context", () => {
    expect(start(undefined)).toBe(NO_TRACE);
    expect(NO_TRACE.startAttempt(userRequest("x"), 1, false, upstream).headers).toEqual([]);
  });

  it("forwards a valid traceparent with its tracestate, on every attempt", () => {
    const trace = start("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=1");
    expect(trace.startAttempt(userRequest("x"), 1, false, upstream).headers).toEqual(["traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate", "a=1"]);
    expect(trace.startAttempt(userRequest("x"), 2, false, upstream).headers).toHaveLength(4);
  });

  it("drops an oversized tracestate but keeps the traceparent", () => {
    const trace = start("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=" + "x".repeat(600));
    expect(trace.startAttempt(userRequest("x"), 1, false, upstream).headers).toEqual(["traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"]);
  });

  it.each([
    ["upper-case hex", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"],
    ["an all-zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"],
    ["an all-zero span id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"],
    ["version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    ["a short trace id", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"],
    ["garbage", "hello"],
    ["an oversized header", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-" + "x".repeat(200)],
  ])("forwards nothing for a traceparent with %s", (_what, value) => {
    expect(validTraceparent(value)).toBeUndefined();
    expect(start(value, "a=1")).toBe(NO_TRACE);
  });

  it("accepts a future version's extra fields", () => {
    expect(validTraceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra")).toBeDefined();
  });
});
