/**
 * The key pool and model fallbacks end to end: one gateway, two or three fake Cerebras
 * upstreams on 127.0.0.1 (one per key, each its own base URL), driven through real gRPC
 * clients, the HTTP shim and the openai SDK. Faults are injected on the fakes; windows
 * are short, and waits are bounded polls of the gateway's own answers, never sleeps.
 */
import { Metadata, status } from "@grpc/grpc-js";
import OpenAI from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { collect, decodeStatus, deadlineIn, until, userRequest } from "../helpers/harness.js";
import { raw } from "../helpers/http.js";
import { keyOf, serve, startPool, type PoolHarness, type PoolKey } from "./pool-harness.js";

const MODEL = "gpt-oss-120b";
const FALLBACK = "zai-glm-4.7";

let h: PoolHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function pool(keys: readonly PoolKey[], env: Record<string, string> = {}): Promise<PoolHarness> {
  h = await startPool(keys, env);
  return h;
}

const ask = (text = "hello") => userRequest(text, { model: MODEL, maxCompletionTokens: 100 });

describe("failover between upstream keys", () => {
  it("a quota on key A moves the call to key B with no failed call, and A cools down while B serves", async () => {
    const p = await pool([{ name: "a" }, { name: "b" }]);
    p.fakes.a!.failNext(cerebrasErrors.tokenQuotaPerMinute(30));
    const moved = await serve(p.chat, ask());
    expect(moved.error).toBeUndefined();
    expect([moved.upstreamKey, moved.attempts]).toEqual(["b", 2]);
    for (let i = 0; i < 6; i++) {
      const s = await serve(p.chat, ask(`call ${i}`));
      expect([s.error, s.upstreamKey, s.attempts]).toEqual([undefined, "b", 1]);
    }
    expect(p.counts()).toEqual({ a: 1, b: 7 });
    const m = await p.metrics();
    expect(m.value("cerebras_upstream_key_cooldown_seconds", { upstream_key: "a", model: MODEL })).toBeGreaterThan(20);
    expect(m.value("cerebras_upstream_key_cooldowns_total", { upstream_key: "a" })).toBe(1);
    expect(m.value("cerebras_upstream_key_errors_total", { upstream_key: "a", reason: "UPSTREAM_QUOTA_EXCEEDED" })).toBe(1);
    expect(m.value("cerebras_upstream_key_requests_total", { upstream_key: "b", model: MODEL })).toBe(7);
    // The move is logged as a retry naming both keys; the call's line names the key that served.
    expect(p.logs.find((l) => l["msg"] === "retrying upstream")).toMatchObject({ upstreamKey: "a", nextUpstreamKey: "b", delayMs: 0, reason: "UPSTREAM_QUOTA_EXCEEDED" });
    expect(p.logs.filter((l) => l["msg"] === "call")[0]).toMatchObject({ code: "OK", attempts: 2, upstreamKey: "b" });
  });

  it("A's quota reset brings it back into rotation", async () => {
    const p = await pool([{ name: "a" }, { name: "b" }]);
    p.fakes.a!.failNext(cerebrasErrors.tokenQuotaPerMinute(0.3));
    expect((await serve(p.chat, ask())).upstreamKey).toBe("b");
    const servedBy: string[] = [];
    // Bounded: calls until A serves one again (it does once its 0.3 s cooldown is over); every call must succeed.
    const end = Date.now() + 10_000;
    while (!servedBy.includes("a") && Date.now() < end) {
      const s = await serve(p.chat, ask());
      expect(s.error).toBeUndefined();
      servedBy.push(s.upstreamKey!);
    }
    expect(servedBy).toContain("a");
    expect(servedBy[0]).toBe("b"); // right after the 429, B took the calls
  });

  it("a revoked key leaves rotation while the others serve (one error line, a metric), and a probe brings it back once Cerebras accepts it", async () => {
    const p = await pool([{ name: "a", fake: { apiKey: "csk-someone-else-0123456789" } }, { name: "b" }], { UPSTREAM_KEY_PROBE_S: "0.1" });
    for (let i = 0; i < 8; i++) {
      const s = await serve(p.chat, ask());
      expect([s.error, s.upstreamKey]).toEqual([undefined, "b"]);
    }
    expect(p.counts()).toEqual({ a: 1, b: 8 });
    const lines = p.logs.filter((l) => l["level"] === 50);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ upstreamKey: "a", upstreamStatus: 401 });
    let m = await p.metrics();
    expect(m.value("cerebras_upstream_key_in_rotation", { upstream_key: "a" })).toBe(0);
    expect(m.value("cerebras_upstream_key_revocations_total", { upstream_key: "a" })).toBe(1);

    p.fakes.a!.setApiKey(keyOf("a")); // the account is fixed
    await until(() => p.logs.some((l) => l["msg"] === "upstream key accepted again: back in rotation" && l["upstreamKey"] === "a"), 5000, "the probe to bring a back");
    m = await p.metrics();
    expect(m.value("cerebras_upstream_key_in_rotation", { upstream_key: "a" })).toBe(1);
    const after = await Promise.all([serve(p.chat, ask()), serve(p.chat, ask())]);
    expect(after.map((s) => s.upstreamKey).sort()).toEqual(["a", "b"]);
  });

  it("a 5xx moves to the next key; a caller's bad request never moves", async () => {
    const p = await pool([{ name: "a" }, { name: "b" }], { UPSTREAM_MAX_RETRIES: "0" });
    // Nothing is known of either key yet: the first call goes to a (round-robin from the first key).
    p.fakes.a!.failNext(cerebrasErrors.serverError(500));
    expect(await serve(p.chat, ask())).toMatchObject({ upstreamKey: "b", attempts: 2, error: undefined });
    const before = p.counts();
    p.fakes.a!.failNext(cerebrasErrors.wrongApiFormat());
    p.fakes.b!.failNext(cerebrasErrors.wrongApiFormat());
    const bad = await serve(p.chat, ask());
    expect(bad.error?.code).toBe(status.INVALID_ARGUMENT);
    expect(bad.attempts).toBe(1);
    const after = p.counts();
    expect(after.a! - before.a! + (after.b! - before.b!)).toBe(1);
  });

  it("a key whose endpoint refuses connections backs off while the others serve", async () => {
    const p = await pool([{ name: "a" }, { name: "b" }], { UPSTREAM_MAX_RETRIES: "0" });
    await p.fakes.a!.close(); // nothing listens on a's port any more
    const served: string[] = [];
    for (let i = 0; i < 6; i++) {
      const s = await serve(p.chat, ask());
      expect(s.error).toBeUndefined();
      served.push(`${s.upstreamKey}:${s.attempts}`);
    }
    // The first call tried a (refused), then b; a is in backoff after that, so b goes first.
    expect(served).toEqual(["b:2", "b:1", "b:1", "b:1", "b:1", "b:1"]);
    const m = await p.metrics();
    expect(m.value("cerebras_upstream_key_errors_total", { upstream_key: "a", reason: "UPSTREAM_CONNECTION_FAILED" })).toBe(1);
  });

  it("the key with more headroom takes the calls, from the fakes' own rate-limit headers", async () => {
    const small = { [MODEL]: [{ resource: "tokens" as const, window: "minute" as const, limit: 5000 }] };
    const large = { [MODEL]: [{ resource: "tokens" as const, window: "minute" as const, limit: 10_000_000 }] };
    const p = await pool([{ name: "small", fake: { rateLimits: small } }, { name: "large", fake: { rateLimits: large } }]);
    const big = () => userRequest("hello", { model: MODEL, maxCompletionTokens: 1000 });
    // The first two calls go one to each (nothing known yet: equally full); then their headers tell.
    const first = [await serve(p.chat, big()), await serve(p.chat, big())].map((s) => s.upstreamKey).sort();
    expect(first).toEqual(["large", "small"]);
    for (let i = 0; i < 6; i++) expect((await serve(p.chat, big())).upstreamKey).toBe("large");
    const m = await p.metrics();
    expect(m.value("cerebras_upstream_key_remaining", { upstream_key: "small", model: MODEL, limit: "tokens_per_minute" })).toBeLessThan(5000);
  });

  it("weights share the calls of equally full keys", async () => {
    const p = await pool([{ name: "a", weight: 3 }, { name: "b" }]);
    for (let i = 0; i < 8; i++) await serve(p.chat, ask());
    expect(p.counts()).toEqual({ a: 6, b: 2 });
  });

  it("a key's models: calls for a model go only to keys that serve it", async () => {
    const p = await pool([{ name: "shared" }, { name: "dedicated", models: [FALLBACK] }]);
    for (let i = 0; i < 4; i++) expect((await serve(p.chat, ask())).upstreamKey).toBe("shared");
    const noKey = await pool([{ name: "only", models: [FALLBACK] }]);
    const e = (await serve(noKey.chat, ask())).error!;
    expect(e.code).toBe(status.NOT_FOUND);
    expect(decodeStatus(e).errorInfo!.reason).toBe("MODEL_NOT_FOUND");
    await p.close();
  });

  it("every key failing: the best reason (a quota, with the earliest reset across keys), and ErrorInfo lists what was tried", async () => {
    const p = await pool([{ name: "a" }, { name: "b" }, { name: "c" }], { UPSTREAM_MAX_RETRIES: "0" });
    p.fakes.a!.failNext(cerebrasErrors.tokenQuotaPerMinute(30));
    p.fakes.b!.failNext(cerebrasErrors.serverError(500));
    p.fakes.c!.failNext(cerebrasErrors.tokenQuotaPerMinute(5));
    const s = await serve(p.chat, ask(), deadlineIn(10_000));
    expect(s.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    const d = decodeStatus(s.error!);
    expect(d.errorInfoCount).toBe(1);
    expect(d.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(d.errorInfo!.reason).toBe("UPSTREAM_QUOTA_EXCEEDED");
    const ms = d.retryInfo!.retryDelay!.seconds * 1000 + d.retryInfo!.retryDelay!.nanos / 1e6;
    expect(ms).toBeGreaterThan(3000);
    expect(ms).toBeLessThanOrEqual(5000);
    const tried = Object.entries(d.errorInfo!.metadata).filter(([k]) => /^attempt\d+$/.test(k));
    expect(tried.map(([, v]) => v)).toEqual(expect.arrayContaining(["a/gpt-oss-120b: UPSTREAM_QUOTA_EXCEEDED", "b/gpt-oss-120b: UPSTREAM_SERVER_ERROR", "c/gpt-oss-120b: UPSTREAM_QUOTA_EXCEEDED"]));
    expect(Number(d.errorInfo!.metadata["attempts"])).toBe(tried.length);
    const trailers = (s.error!.metadata.get("grpc-status-details-bin")[0] as Buffer).length + Buffer.byteLength(s.error!.details);
    expect(trailers).toBeLessThan(4096);
  });

  it("the deadline bounds the whole walk: a slow second key is cut at the caller's deadline", async () => {
    const p = await pool([{ name: "a" }, { name: "b" }]);
    p.fakes.a!.failNext(cerebrasErrors.serverError(500));
    p.fakes.b!.failNext({ kind: "delay", ms: 10_000 });
    const s = await serve(p.chat, ask(), deadlineIn(700));
    expect(s.error?.code).toBe(status.DEADLINE_EXCEEDED);
    expect(p.counts()).toEqual({ a: 1, b: 1 });
    expect(await p.fakes.b!.chatRequests()[0]!.settled).toBe("aborted");
  });

  it("streams: a failure before the first chunk moves to the next key; a stream that sent a chunk is never moved", async () => {
    const p = await pool([{ name: "a" }, { name: "b" }]);
    p.fakes.a!.failNext(cerebrasErrors.queueExceeded());
    const moved = await collect(p.chat.streamChatCompletion(ask("stream me"), new Metadata(), deadlineIn(5000)));
    expect(moved.error).toBeUndefined();
    expect(p.counts()).toEqual({ a: 1, b: 1 });

    // The pool's round-robin put a first again: it cuts the stream after two chunks.
    p.fakes.a!.failNext({ kind: "cut-stream", afterChunks: 2 });
    p.fakes.b!.failNext({ kind: "cut-stream", afterChunks: 2 });
    const cut = await collect(p.chat.streamChatCompletion(ask("stream me"), new Metadata(), deadlineIn(5000)));
    expect(cut.chunks).toHaveLength(2);
    expect(cut.error?.code).toBe(status.UNAVAILABLE);
    expect(decodeStatus(cut.error!).errorInfo!.metadata["chunksDelivered"]).toBe("2");
    const after = p.counts();
    expect(after.a! + after.b!).toBe(3); // one attempt for the cut stream, on one key only
  });
});

