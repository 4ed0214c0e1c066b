/**
 * Request streams are bounded too, and the services open without a key take small
 * requests only. Server reflection (bidi, no key needed) is where this matters: a caller
 * that sends a message's prefix and part of it, or nothing more, and stalls gets
 * DEADLINE_EXCEEDED REQUEST_BODY_TIMEOUT once REQUEST_BODY_TIMEOUT_S has passed since the
 * metadata or its previous message, and its HTTP/2 stream is reset (NO_ERROR), so the
 * partial message and the stream's slot are let go although the client never ends it. A
 * message announced over 8 KiB to health or reflection is refused at its 5-byte prefix.
 * A reflection client that keeps asking is served past the bound, however long it goes on.
 *
 * Waits are on events (a status, a stream's close); what must happen "before the bound"
 * is clocked by another stalled call's own bound.
 */
import { constants, type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckRequest } from "../../gen/grpc/health/v1/health.js";
import * as v1 from "../../gen/grpc/reflection/v1/reflection.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection.js";
import { decodeStatus, startHarness, type Harness } from "../helpers/harness.js";
import { scrape } from "../helpers/prometheus.js";
import { announce, closeSession, expectOpenServiceCapRefusal, frame, open, refusal, reply, sendFiller, session, type RawReply } from "../helpers/raw-grpc.js";
import { jsonLogSink, withinBound } from "../helpers/in-process.js";

const KEY = "reflection-stall-key-0123456789";
const REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
const REFLECTION_ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo";
const HEALTH = "/grpc.health.v1.Health/Check";
const MiB = 1024 * 1024;
/** REQUEST_BODY_TIMEOUT_S here, in ms: short. */
const BOUND_MS = 1500;

/** A reflection request, framed. */
const listServices = (host = ""): Buffer => frame(v1.ServerReflectionRequest.encode({ host, messageRequest: { $case: "listServices", value: "" } }).finish());

/** 1000 bytes of a 4000-byte message (under the open services' 8 KiB cap: only the bound ends it). */
const halfMessage = (): Buffer => Buffer.concat([announce(4000), Buffer.alloc(1000, 0x41)]);

interface Stalled {
  readonly stream: ClientHttp2Stream;
  readonly ended: Promise<RawReply>;
  readonly startedAt: number;
}

/** A call without a key that writes `bytes` (by default, half a message), then stops and never ends its stream. */
function stall(s: ClientHttp2Session, path: string, bytes: Buffer = halfMessage()): Stalled {
  const startedAt = performance.now();
  const stream = open(s, path);
  const ended = reply(stream);
  if (bytes.length > 0) stream.write(bytes);
  return { stream, ended, startedAt };
}

/** The reflection answers (gRPC frames) in a raw reply's body. */
function answers(body: Buffer): v1.ServerReflectionResponse[] {
  const out: v1.ServerReflectionResponse[] = [];
  for (let at = 0; at < body.length; ) {
    const size = body.readUInt32BE(at + 1);
    out.push(v1.ServerReflectionResponse.decode(body.subarray(at + 5, at + 5 + size)));
    at += 5 + size;
  }
  return out;
}

/** Resolves once the first response frame has arrived on `stream`: what was sent before it was read. */
const firstData = (stream: ClientHttp2Stream): Promise<void> => new Promise((resolve) => stream.once("data", () => resolve()));

const { lines, sink: logSink } = jsonLogSink();

let h: Harness;
beforeAll(async () => {
  // With keys (reflection stays open) and four streams per connection, to see slots freed.
  h = await startHarness({ env: { GATEWAY_API_KEYS: `svc=${KEY}`, REQUEST_BODY_TIMEOUT_S: String(BOUND_MS / 1000), MAX_CONCURRENT_STREAMS: "4", HTTP_PORT: "0" }, logSink });
});
afterAll(async () => {
  await h?.close();
});

