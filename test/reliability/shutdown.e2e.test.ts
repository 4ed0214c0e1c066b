/**
 * Graceful shutdown with streams in flight: health flips to NOT_SERVING, new calls are
 * refused, a stream that finishes within the grace period completes, and one that does
 * not is cancelled with its upstream request aborted.
 */
import { credentials, status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { FinishReason } from "../../gen/aigateway/v1/chat.js";
import { HealthCheckResponse_ServingStatus, HealthClient, type HealthCheckResponse } from "../../gen/grpc/health/v1/health.js";
import { collect, create, startHarness, until, userRequest } from "../helpers/harness.js";

describe("shutdown", () => {
  it("drains: NOT_SERVING, refuses new calls, lets in-flight streams finish within the grace, then cancels the rest", async () => {
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
      expect([status.CANCELLED, status.UNAVAILABLE]).toContain(s.error?.code);
      expect(await slowUpstream!.settled).toBe("aborted");
      slowGate.release();
    } finally {
      health.close();
      await h.close();
    }
  });
});
