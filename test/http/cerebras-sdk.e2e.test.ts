/**
 * The official `@cerebras/cerebras_cloud_sdk` client against the shim's /cerebras prefix
 * (its baseURL; it appends /v1/... itself): the calls Cerebras users make, the shape
 * they expect (usage and time_info in the last stream chunk), and its error classes.
 */
import {
  APIConnectionError,
  BadRequestError,
  InternalServerError,
  NotFoundError,
  RateLimitError,
} from "@cerebras/cerebras_cloud_sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { startHttpHarness, type HttpHarness } from "../helpers/http.js";
import { rejection } from "../helpers/harness.js";

let h: HttpHarness;
beforeAll(async () => {
  h = await startHttpHarness();
});
afterAll(async () => {
  await h.close();
});

const ask = (text: string) => ({ model: "gpt-oss-120b", messages: [{ role: "user" as const, content: text }] });

/** The SDK's completion type is a union (completion | chunk | error); read what the tests need. */
interface Completion {
  choices: Array<{ message?: { content?: string | null }; delta?: { content?: string | null }; finish_reason?: string | null }>;
  usage?: { total_tokens: number } | null;
  time_info?: { total_time?: number } | null;
}

describe("Cerebras SDK on /cerebras", () => {
  it("chat.completions.create: the answer with usage and time_info", async () => {
    const res = (await h.cerebras.chat.completions.create({ ...ask("hello cerebras"), stream: false })) as Completion;
    expect(res.choices[0]!.message!.content).toBe("Echo: hello cerebras");
    expect(res.usage!.total_tokens).toBeGreaterThan(0);
    expect(res.time_info!.total_time).toBeGreaterThan(0);
    expect(h.fake.chatRequests().at(-1)!.body).toEqual({ model: "gpt-oss-120b", messages: [{ role: "user", content: "hello cerebras" }] });
  });

  it("stream: true: chunks, and usage with time_info in the last one, where Cerebras puts them", async () => {
    const stream = await h.cerebras.chat.completions.create({ ...ask("stream cerebras"), stream: true });
    const chunks: Completion[] = [];
    for await (const chunk of stream) chunks.push(chunk as Completion);
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe("Echo: stream cerebras");
    const last = chunks.at(-1)!;
    expect(last.choices[0]!.finish_reason).toBe("stop");
    expect(last.usage!.total_tokens).toBeGreaterThan(0);
    expect(last.time_info!.total_time).toBeGreaterThan(0);
  });

  it("models.list() and models.retrieve()", async () => {
    const list = await h.cerebras.models.list();
    expect(list.data.map((m) => m.id)).toEqual(["gpt-oss-120b", "zai-glm-4.7", "gemma-4-31b"]);
    expect(await h.cerebras.models.retrieve("zai-glm-4.7")).toMatchObject({ id: "zai-glm-4.7", object: "model" });
  });
});

describe("Cerebras SDK error classes", () => {
  it("invalid request → BadRequestError 400", async () => {
    const err = await rejection(h.cerebras.chat.completions.create({ ...ask("x"), temperature: 5 }));
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).status).toBe(400);
    expect((err as BadRequestError).message).toContain("temperature");
  });

  it("unknown model → NotFoundError 404", async () => {
    const err = await rejection(h.cerebras.chat.completions.create({ ...ask("x"), model: "llama3.1-8b" }));
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).status).toBe(404);
  });

  it("token quota → RateLimitError 429 with retry headers", async () => {
    h.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(2.5));
    const err = await rejection(h.cerebras.chat.completions.create(ask("x")));
    expect(err).toBeInstanceOf(RateLimitError);
    const e = err as RateLimitError;
    expect(e.status).toBe(429);
    expect(e.headers["retry-after"]).toBe("3");
    expect(e.headers["x-cerebras-ratelimit-reset-tokens-minute"]).toBe("2.50");
  });

  it.each([
    ["upstream 500", cerebrasErrors.serverError(500), 502],
    ["queue_exceeded", cerebrasErrors.queueExceeded(), 503],
  ])("UNAVAILABLE (%s) → InternalServerError %i", async (_, fault, status) => {
    h.fake.failNext(fault);
    const err = await rejection(h.cerebras.chat.completions.create(ask("x")));
    expect(err).toBeInstanceOf(InternalServerError);
    expect((err as InternalServerError).status).toBe(status);
  });

  it("a failure mid-stream → the SDK raises from the in-band frame (its own APIConnectionError, CEREBRAS_API.md §4)", async () => {
    h.fake.failNext({ kind: "error-frame", afterChunks: 2 });
    const stream = await h.cerebras.chat.completions.create({ ...ask("fail midway"), stream: true });
    let count = 0;
    const err = await rejection(
      (async () => {
        for await (const _ of stream) count++;
      })(),
    );
    expect(count).toBe(2);
    expect(err).toBeInstanceOf(APIConnectionError);
    expect(String((err as APIConnectionError).cause)).toContain("Internal error while generating");
  });
});
