/**
 * A gRPC request that stops arriving is ended at REQUEST_BODY_TIMEOUT_S, the bound the HTTP
 * shim puts on a body: a caller with a valid key that sends a message's length prefix and
 * part of it, then stalls (no deadline), gets DEADLINE_EXCEEDED REQUEST_BODY_TIMEOUT once
 * the bound has passed since its metadata, and its HTTP/2 stream is reset (NO_ERROR), so
 * the partial message and the stream's MAX_CONCURRENT_STREAMS slot are let go although the
 * client never ends it. Callers whose request arrives in time, and a response stream that
 * lasts past the bound, are not affected.
 *
 * Waits are on events (a status, a stream's close, the fake upstream reaching a gate);
 * what must happen "before the bound" is clocked by another stalled call's own bound.
 * The gateway runs in this process: memory is measured here, after a real GC.
 */
import { constants, type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatCompletionChunk, ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { Gate } from "../../src/fake-upstream/faults.js";
import { create, startHarness, userRequest, withKey, type Harness } from "../helpers/harness.js";
import { scrape } from "../helpers/prometheus.js";
import { announce, closeSession, frame, open, refusal, reply, sendFiller, session, type RawReply } from "../helpers/raw-grpc.js";
import { arrayBuffers, jsonLogSink, withinBound } from "../helpers/in-process.js";

const KEY = "stalled-key-0123456789abcdef";
const AUTH = { authorization: `Bearer ${KEY}` };
const CREATE = "/aigateway.v1.ChatService/CreateChatCompletion";
const STREAM = "/aigateway.v1.ChatService/StreamChatCompletion";
const HEALTH = "/grpc.health.v1.Health/Check";
const MiB = 1024 * 1024;
/** REQUEST_BODY_TIMEOUT_S here, in ms: short. */
const BOUND_MS = 1500;

interface Stalled {
  readonly stream: ClientHttp2Stream;
  readonly ended: Promise<RawReply>;
  readonly startedAt: number;
}

/**
 * A call that stops sending and never ends its stream: by default it announces a 1 MiB
 * message and sends 1000 bytes of it; `bytes` sends those instead (a whole message, say).
 */
function stall(s: ClientHttp2Session, path: string, bytes: Uint8Array = Buffer.concat([announce(1 * MiB), Buffer.alloc(1000, 0x41)]), metadata: Record<string, string> = AUTH): Stalled {
  const startedAt = performance.now();
  const stream = open(s, path, metadata);
  const ended = reply(stream);
  stream.write(bytes);
  return { stream, ended, startedAt };
}

const { lines, sink: logSink } = jsonLogSink();

/** A gateway whose REQUEST_BODY_TIMEOUT_S is `boundMs`, with one key and four streams per connection. */
const gateway = (boundMs: number): Promise<Harness> =>
  startHarness({ env: { GATEWAY_API_KEYS: `svc=${KEY}`, REQUEST_BODY_TIMEOUT_S: String(boundMs / 1000), MAX_CONCURRENT_STREAMS: "4", HTTP_PORT: "0" }, logSink });

let h: Harness;
beforeAll(async () => {
  h = await gateway(BOUND_MS);
});
afterAll(async () => {
  await h?.close();
});

describe("a half-sent request message from an authenticated caller", () => {
  it("ends DEADLINE_EXCEEDED (REQUEST_BODY_TIMEOUT, naming the setting) once REQUEST_BODY_TIMEOUT_S has passed, unary and server-streaming alike, logged and counted as refused; others are served meanwhile", async () => {
    const s = await session(h.address);
    try {
      const calls = [
        stall(s, CREATE),
        stall(s, STREAM),
        // A whole message without the end of the stream: grpc-js holds it and runs no handler, so it is bounded the same.
        stall(s, CREATE, frame(ChatCompletionRequest.encode(userRequest("never ended")).finish())),
        // Health is open to anyone: a half-sent check without a key is bounded too (announced under the 8 KiB cap on open services' messages, request-size-cap.ts).
        stall(s, HEALTH, Buffer.concat([announce(4000), Buffer.alloc(1000, 0x41)]), {}),
      ];
      let refused = false;
      void Promise.allSettled(calls.map((c) => c.ended)).then(() => (refused = true));
      // Meanwhile the gateway serves another caller, answered while the stalled calls are still held
      // (their bound is 1.5 s; a unary call on loopback takes milliseconds).
      expect((await create(h.chat, userRequest("meanwhile"), {}, withKey(KEY))).choices[0]!.message!.content).toBe("Echo: meanwhile");
      expect(refused).toBe(false);

      for (const c of calls) {
        const r = await withinBound(c.ended, "a status for the stalled call");
        const waited = performance.now() - c.startedAt;
        expect(waited).toBeGreaterThanOrEqual(BOUND_MS - 50); // not before the bound (timers never fire early; 50 ms of clock slack)
        const { code, message, errorInfo } = refusal(r);
        expect(code).toBe(status.DEADLINE_EXCEEDED);
        expect(errorInfo.reason).toBe("REQUEST_BODY_TIMEOUT");
        expect(errorInfo.domain).toBe("aigateway.internal");
        expect(errorInfo.metadata).toMatchObject({ setting: "REQUEST_BODY_TIMEOUT_S", timeoutMs: String(BOUND_MS) });
        expect(message).toContain("REQUEST_BODY_TIMEOUT_S");
        expect(r.trailers["x-request-id"]).toBe(errorInfo.metadata["requestId"]);
        // The stream was reset without error although the client never ended it (stall() never does): the gateway let it go.
        expect(c.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
      }
    } finally {
      await closeSession(s);
    }
    // The gateway is fine.
    expect((await create(h.chat, userRequest("after"), {}, withKey(KEY))).choices[0]!.message!.content).toBe("Echo: after");

    // Logged and counted like any other refused call: its code and reason, its key, no model.
    const logged = lines.filter((l) => l["reason"] === "REQUEST_BODY_TIMEOUT");
    expect(logged.map((l) => l["method"]).sort()).toEqual(["Check", "CreateChatCompletion", "CreateChatCompletion", "StreamChatCompletion"]);
    for (const l of logged) expect(l).toMatchObject({ transport: "grpc", code: "DEADLINE_EXCEEDED" });
    expect(logged.filter((l) => l["key"] === "svc")).toHaveLength(3);
    const m = (await scrape(h.gateway.httpPort!)).metrics;
    const count = (method: string, key: string): number | undefined => m.value("gateway_requests_total", { transport: "grpc", method, code: "DEADLINE_EXCEEDED", model: "none", key });
    expect(count("CreateChatCompletion", "svc")).toBe(2);
    expect(count("StreamChatCompletion", "svc")).toBe(1);
    expect(count("Check", "anonymous")).toBe(1);
  });
});

describe("the bound covers the request only", () => {
  it("a request whose last bytes arrive just under the bound is served", async () => {
    const s = await session(h.address);
    try {
      // The clock: a stalled call opened at least 300 ms before the slow one (a late timer only widens
      // the gap), so its refusal comes one bound after it opened, 300 ms or more before the slow call's bound.
      const clock = stall(s, CREATE);
      await new Promise((r) => setTimeout(r, 300));
      const message = frame(ChatCompletionRequest.encode(userRequest("slow but in time")).finish());
      const slow = open(s, CREATE, AUTH);
      const slowEnded = reply(slow);
      slow.write(message.subarray(0, 10));
      await withinBound(clock.ended, "the clock call's status");
      slow.end(message.subarray(10)); // about 1.2 s after its metadata, in a 1.5 s bound
      const r = await withinBound(slowEnded, "the slow call's reply");
      expect(Number(r.trailers["grpc-status"])).toBe(status.OK);
      expect(r.body.length).toBeGreaterThan(0);
    } finally {
      await closeSession(s);
    }
  });

  it("a server stream that lasts past the bound is not cut: it applies until the request has arrived, not to the response", async () => {
    const gate = new Gate();
    h.fake.failNext({ kind: "hold", afterChunks: 1, gate });
    const s = await session(h.address);
    try {
      const streamCall = open(s, STREAM, AUTH);
      const streamEnded = reply(streamCall);
      streamCall.end(frame(ChatCompletionRequest.encode(userRequest("a long answer")).finish()));
      await withinBound(gate.reached, "the upstream stream to start");
      // Opened after the stream's request was whole: once its bound has passed, so has the stream's.
      await withinBound(stall(s, CREATE).ended, "the later stalled call's status");
      gate.release();
      const r = await withinBound(streamEnded, "the stream's end");
      expect(Number(r.trailers["grpc-status"])).toBe(status.OK);
      // Every chunk arrived: the answer's text, whole.
      const chunks: ChatCompletionChunk[] = [];
      for (let at = 0; at < r.body.length; ) {
        const size = r.body.readUInt32BE(at + 1);
        chunks.push(ChatCompletionChunk.decode(r.body.subarray(at + 5, at + 5 + size)));
        at += 5 + size;
      }
      expect(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe("Echo: a long answer");
    } finally {
      await closeSession(s);
    }
  });
});

describe("memory and slots", () => {
  // Its own gateway with a longer bound: the first sample must be taken inside it, after 16 MiB were written and a GC ran.
  const MEMORY_BOUND_MS = 4000;
  let g: Harness;
  beforeAll(async () => {
    g = await gateway(MEMORY_BOUND_MS);
  });
  afterAll(async () => {
    await g?.close();
  });

  it("holds nothing once refused: four half-sent 16 MiB messages (4 MiB of each sent) let go of their bytes and their MAX_CONCURRENT_STREAMS slots", { timeout: 60_000 }, async () => {
    const s = await session(g.address);
    try {
      const before = arrayBuffers();
      const streams = Array.from({ length: 4 }, () => open(s, CREATE, AUTH));
      const ended = streams.map((st) => reply(st));
      let answered = false;
      void Promise.allSettled(ended).then(() => (answered = true));
      await Promise.all(streams.map(async (st) => {
        st.write(announce(16 * MiB));
        await sendFiller(st, 4 * MiB);
      }));
      const held = arrayBuffers() - before;
      expect(answered).toBe(false); // sampled inside the bound: the sample below means something
      expect(held).toBeGreaterThan(8 * MiB); // grpc-js holds the partial messages until then

      // A fifth call on the same connection waits for a slot (MAX_CONCURRENT_STREAMS=4 here): it gets one once the stalled calls are refused.
      const fifth = open(s, CREATE, AUTH);
      const fifthEnded = reply(fifth);
      fifth.end(frame(ChatCompletionRequest.encode(userRequest("a free slot")).finish()));

      for (const r of await withinBound(Promise.all(ended), "statuses for the stalled calls")) expect(refusal(r).errorInfo.reason).toBe("REQUEST_BODY_TIMEOUT");
      const ok = await withinBound(fifthEnded, "the fifth call's reply");
      expect(Number(ok.trailers["grpc-status"])).toBe(status.OK);

      const grown = arrayBuffers() - before;
      expect(grown).toBeLessThan(4 * MiB); // the 16 MiB are gone, with the session still open and the streams never ended by the client
    } finally {
      await closeSession(s);
    }
  });
});
