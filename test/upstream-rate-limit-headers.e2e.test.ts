/**
 * Cerebras' own rate-limit headers reach callers on success, on both transports, renamed
 * `x-cerebras-ratelimit-*` (the gateway's `x-ratelimit-*` describe the caller's own
 * limits): HTTP response headers; gRPC initial metadata, with a unary reply and with the
 * first message of a stream; and on an upstream 429 too.
 */
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatCompletion, ChatCompletionChunk } from "../gen/aigateway/v1/chat.js";
import { cerebrasErrors } from "../src/fake-upstream/faults.js";
import { userRequest } from "./helpers/harness.js";
import { chatBody, json, raw, startHttpHarness, type HttpHarness } from "./helpers/http.js";

let h: HttpHarness;
beforeAll(async () => {
  h = await startHttpHarness();
});
afterAll(async () => {
  await h.close();
});

/** The fake sends these on every chat response (fake-upstream/server.ts). */
const EXPECTED = {
  "x-cerebras-ratelimit-limit-requests-day": "14400",
  "x-cerebras-ratelimit-remaining-tokens-minute": "999000",
  "x-cerebras-ratelimit-reset-tokens-minute": "11.38",
};

function unaryWithMetadata(): Promise<{ metadata: Metadata; reply: ChatCompletion }> {
  return new Promise((resolve, reject) => {
    let metadata: Metadata | undefined;
    const call = h.chat.createChatCompletion(userRequest("headers please"), new Metadata(), (err: ServiceError | null, reply?: ChatCompletion) => {
      if (err) reject(err);
      else resolve({ metadata: metadata!, reply: reply! });
    });
    call.on("metadata", (md: Metadata) => (metadata = md));
  });
}

describe("Cerebras' rate-limit headers on success", () => {
  it("reach gRPC callers in the initial metadata of a unary reply", async () => {
    const { metadata, reply } = await unaryWithMetadata();
    expect(reply.choices[0]!.message!.content).toBe("Echo: headers please");
    for (const [name, value] of Object.entries(EXPECTED)) expect(metadata.get(name)).toEqual([value]);
    expect(metadata.get("x-ratelimit-limit-requests-day")).toEqual([]);
  });

  it("reach gRPC callers with the first message of a stream", async () => {
    const call = h.chat.streamChatCompletion(userRequest("stream headers"), new Metadata());
    const events: string[] = [];
    let metadata: Metadata | undefined;
    call.on("metadata", (md: Metadata) => {
      metadata = md;
      events.push("metadata");
    });
    await new Promise<void>((resolve, reject) => {
      call.on("data", (_c: ChatCompletionChunk) => events.push("data"));
      call.on("end", resolve);
      call.on("error", reject);
    });
    expect(events[0]).toBe("metadata");
    for (const [name, value] of Object.entries(EXPECTED)) expect(metadata!.get(name)).toEqual([value]);
  });

  it("reach HTTP callers on a JSON reply and on an event stream", async () => {
    const unary = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("hi")) });
    expect(unary.status).toBe(200);
    const sse = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("hi", { stream: true })) });
    expect(sse.status).toBe(200);
    for (const r of [unary, sse]) {
      for (const [name, value] of Object.entries(EXPECTED)) expect(r.headers[name]).toBe(value);
      expect(r.headers["x-ratelimit-limit-requests-day"]).toBeUndefined();
    }
  });
});

describe("Cerebras' rate-limit headers on an upstream 429", () => {
  it("reach gRPC callers in the metadata before the RESOURCE_EXHAUSTED status", async () => {
    h.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(7.5));
    const metadata = await new Promise<Metadata>((resolve, reject) => {
      let md: Metadata | undefined;
      const call = h.chat.createChatCompletion(userRequest("x"), new Metadata(), (err: ServiceError | null) => {
        if (err === null) reject(new Error("expected a refusal"));
        else resolve(md ?? new Metadata());
      });
      call.on("metadata", (m: Metadata) => (md = m));
    });
    expect(metadata.get("x-cerebras-ratelimit-reset-tokens-minute")).toEqual(["7.50"]);
    expect(metadata.get("x-cerebras-ratelimit-remaining-tokens-minute")).toEqual(["0"]);
  });
});
