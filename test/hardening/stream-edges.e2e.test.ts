/**
 * The edges of an upstream stream:
 * - the answer is complete (finish_reason with usage, or [DONE]) but the body never
 *   ends: the call ends OK at once, not UNAVAILABLE after STREAM_IDLE_TIMEOUT_S;
 * - finish_reason without usage, then silence: OK after a short wait for the usage chunk;
 * - SSE comments (`: ping`) are not progress: they reset neither the first-token timer
 *   nor the idle timer between chunks (both watch for events, as their names say).
 * Timeouts that must not fire are long (30 s) and the calls' deadlines shorter, so the old
 * behaviour fails the test instead of passing it late; timeouts that must fire are short.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeStatus, deadlineIn, stream, streamedText, userRequest } from "../helpers/harness.js";
import { chatBody, json, raw, sseData, startHttpHarness, type HttpHarness } from "../helpers/http.js";

describe("a complete answer whose body never ends", () => {
  let h: HttpHarness;
  beforeAll(async () => {
    h = await startHttpHarness({ env: { STREAM_IDLE_TIMEOUT_S: "30", FIRST_TOKEN_TIMEOUT_S: "30", UPSTREAM_MAX_RETRIES: "0" } });
  });
  afterAll(async () => {
    await h.close();
  });

  it("finish_reason with usage, then a stall: gRPC ends OK with every chunk and the usage", async () => {
    h.fake.failNext({ kind: "stall-after-finish" });
    const { chunks, error } = await stream(h.chat, userRequest("complete then silent"), deadlineIn(10_000));
    expect(error).toBeUndefined();
    expect(streamedText(chunks)).toBe("Echo: complete then silent");
    expect(chunks.at(-1)!.usage?.completionTokens).toBeGreaterThan(0);
    // The stalled upstream request is not left open either.
    await h.fake.chatRequests().at(-1)!.settled;
  });

  it("[DONE], then a stall: ends OK at once (HTTP: the SSE stream ends with [DONE])", async () => {
    h.fake.failNext({ kind: "stall-after-finish", done: true });
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("done then silent", { stream: true })) });
    expect(res.status).toBe(200);
    const events = sseData(res.text);
    expect(events.at(-1)).toBe("[DONE]");
    expect(events.some((e) => e.includes('"error"'))).toBe(false);
  });

  it("finish_reason without usage, then a stall: OK after a short wait for the usage chunk, without usage", async () => {
    h.fake.failNext({ kind: "stall-after-finish", usageApart: true });
    const { chunks, error } = await stream(h.chat, userRequest("no usage then silent"), deadlineIn(10_000));
    expect(error).toBeUndefined();
    expect(streamedText(chunks)).toBe("Echo: no usage then silent");
    expect(chunks.some((c) => c.usage !== undefined)).toBe(false);
  });
});

describe("SSE comments are not progress", () => {
  let h: HttpHarness;
  beforeAll(async () => {
    h = await startHttpHarness({ env: { FIRST_TOKEN_TIMEOUT_S: "0.5", STREAM_IDLE_TIMEOUT_S: "0.5", UPSTREAM_MAX_RETRIES: "0" } });
  });
  afterAll(async () => {
    await h.close();
  });

  it("pings and no event: UPSTREAM_TIMEOUT on the first token, though bytes keep coming", async () => {
    h.fake.failNext({ kind: "pings", afterChunks: 0, intervalMs: 50 });
    const { chunks, error } = await stream(h.chat, userRequest("pings only"), deadlineIn(10_000));
    expect(chunks).toHaveLength(0);
    expect(error?.code).toBe(status.UNAVAILABLE);
    const d = decodeStatus(error!);
    expect(d.errorInfo!.reason).toBe("UPSTREAM_TIMEOUT");
    expect(d.errorInfo!.metadata["stalledOn"]).toBe("firstToken");
  });

  it("pings after two chunks: UPSTREAM_TIMEOUT on the next chunk, with the two chunks delivered", async () => {
    h.fake.failNext({ kind: "pings", afterChunks: 2, intervalMs: 50 });
    const { chunks, error } = await stream(h.chat, userRequest("then pings"), deadlineIn(10_000));
    expect(chunks).toHaveLength(2);
    expect(error?.code).toBe(status.UNAVAILABLE);
    const d = decodeStatus(error!);
    expect(d.errorInfo!.reason).toBe("UPSTREAM_TIMEOUT");
    expect(d.errorInfo!.metadata).toMatchObject({ stalledOn: "chunk", chunksDelivered: "2" });
  });
});
