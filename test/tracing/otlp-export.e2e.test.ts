/**
 * Traces as a user gets them: the gateway as a process (dist/, as `npm start` runs it),
 * configured only through the standard OTEL_* variables, exporting with the official SDK's
 * OTLP exporter to a receiver on 127.0.0.1 that decodes what arrives. The upstream is a
 * fake Cerebras in this process, so the test sees the headers the gateway sent it and can
 * inject faults.
 */
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { credentials, Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatServiceClient } from "../../gen/aigateway/v1/chat.js";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { startFakeUpstream, type FakeUpstream } from "../../src/fake-upstream/server.js";
import { listening, spawnGateway, type GatewayProcess } from "../helpers/gateway-process.js";
import { collect, create, rejection, until, UPSTREAM_KEY, userRequest } from "../helpers/harness.js";
import { raw } from "../helpers/http.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "../helpers/otlp-receiver.js";

const CALLER_KEY = "gw-caller-key-7f3a9c1e5b2d4086";
/** Text that must never leave the gateway in a span: the prompt (the fake echoes it back as the completion). */
const PROMPT = "PROMPT-SENTINEL-confidential-quarterly-numbers";
const SERVER = 2;
const CLIENT = 3;
const ERROR = 2;

/** A fresh caller context: its own trace id, so each test finds its own spans. */
function callerContext(): { traceId: string; spanId: string; traceparent: string } {
  const traceId = randomBytes(16).toString("hex");
  const spanId = randomBytes(8).toString("hex");
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

function metadata(entries: Record<string, string>): Metadata {
  const md = new Metadata();
  for (const [k, v] of Object.entries(entries)) md.set(k, v);
  return md;
}

interface Gw {
  readonly process: GatewayProcess;
  readonly chat: ChatServiceClient;
  readonly httpPort: number;
  close(): Promise<void>;
}

async function startGateway(fake: FakeUpstream, env: Record<string, string>): Promise<Gw> {
  const p = spawnGateway({
    CEREBRAS_API_KEY: UPSTREAM_KEY,
    CEREBRAS_BASE_URL: fake.url,
    GRPC_PORT: "0",
    GATEWAY_API_KEYS: `team-a=${CALLER_KEY}`,
    OTEL_SERVICE_NAME: "gateway-under-test",
    // Export each batch 20 ms after its first span: the test waits for spans, never sleeps.
    OTEL_BSP_SCHEDULE_DELAY: "20",
    ...env,
  });
  try {
    const at = await listening(p);
    const chat = new ChatServiceClient(at.grpc, credentials.createInsecure());
    return {
      process: p,
      chat,
      httpPort: Number(at.http!.split(":").at(-1)),
      close: async () => {
        chat.close();
        await p.stop();
      },
    };
  } catch (err) {
    p.kill();
    throw err;
  }
}

const inTrace = (traceId: string) => (s: ReceivedSpan) => s.traceId === traceId;

describe("OpenTelemetry traces over OTLP http/protobuf (the default protocol)", () => {
  let receiver: OtlpReceiver;
  let fake: FakeUpstream;
  let gw: Gw;

  beforeAll(async () => {
    receiver = await startOtlpReceiver("http");
    fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY, tokenDelayMs: 0 });
    gw = await startGateway(fake, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint });
  });

  afterAll(async () => {
    await gw?.close();
    await fake?.close();
    await receiver?.close();
  });

  it("continues the caller's trace: a server span per call, a client span per attempt, its traceparent sent to Cerebras", async () => {
    const caller = callerContext();
    const requestId = `req-${caller.spanId}`;
    const md = metadata({ traceparent: caller.traceparent, tracestate: "vendor=opaque1", authorization: `Bearer ${CALLER_KEY}`, "x-request-id": requestId });
    const completion = await create(gw.chat, userRequest(PROMPT, { model: "gpt-oss-120b", maxCompletionTokens: 64, temperature: 0.5 }), {}, md);

    const spans = (await receiver.spans((all) => all.filter(inTrace(caller.traceId)).length >= 2)).filter(inTrace(caller.traceId));
    const call = spans.find((s) => s.kind === SERVER)!;
    const attempt = spans.find((s) => s.kind === CLIENT)!;

    expect(call.name).toBe("aigateway.v1.ChatService/CreateChatCompletion");
    expect(call.parentSpanId).toBe(caller.spanId);
    expect(call.traceState).toBe("vendor=opaque1");
    expect(call.resource["service.name"]).toBe("gateway-under-test");
    expect(call.attributes).toMatchObject({
      "rpc.system": "grpc",
      "rpc.service": "aigateway.v1.ChatService",
      "rpc.method": "CreateChatCompletion",
      "rpc.grpc.status_code": 0,
      "gateway.status_code": "OK",
      "gateway.request_id": requestId,
      "gateway.caller_key": "team-a",
      "gateway.attempts": 1,
      "gen_ai.operation.name": "chat",
      "gen_ai.system": "cerebras",
      "gen_ai.provider.name": "cerebras",
      "gen_ai.request.model": "gpt-oss-120b",
      "gen_ai.response.model": completion.model,
      "gen_ai.response.id": completion.id,
      "gen_ai.response.finish_reasons": ["stop"],
      "gen_ai.usage.input_tokens": completion.usage!.promptTokens,
      "gen_ai.usage.output_tokens": completion.usage!.completionTokens,
    });
    expect(call.status.code).toBe(0);
    const firstToken = call.events.find((e) => e.name === "gen_ai.first_token");
    expect(firstToken).toBeDefined();
    expect(firstToken!.timeUnixNano).toBeGreaterThanOrEqual(call.startTimeUnixNano);
    expect(firstToken!.timeUnixNano).toBeLessThanOrEqual(call.endTimeUnixNano);

    expect(attempt.name).toBe("chat gpt-oss-120b");
    expect(attempt.parentSpanId).toBe(call.spanId);
    expect(attempt.attributes).toMatchObject({
      "gen_ai.operation.name": "chat",
      "gen_ai.provider.name": "cerebras",
      "gen_ai.request.model": "gpt-oss-120b",
      "gen_ai.request.max_tokens": 64,
      "gen_ai.request.temperature": 0.5,
      "gen_ai.request.stream": false,
      "gateway.attempt": 1,
      "http.response.status_code": 200,
      "server.address": "127.0.0.1",
    });

    // Cerebras got the attempt's context (so its spans would hang under the attempt), and the caller's tracestate.
    const upstream = fake.chatRequests().find((r) => r.headers["x-request-id"] === requestId)!;
    expect(upstream.headers["traceparent"]).toBe(`00-${caller.traceId}-${attempt.spanId}-01`);
    expect(upstream.headers["tracestate"]).toBe("vendor=opaque1");

    // Nothing of the conversation or the keys went into the export, in any form.
    const exported = Buffer.concat(receiver.payloads);
    expect(completion.choices[0]!.message!.content).toContain(PROMPT); // the completion echoes it
    for (const secret of [PROMPT, CALLER_KEY, UPSTREAM_KEY]) expect(exported.includes(secret)).toBe(false);
  });

  it("shows a retried stream's attempts as separate spans, the failed one with its upstream status and reason", async () => {
    const caller = callerContext();
    fake.failNext(cerebrasErrors.serverError(503));
    const stream = gw.chat.streamChatCompletion(userRequest(PROMPT), metadata({ traceparent: caller.traceparent, authorization: `Bearer ${CALLER_KEY}` }));
    const result = await collect(stream);
    expect(result.error).toBeUndefined();

    const spans = (await receiver.spans((all) => all.filter(inTrace(caller.traceId)).length >= 3)).filter(inTrace(caller.traceId));
    const call = spans.find((s) => s.kind === SERVER)!;
    const attempts = spans.filter((s) => s.kind === CLIENT).sort((a, b) => Number(a.attributes["gateway.attempt"]) - Number(b.attributes["gateway.attempt"]));
    expect(call.name).toBe("aigateway.v1.ChatService/StreamChatCompletion");
    expect(call.attributes["gateway.attempts"]).toBe(2);
    expect(attempts.map((a) => a.parentSpanId)).toEqual([call.spanId, call.spanId]);
    expect(attempts[0]!.attributes).toMatchObject({ "gateway.attempt": 1, "http.response.status_code": 503, "error.type": "UPSTREAM_SERVER_ERROR", "gen_ai.request.stream": true });
    expect(attempts[0]!.status.code).toBe(ERROR);
    expect(attempts[1]!.attributes).toMatchObject({ "gateway.attempt": 2, "http.response.status_code": 200 });
    expect(attempts[1]!.attributes["error.type"]).toBeUndefined();
    expect(attempts[1]!.startTimeUnixNano).toBeGreaterThanOrEqual(attempts[0]!.endTimeUnixNano - 1_000_000n); // ms-precision starts
    expect(call.events.map((e) => e.name)).toContain("gen_ai.first_token");
    // Each attempt sent its own span as the parent.
    const upstream = fake.chatRequests().filter((r) => String(r.headers["traceparent"]).includes(caller.traceId));
    expect(upstream.map((r) => r.headers["traceparent"])).toEqual(attempts.map((a) => `00-${caller.traceId}-${a.spanId}-01`));
  });

  it("names a finish reason the contract does not know as the upstream said it (FINISH_REASON_OTHER), unary and streamed", async () => {
    const unary = callerContext();
    fake.failNext({ kind: "odd-values", finishReason: "eos_token" });
    const completion = await create(gw.chat, userRequest(PROMPT), {}, metadata({ traceparent: unary.traceparent, authorization: `Bearer ${CALLER_KEY}` }));
    expect(completion.choices[0]!.finishReasonRaw).toBe("eos_token"); // the fake did send it
    const streamed = callerContext();
    fake.failNext({ kind: "odd-values", finishReason: "end_of_turn" });
    const result = await collect(gw.chat.streamChatCompletion(userRequest(PROMPT), metadata({ traceparent: streamed.traceparent, authorization: `Bearer ${CALLER_KEY}` })));
    expect(result.error).toBeUndefined();

    const spans = await receiver.spans((all) => all.some((s) => s.kind === SERVER && inTrace(unary.traceId)(s)) && all.some((s) => s.kind === SERVER && inTrace(streamed.traceId)(s)));
    const callOf = (traceId: string) => spans.find((s) => s.kind === SERVER && inTrace(traceId)(s))!;
    expect(callOf(unary.traceId).attributes["gen_ai.response.finish_reasons"]).toEqual(["eos_token"]);
    expect(callOf(streamed.traceId).attributes["gen_ai.response.finish_reasons"]).toEqual(["end_of_turn"]);
  });

  it("records a failed call's gRPC status and ErrorInfo reason", async () => {
    const caller = callerContext();
    fake.failNext(cerebrasErrors.modelNotFound());
    const err = await rejection(create(gw.chat, userRequest(PROMPT), {}, metadata({ traceparent: caller.traceparent, authorization: `Bearer ${CALLER_KEY}` })));
    expect((err as { code: number }).code).toBe(5);

    const spans = (await receiver.spans((all) => all.filter(inTrace(caller.traceId)).length >= 2)).filter(inTrace(caller.traceId));
    const call = spans.find((s) => s.kind === SERVER)!;
    const attempt = spans.find((s) => s.kind === CLIENT)!;
    expect(call.status.code).toBe(ERROR);
    expect(call.status.message).toMatch(/^NOT_FOUND: /);
    expect(call.attributes).toMatchObject({ "rpc.grpc.status_code": 5, "gateway.status_code": "NOT_FOUND", "error.type": "MODEL_NOT_FOUND" });
    expect(attempt.attributes).toMatchObject({ "http.response.status_code": 404, "error.type": "MODEL_NOT_FOUND" });
  });

  it("traces a refused caller too (UNAUTHENTICATED), without any upstream attempt", async () => {
    const caller = callerContext();
    await rejection(create(gw.chat, userRequest(PROMPT), {}, metadata({ traceparent: caller.traceparent, authorization: "Bearer wrong-key-000" })));
    const [call] = (await receiver.spans((all) => all.some(inTrace(caller.traceId)))).filter(inTrace(caller.traceId));
    expect(call!.attributes).toMatchObject({ "rpc.grpc.status_code": 16, "error.type": "API_KEY_INVALID" });
    expect(call!.attributes["gateway.caller_key"]).toBeUndefined();
    expect(Buffer.concat(receiver.payloads).includes("wrong-key-000")).toBe(false);
  });

  it("continues an HTTP caller's trace from its traceparent header, named for the streaming RPC", async () => {
    const caller = callerContext();
    const res = await raw(gw.httpPort, {
      path: "/v1/chat/completions",
      headers: { "content-type": "application/json", authorization: `Bearer ${CALLER_KEY}`, traceparent: caller.traceparent },
      body: JSON.stringify({ model: "gpt-oss-120b", stream: true, messages: [{ role: "user", content: PROMPT }] }),
    });
    expect(res.status).toBe(200);
    const spans = (await receiver.spans((all) => all.filter(inTrace(caller.traceId)).length >= 2)).filter(inTrace(caller.traceId));
    const call = spans.find((s) => s.kind === SERVER)!;
    expect(call.name).toBe("aigateway.v1.ChatService/StreamChatCompletion");
    expect(call.parentSpanId).toBe(caller.spanId);
    expect(call.attributes).toMatchObject({ "gateway.transport": "http", "gateway.status_code": "OK", "gen_ai.request.model": "gpt-oss-120b" });
    expect(call.attributes["rpc.system"]).toBeUndefined();
    expect(spans.find((s) => s.kind === CLIENT)!.parentSpanId).toBe(call.spanId);
    expect(Buffer.concat(receiver.payloads).includes(PROMPT)).toBe(false);
  });

  it("starts a new trace for a call without trace context, and sends Cerebras its context", async () => {
    const requestId = `no-parent-${randomBytes(4).toString("hex")}`;
    await create(gw.chat, userRequest("hello"), {}, metadata({ authorization: `Bearer ${CALLER_KEY}`, "x-request-id": requestId }));
    const spans = await receiver.spans((all) => all.some((s) => s.attributes["gateway.request_id"] === requestId));
    const call = spans.find((s) => s.attributes["gateway.request_id"] === requestId)!;
    expect(call.parentSpanId).toBe("");
    const upstream = fake.chatRequests().find((r) => r.headers["x-request-id"] === requestId)!;
    expect(String(upstream.headers["traceparent"])).toMatch(new RegExp(`^00-${call.traceId}-[0-9a-f]{16}-01$`));
  });
});

