/**
 * Limits and the last line of defence: the in-flight cap, oversized requests, and a bug
 * in the gateway becoming INTERNAL with a correlation id — never a dead process.
 */
import { Writable } from "node:stream";
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ChatServiceClient, type ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import { CallReporter } from "../../src/core/call-log.js";
import { ModelCatalog } from "../../src/core/catalog.js";
import { ChatService } from "../../src/core/chat-service.js";
import { InFlightLimit } from "../../src/core/in-flight.js";
import type { ChatProvider } from "../../src/core/provider.js";
import { startGrpcServer } from "../../src/grpc/server.js";
import { createLogger } from "../../src/log.js";
import { collect, create, decodeStatus, startHarness, stream, userRequest } from "../helpers/harness.js";

describe("MAX_IN_FLIGHT", () => {
  it("refuses calls past the cap with RESOURCE_EXHAUSTED + RetryInfo, and admits again when a slot frees", async () => {
    const h = await startHarness({ env: { MAX_IN_FLIGHT: "1" } });
    try {
      const gate = h.fake.holdNext(1);
      const held = collect(h.chat.streamChatCompletion(userRequest("holding the only slot")));
      await gate.reached;
      const err = (await create(h.chat, userRequest("one too many")).catch((e: unknown) => e)) as ServiceError;
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      const d = decodeStatus(err);
      expect(d.errorInfo!.reason).toBe("GATEWAY_OVERLOADED");
      expect(d.retryInfo!.retryDelay).toEqual({ seconds: 1, nanos: 0 });
      expect((await stream(h.chat, userRequest("also too many"))).error?.code).toBe(status.RESOURCE_EXHAUSTED);
      gate.release();
      expect((await held).error).toBeUndefined();
      expect((await create(h.chat, userRequest("room again"))).choices[0]!.message!.content).toBe("Echo: room again");
    } finally {
      await h.close();
    }
  });
});

describe("MAX_REQUEST_BYTES", () => {
  it("rejects a request message over the limit with RESOURCE_EXHAUSTED REQUEST_TOO_LARGE before it reaches the core", async () => {
    const h = await startHarness({ env: { MAX_REQUEST_BYTES: "4096" } });
    try {
      const err = (await create(h.chat, userRequest("x".repeat(10_000))).catch((e: unknown) => e)) as ServiceError;
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
      expect(decodeStatus(err).errorInfo?.reason).toBe("REQUEST_TOO_LARGE"); // the prefix check's (test/hardening/grpc-request-size.e2e.test.ts), not grpc-js' bare one
      expect(h.fake.chatRequests()).toHaveLength(0);
      expect((await create(h.chat, userRequest("small"))).choices[0]!.message!.content).toBe("Echo: small");
    } finally {
      await h.close();
    }
  });
});

describe("a bug in the gateway", () => {
  /** A provider that fails the way bugs do: plain exceptions, sync and async, mid-stream. */
  const broken: ChatProvider = {
    createChatCompletion: async () => {
      throw new TypeError("Cannot read properties of undefined (reading 'boom')");
    },
    streamChatCompletion: async (_request, _ctx, sink) => {
      await sink({ id: "1", object: "chat.completion.chunk", created: 0, model: "m", systemFingerprint: "", choices: [] } satisfies ChatCompletionChunk);
      throw new RangeError("stream bug: secret internals");
    },
    listModels: () => {
      throw new Error("sync throw in listModels");
    },
    close: async () => {},
  };

  it("becomes INTERNAL with a correlation id; the cause is logged under that id and never sent; the server keeps serving", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    const catalog = new ModelCatalog(async () => [], { ttlMs: 60_000, aliases: new Map(), pricingOverrides: new Map() });
    const chat = new ChatService(broken, catalog, { defaultModel: "m", maxMessages: 10, allowUnlistedModels: true });
    const server = await startGrpcServer(chat, {
      host: "127.0.0.1",
      port: 0,
      reporter: new CallReporter(createLogger("info", sink)),
      ceilingMs: 5000,
      limit: new InFlightLimit(10),
      maxRequestBytes: 1 << 20,
      requestBodyTimeoutMs: 10_000,
      maxConcurrentStreams: 10,
      keys: undefined,
      tls: undefined,
    });
    const client = new ChatServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
    try {
      for (let i = 0; i < 2; i++) {
        const err = (await create(client, userRequest("x")).catch((e: unknown) => e)) as ServiceError;
        expect(err.code).toBe(status.INTERNAL);
        expect(err.details).toBe("internal error");
        const d = decodeStatus(err);
        expect(d.errorInfo!.reason).toBe("INTERNAL");
        const id = d.errorInfo!.metadata["requestId"]!;
        const logged = lines.find((l) => l["requestId"] === id);
        expect(logged!["msg"]).toBe("call failed");
        expect(JSON.stringify(logged)).toContain("reading 'boom'");
        expect(JSON.stringify(d)).not.toContain("boom");
      }
      const { chunks, error } = await stream(client, userRequest("x"));
      expect(chunks).toHaveLength(1);
      expect(error!.code).toBe(status.INTERNAL);
      expect(JSON.stringify(decodeStatus(error!))).not.toContain("secret internals");
    } finally {
      client.close();
      await server.shutdown(100);
    }
  });
});
