/**
 * GatewayClient against the real gateway and the fake Cerebras on 127.0.0.1: what a
 * caller gets back, and that leaving a call (break, abort, deadline) reaches the upstream.
 */
import { Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FinishReason, Role } from "../../gen/aigateway/v1/chat.js";
import { GatewayError } from "../../src/core/errors.js";
import { textMessage } from "../../src/client/messages.js";
import { streamedText, until, userRequest } from "../helpers/harness.js";
import { drain, rejection, startClientHarness, type ClientHarness } from "./support.js";

let h: ClientHarness;
beforeAll(async () => {
  h = await startClientHarness();
});
afterAll(async () => {
  await h.close();
});

const lastUpstream = () => h.fake.chatRequests().at(-1)!;

describe("GatewayClient calls", () => {
  it("createChatCompletion resolves with the completion", async () => {
    const res = await h.client.createChatCompletion(userRequest("hello client"));
    expect(res.choices[0]!.message!.content).toBe("Echo: hello client");
    expect(res.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(res.usage!.totalTokens).toBeGreaterThan(0);
  });

  it("accepts a partial request (fromPartial fills the rest)", async () => {
    const res = await h.client.createChatCompletion({ messages: [textMessage(Role.ROLE_USER, "partial")], maxCompletionTokens: 3 });
    expect(res.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_LENGTH);
    expect(lastUpstream().body).toMatchObject({ max_completion_tokens: 3 });
  });

  it("streamChatCompletion yields every chunk in order; the last carries usage", async () => {
    const stream = h.client.streamChatCompletion(userRequest("stream to me"));
    const { items, error } = await drain(stream);
    expect(error).toBeUndefined();
    expect(streamedText(items)).toBe("Echo: stream to me");
    expect(items.at(-1)!.choices[0]!.finishReason).toBe(FinishReason.FINISH_REASON_STOP);
    expect(items.at(-1)!.usage!.completionTokens).toBeGreaterThan(0);
    expect(lastUpstream().outcome).toBe("completed");
  });

  it("sends an x-request-id known before the call starts, which the gateway passes upstream", async () => {
    const stream = h.client.streamChatCompletion(userRequest("which id?"));
    expect(stream.requestId).toMatch(/^[0-9a-f-]{36}$/);
    await drain(stream);
    expect(lastUpstream().headers["x-request-id"]).toBe(stream.requestId);
  });

  it("uses the caller's request id and metadata when given", async () => {
    const metadata = new Metadata();
    metadata.set("x-caller", "svc-a");
    await h.client.createChatCompletion(userRequest("mine"), { requestId: "trace-42", metadata });
    expect(lastUpstream().headers["x-request-id"]).toBe("trace-42");
  });

  it("listModels and getModel", async () => {
    const models = await h.client.listModels();
    expect(models.map((m) => m.id)).toContain("gpt-oss-120b");
    const one = await h.client.getModel("gpt-oss-120b");
    expect(one.id).toBe("gpt-oss-120b");
    const err = await rejection(h.client.getModel("no-such-model"));
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).reason).toBe("MODEL_NOT_FOUND");
  });

  it("a stream can be iterated once", () => {
    const stream = h.client.streamChatCompletion(userRequest("once"));
    void stream[Symbol.asyncIterator]().return();
    expect(() => stream[Symbol.asyncIterator]()).toThrow(/once/);
  });
});

