/**
 * Backpressure, on both transports: a consumer that stops reading makes the gateway stop reading upstream,
 * so what one stream buffers stays bounded however much the upstream could send.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { FinishReason, type ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import { startHarness, userRequest } from "../helpers/harness.js";
import { chatBody, sseData, startHttpHarness } from "../helpers/http.js";

const CHUNKS = 4000;
const TOKEN_BYTES = 4096;
/** Total the upstream would send if nothing pushed back: about 17 MB. */
const TOTAL_BYTES = CHUNKS * TOKEN_BYTES;

/** Resolves once `value()` has not changed for `quietMs`; fails after `maxMs`. */
async function settled(value: () => number, quietMs: number, maxMs: number): Promise<number> {
  const end = Date.now() + maxMs;
  let last = value();
  let since = Date.now();
  while (Date.now() < end) {
    await new Promise((r) => setTimeout(r, 20));
    const v = value();
    if (v !== last) {
      last = v;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) {
      return v;
    }
  }
  throw new Error("the upstream never stopped sending");
}

describe("a slow consumer", () => {
  it("holds the upstream back to a bounded amount, then gets every chunk once it reads again", async () => {
    const h = await startHarness({ fake: { fixedTokens: CHUNKS, fixedTokenSize: TOKEN_BYTES } });
    try {
      const call = h.chat.streamChatCompletion(userRequest("firehose"));
      const received: ChatCompletionChunk[] = [];
      const ended = new Promise<void>((resolve, reject) => {
        call.on("end", resolve);
        call.on("error", reject);
      });
      await new Promise<void>((resolve) => {
        call.once("data", (c: ChatCompletionChunk) => {
          received.push(c);
          call.pause();
          resolve();
        });
      });

      const upstream = h.fake.chatRequests()[0]!;
      const sent = await settled(() => upstream.chunksSent, 300, 10_000);
      const bufferedBytes = (sent - received.length) * TOKEN_BYTES;
      // Loopback socket buffers, undici's and HTTP/2's windows hold a few MB at most.
      expect(sent).toBeLessThan(CHUNKS);
      expect(bufferedBytes).toBeLessThan(TOTAL_BYTES / 2);
      expect(upstream.outcome).toBe("pending");

      call.on("data", (c: ChatCompletionChunk) => received.push(c));
      call.resume();
      await ended;
      expect(received).toHaveLength(CHUNKS + 2); // role chunk + tokens + final chunk
      expect(received.at(-1)!.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
      console.log(`slow consumer: upstream paused after ${sent}/${CHUNKS + 2} chunks, ~${(bufferedBytes / 1e6).toFixed(1)} MB in flight`);
    } finally {
      await h.close();
    }
  });
});

const HTTP_CHUNKS = 1600;
const HTTP_TOKEN_BYTES = 64 * 1024;

describe("a slow SSE reader on the HTTP shim", () => {
  it("holds the upstream back to a bounded amount, then gets every event once it reads again", async () => {
    // Two TCP hops of kernel buffers (autotuned up to tcp_rmem's max, 32 MB here) sit
    // between the upstream and this reader, so the stream must be far bigger than those
    // for "the upstream stopped early" to prove anything: ~100 MB.
    const h = await startHttpHarness({ fake: { fixedTokens: HTTP_CHUNKS, fixedTokenSize: HTTP_TOKEN_BYTES } });
    try {
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = httpRequest({ host: "127.0.0.1", port: h.httpPort, method: "POST", path: "/v1/chat/completions", headers: { "content-type": "application/json" }, agent: false }, resolve);
        req.on("error", reject);
        req.end(JSON.stringify(chatBody("firehose", { stream: true })));
      });
      expect(res.statusCode).toBe(200);
      const parts: Buffer[] = [];
      await new Promise<void>((resolve) => {
        res.once("data", (b: Buffer) => {
          parts.push(b);
          res.pause();
          resolve();
        });
      });

      const upstream = h.fake.chatRequests()[0]!;
      const sent = await settled(() => upstream.chunksSent, 300, 10_000);
      // What left the upstream but has not reached the reader: socket buffers on both hops.
      const bufferedBytes = sent * HTTP_TOKEN_BYTES - Buffer.concat(parts).length;
      expect(sent).toBeLessThan(HTTP_CHUNKS / 2);
      expect(upstream.outcome).toBe("pending");

      const ended = new Promise<void>((resolve, reject) => {
        res.on("end", resolve);
        res.on("error", reject);
      });
      res.on("data", (b: Buffer) => parts.push(b));
      res.resume();
      await ended;
      const events = sseData(Buffer.concat(parts).toString("utf8"));
      expect(events.at(-1)).toBe("[DONE]");
      expect(events).toHaveLength(HTTP_CHUNKS + 3); // role chunk + tokens + final chunk + [DONE]
      expect(JSON.parse(events.at(-2)!).choices[0].finish_reason).toBe("stop");
      console.log(`slow SSE reader: upstream paused after ${sent}/${HTTP_CHUNKS + 2} chunks, ~${(bufferedBytes / 1e6).toFixed(1)} MB in flight`);
    } finally {
      await h.close();
    }
  });
});
