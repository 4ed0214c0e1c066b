/**
 * Streaming and cancellation through the shim, paced by the fake upstream's gates (no
 * wall-clock thresholds): events are not buffered, a client leaving closes the upstream
 * request, failures after the first byte end in-band, and shutdown lets streams finish.
 */
import { Agent } from "node:http";
import { APIUserAbortError } from "openai";
import type { ChatCompletionChunk } from "openai/resources/chat/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rejection, until } from "../helpers/harness.js";
import { chatBody, json, raw, sseData, startHttpHarness, type HttpHarness } from "../helpers/http.js";

let h: HttpHarness;
beforeAll(async () => {
  h = await startHttpHarness();
});
afterAll(async () => {
  await h.close();
});

const ask = (text: string) => ({ model: "gpt-oss-120b", messages: [{ role: "user" as const, content: text }] });

describe("events are not buffered", () => {
  it("the first SSE event reaches the client while the upstream is held after its first chunk", async () => {
    const gate = h.fake.holdNext(1);
    const stream = await h.openai.chat.completions.create({ ...ask("paced"), stream: true });
    const it = stream[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).toBe(false);
    expect(first.value!.choices[0]!.delta.role).toBe("assistant");
    // The upstream has produced exactly one chunk and is waiting for the test.
    await gate.reached;
    expect(h.fake.chatRequests().at(-1)!.chunksSent).toBe(1);

    gate.release();
    const rest: ChatCompletionChunk[] = [];
    for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value);
    expect(rest.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe("Echo: paced");
    expect(rest.at(-1)!.choices[0]!.finish_reason).toBe("stop");
  });

  it("on the wire: event-stream headers, one `data:` per chunk, finish_reason null until the end, then [DONE]", async () => {
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("wire", { stream: true })) });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
    expect(res.headers["cache-control"]).toBe("no-cache, no-transform");
    expect(res.headers["x-accel-buffering"]).toBe("no");
    expect(res.headers["content-length"]).toBeUndefined();
    expect(res.text.endsWith("\n\ndata: [DONE]\n\n")).toBe(true);
    const events = sseData(res.text);
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as { object: string; choices: Array<{ finish_reason: string | null }> });
    // One event per upstream chunk.
    expect(chunks).toHaveLength(h.fake.chatRequests().at(-1)!.chunksSent);
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks.slice(0, -1).every((c) => c.choices[0]!.finish_reason === null)).toBe(true);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("stop");
  });
});

describe("a client leaving aborts the upstream request at once", () => {
  it("unary: the client aborts while the upstream is thinking", async () => {
    h.fake.failNext({ kind: "hang" });
    const before = h.fake.chatRequests().length;
    const controller = new AbortController();
    const call = h.openai.chat.completions.create(ask("abandon me"), { signal: controller.signal });
    await until(() => h.fake.chatRequests().length > before, 5000, "the upstream request");
    controller.abort();
    expect(await rejection(call)).toBeInstanceOf(APIUserAbortError);
    expect(await h.fake.chatRequests().at(-1)!.settled).toBe("aborted");
  });

  it("streaming: the client stops after the first chunk while the upstream is held", async () => {
    const gate = h.fake.holdNext(1);
    const stream = await h.openai.chat.completions.create({ ...ask("abandon the stream"), stream: true });
    for await (const _ of stream) break; // leaving the loop aborts the SDK's request
    expect(await h.fake.chatRequests().at(-1)!.settled).toBe("aborted");
    gate.release();
  });

  it("afterwards no upstream request is left open and the shim still serves", async () => {
    await until(() => h.fake.openRequests() === 0, 5000, "upstream requests to close");
    const res = await h.openai.chat.completions.create(ask("still alive?"));
    expect(res.choices[0]!.message.content).toBe("Echo: still alive?");
  });
});

describe("failures after the first byte end in-band", () => {
  it("an upstream error frame → the chunks sent, then one error event in the envelope, no [DONE]", async () => {
    h.fake.failNext({ kind: "error-frame", afterChunks: 2 });
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("broken", { stream: true })) });
    expect(res.status).toBe(200);
    const events = sseData(res.text);
    expect(events).toHaveLength(3);
    expect(JSON.parse(events[2]!)).toEqual({
      error: { message: "Cerebras: Internal error while generating", type: "upstream_error", param: null, code: "upstream_stream_error" },
      status_code: 502,
    });
    expect(res.text).not.toContain("[DONE]");
  });

  it("EOF without finish_reason → an error event, not a quiet end", async () => {
    h.fake.failNext({ kind: "eof-without-finish", afterChunks: 3 });
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("short", { stream: true })) });
    const events = sseData(res.text);
    expect(events).toHaveLength(4);
    expect(JSON.parse(events[3]!)).toMatchObject({ error: { code: "upstream_stream_truncated" }, status_code: 502 });
  });

  it("the time budget running out mid-stream → a deadline_exceeded event, and the upstream closed", async () => {
    const short = await startHttpHarness({ env: { REQUEST_TIMEOUT_S: "0.3" } });
    try {
      const gate = short.fake.holdNext(2);
      const res = await raw(short.httpPort, { path: "/v1/chat/completions", ...json(chatBody("slow", { stream: true })) });
      const events = sseData(res.text);
      expect(events).toHaveLength(3);
      expect(JSON.parse(events[2]!)).toMatchObject({ error: { code: "deadline_exceeded", type: "timeout_error" }, status_code: 504 });
      expect(await short.fake.chatRequests()[0]!.settled).toBe("aborted");
      gate.release();
    } finally {
      await short.close();
    }
  });
});

describe("shutdown", () => {
  it("lets an in-flight stream on a kept-alive connection finish, then stops without waiting out the grace", async () => {
    const g = await startHttpHarness();
    // A node:http keep-alive agent never closes an idle socket itself: the server must.
    const agent = new Agent({ keepAlive: true });
    try {
      const gate = g.fake.holdNext(2);
      const streaming = raw(g.httpPort, { path: "/v1/chat/completions", ...json(chatBody("finish me", { stream: true })), agent });
      await gate.reached;
      // A grace far beyond the test timeout: close() must end once the last call is over.
      const closed = g.gateway.close(60_000);
      gate.release();
      const res = await streaming;
      expect(res.headers["connection"]).toBe("keep-alive");
      expect(sseData(res.text).at(-1)).toBe("[DONE]");
      await closed;
      await expect(raw(g.httpPort, { path: "/v1/models", method: "GET" })).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      agent.destroy();
      await g.close();
    }
  });
});
