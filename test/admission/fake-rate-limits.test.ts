/**
 * The fake Cerebras enforces per-model organisation limits as CEREBRAS_API.md §5.3-5.4
 * describes the real one, so the gateway's organisation limits are tested against an
 * honest stand-in: a request reserves its estimated input plus max_completion_tokens
 * (the model's maximum when unset) up front and gives back the unused part when it ends;
 * one that does not fit gets 429 with Cerebras' code and message; every chat response
 * carries the buckets' x-ratelimit-* headers. Plain HTTP, no gateway.
 */
import { afterEach, describe, expect, it } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "../../src/fake-upstream/server.js";

let fake: FakeUpstream | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function chat(body: Record<string, unknown>): Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const res = await fetch(`${fake!.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, headers: res.headers, json: (await res.json()) as Record<string, unknown> };
}

const ask = (extra: Record<string, unknown> = {}) => ({ model: "gpt-oss-120b", messages: [{ role: "user", content: "hi" }], ...extra });
/** The fake's prompt count for ask(): a token per 4 characters of the messages' JSON. */
const PROMPT = Math.ceil(JSON.stringify(ask().messages).length / 4);

describe("the fake upstream's organisation limits", () => {
  it("refuses requests past the per-minute request limit with Cerebras' 429 request_quota_exceeded", async () => {
    fake = await startFakeUpstream({ rateLimits: { "gpt-oss-120b": [{ resource: "requests", window: "minute", limit: 2 }] } });
    const first = await chat(ask({ max_completion_tokens: 5 }));
    expect(first.status).toBe(200);
    expect(first.headers.get("x-ratelimit-limit-requests-minute")).toBe("2");
    expect(first.headers.get("x-ratelimit-remaining-requests-minute")).toBe("1");
    expect(Number(first.headers.get("x-ratelimit-reset-requests-minute"))).toBeCloseTo(30, 0);
    expect((await chat(ask({ max_completion_tokens: 5 }))).status).toBe(200);
    const refused = await chat(ask({ max_completion_tokens: 5 }));
    expect(refused.status).toBe(429);
    expect(refused.json).toEqual({ message: "Requests per minute limit exceeded - too many requests sent.", type: "too_many_requests_error", param: "quota", code: "request_quota_exceeded" });
    expect(refused.headers.get("x-ratelimit-remaining-requests-minute")).toBe("0");
    expect(fake.rateLimited).toBe(1);
    // Another model is not limited.
    expect((await chat({ ...ask(), model: "zai-glm-4.7" })).status).toBe(200);
  });

  it("reserves input + max_completion_tokens (the model's maximum when unset) and gives back the unused part when the request ends", async () => {
    fake = await startFakeUpstream({ rateLimits: { "gpt-oss-120b": [{ resource: "tokens", window: "day", limit: 100_000 }] } });
    const first = await chat(ask({ max_completion_tokens: 1000 }));
    expect(first.headers.get("x-ratelimit-remaining-tokens-day")).toBe(String(100_000 - PROMPT - 1000));
    const usage = first.json["usage"] as { total_tokens: number };
    const second = await chat(ask());
    // The first call's unused reservation came back; the second reserves the model's 40960.
    expect(second.headers.get("x-ratelimit-remaining-tokens-day")).toBe(String(100_000 - usage.total_tokens - PROMPT - 40_960));
    const tooBig = await chat(ask({ max_completion_tokens: 200_000 }));
    expect(tooBig.status).toBe(429);
    expect(tooBig.json).toMatchObject({ code: "token_quota_exceeded", type: "too_many_tokens_error", message: "Tokens per day limit exceeded - too many tokens processed." });
  });

  it("sends the buckets' headers on a refused request too, and fixed generous headers for models without limits", async () => {
    fake = await startFakeUpstream();
    const r = await chat(ask());
    expect(r.headers.get("x-ratelimit-limit-tokens-minute")).toBe("1000000");
    expect(r.headers.get("x-ratelimit-remaining-requests-day")).toBe("14399");
    const invalid = await chat({ ...ask(), top_k: 3 });
    expect(invalid.status).toBe(400);
    expect(invalid.headers.get("x-ratelimit-limit-tokens-minute")).toBe("1000000");
  });
});