describe("leaving a call reaches the upstream", () => {
  it("breaking out of a stream early cancels the call and the upstream request is aborted", async () => {
    const gate = h.fake.holdNext(3);
    try {
      const before = h.fake.chatRequests().length;
      let seen = 0;
      for await (const _chunk of h.client.streamChatCompletion(userRequest("break early"))) {
        if (++seen === 2) break;
      }
      expect(seen).toBe(2);
      expect(h.fake.chatRequests().length).toBe(before + 1);
      expect(await lastUpstream().settled).toBe("aborted");
    } finally {
      gate.release();
    }
  });

  it("aborting the signal mid-stream throws CANCELLED and aborts the upstream request", async () => {
    const gate = h.fake.holdNext(2);
    try {
      const ac = new AbortController();
      const stream = h.client.streamChatCompletion(userRequest("abort me"), { signal: ac.signal });
      const seen: unknown[] = [];
      const err = await rejection(
        (async () => {
          for await (const chunk of stream) {
            seen.push(chunk);
            if (seen.length === 1) ac.abort();
          }
        })(),
      );
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).code).toBe(1); // CANCELLED
      expect((err as GatewayError).metadata["requestId"]).toBe(stream.requestId);
      expect(await lastUpstream().settled).toBe("aborted");
    } finally {
      gate.release();
    }
  });

  it("stream.cancel() while waiting for a chunk ends iteration with CANCELLED", async () => {
    const gate = h.fake.holdNext(1);
    try {
      const stream = h.client.streamChatCompletion(userRequest("cancel while waiting"));
      const it = stream[Symbol.asyncIterator]();
      expect((await it.next()).done).toBe(false);
      await gate.reached;
      const pending = it.next();
      stream.cancel();
      const err = await rejection(pending);
      expect((err as GatewayError).code).toBe(1);
      expect(await lastUpstream().settled).toBe("aborted");
    } finally {
      gate.release();
    }
  });

  it("aborting a unary call rejects with CANCELLED and aborts the upstream request", async () => {
    h.fake.failNext({ kind: "hang" });
    const before = h.fake.chatRequests().length;
    const ac = new AbortController();
    const p = h.client.createChatCompletion(userRequest("hang"), { signal: ac.signal });
    await until(() => h.fake.chatRequests().length > before, 5000, "the upstream request");
    ac.abort();
    const err = await rejection(p);
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe(1);
    expect((err as GatewayError).reason).toBe("CANCELLED");
    expect(await lastUpstream().settled).toBe("aborted");
  });

  it("an already aborted signal never starts a call", async () => {
    const before = h.fake.chatRequests().length;
    const err = await rejection(h.client.createChatCompletion(userRequest("never"), { signal: AbortSignal.abort() }));
    expect((err as GatewayError).code).toBe(1);
    const { items, error } = await drain(h.client.streamChatCompletion(userRequest("never"), { signal: AbortSignal.abort() }));
    expect(items).toHaveLength(0);
    expect((error as GatewayError).code).toBe(1);
    expect(h.fake.chatRequests().length).toBe(before);
  });

  it("a unary deadline → DEADLINE_EXCEEDED, and the upstream request is aborted", async () => {
    h.fake.failNext({ kind: "hang" });
    const err = await rejection(h.client.createChatCompletion(userRequest("slow"), { deadlineMs: 300 }));
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe(4);
    expect((err as GatewayError).reason).toBe("DEADLINE_EXCEEDED");
    expect(await lastUpstream().settled).toBe("aborted");
  });

  it("a deadline passing mid-stream → the chunks already sent, then DEADLINE_EXCEEDED; upstream aborted", async () => {
    const gate = h.fake.holdNext(2);
    try {
      const { items, error } = await drain(h.client.streamChatCompletion(userRequest("slow stream"), { deadlineMs: 300 }));
      expect(items).toHaveLength(2);
      expect((error as GatewayError).code).toBe(4);
      expect(await lastUpstream().settled).toBe("aborted");
    } finally {
      gate.release();
    }
  });

  it("the client's default deadline applies to calls that set none", async () => {
    const short = await startClientHarness({}, { defaultDeadlineMs: 300 });
    try {
      short.fake.failNext({ kind: "hang" });
      const err = await rejection(short.client.createChatCompletion(userRequest("default deadline")));
      expect((err as GatewayError).code).toBe(4);
      expect(await short.fake.chatRequests()[0]!.settled).toBe("aborted");
    } finally {
      await short.close();
    }
  });

  it("leaves no upstream request open", async () => {
    await until(() => h.fake.openRequests() === 0, 5000, "upstream requests to close");
  });
});
