/**
 * What an operator sees: the HTTP probes, and the one structured log line per call with
 * its figures, on both transports, plus the retry warning.
 */
import { Writable } from "node:stream";
import { Metadata } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { create, stream, userRequest } from "../helpers/harness.js";
import { raw, startHttpHarness } from "../helpers/http.js";

function capture(): { sink: Writable; lines: () => Array<Record<string, unknown>> } {
  let text = "";
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      done();
    },
  });
  return { sink, lines: () => text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("probes", () => {
  it("/healthz is up while the process serves; /readyz waits for the upstream when READYZ_REQUIRE_UPSTREAM=true", async () => {
    const h = await startHttpHarness({
      env: { READYZ_REQUIRE_UPSTREAM: "true", CATALOG_TTL_S: "3600" },
      beforeGateway: (fake) => {
        for (let i = 0; i < 2; i++) fake.failModelsNext(cerebrasErrors.serverError(503));
      },
    });
    try {
      expect((await raw(h.httpPort, { method: "GET", path: "/healthz" })).status).toBe(200);
      const notReady = await raw(h.httpPort, { method: "GET", path: "/readyz" });
      expect(notReady.status).toBe(503);
      expect(JSON.parse(notReady.text)).toEqual({ status: "not ready", reason: "the upstream has not answered yet (model catalog not loaded)" });
      // The next catalog load succeeds (here: on demand, through ListModels).
      expect((await raw(h.httpPort, { method: "GET", path: "/v1/models" })).status).toBe(200);
      expect((await raw(h.httpPort, { method: "GET", path: "/readyz" })).status).toBe(200);
    } finally {
      await h.close();
    }
  });

  it("on shutdown, /readyz and gRPC health say not ready for SHUTDOWN_DELAY_S while calls are still served", async () => {
    const h = await startHttpHarness({ env: { SHUTDOWN_DELAY_S: "0.3" } });
    try {
      expect((await raw(h.httpPort, { method: "GET", path: "/readyz" })).status).toBe(200);
      const closing = h.gateway.close(1000);
      const r = await raw(h.httpPort, { method: "GET", path: "/readyz" });
      expect(r.status).toBe(503);
      expect(JSON.parse(r.text)).toEqual({ status: "not ready", reason: "shutting down" });
      expect((await create(h.chat, userRequest("still served while draining"))).choices).toHaveLength(1);
      await closing;
    } finally {
      await h.close();
    }
  });
});

describe("the call log line", () => {
  it("carries method, transport, model, status, attempts, upstream status and id, duration, ttft and tokens; retries warn", async () => {
    const logs = capture();
    const h = await startHttpHarness({ logSink: logs.sink, env: { UPSTREAM_MAX_RETRIES: "2" } });
    try {
      const md = new Metadata();
      md.set("x-request-id", "trace-me-1");
      h.fake.failNext(cerebrasErrors.serverError(503));
      await create(h.chat, userRequest("logged"), {}, md);
      await stream(h.chat, userRequest("logged stream"));
      await raw(h.httpPort, { path: "/v1/chat/completions", headers: { "content-type": "application/json", "x-request-id": "trace-me-2" }, body: JSON.stringify({ model: "gpt-oss-120b", messages: [{ role: "user", content: "via http" }] }) });

      const calls = logs.lines().filter((l) => l["msg"] === "call");
      const unary = calls.find((l) => l["requestId"] === "trace-me-1")!;
      expect(unary).toMatchObject({ transport: "grpc", method: "CreateChatCompletion", model: "gpt-oss-120b", code: "OK", attempts: 2, upstreamStatus: 200 });
      expect(unary["upstreamRequestId"]).toMatch(/^fake-\d+$/);
      expect(unary["durationMs"]).toBeGreaterThan(0);
      expect(unary["ttftMs"]).toBeGreaterThan(0);
      expect(unary["tokens"]).toMatchObject({ prompt: expect.any(Number), completion: expect.any(Number), cached: 0, reasoning: expect.any(Number) });
      expect(unary["costUsd"]).toBeGreaterThan(0);

      const streamed = calls.find((l) => l["method"] === "StreamChatCompletion")!;
      expect(streamed).toMatchObject({ transport: "grpc", code: "OK", attempts: 1 });
      expect(streamed["ttftMs"]).toBeLessThanOrEqual(streamed["durationMs"] as number);

      expect(calls.find((l) => l["requestId"] === "trace-me-2")).toMatchObject({ transport: "http", method: "CreateChatCompletion", status: 200, code: "OK" });

      const retry = logs.lines().find((l) => l["msg"] === "retrying upstream")!;
      expect(retry).toMatchObject({ requestId: "trace-me-1", attempt: 1, reason: "UPSTREAM_SERVER_ERROR", level: 40 });
    } finally {
      await h.close();
    }
  });
});
