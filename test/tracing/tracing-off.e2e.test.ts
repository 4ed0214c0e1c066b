/**
 * Tracing off (no OTEL_* variables): nothing of OpenTelemetry is loaded, and a caller's
 * trace context still reaches Cerebras, forwarded unchanged. The gateway runs as a
 * process with @opentelemetry/* made unresolvable (test/fixtures/block-opentelemetry.mjs):
 * it must start and serve; the same blocker with tracing on must stop it from starting,
 * which shows the blocker works.
 */
import { fileURLToPath } from "node:url";
import { credentials, Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatServiceClient } from "../../gen/aigateway/v1/chat.js";
import { startFakeUpstream, type FakeUpstream } from "../../src/fake-upstream/server.js";
import { listening, MAIN, spawnGateway, type GatewayProcess } from "../helpers/gateway-process.js";
import { create, UPSTREAM_KEY, userRequest } from "../helpers/harness.js";
import { raw } from "../helpers/http.js";

const BLOCKER = fileURLToPath(new URL("../fixtures/block-opentelemetry.mjs", import.meta.url));
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

function blockedGateway(fake: FakeUpstream, env: Record<string, string> = {}): GatewayProcess {
  return spawnGateway({ CEREBRAS_API_KEY: UPSTREAM_KEY, CEREBRAS_BASE_URL: fake.url, GRPC_PORT: "0", ...env }, ["--import", BLOCKER, MAIN]);
}

describe("tracing off", () => {
  let fake: FakeUpstream;
  let p: GatewayProcess;
  let chat: ChatServiceClient;
  let httpPort: number;

  beforeAll(async () => {
    fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY, tokenDelayMs: 0 });
    // OTEL_SERVICE_NAME alone names a service; it does not turn tracing on.
    p = blockedGateway(fake, { OTEL_SERVICE_NAME: "named-but-not-traced" });
    const at = await listening(p);
    expect((await p.line("listening"))["tracing"]).toBe("off");
    chat = new ChatServiceClient(at.grpc, credentials.createInsecure());
    httpPort = Number(at.http!.split(":").at(-1));
  });

  afterAll(async () => {
    chat?.close();
    await p?.stop();
    await fake?.close();
  });

  it("starts and serves with every @opentelemetry package unresolvable", async () => {
    const res = await create(chat, userRequest("hello"));
    expect(res.choices[0]!.message!.content).toBe("Echo: hello");
  });

  it("forwards a caller's traceparent and tracestate to Cerebras unchanged (gRPC and HTTP)", async () => {
    const md = new Metadata();
    md.set("traceparent", TRACEPARENT);
    md.set("tracestate", "vendor=abc,other=1");
    md.set("x-request-id", "fwd-grpc");
    await create(chat, userRequest("hello"), {}, md);
    const res = await raw(httpPort, {
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json", traceparent: TRACEPARENT, "x-request-id": "fwd-http" },
      body: JSON.stringify({ model: "gpt-oss-120b", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(res.status).toBe(200);
    const grpcUpstream = fake.chatRequests().find((r) => r.headers["x-request-id"] === "fwd-grpc")!;
    expect(grpcUpstream.headers["traceparent"]).toBe(TRACEPARENT);
    expect(grpcUpstream.headers["tracestate"]).toBe("vendor=abc,other=1");
    const httpUpstream = fake.chatRequests().find((r) => r.headers["x-request-id"] === "fwd-http")!;
    expect(httpUpstream.headers["traceparent"]).toBe(TRACEPARENT);
    expect(httpUpstream.headers["tracestate"]).toBeUndefined();
  });

  it("sends no trace context when the caller sent none, or sent a malformed one", async () => {
    const md = new Metadata();
    md.set("x-request-id", "no-context");
    await create(chat, userRequest("hello"), {}, md);
    const bad = new Metadata();
    bad.set("x-request-id", "bad-context");
    bad.set("traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01");
    bad.set("tracestate", "vendor=abc");
    await create(chat, userRequest("hello"), {}, bad);
    for (const id of ["no-context", "bad-context"]) {
      const upstream = fake.chatRequests().find((r) => r.headers["x-request-id"] === id)!;
      expect(upstream.headers["traceparent"]).toBeUndefined();
      expect(upstream.headers["tracestate"]).toBeUndefined();
    }
  });

  it("the same blocker stops a gateway that has tracing on (so the check above can fail)", async () => {
    const traced = blockedGateway(fake, { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" });
    try {
      expect(await traced.exited).not.toBe(0);
      expect(traced.stderr()).toContain("blocked by the test: @opentelemetry/");
    } finally {
      traced.kill();
    }
  });
});
