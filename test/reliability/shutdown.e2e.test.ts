/**
 * Graceful shutdown with calls in flight: health flips to NOT_SERVING, new calls are
 * refused, a call that finishes within the grace period completes, and one that does
 * not ends with the documented in-band error (UNAVAILABLE GATEWAY_SHUTTING_DOWN: the
 * gRPC status, or the SSE error event) with its upstream request aborted, never a cut
 * connection (CANCELLED, or an event stream that just stops).
 */
import { credentials, status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { FinishReason } from "../../gen/aigateway/v1/chat.js";
import { HealthCheckResponse_ServingStatus, HealthClient, type HealthCheckResponse } from "../../gen/grpc/health/v1/health.js";
import { collect, create, decodeStatus, rejection, startHarness, until, userRequest } from "../helpers/harness.js";
import { chatBody, json, raw, sseData, startHttpHarness } from "../helpers/http.js";
import type { ServiceError } from "@grpc/grpc-js";

describe("shutdown", () => {
  it("drains: NOT_SERVING, refuses new calls, lets in-flight streams finish within the grace, then ends the rest with UNAVAILABLE GATEWAY_SHUTTING_DOWN", async () => {
    const h = await startHarness();
    const health = new HealthClient(h.address, credentials.createInsecure());
    try {
      const statuses: number[] = [];
      const watch = health.watch({ service: "aigateway.v1.ChatService" });
      watch.on("data", (r: HealthCheckResponse) => statuses.push(r.status));
      watch.on("error", () => {});
      await new Promise((resolve) => watch.once("data", resolve));

      const quickGate = h.fake.holdNext(1);
      const quick = collect(h.chat.streamChatCompletion(userRequest("finishes in time")));
      await quickGate.reached;
      const slowGate = h.fake.holdNext(1);
      const slow = collect(h.chat.streamChatCompletion(userRequest("never finishes")));
      await slowGate.reached;
      const [quickUpstream, slowUpstream] = h.fake.chatRequests();

      const closed = h.gateway.close(1000);
      await until(() => statuses.at(-1) === HealthCheckResponse_ServingStatus.NOT_SERVING, 5000, "health to say NOT_SERVING");

      const fresh = await create(h.chat, userRequest("too late")).then(
        () => "served",
        (e: { code: number }) => e.code,
      );
      expect(fresh).toBe(status.UNAVAILABLE);

      quickGate.release();
      const q = await quick;
      expect(q.error).toBeUndefined();
      expect(q.chunks.at(-1)!.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
      expect(quickUpstream!.outcome).toBe("completed");

      await closed;
      const s = await slow;
      expect(s.chunks.length).toBeGreaterThan(0);
      expect(s.error?.code).toBe(status.UNAVAILABLE);
      const details = decodeStatus(s.error!);
      expect(details.errorInfo?.reason).toBe("GATEWAY_SHUTTING_DOWN");
      expect(details.errorInfo?.metadata["chunksDelivered"]).toBe(String(s.chunks.length));
      expect(details.message).toBe("the gateway is shutting down; retry on another instance");
      expect(await slowUpstream!.settled).toBe("aborted");
      slowGate.release();
    } finally {
      health.close();
      await h.close();
    }
  });

  it("a unary call still running when the grace runs out ends with UNAVAILABLE GATEWAY_SHUTTING_DOWN and its upstream request is aborted", async () => {
    const h = await startHarness();
    try {
      h.fake.failNext({ kind: "hang" });
      const call = create(h.chat, userRequest("hangs upstream"));
      await until(() => h.fake.chatRequests().length === 1, 5000, "the upstream request");
      const closed = h.gateway.close(200);
      const err = (await rejection(call)) as ServiceError;
      expect(err.code).toBe(status.UNAVAILABLE);
      const details = decodeStatus(err);
      expect(details.errorInfoCount).toBe(1);
      expect(details.errorInfo?.reason).toBe("GATEWAY_SHUTTING_DOWN");
      expect(details.errorInfo?.metadata["requestId"]).toEqual(expect.any(String));
      expect(await h.fake.chatRequests()[0]!.settled).toBe("aborted");
      await closed;
    } finally {
      await h.close();
    }
  });
});

describe("shutdown on the HTTP shim", () => {
  it("an SSE stream still running when the grace runs out ends with one gateway_shutting_down error event (503), no [DONE]", async () => {
    const g = await startHttpHarness();
    try {
      const gate = g.fake.holdNext(2);
      const streaming = raw(g.httpPort, { path: "/v1/chat/completions", ...json(chatBody("outlives the grace", { stream: true })) });
      await gate.reached;
      const closed = g.gateway.close(200);
      const res = await streaming;
      expect(res.status).toBe(200);
      const events = sseData(res.text);
      expect(events).toHaveLength(3); // the two chunks sent, then the error
      expect(JSON.parse(events[2]!)).toEqual({
        error: { message: "the gateway is shutting down; retry on another instance", type: "service_unavailable_error", param: null, code: "gateway_shutting_down" },
        status_code: 503,
      });
      expect(res.text).not.toContain("[DONE]");
      expect(await g.fake.chatRequests()[0]!.settled).toBe("aborted");
      await closed;
      gate.release();
    } finally {
      await g.close();
    }
  });

  it("a unary call still running when the grace runs out gets a 503 gateway_shutting_down with connection: close", async () => {
    const g = await startHttpHarness();
    try {
      g.fake.failNext({ kind: "hang" });
      const call = raw(g.httpPort, { path: "/v1/chat/completions", ...json(chatBody("hangs upstream")) });
      await until(() => g.fake.chatRequests().length === 1, 5000, "the upstream request");
      const closed = g.gateway.close(200);
      const res = await call;
      expect(res.status).toBe(503);
      expect(res.headers["connection"]).toBe("close");
      expect(JSON.parse(res.text)).toMatchObject({ error: { code: "gateway_shutting_down", type: "service_unavailable_error" } });
      await closed;
    } finally {
      await g.close();
    }
  });
});