describe.each(["http/json", "grpc"] as const)("OpenTelemetry traces over OTLP %s", (protocol) => {
  it("exports the call's and the attempt's spans", async () => {
    const receiver = await startOtlpReceiver(protocol === "grpc" ? "grpc" : "http");
    const fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY, tokenDelayMs: 0 });
    const gw = await startGateway(fake, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: protocol });
    try {
      const caller = callerContext();
      await create(gw.chat, userRequest(PROMPT), {}, metadata({ traceparent: caller.traceparent, authorization: `Bearer ${CALLER_KEY}` }));
      const spans = (await receiver.spans((all) => all.filter(inTrace(caller.traceId)).length >= 2)).filter(inTrace(caller.traceId));
      const call = spans.find((s) => s.kind === SERVER)!;
      expect(call.parentSpanId).toBe(caller.spanId);
      expect(spans.find((s) => s.kind === CLIENT)!.parentSpanId).toBe(call.spanId);
      expect(receiver.contentTypes[0]).toContain(protocol === "grpc" ? "grpc" : "json");
      for (const secret of [PROMPT, CALLER_KEY, UPSTREAM_KEY]) expect(Buffer.concat(receiver.payloads).includes(secret)).toBe(false);
    } finally {
      await gw.close();
      await fake.close();
      await receiver.close();
    }
  });
});

