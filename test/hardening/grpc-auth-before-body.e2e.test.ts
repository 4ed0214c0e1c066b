/**
 * The gRPC port refuses an unauthenticated call on its metadata, before grpc-js buffers
 * or decodes a byte of its message: a caller with a bad (or no) key gets UNAUTHENTICATED
 * while its body is still incomplete, and forty half-sent 16 MiB messages hold nothing.
 * What one authenticated connection may hold is bounded by MAX_CONCURRENT_STREAMS
 * streams, each at most MAX_REQUEST_BYTES, for at most REQUEST_BODY_TIMEOUT_S
 * (grpc-stalled-request.e2e.test.ts): grpc-js reads eagerly, so HTTP/2 windows do not
 * bound it, and grpc-node.max_session_memory does not count its buffers (README).
 *
 * Memory is measured in this process (the gateway runs in it), with a real GC between
 * samples (`gc` is exposed at run time), as `arrayBuffers`: where message bytes live.
 */
import { constants, type ClientHttp2Session } from "node:http2";
import { Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Status } from "../../gen/google/rpc/status.js";
import { ErrorInfo } from "../../gen/google/rpc/error_details.js";
import { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { create, startHarness, userRequest, type Harness } from "../helpers/harness.js";
import { announce, closeSession, frame, open, reply, responseHeaders, sendFiller, session } from "../helpers/raw-grpc.js";
import { scrape } from "../helpers/prometheus.js";
import { arrayBuffers, withinBound } from "../helpers/in-process.js";

const KEY = "grpc-key-0123456789abcdef";
const CREATE = "/aigateway.v1.ChatService/CreateChatCompletion";
const MiB = 1024 * 1024;

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { GATEWAY_API_KEYS: `svc=${KEY}`, MAX_CONCURRENT_STREAMS: "4", HTTP_PORT: "0" } });
});
afterAll(async () => {
  await h.close();
});

describe("an unauthenticated call is refused on its metadata", () => {
  for (const [what, metadata, reason] of [
    ["a wrong key", { authorization: "Bearer not-the-key-0123456789" }, "API_KEY_INVALID"],
    ["no key", {}, "API_KEY_MISSING"],
  ] as const) {
    it(`${what}: UNAUTHENTICATED (${reason}) while the body is still incomplete`, async () => {
      const s = await session(h.address);
      try {
        const stream = open(s, CREATE, metadata);
        const headers = responseHeaders(stream);
        stream.write(Buffer.concat([announce(1 * MiB), Buffer.alloc(1000)])); // and never the rest
        const reply = await withinBound(headers, "no status while the body was incomplete");
        expect(Number(reply["grpc-status"])).toBe(status.UNAUTHENTICATED); // a trailers-only reply
        expect(reply["x-request-id"]).toBeTruthy();
        const details = Status.decode(Buffer.from(String(reply["grpc-status-details-bin"]), "base64"));
        expect(ErrorInfo.decode(details.details[0]!.value).reason).toBe(reason);
      } finally {
        s.destroy();
      }
    });
  }

  it("is still logged and counted (code UNAUTHENTICATED, key anonymous), and a good key is named", async () => {
    const md = new Metadata();
    md.set("authorization", `Bearer ${KEY}`);
    await create(h.chat, userRequest("with the key"), {}, md);
    const m = (await scrape(h.gateway.httpPort!)).metrics;
    expect(m.value("gateway_requests_total", { transport: "grpc", method: "CreateChatCompletion", code: "UNAUTHENTICATED", model: "none", key: "anonymous" })).toBeGreaterThanOrEqual(2);
    expect(m.value("gateway_requests_total", { transport: "grpc", method: "CreateChatCompletion", code: "OK", model: "gpt-oss-120b", key: "svc" })).toBe(1);
  });
});

