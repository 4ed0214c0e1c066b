/**
 * A gRPC request message over MAX_REQUEST_BYTES is refused at its 5-byte prefix, the
 * gateway's way: RESOURCE_EXHAUSTED with one ErrorInfo (REQUEST_TOO_LARGE, the sizes and
 * the setting), logged and counted like any refused call, then its HTTP/2 stream reset
 * (NO_ERROR), before a byte of the message is read, so nothing (no slot, no buffer) is
 * held although the client never sends the rest or ends its stream. (grpc-js alone
 * refused it too, but bare: no ErrorInfo, no log line, no count, the stream left
 * half-open.) A message of exactly MAX_REQUEST_BYTES is served; health and reflection
 * keep their 8 KiB cap. The limit is on the size as sent: a gzip message within it that
 * inflates past it is grpc-js' to refuse (README's Errors).
 *
 * MAX_REQUEST_BYTES is small here (64 KiB), so nothing big is sent. Waits are on events
 * (a status, a stream's close); REQUEST_BODY_TIMEOUT_S is long (60 s), so a status that
 * arrives at all, with REQUEST_TOO_LARGE, came from the prefix and not from the bound.
 * The gateway runs in this process: memory is measured here, after a real GC.
 */
import { gzipSync } from "node:zlib";
import { constants, type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatCompletion, ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { HealthCheckRequest } from "../../gen/grpc/health/v1/health.js";
import { collect, create, decodeStatus, startHarness, userRequest, withKey, type Harness } from "../helpers/harness.js";
import { scrape } from "../helpers/prometheus.js";
import { announce, closeSession, expectOpenServiceCapRefusal, frame, open, refusal, reply, responseHeaders, sendFiller, session, type RawReply } from "../helpers/raw-grpc.js";
import { arrayBuffers, jsonLogSink, withinBound } from "../helpers/in-process.js";

const KEY = "request-size-key-0123456789abcdef";
const AUTH = { authorization: `Bearer ${KEY}` };
const CREATE = "/aigateway.v1.ChatService/CreateChatCompletion";
const STREAM = "/aigateway.v1.ChatService/StreamChatCompletion";
const HEALTH = "/grpc.health.v1.Health/Check";
const REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
/** MAX_REQUEST_BYTES here: small, and above the open services' 8 KiB cap. */
const LIMIT = 64 * 1024;
const MiB = 1024 * 1024;

const { lines, sink: logSink } = jsonLogSink();

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    env: { GATEWAY_API_KEYS: `svc=${KEY}`, MAX_REQUEST_BYTES: String(LIMIT), REQUEST_BODY_TIMEOUT_S: "60", MAX_CONCURRENT_STREAMS: "4", HTTP_PORT: "0" },
    logSink,
  });
});
afterAll(async () => {
  await h?.close();
});

/** A one-message user request whose encoding is exactly `bytes` long (bounded search over the text's length). */
function requestOfSize(bytes: number): ChatCompletionRequest {
  for (let n = bytes; n > bytes - 32; n--) {
    const request = userRequest("x".repeat(n));
    if (ChatCompletionRequest.encode(request).finish().length === bytes) return request;
  }
  throw new Error(`no request of ${bytes} bytes`);
}

/** Opens a call on `s`, writes `bytes` (by default the prefix of a message over the limit, and 100 of its bytes) and never ends it. */
function sendPart(s: ClientHttp2Session, path: string, bytes: Buffer = Buffer.concat([announce(LIMIT + 1), Buffer.alloc(100, 0x41)]), metadata: Record<string, string> = AUTH): { stream: ClientHttp2Stream; ended: Promise<RawReply> } {
  const stream = open(s, path, metadata);
  const ended = reply(stream);
  stream.write(bytes);
  return { stream, ended };
}

