/**
 * The shim at the HTTP level, with a raw node:http client: malformed and oversized
 * bodies, unknown fields, routes and methods, request ids, the /cerebras prefix, the
 * switch that turns the shim off, and the one log line per call.
 */
import OpenAI, { APIError, RateLimitError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { startFakeUpstream } from "../../src/fake-upstream/server.js";
import { startGateway } from "../../src/gateway.js";
import { createLogger } from "../../src/log.js";
import { startHarness, UPSTREAM_KEY } from "../helpers/harness.js";
import { chatBody, json, raw, sseData, startHttpHarness, type HttpHarness, type RawResponse } from "../helpers/http.js";

const LIMIT = 4096;
let h: HttpHarness;
beforeAll(async () => {
  h = await startHttpHarness({ env: { MAX_REQUEST_BYTES: String(LIMIT) } });
});
afterAll(async () => {
  await h.close();
});

const post = (body: string, headers: Record<string, string> = { "content-type": "application/json" }) => raw(h.httpPort, { path: "/v1/chat/completions", body, headers });
/** `flat`: Cerebras' envelope (the /cerebras routes), else OpenAI's `{"error": {…}}`. */
const errorOf = (res: RawResponse, flat = false) => (flat ? (JSON.parse(res.text) as Record<string, unknown>) : (JSON.parse(res.text) as { error: Record<string, unknown> }).error);
const lastUpstreamBody = (): Record<string, unknown> => h.fake.chatRequests().at(-1)!.body as Record<string, unknown>;

/** Asserts the envelope and its content type; returns the error object. */
function envelope(res: RawResponse, status: number, flat = false): Record<string, unknown> {
  expect(res.status, res.text).toBe(status);
  expect(res.headers["content-type"]).toBe("application/json");
  const error = errorOf(res, flat);
  expect(Object.keys(error)).toEqual(["message", "type", "param", "code"]);
  return error;
}

describe("bodies", () => {
  it("bad JSON → 400 invalid_json with the parser's reason, and no upstream call", async () => {
    const before = h.fake.chatRequests().length;
    const error = envelope(await post('{"model": "gpt-oss-120b", "messages": [}'), 400);
    expect(error["code"]).toBe("invalid_json");
    expect(error["type"]).toBe("invalid_request_error");
    expect(error["message"]).toMatch(/^the request body is not valid JSON: /);
    expect(h.fake.chatRequests().length).toBe(before);
  });

  it("an empty body → 400 saying so", async () => {
    expect(envelope(await post(""), 400)["message"]).toBe("the request body is empty; send a JSON object");
  });

  it("JSON that is not an object → 400", async () => {
    expect(envelope(await post("[1, 2]"), 400)["message"]).toBe("invalid request: the body must be a JSON object, not array");
  });

  it("an unknown field → 400 naming it, and no upstream call", async () => {
    const before = h.fake.chatRequests().length;
    const error = envelope(await post(JSON.stringify(chatBody("x", { temprature: 0.2 }))), 400);
    expect(error["param"]).toBe("temprature");
    expect(error["message"]).toBe("invalid request: temprature: unknown field (not part of the chat completions request)");
    expect(h.fake.chatRequests().length).toBe(before);
  });

  it("OpenAI-only fields that change nothing are accepted and never sent upstream; those that change the answer are a 400", async () => {
    const res = await post(JSON.stringify(chatBody("extras", { store: true, metadata: { team: "a" } })));
    expect(res.status, res.text).toBe(200);
    expect(lastUpstreamBody()).toEqual({ model: "gpt-oss-120b", messages: [{ role: "user", content: "extras" }] });
    const refused = await post(JSON.stringify(chatBody("extras", { store: true, top_k: 5 })));
    expect(envelope(refused, 400)["param"]).toBe("top_k");
  });

  it("a body over MAX_REQUEST_BYTES by content-length → 413 before it is read, connection closed", async () => {
    const before = h.fake.chatRequests().length;
    const res = await post(JSON.stringify(chatBody("x".repeat(LIMIT))));
    const error = envelope(res, 413);
    expect(error["code"]).toBe("request_too_large");
    expect(error["message"]).toContain(`${LIMIT} bytes (MAX_REQUEST_BYTES)`);
    expect(res.headers["connection"]).toBe("close");
    expect(h.fake.chatRequests().length).toBe(before);
  });

  it("a chunked body that grows past the limit → 413", async () => {
    const pieces = Array.from({ length: 8 }, () => "x".repeat(1024));
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", body: pieces, headers: { "content-type": "application/json" } });
    expect(envelope(res, 413)["code"]).toBe("request_too_large");
  });

  it("a body just under the limit is served", async () => {
    const res = await post(JSON.stringify(chatBody("y".repeat(LIMIT - 200))));
    expect(res.status, res.text).toBe(200);
  });

  it("the openai SDK sees a 413 as an APIError with status 413", async () => {
    const err = await h.openai.chat.completions.create({ model: "gpt-oss-120b", messages: [{ role: "user", content: "z".repeat(64 * 1024) }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(APIError);
    expect((err as APIError).status).toBe(413);
  });

  it("a compressed body → 415 (send JSON uncompressed)", async () => {
    const res = await post(JSON.stringify(chatBody("x")), { "content-type": "application/json", "content-encoding": "gzip" });
    expect(envelope(res, 415)["code"]).toBe("unsupported_content_encoding");
  });

  it("curl's default form content type is fine: the body is read as JSON whatever it says", async () => {
    const res = await post(JSON.stringify(chatBody("curl")), { "content-type": "application/x-www-form-urlencoded" });
    expect(res.status).toBe(200);
    expect((JSON.parse(res.text) as { choices: Array<{ message: { content: string } }> }).choices[0]!.message.content).toBe("Echo: curl");
  });
});

describe("routes", () => {
  it("an unknown route → 404 in the same envelope", async () => {
    const error = envelope(await raw(h.httpPort, { method: "GET", path: "/v2/nothing" }), 404);
    expect(error).toMatchObject({ type: "not_found_error", code: "route_not_found" });
    expect(error["message"]).toContain("GET /v2/nothing");
  });

  it("the legacy /v1/completions is not served → 404", async () => {
    const res = await raw(h.httpPort, { path: "/v1/completions", ...json({ model: "gpt-oss-120b", prompt: "hi" }) });
    expect(envelope(res, 404)["code"]).toBe("route_not_found");
  });

  it.each([
    ["GET", "/v1/chat/completions", "POST"],
    ["DELETE", "/v1/models", "GET"],
    ["PUT", "/cerebras/v1/models/gpt-oss-120b", "GET"],
  ])("%s %s → 405 with Allow: %s", async (method, path, allow) => {
    const res = await raw(h.httpPort, { method, path });
    expect(envelope(res, 405, path.startsWith("/cerebras/"))["code"]).toBe("method_not_allowed");
    expect(res.headers["allow"]).toBe(allow);
  });

  it("everything is also served under /cerebras", async () => {
    const chat = await raw(h.httpPort, { path: "/cerebras/v1/chat/completions", ...json(chatBody("prefixed")) });
    expect(chat.status).toBe(200);
    const models = JSON.parse((await raw(h.httpPort, { method: "GET", path: "/cerebras/v1/models" })).text) as { object: string; data: unknown[] };
    expect(models.object).toBe("list");
    expect(models.data).toHaveLength(3);
  });

  it("GET /v1/models/{id}: one model, a query string ignored; an unknown id → 404 model_not_found", async () => {
    const one = await raw(h.httpPort, { method: "GET", path: "/v1/models/gpt-oss-120b?format=default" });
    expect(JSON.parse(one.text)).toEqual({ id: "gpt-oss-120b", object: "model", created: 0, owned_by: "Cerebras" });
    expect(envelope(await raw(h.httpPort, { method: "GET", path: "/v1/models/no-such-model" }), 404)["code"]).toBe("model_not_found");
  });

  it("GET /v1/tcp_warming (the Cerebras SDK's connection warm-up) → 200", async () => {
    const res = await raw(h.httpPort, { method: "GET", path: "/cerebras/v1/tcp_warming" });
    expect(res.status).toBe(200);
  });
});

describe("request ids", () => {
  it("a caller's x-request-id is echoed on success, on errors and on streams", async () => {
    const id = { "x-request-id": "req-http-1", "content-type": "application/json" };
    expect((await post(JSON.stringify(chatBody("id")), id)).headers["x-request-id"]).toBe("req-http-1");
    expect((await post("{", id)).headers["x-request-id"]).toBe("req-http-1");
    const streamed = await post(JSON.stringify(chatBody("id", { stream: true })), id);
    expect(streamed.headers["x-request-id"]).toBe("req-http-1");
    expect(h.fake.chatRequests().at(-1)!.headers["x-request-id"]).toBe("req-http-1");
  });

  it("a missing or unusable one is replaced by a fresh UUID", async () => {
    const res = await post(JSON.stringify(chatBody("id")), { "x-request-id": "bad id with spaces", "content-type": "application/json" });
    expect(res.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("configuration", () => {
  it("HTTP_ENABLED=false: no HTTP listener, gRPC unaffected", async () => {
    const off = await startHarness({ env: { HTTP_ENABLED: "false" } });
    try {
      expect(off.gateway.httpPort).toBeUndefined();
      expect(off.gateway.grpcPort).toBeGreaterThan(0);
    } finally {
      await off.close();
    }
  });
});

describe("limits shared with gRPC", () => {
  it("past MAX_IN_FLIGHT a call is refused at once: RateLimitError 429 gateway_overloaded with retry-after", async () => {
    const small = await startHttpHarness({ env: { MAX_IN_FLIGHT: "1" } });
    try {
      const gate = small.fake.holdNext(1);
      const holding = raw(small.httpPort, { path: "/v1/chat/completions", ...json(chatBody("hold the slot", { stream: true })) });
      await gate.reached;
      const err = await small.openai.chat.completions.create({ model: "gpt-oss-120b", messages: [{ role: "user", content: "one too many" }] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RateLimitError);
      expect((err as RateLimitError).code).toBe("gateway_overloaded");
      expect((err as RateLimitError).headers.get("retry-after")).toBe("1");
      gate.release();
      expect(sseData((await holding).text).at(-1)).toBe("[DONE]");
    } finally {
      await small.close();
    }
  });
});

describe("logging", () => {
  it("one line per call, like the gRPC side, with transport http", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger("info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY });
    const config = loadConfig({ CEREBRAS_API_KEY: UPSTREAM_KEY, CEREBRAS_BASE_URL: fake.url, GRPC_PORT: "0", HTTP_PORT: "0", UPSTREAM_MAX_RETRIES: "0" });
    const gateway = await startGateway(config, logger);
    try {
      const port = gateway.httpPort!;
      expect(lines.find((l) => l["msg"] === "listening")!["http"]).toBe(`127.0.0.1:${port}`);
      const client = new OpenAI({ apiKey: "x", baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
      await client.chat.completions.create({ model: "gpt-oss-120b", messages: [{ role: "user", content: "log me" }], store: true }, { headers: { "x-request-id": "log-1" } });
      const streamed = await raw(port, { path: "/v1/chat/completions", ...json(chatBody("log the stream", { stream: true })) });
      expect(sseData(streamed.text).at(-1)).toBe("[DONE]");
      await raw(port, { method: "GET", path: "/nope" });

      const calls = lines.filter((l) => l["transport"] === "http");
      expect(calls).toHaveLength(3);
      expect(calls[0]).toMatchObject({ msg: "call", method: "CreateChatCompletion", httpMethod: "POST", path: "/v1/chat/completions", requestId: "log-1", model: "gpt-oss-120b", code: "OK", status: 200, ignoredFields: ["store"] });
      expect(calls[0]!["durationMs"]).toEqual(expect.any(Number));
      expect(calls[1]).toMatchObject({ msg: "call", method: "StreamChatCompletion", code: "OK", status: 200 });
      expect(calls[2]).toMatchObject({ msg: "call failed", level: 40, path: "/nope", code: "NOT_FOUND", status: 404, reason: "ROUTE_NOT_FOUND" });
      expect(JSON.stringify(lines)).not.toContain(UPSTREAM_KEY);
    } finally {
      await gateway.close(500);
      await fake.close();
    }
  });
});