describe("CPU", () => {
  it("a whole 15 MiB message of tiny sub-messages with a bad key is never decoded", { timeout: 60_000 }, async () => {
    // messages (2) { role (1) = 1 }, four bytes each: ~3.9 million sub-messages to decode.
    const body = Buffer.alloc(15 * MiB);
    for (let i = 0; i + 4 <= body.length; i += 4) body.set([0x12, 0x02, 0x08, 0x01], i);
    const message = Buffer.concat([announce(body.length), body]);
    const s = await session(h.address);
    try {
      const before = process.cpuUsage();
      const stream = open(s, CREATE, { authorization: "Bearer wrong-key-0123456789" });
      stream.on("error", () => {});
      const ended = reply(stream);
      stream.end(message);
      expect(Number((await ended).trailers["grpc-status"])).toBe(status.UNAUTHENTICATED);
      const used = process.cpuUsage(before);
      const cpuMs = (used.user + used.system) / 1000;
      // Decoding it takes well over a CPU-second; moving its bytes (both ends, one process) a fraction.
      expect(cpuMs).toBeLessThan(500);
    } finally {
      await closeSession(s);
    }
  });
});

describe("memory", () => {
  it("forty half-sent 16 MiB messages without a key hold nothing (4 MiB of each sent)", { timeout: 60_000 }, async () => {
    const sessions: ClientHttp2Session[] = [];
    try {
      const before = arrayBuffers();
      // Ten connections of four streams (MAX_CONCURRENT_STREAMS=4 here).
      for (let c = 0; c < 10; c++) sessions.push(await session(h.address));
      const streams = sessions.flatMap((s) => Array.from({ length: 4 }, () => open(s, CREATE, { authorization: "Bearer wrong-key-0123456789" })));
      for (const st of streams) st.on("error", () => {});
      await Promise.all(streams.map(async (st) => {
        st.write(announce(16 * MiB));
        await sendFiller(st, 4 * MiB);
      }));
      const grown = arrayBuffers() - before;
      // Before: ≥ 160 MiB held by grpc-js' decoders; now, the refused streams' bytes are dropped as they come.
      expect(grown).toBeLessThan(16 * MiB);
    } finally {
      await Promise.all(sessions.map(closeSession));
    }
  });

  it("an authenticated connection holds at most MAX_CONCURRENT_STREAMS half-sent messages (the bound that exists: see the README)", { timeout: 60_000 }, async () => {
    const s = await session(h.address);
    try {
      const before = arrayBuffers();
      const streams = Array.from({ length: 12 }, () => open(s, CREATE, { authorization: `Bearer ${KEY}` }));
      for (const st of streams) st.on("error", () => {});
      // The server admits four streams at once; the client keeps the others waiting (a client that
      // did not would have them refused by the server's HTTP/2 stack). Write to the four.
      await Promise.all(streams.slice(0, 4).map(async (st) => {
        st.write(announce(16 * MiB));
        await sendFiller(st, 4 * MiB);
      }));
      for (const st of streams.slice(4)) st.write(announce(16 * MiB));
      const grown = arrayBuffers() - before;
      expect(grown).toBeGreaterThan(8 * MiB); // the four admitted streams' bytes are held: this measures something
      expect(grown).toBeLessThan(4 * 4 * MiB + 8 * MiB); // and no more than four streams' worth
    } finally {
      await closeSession(s);
    }
  });
});

describe("slots", () => {
  it("a refused call's stream is reset (NO_ERROR) after its status: four keyless calls the client never ends do not keep the connection's MAX_CONCURRENT_STREAMS slots", { timeout: 30_000 }, async () => {
    const s = await session(h.address);
    try {
      const refused = Array.from({ length: 4 }, () => {
        const stream = open(s, CREATE, { authorization: "Bearer wrong-key-0123456789" });
        const ended = reply(stream); // resolves on the stream's close: a half-open one never closes
        stream.write(Buffer.concat([announce(1 * MiB), Buffer.alloc(1000)])); // and never the rest, nor the end
        return { stream, ended };
      });
      for (const r of refused) {
        expect(Number((await withinBound(r.ended, "the refused stream's close")).trailers["grpc-status"])).toBe(status.UNAUTHENTICATED);
        expect(r.stream.rstCode).toBe(constants.NGHTTP2_NO_ERROR);
      }
      // A fifth call on the same connection (four streams at most here) gets a slot.
      const fifth = open(s, CREATE, { authorization: `Bearer ${KEY}` });
      const served = reply(fifth);
      fifth.end(frame(ChatCompletionRequest.encode(userRequest("a free slot")).finish()));
      expect(Number((await withinBound(served, "the fifth call's reply")).trailers["grpc-status"])).toBe(status.OK);
    } finally {
      await closeSession(s);
    }
  });
});