describe("a stalled reflection stream (no key needed)", () => {
  it("ends DEADLINE_EXCEEDED (REQUEST_BODY_TIMEOUT, naming the setting) once REQUEST_BODY_TIMEOUT_S has passed, v1 and v1alpha, half-sent or silent from the start, its stream reset (NO_ERROR); logged and counted as refused", async () => {
    const s = await session(h.address);
    try {
      const calls = [stall(s, REFLECTION), stall(s, REFLECTION_ALPHA), stall(s, REFLECTION, Buffer.alloc(0))];
      for (const c of calls) {
        const r = await withinBound(c.ended, "a status for the stalled reflection stream");
        expect(performance.now() - c.startedAt).toBeGreaterThanOrEqual(BOUND_MS - 50); // not before the bound (50 ms of clock slack)
        const { code, message, errorInfo } = refusal(r);
        expect(code).toBe(status.DEADLINE_EXCEEDED);
        expect(errorInfo.reason).toBe("REQUEST_BODY_TIMEOUT");
        expect(errorInfo.metadata).toMatchObject({ setting: "REQUEST_BODY_TIMEOUT_S", timeoutMs: String(BOUND_MS) });
        expect(message).toContain("of the call's metadata or of its previous message (REQUEST_BODY_TIMEOUT_S)");
        expect(r.trailers["x-request-id"]).toBe(errorInfo.metadata["requestId"]);
        // Reset without error although the client never ended it: the gateway let go of the stream.
        expect(c.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
      }
    } finally {
      await closeSession(s);
    }
    const logged = lines.filter((l) => l["reason"] === "REQUEST_BODY_TIMEOUT" && l["method"] === "ServerReflectionInfo");
    expect(logged).toHaveLength(3);
    for (const l of logged) expect(l).toMatchObject({ transport: "grpc", code: "DEADLINE_EXCEEDED" });
    const m = (await scrape(h.gateway.httpPort!)).metrics;
    expect(m.value("gateway_requests_total", { transport: "grpc", method: "ServerReflectionInfo", code: "DEADLINE_EXCEEDED", model: "none", key: "anonymous" })).toBe(3);
  });

  it("half a message after answered requests: the answers stand, then the same refusal in the trailers, and the stream is reset", async () => {
    const s = await session(h.address);
    try {
      const c = open(s, REFLECTION);
      const ended = reply(c);
      const answered = firstData(c);
      c.write(Buffer.concat([listServices("first"), listServices("second")]));
      await withinBound(answered, "the first answer");
      const stalledAt = performance.now();
      c.write(halfMessage());
      const r = await withinBound(ended, "a status for the stalled reflection stream");
      expect(performance.now() - stalledAt).toBeGreaterThanOrEqual(BOUND_MS - 150); // not before the bound (the previous message came a moment before the stall)
      expect(answers(r.body).map((a) => [a.validHost, a.messageResponse?.$case])).toEqual([
        ["first", "listServicesResponse"],
        ["second", "listServicesResponse"],
      ]);
      expect(refusal(r).errorInfo.reason).toBe("REQUEST_BODY_TIMEOUT");
      expect(c.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
    } finally {
      await closeSession(s);
    }
  });

  it("lets go of its slot: four stalled streams fill a connection (MAX_CONCURRENT_STREAMS=4), a fifth is answered once they are refused", async () => {
    const s = await session(h.address);
    try {
      // One answered call first: the gateway's SETTINGS (its stream limit) have arrived.
      const first = open(s, HEALTH);
      const firstEnded = reply(first);
      first.end(frame(HealthCheckRequest.encode({ service: "" }).finish()));
      expect(Number((await withinBound(firstEnded, "a health check")).trailers["grpc-status"])).toBe(status.OK);
      const stalled = [stall(s, REFLECTION), stall(s, REFLECTION_ALPHA), stall(s, REFLECTION), stall(s, REFLECTION_ALPHA)];
      // Set once one of them has ended (their bounds end at about the same time, not in the same tick).
      let oneRefused = false;
      for (const c of stalled) void c.ended.then(() => (oneRefused = true), () => {});
      const fifth = open(s, REFLECTION);
      const fifthEnded = reply(fifth);
      fifth.end(listServices("fifth"));
      const firstAnswer = await withinBound(fifthEnded, "the fifth stream's reply");
      expect(oneRefused).toBe(true); // it waited for a slot a stalled stream held until its bound
      for (const c of stalled) expect(refusal(await c.ended).errorInfo.reason).toBe("REQUEST_BODY_TIMEOUT");
      expect(Number(firstAnswer.trailers["grpc-status"])).toBe(status.OK);
      expect(answers(firstAnswer.body).map((a) => a.validHost)).toEqual(["fifth"]);
    } finally {
      await closeSession(s);
    }
  });
});

describe("a reflection client that keeps asking", () => {
  it("is served on one stream for longer than the bound: the bound is per message, counted from the previous one", async () => {
    const s = await session(h.address);
    const client = new v1.ServerReflectionClient(h.address, credentials.createInsecure());
    try {
      // The clock: a stream stalled from the start, opened with the client's; its refusal comes one bound after both opened.
      const clock = stall(s, REFLECTION, Buffer.alloc(0));
      let clockDone = false;
      void clock.ended.then(() => (clockDone = true), () => (clockDone = true)); // still open at the end of the test: the session is closed under it
      const call = client.serverReflectionInfo();
      const received: v1.ServerReflectionResponse[] = [];
      let next: ((a: v1.ServerReflectionResponse) => void) | undefined;
      const failed = new Promise<never>((_, reject) => call.on("error", reject));
      const ended = new Promise<void>((resolve) => call.on("end", resolve));
      call.on("data", (a: v1.ServerReflectionResponse) => {
        received.push(a);
        next?.(a);
      });
      const ask = (symbol: string): Promise<v1.ServerReflectionResponse> => {
        const answer = new Promise<v1.ServerReflectionResponse>((resolve) => (next = resolve));
        call.write({ host: "", messageRequest: { $case: "fileContainingSymbol", value: symbol } });
        return Promise.race([answer, failed]);
      };
      // Asks one after another, as grpcurl and buf curl do, until the clock's bound has passed (bounded loop).
      let asked = 0;
      for (; !clockDone && asked < 200_000; asked++) await withinBound(ask("aigateway.v1.ChatService"), "an answer");
      expect(clockDone).toBe(true);
      // Past the bound of the stream's metadata, it still answers; then the client closes it.
      expect((await withinBound(ask("grpc.health.v1.Health"), "an answer past the bound")).messageResponse?.$case).toBe("fileDescriptorResponse");
      call.end();
      await withinBound(Promise.race([ended, failed]), "the stream's end");
      expect(received.length).toBe(asked + 1);
      expect(received.every((a) => a.messageResponse?.$case === "fileDescriptorResponse")).toBe(true);
    } finally {
      client.close();
      await closeSession(s);
    }
  });

  it("left idle past the bound, is ended DEADLINE_EXCEEDED REQUEST_BODY_TIMEOUT (clients open a new stream)", async () => {
    const client = new v1alpha.ServerReflectionClient(h.address, credentials.createInsecure());
    try {
      const call = client.serverReflectionInfo();
      const answered = new Promise<v1alpha.ServerReflectionResponse>((resolve) => call.once("data", resolve));
      const failed = new Promise<ServiceError>((resolve) => call.on("error", resolve));
      call.write({ host: "", messageRequest: { $case: "listServices", value: "" } });
      expect((await withinBound(answered, "the answer")).messageResponse?.$case).toBe("listServicesResponse");
      const err = await withinBound(failed, "the idle stream's end");
      expect(err.code).toBe(status.DEADLINE_EXCEEDED);
      expect(decodeStatus(err).errorInfo?.reason).toBe("REQUEST_BODY_TIMEOUT");
    } finally {
      client.close();
    }
  });
});

describe("open services take small requests only", () => {
  it("a reflection or health message announced over 8 KiB is refused at its prefix (INVALID_ARGUMENT, naming the cap), before the bound and before its bytes are read, and its stream is reset", async () => {
    const s = await session(h.address);
    try {
      // The clock: opened first, refused one bound later; the oversized calls must be refused before it.
      const clock = stall(s, REFLECTION_ALPHA);
      let clockDone = false;
      void clock.ended.then(() => (clockDone = true), () => (clockDone = true)); // still open at the end of the test: the session is closed under it
      for (const path of [REFLECTION, HEALTH]) {
        const c = open(s, path);
        const ended = reply(c);
        c.write(announce(16 * MiB));
        const sending = sendFiller(c, 4 * MiB); // stops once the gateway resets the stream
        const r = await withinBound(ended, "the oversized call's status");
        await sending;
        expect(clockDone).toBe(false);
        expectOpenServiceCapRefusal(r, 16 * MiB);
        expect(c.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
      }
      // The health service still answers a real check (8 KiB is far above what one needs).
      const ok = open(s, HEALTH);
      const okEnded = reply(ok);
      ok.end(frame(HealthCheckRequest.encode({ service: "aigateway.v1.ChatService" }).finish()));
      expect(Number((await withinBound(okEnded, "the health check")).trailers["grpc-status"])).toBe(status.OK);
    } finally {
      await closeSession(s);
    }
    const logged = lines.filter((l) => l["reason"] === "INVALID_REQUEST");
    expect(logged.map((l) => l["method"]).sort()).toEqual(["Check", "ServerReflectionInfo"]);
  });

  it("a message just under the cap is read and answered (in-band INVALID_ARGUMENT for a name over 1024 characters, as before)", async () => {
    const client = new v1.ServerReflectionClient(h.address, credentials.createInsecure());
    try {
      const call = client.serverReflectionInfo();
      const got: v1.ServerReflectionResponse[] = [];
      const done = new Promise<void>((resolve, reject) => {
        call.on("data", (a: v1.ServerReflectionResponse) => got.push(a));
        call.on("end", resolve);
        call.on("error", reject);
      });
      call.write({ host: "h".repeat(4000), messageRequest: { $case: "fileContainingSymbol", value: "s".repeat(4000) } }); // ~8000 bytes
      call.write({ host: "", messageRequest: { $case: "listServices", value: "" } });
      call.end();
      await withinBound(done, "the answers");
      expect(got.map((a) => a.messageResponse?.$case)).toEqual(["errorResponse", "listServicesResponse"]);
    } finally {
      client.close();
    }
  });
});