describe("model fallbacks", () => {
  const chain = { MODEL_FALLBACKS: `${MODEL}>${FALLBACK}`, UPSTREAM_MAX_RETRIES: "0" };

  it("a capacity error is served by the next model of the chain: the answer's model says so, as do the headers and the metrics", async () => {
    const p = await pool([{ name: "a" }], chain);
    p.fakes.a!.failNext(cerebrasErrors.queueExceeded());
    const s = await serve(p.chat, ask());
    expect(s.error).toBeUndefined();
    expect(s.completion!.model).toBe(FALLBACK);
    expect([s.model, s.attempts, s.upstreamKey]).toEqual([FALLBACK, 2, "a"]);
    expect(p.fakes.a!.chatRequests().map((r) => (r.body as { model: string }).model)).toEqual([MODEL, FALLBACK]);
    const m = await p.metrics();
    expect(m.value("gateway_model_fallbacks_total", { requested: MODEL, served: FALLBACK })).toBe(1);
    expect(p.logs.filter((l) => l["msg"] === "call")[0]).toMatchObject({ model: MODEL, upstreamModel: FALLBACK, attempts: 2 });
  });

  it("a quota on every key of the model falls back too; over HTTP the openai SDK sees the model that answered", async () => {
    const p = await pool([{ name: "a" }, { name: "b" }], chain);
    p.fakes.a!.failNext(cerebrasErrors.tokenQuotaPerMinute(30));
    p.fakes.b!.failNext(cerebrasErrors.tokenQuotaPerMinute(30));
    const openai = new OpenAI({ apiKey: "unused", baseURL: `http://127.0.0.1:${p.httpPort}/v1`, maxRetries: 0 });
    const { data, response } = await openai.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_completion_tokens: 100 }).withResponse();
    expect(data.model).toBe(FALLBACK);
    expect(response.headers.get("x-aigw-model")).toBe(FALLBACK);
    expect(response.headers.get("x-aigw-attempts")).toBe("3");
    expect(["a", "b"]).toContain(response.headers.get("x-aigw-upstream-key"));
  });

  it("a caller can refuse fallbacks for one call (x-aigw-fallbacks: off): it gets the capacity error", async () => {
    const p = await pool([{ name: "a" }], chain);
    p.fakes.a!.failNext(cerebrasErrors.queueExceeded());
    const md = new Metadata();
    md.set("x-aigw-fallbacks", "off");
    const s = await serve(p.chat, ask(), {}, md);
    expect(s.error?.code).toBe(status.UNAVAILABLE);
    expect(decodeStatus(s.error!).errorInfo!.reason).toBe("UPSTREAM_OVERLOADED");
    expect(p.counts()).toEqual({ a: 1 });
    // The same over HTTP; a value other than on/off is refused, naming the header.
    p.fakes.a!.failNext(cerebrasErrors.queueExceeded());
    const body = JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] });
    const off = await raw(p.httpPort, { path: "/v1/chat/completions", headers: { "content-type": "application/json", "x-aigw-fallbacks": "off" }, body });
    expect(off.status).toBe(503);
    const bad = await raw(p.httpPort, { path: "/v1/chat/completions", headers: { "content-type": "application/json", "x-aigw-fallbacks": "sometimes" }, body });
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.text).error.param).toBe("x-aigw-fallbacks");
  });

  it("never falls back on a caller's bad request or a server error (the latter retries the requested model)", async () => {
    const p = await pool([{ name: "a" }], { MODEL_FALLBACKS: `${MODEL}>${FALLBACK}`, UPSTREAM_MAX_RETRIES: "1" });
    p.fakes.a!.failNext(cerebrasErrors.contextLengthExceeded());
    expect((await serve(p.chat, ask())).error?.code).toBe(status.INVALID_ARGUMENT);
    p.fakes.a!.failNext(cerebrasErrors.serverError(500));
    const s = await serve(p.chat, ask());
    expect(s.completion?.model).toBe(MODEL);
    expect(p.fakes.a!.chatRequests().map((r) => (r.body as { model: string }).model)).toEqual([MODEL, MODEL, MODEL]);
  });

  it("skips a fallback the catalog says cannot take the request", async () => {
    // gemma-4-31b generates at most 32 768 tokens: a request for 40 000 cannot go there.
    const p = await pool([{ name: "a" }], { MODEL_FALLBACKS: `${MODEL}>gemma-4-31b>${FALLBACK}`, UPSTREAM_MAX_RETRIES: "0" });
    p.fakes.a!.failNext(cerebrasErrors.queueExceeded());
    const s = await serve(p.chat, userRequest("hi", { model: MODEL, maxCompletionTokens: 40_000 }));
    expect(s.completion?.model).toBe(FALLBACK);
  });
});

describe("who served, and what never shows", () => {
  it("gRPC metadata and HTTP headers name the key and the attempts; no key appears in logs, metrics or headers", async () => {
    const p = await pool([{ name: "a" }, { name: "b" }]);
    const s = await serve(p.chat, ask());
    expect(["a", "b"]).toContain(s.upstreamKey);
    expect([s.attempts, s.model]).toEqual([1, MODEL]);
    const res = await raw(p.httpPort, { path: "/v1/chat/completions", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] }) });
    expect(res.status).toBe(200);
    expect(res.headers["x-aigw-attempts"]).toBe("1");
    expect(["a", "b"]).toContain(res.headers["x-aigw-upstream-key"]);
    const metrics = await raw(p.httpPort, { method: "GET", path: "/metrics" });
    for (const secret of [keyOf("a"), keyOf("b")]) {
      expect(JSON.stringify(p.logs)).not.toContain(secret);
      expect(metrics.text).not.toContain(secret);
      expect(JSON.stringify(res.headers)).not.toContain(secret);
    }
    expect(p.logs.find((l) => l["msg"] === "listening")).toMatchObject({ upstreamKeys: ["a", "b"] });
  });
});