/** Checks a raw reply is the REQUEST_TOO_LARGE refusal of a `size`-byte message, and that its stream was reset without error. */
function expectTooLarge(c: { stream: ClientHttp2Stream }, r: RawReply, size: number): void {
  const { code, message, errorInfo } = refusal(r); // exactly one ErrorInfo, Status.code = grpc-status
  expect(code).toBe(status.RESOURCE_EXHAUSTED);
  expect(errorInfo.reason).toBe("REQUEST_TOO_LARGE");
  expect(errorInfo.domain).toBe("aigateway.internal");
  expect(errorInfo.metadata).toMatchObject({ setting: "MAX_REQUEST_BYTES", maxBytes: String(LIMIT), sizeBytes: String(size) });
  expect(message).toContain("MAX_REQUEST_BYTES");
  expect(message).toContain(`${size} bytes`);
  expect(r.trailers["x-request-id"]).toBe(errorInfo.metadata["requestId"]);
  expect(c.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
}

describe("a chat message announced over MAX_REQUEST_BYTES", () => {
  it("is refused at its prefix, unary and server-streaming: RESOURCE_EXHAUSTED REQUEST_TOO_LARGE with the sizes, naming MAX_REQUEST_BYTES, before the rest is sent, and its stream is reset", async () => {
    const before = lines.length;
    const s = await session(h.address);
    try {
      // One byte over, and the largest length a prefix can announce (a lying one: 4 GiB - 1).
      const calls = [
        { ...sendPart(s, CREATE), size: LIMIT + 1 },
        { ...sendPart(s, STREAM), size: LIMIT + 1 },
        { ...sendPart(s, CREATE, Buffer.concat([announce(0xffffffff), Buffer.alloc(100, 0x41)])), size: 0xffffffff },
      ];
      // Only the prefix and 100 bytes were sent, and the stream never ended: the status comes from the prefix.
      for (const c of calls) expectTooLarge(c, await withinBound(c.ended, "the oversized call's status"), c.size);
    } finally {
      await closeSession(s);
    }
    // Logged like any refused call (one line each, its key, no secret), and counted.
    const logged = lines.slice(before).filter((l) => l["reason"] === "REQUEST_TOO_LARGE");
    expect(logged.map((l) => l["method"]).sort()).toEqual(["CreateChatCompletion", "CreateChatCompletion", "StreamChatCompletion"]);
    for (const l of logged) expect(l).toMatchObject({ transport: "grpc", code: "RESOURCE_EXHAUSTED", key: "svc" });
    expect(JSON.stringify(logged)).not.toContain(KEY);
    const m = (await scrape(h.gateway.httpPort!)).metrics;
    const count = (method: string): number | undefined => m.value("gateway_requests_total", { transport: "grpc", method, code: "RESOURCE_EXHAUSTED", model: "none", key: "svc" });
    expect(count("CreateChatCompletion")).toBe(2);
    expect(count("StreamChatCompletion")).toBe(1);
    expect(h.fake.chatRequests()).toHaveLength(0);
  });

  it("the generated client: one byte over is refused with the ErrorInfo (unary and stream); exactly MAX_REQUEST_BYTES is served", async () => {
    const over = requestOfSize(LIMIT + 1);
    const err = (await create(h.chat, over, {}, withKey(KEY)).catch((e: unknown) => e)) as ServiceError;
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    const d = decodeStatus(err);
    expect(d.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(d.errorInfoCount).toBe(1);
    expect(d.errorInfo!.reason).toBe("REQUEST_TOO_LARGE");
    expect(d.errorInfo!.metadata).toMatchObject({ maxBytes: String(LIMIT), sizeBytes: String(LIMIT + 1) });
    expect(err.details).toBe(d.message);
    const streamed = await collect(h.chat.streamChatCompletion(over, withKey(KEY)));
    expect(streamed.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(decodeStatus(streamed.error!).errorInfo!.reason).toBe("REQUEST_TOO_LARGE");
    expect(streamed.chunks).toHaveLength(0);

    const exact = requestOfSize(LIMIT);
    const text = exact.messages[0]!.contentKind!.$case === "content" ? exact.messages[0]!.contentKind!.value : "";
    expect((await create(h.chat, exact, {}, withKey(KEY))).choices[0]!.message!.content).toBe(`Echo: ${text}`);
    const ok = await collect(h.chat.streamChatCompletion(exact, withKey(KEY)));
    expect(ok.error).toBeUndefined();
    expect(ok.chunks.length).toBeGreaterThan(0);
  });

  it("a caller without a key is still refused on its metadata (UNAUTHENTICATED), not on its message's size", async () => {
    const s = await session(h.address);
    try {
      const c = sendPart(s, CREATE, undefined, {});
      void c.ended.catch(() => undefined); // the session is closed under it
      // A trailers-only reply, as soon as the metadata is read (auth-interceptor.ts; the stream itself is left to the client).
      const headers = await withinBound(responseHeaders(c.stream), "the unauthenticated call's status");
      const { code, errorInfo } = refusal({ headers, trailers: headers, body: Buffer.alloc(0) });
      expect(code).toBe(status.UNAUTHENTICATED);
      expect(errorInfo.reason).toBe("API_KEY_MISSING");
    } finally {
      await closeSession(s);
    }
  });
});

describe("health and reflection keep their 8 KiB cap", () => {
  it("over 8 KiB (and under MAX_REQUEST_BYTES): INVALID_ARGUMENT naming the 8192-byte cap, at the prefix, stream reset; a real check is served", async () => {
    const s = await session(h.address);
    try {
      for (const path of [HEALTH, REFLECTION]) {
        const c = sendPart(s, path, Buffer.concat([announce(8 * 1024 + 1), Buffer.alloc(100, 0x41)]), {});
        expectOpenServiceCapRefusal(await withinBound(c.ended, "the oversized open call's status"), 8 * 1024 + 1);
        expect(c.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
      }
      const ok = open(s, HEALTH);
      const okEnded = reply(ok);
      ok.end(frame(HealthCheckRequest.encode({ service: "aigateway.v1.ChatService" }).finish()));
      expect(Number((await withinBound(okEnded, "the health check")).trailers["grpc-status"])).toBe(status.OK);
    } finally {
      await closeSession(s);
    }
  });

  it("with MAX_REQUEST_BYTES under 8 KiB, theirs is MAX_REQUEST_BYTES: REQUEST_TOO_LARGE, as for chat", async () => {
    const small = await startHarness({ env: { MAX_REQUEST_BYTES: "4096", HTTP_PORT: "0" } });
    const s = await session(small.address);
    try {
      const c = sendPart(s, HEALTH, Buffer.concat([announce(4097), Buffer.alloc(100, 0x41)]), {});
      const { code, errorInfo } = refusal(await withinBound(c.ended, "the oversized check's status"));
      expect(code).toBe(status.RESOURCE_EXHAUSTED);
      expect(errorInfo.reason).toBe("REQUEST_TOO_LARGE");
      expect(errorInfo.metadata).toMatchObject({ maxBytes: "4096", sizeBytes: "4097" });
      expect(c.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
    } finally {
      await closeSession(s);
      await small.close();
    }
  });
});

describe("compressed messages (grpc-encoding: gzip)", () => {
  /** A gzip-compressed gRPC frame (flag 1) of `message`. */
  const gzipFrame = (message: Uint8Array): Buffer => {
    const body = gzipSync(message);
    const out = frame(body);
    out.writeUInt8(1, 0);
    return out;
  };
  const GZIP = { ...AUTH, "grpc-encoding": "gzip" };

  it("the limit is on the size as sent: a compressed message within it is served, one announced over it is refused at its prefix (saying compressed)", async () => {
    const s = await session(h.address);
    try {
      // ~48 KiB of text, compressed to a few hundred bytes: under the limit both ways.
      const served = open(s, CREATE, GZIP);
      const servedEnded = reply(served);
      served.end(gzipFrame(ChatCompletionRequest.encode(userRequest("y".repeat(48 * 1024))).finish()));
      const r = await withinBound(servedEnded, "the compressed call's reply");
      expect(Number(r.trailers["grpc-status"])).toBe(status.OK);
      expect(ChatCompletion.decode(r.body.subarray(5)).choices[0]!.message!.content).toBe(`Echo: ${"y".repeat(48 * 1024)}`);

      const over = sendPart(s, CREATE, Buffer.concat([Buffer.from([1]), announce(LIMIT + 1).subarray(1), Buffer.alloc(100, 0x41)]), GZIP);
      const overReply = await withinBound(over.ended, "the oversized compressed call's status");
      expectTooLarge(over, overReply, LIMIT + 1);
      expect(refusal(overReply).message).toContain("compressed");
    } finally {
      await closeSession(s);
    }
  });

  it("one within the limit as sent that inflates past it is refused by grpc-js: RESOURCE_EXHAUSTED, its own message, no ErrorInfo; the gateway goes on serving", async () => {
    const s = await session(h.address);
    try {
      const bomb = gzipFrame(ChatCompletionRequest.encode(userRequest("z".repeat(LIMIT))).finish()); // > LIMIT inflated, a few hundred bytes sent
      expect(bomb.length).toBeLessThan(LIMIT);
      const c = open(s, CREATE, GZIP);
      const ended = reply(c);
      c.end(bomb);
      const r = await withinBound(ended, "the inflated call's status");
      expect(Number(r.trailers["grpc-status"])).toBe(status.RESOURCE_EXHAUSTED);
      expect(decodeURIComponent(String(r.trailers["grpc-message"]))).toContain(`decompresses to a size larger than ${LIMIT}`);
      expect(r.trailers["grpc-status-details-bin"]).toBeUndefined();
    } finally {
      await closeSession(s);
    }
    expect((await create(h.chat, userRequest("after"), {}, withKey(KEY))).choices[0]!.message!.content).toBe("Echo: after");
  });
});

describe("memory and slots", () => {
  it("holds nothing once refused: four oversized calls never ended by the client, 1 MiB of filler sent after each prefix, free their MAX_CONCURRENT_STREAMS slots and their bytes", { timeout: 30_000 }, async () => {
    const s = await session(h.address);
    try {
      const before = arrayBuffers();
      const calls = Array.from({ length: 4 }, () => sendPart(s, CREATE, announce(16 * MiB)));
      // The rest of each message follows; sendFiller stops once the gateway resets the stream.
      await Promise.all(calls.map((c) => sendFiller(c.stream, 1 * MiB)));
      for (const c of calls) expectTooLarge(c, await withinBound(c.ended, "the oversized call's status"), 16 * MiB);

      // A fifth call on the same connection (MAX_CONCURRENT_STREAMS=4 here) gets a slot: the four were let go.
      const fifth = open(s, CREATE, AUTH);
      const fifthEnded = reply(fifth);
      fifth.end(frame(ChatCompletionRequest.encode(userRequest("a free slot")).finish()));
      expect(Number((await withinBound(fifthEnded, "the fifth call's reply")).trailers["grpc-status"])).toBe(status.OK);

      expect(arrayBuffers() - before).toBeLessThan(1 * MiB); // none of the 4 MiB sent is held, with the session still open
    } finally {
      await closeSession(s);
    }
  });
});