describe("an unreachable OTLP collector", () => {
  it("fails no call, and the failed export is logged as a warning", async () => {
    const fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY, tokenDelayMs: 0 });
    // A port nothing listens on (the receiver's, once closed).
    const gone = await startOtlpReceiver("http");
    await gone.close();
    const gw = await startGateway(fake, { OTEL_EXPORTER_OTLP_ENDPOINT: gone.endpoint, OTEL_EXPORTER_OTLP_TIMEOUT: "1000" });
    try {
      const res = await create(gw.chat, userRequest("hello"), {}, metadata({ authorization: `Bearer ${CALLER_KEY}` }));
      expect(res.choices[0]!.message!.content).toBe("Echo: hello");
      const exportWarning = (l: Record<string, unknown>): boolean => typeof l["msg"] === "string" && l["msg"].startsWith("OpenTelemetry: ");
      await until(() => gw.process.lines().some(exportWarning), 10_000, "a warning about the failed export");
      const logged = gw.process.lines().find(exportWarning)!;
      expect(logged["level"]).toBe(40);
    } finally {
      await gw.close();
      await fake.close();
    }
  });

  it("that never answers does not hold shutdown: the last spans are given up, with a warning, and the gateway exits 0", async () => {
    const fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY, tokenDelayMs: 0 });
    // Accepts the export and never answers (the exporter's own timeout is 10 s by default).
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as AddressInfo).port;
    // A long batch delay: the spans are still queued at SIGTERM, so shutdown has to flush them.
    const gw = await startGateway(fake, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_BSP_SCHEDULE_DELAY: "60000" });
    try {
      await create(gw.chat, userRequest("hello"), {}, metadata({ authorization: `Bearer ${CALLER_KEY}` }));
      gw.chat.close();
      expect(await gw.process.stop()).toBe(0);
      expect(gw.process.lines().map((l) => l["msg"])).toContain("OpenTelemetry: the last spans were not exported before shutdown");
    } finally {
      gw.process.kill();
      silent.closeAllConnections();
      silent.close();
      await fake.close();
    }
  }, 30_000);
});
