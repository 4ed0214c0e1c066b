/**
 * The key pool's choices, on its own: the order of the candidates for a call (standing,
 * headroom, weights, models, fallbacks), and what each attempt's outcome changes
 * (cooldowns, revocation and probes, backoff). Time is an injected clock; the shared
 * state is the memory store (the Redis one passes the same suite: key-state-store.test.ts).
 */
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { Code, GatewayError, ProviderError, Reason } from "../../src/core/errors.js";
import type { UpstreamCandidate, UpstreamRoute } from "../../src/core/upstreams.js";
import { createLogger } from "../../src/log.js";
import type { UpstreamKey } from "../../src/upstreams/config.js";
import { MemoryKeyStateStore } from "../../src/upstreams/memory-key-state.js";
import { DEFAULT_COOLDOWN_MS, KeyPool, type KeyPoolOptions, type Probe } from "../../src/upstreams/pool.js";
import { userRequest } from "../helpers/harness.js";

const T0 = 1_750_000_000_000;
const MODEL = "gpt-oss-120b";

const key = (name: string, extra: Partial<UpstreamKey> = {}): UpstreamKey => ({ name, apiKey: `csk-${name}-0123456789abcdef`, baseUrl: "http://127.0.0.1:9", weight: 1, models: undefined, ...extra });

interface Setup {
  readonly pool: KeyPool;
  readonly store: MemoryKeyStateStore;
  readonly lines: Record<string, unknown>[];
  now: number;
  /** Lets the store's (async) confirmations land. */
  settle(): Promise<void>;
}

function setup(keys: readonly UpstreamKey[], extra: Partial<KeyPoolOptions> = {}): Setup {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const store = new MemoryKeyStateStore();
  const s: Setup = {
    store,
    lines,
    now: T0,
    pool: undefined as unknown as KeyPool, // set just below (the clock reads s.now)
    settle: () => new Promise((resolve) => setImmediate(resolve)),
  };
  (s as { pool: KeyPool }).pool = new KeyPool({
    keys,
    fallbacks: new Map(),
    store,
    logger: createLogger("info", sink),
    defaultCompletionTokens: 1000,
    probeIntervalMs: 3_600_000,
    clock: () => s.now,
    ...extra,
  });
  return s;
}

const ask = (partial: Partial<ChatCompletionRequest> = {}): ChatCompletionRequest => userRequest("hello", { model: MODEL, maxCompletionTokens: 1000, ...partial });
const keysOf = (r: UpstreamRoute): string[] => r.candidates.map((c) => `${c.key}/${c.model}`);
const first = (s: Setup, request = ask()): UpstreamCandidate => s.pool.route(request, undefined, true).candidates[0]!;

/** Rate-limit headers as Cerebras sends them: `remaining` of `limit` tokens per minute. */
const tokensLeft = (remaining: number, limit = 100_000): Record<string, string> => ({
  "x-ratelimit-limit-tokens-minute": String(limit),
  "x-ratelimit-remaining-tokens-minute": String(remaining),
  "x-ratelimit-reset-tokens-minute": "30.00",
});

const quota = (retryDelayMs: number | undefined): GatewayError =>
  new GatewayError({ code: Code.RESOURCE_EXHAUSTED, reason: Reason.UPSTREAM_QUOTA_EXCEEDED, message: "Tokens per minute limit exceeded", metadata: { upstreamStatus: "429", quotaWindow: "minute" }, ...(retryDelayMs === undefined ? {} : { retryDelayMs }) });
const refused = (status: number): ProviderError => new ProviderError({ reason: Reason.UPSTREAM_AUTH_FAILED, message: "Wrong API Key", metadata: { upstreamStatus: String(status) } });
const connectionFailed = (): ProviderError => new ProviderError({ reason: Reason.UPSTREAM_CONNECTION_FAILED, message: "ECONNREFUSED", metadata: { errorCode: "ECONNREFUSED" } });

/** One attempt on the route's first candidate, ending with `error` (undefined: OK) and `headers`. */
function attempt(s: Setup, c: UpstreamCandidate, error?: GatewayError, headers?: Record<string, string>): void {
  const route: UpstreamRoute = { candidates: [c], tokens: 0 };
  s.pool.started(c, route);
  s.pool.finished(c, route, error, headers);
}

describe("the key pool's order", () => {
  it("one key and no fallbacks: one ready candidate, the same route object for every call to a model", () => {
    const s = setup([key("default")]);
    const a = s.pool.route(ask(), undefined, true);
    expect(keysOf(a)).toEqual(["default/gpt-oss-120b"]);
    expect(s.pool.route(ask(), undefined, true)).toBe(a);
    expect(a.tokens).toBe(0); // nothing to rank: the call's size is not even estimated
  });

  it("a key serves only the models it lists", () => {
    const s = setup([key("shared"), key("dedicated", { models: new Set(["zai-glm-4.7"]) })]);
    expect(keysOf(s.pool.route(ask(), undefined, true))).toEqual(["shared/gpt-oss-120b"]);
    expect(keysOf(s.pool.route(ask({ model: "zai-glm-4.7" }), undefined, true)).sort()).toEqual(["dedicated/zai-glm-4.7", "shared/zai-glm-4.7"]);
  });

  it("fallback models come after the requested model's keys, in chain order; none when the caller refuses them", () => {
    const s = setup([key("a"), key("b", { models: new Set(["llama3.1-8b"]) })], { fallbacks: new Map([[MODEL, ["zai-glm-4.7", "llama3.1-8b"]]]) });
    const route = s.pool.route(ask(), undefined, true);
    expect(route.candidates.map((c) => [c.key, c.model, c.fallback])).toEqual([
      ["a", MODEL, 0],
      ["a", "zai-glm-4.7", 1],
      ["a", "llama3.1-8b", 2],
      ["b", "llama3.1-8b", 2],
    ]);
    expect(route.candidates.every((c) => c.requested === MODEL)).toBe(true);
    expect(keysOf(s.pool.route(ask(), undefined, false))).toEqual(["a/gpt-oss-120b"]);
  });

  it("the key with the most headroom for this call goes first, from its own responses' headers", () => {
    const s = setup([key("a"), key("b")]);
    // a: 100 000 of 1 000 000 left (10%); b: 90 000 of 100 000 (90%).
    attempt(s, { key: "a", model: MODEL, fallback: 0, requested: MODEL, standing: "ready" }, undefined, tokensLeft(100_000, 1_000_000));
    attempt(s, { key: "b", model: MODEL, fallback: 0, requested: MODEL, standing: "ready" }, undefined, tokensLeft(90_000));
    for (let i = 0; i < 5; i++) expect(first(s).key).toBe("b");
    // A call of 95 000 tokens does not fit what b has left, and fits a's: a goes first.
    expect(first(s, ask({ maxCompletionTokens: 95_000 })).key).toBe("a");
  });

  it("reservations in flight on a key count against its headroom", () => {
    const s = setup([key("a"), key("b")]);
    const a = { key: "a", model: MODEL, fallback: 0, requested: MODEL, standing: "ready" } as const;
    const b = { key: "b", model: MODEL, fallback: 0, requested: MODEL, standing: "ready" } as const;
    attempt(s, a, undefined, tokensLeft(50_000));
    attempt(s, b, undefined, tokensLeft(45_000));
    const route = s.pool.route(ask({ maxCompletionTokens: 20_000 }), undefined, true);
    expect(route.candidates[0]!.key).toBe("a");
    s.pool.started(route.candidates[0]!, route); // 20 000 tokens in flight on a
    expect(first(s, ask({ maxCompletionTokens: 20_000 })).key).toBe("b");
    s.pool.finished(route.candidates[0]!, route, undefined, undefined);
    expect(first(s, ask({ maxCompletionTokens: 20_000 })).key).toBe("a");
  });

  it("equally full keys share the calls by weight (smooth weighted round-robin)", () => {
    const s = setup([key("heavy", { weight: 3 }), key("light")]);
    const picks = Array.from({ length: 8 }, () => first(s).key);
    expect(picks.filter((k) => k === "heavy")).toHaveLength(6);
    expect(picks.filter((k) => k === "light")).toHaveLength(2);
    expect(picks.slice(0, 4)).toContain("light"); // interleaved, not 6 then 2
  });
});

describe("what an attempt changes", () => {
  it("a quota 429 cools the model down until the reset the upstream gave: the key goes last, then comes back", async () => {
    const s = setup([key("a"), key("b")]);
    const a = { key: "a", model: MODEL, fallback: 0, requested: MODEL, standing: "ready" } as const;
    attempt(s, a, quota(5000));
    await s.settle();
    const cooling = s.pool.route(ask(), undefined, true);
    expect(cooling.candidates.map((c) => [c.key, c.standing])).toEqual([
      ["b", "ready"],
      ["a", "cooling"],
    ]);
    // Another model of the same key is not affected (Cerebras' limits are per model).
    expect(s.pool.route(ask({ model: "zai-glm-4.7" }), undefined, true).candidates.every((c) => c.standing === "ready")).toBe(true);
    s.now += 5000;
    expect(s.pool.route(ask(), undefined, true).candidates.every((c) => c.standing === "ready")).toBe(true);
    expect(s.pool.report().find((r) => r.key === "a")!.cooldowns.size).toBe(0);
  });

  it("a 429 that gives no reset cools down for DEFAULT_COOLDOWN_MS", async () => {
    const s = setup([key("a"), key("b")]);
    attempt(s, { key: "a", model: MODEL, fallback: 0, requested: MODEL, standing: "ready" }, quota(undefined));
    await s.settle();
    expect(s.pool.report().find((r) => r.key === "a")!.cooldowns.get(MODEL)).toBe(DEFAULT_COOLDOWN_MS / 1000);
  });

  it("a key Cerebras refuses leaves rotation with one error line; it stays a last resort; a probe that finds it accepted brings it back", async () => {
    let verdict: "accepted" | "refused" = "refused";
    const probed: string[] = [];
    const probe: Probe = async (k) => {
      probed.push(k);
      return verdict;
    };
    const s = setup([key("a"), key("b")], { probe });
    const a = { key: "a", model: MODEL, fallback: 0, requested: MODEL, standing: "ready" } as const;
    attempt(s, a, refused(401));
    attempt(s, a, refused(401)); // tried again as a last resort: still refused, no second line
    await s.settle();
    expect(s.pool.route(ask(), undefined, true).candidates.map((c) => [c.key, c.standing])).toEqual([
      ["b", "ready"],
      ["a", "revoked"],
    ]);
    const errors = s.lines.filter((l) => l["level"] === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ upstreamKey: "a", upstreamStatus: 401 });
    expect(JSON.stringify(s.lines)).not.toContain("csk-a-");
    expect(s.pool.report().find((r) => r.key === "a")!.inRotation).toBe(false);

    await s.pool.probeRevoked();
    expect(probed).toEqual(["a"]);
    await s.settle();
    expect(s.pool.report().find((r) => r.key === "a")!.inRotation).toBe(false);
    verdict = "accepted";
    await s.pool.probeRevoked();
    await s.settle();
    expect(s.pool.report().find((r) => r.key === "a")!.inRotation).toBe(true);
    expect(s.lines.filter((l) => l["msg"] === "upstream key accepted again: back in rotation")).toHaveLength(1);
    expect(probed).toEqual(["a", "a"]); // only revoked keys are probed
  });

  it("a call that succeeds on a refused key (its last resort) brings it back too", async () => {
    const s = setup([key("a"), key("b")]);
    const a = { key: "a", model: MODEL, fallback: 0, requested: MODEL, standing: "ready" } as const;
    attempt(s, a, refused(403));
    await s.settle();
    attempt(s, a);
    await s.settle();
    expect(s.pool.report().every((r) => r.inRotation)).toBe(true);
  });

  it("connection failures put a key in backoff (after the ready ones), doubling; a success ends it", async () => {
    const s = setup([key("a"), key("b")]);
    const a = { key: "a", model: MODEL, fallback: 0, requested: MODEL, standing: "ready" } as const;
    attempt(s, a, connectionFailed());
    await s.settle();
    expect(s.pool.route(ask(), undefined, true).candidates.map((c) => c.standing)).toEqual(["ready", "backoff"]);
    s.now += 1000;
    expect(s.pool.route(ask(), undefined, true).candidates.every((c) => c.standing === "ready")).toBe(true);
    attempt(s, a, connectionFailed());
    await s.settle();
    s.now += 1000;
    expect(s.pool.route(ask(), undefined, true).candidates.map((c) => c.standing)).toEqual(["ready", "backoff"]); // 2 s this time
    attempt(s, a);
    await s.settle();
    expect(s.pool.route(ask(), undefined, true).candidates.every((c) => c.standing === "ready")).toBe(true);
  });

  it("reports each key's remaining figures per model, from its last response", () => {
    const s = setup([key("a"), key("b")]);
    attempt(s, { key: "a", model: MODEL, fallback: 0, requested: MODEL, standing: "ready" }, undefined, { ...tokensLeft(1234), "x-ratelimit-remaining-requests-day": "99", "x-ratelimit-limit-requests-day": "100" });
    const a = s.pool.report().find((r) => r.key === "a")!;
    expect(a.remaining.get(MODEL)).toEqual(new Map([["tokens_per_minute", 1234], ["requests_per_day", 99]]));
    expect(s.pool.report().find((r) => r.key === "b")!.remaining.size).toBe(0);
  });
});
