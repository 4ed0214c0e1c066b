/**
 * The admission in-process, against both stores (memory, and a real redis-server), with
 * an injected clock: caller quotas exact to the unit, reservation and settlement, window
 * roll-over without sleeping, requests that can never fit, USD budgets, the charging
 * rules, the fail modes, and the organisation's limits learned from headers with the
 * fair queue. The end-to-end suites (quotas*.e2e.test.ts) run the same behaviours
 * through real gateways.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ChatCompletionChunk, ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { ModelPricing } from "../../gen/aigateway/v1/models.js";
import { estimatePromptTokens } from "../../src/admission/estimator.js";
import { NO_OBSERVER, type AdmissionObserver } from "../../src/admission/events.js";
import { GuardedStore } from "../../src/admission/fail-mode.js";
import type { Timers } from "../../src/admission/fair-queue.js";
import type { LimitStore } from "../../src/admission/limit-store.js";
import { CallerLimitTable, type CallerLimitsInput, type OrgLimitConfig } from "../../src/admission/limits.js";
import { MemoryStore } from "../../src/admission/memory-store.js";
import { OrgLimitTracker } from "../../src/admission/org-limits.js";
import { QuotaAdmission } from "../../src/admission/quota-admission.js";
import { RedisStore } from "../../src/admission/redis-store.js";
import type { CallOutcome, Reservation } from "../../src/core/admission.js";
import { CallScope } from "../../src/core/call-scope.js";
import { Code, GatewayError, Reason } from "../../src/core/errors.js";
import type { UpstreamCandidate } from "../../src/core/upstreams.js";
import { createLogger } from "../../src/log.js";
import { userRequest } from "../helpers/harness.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";

const MODEL = "gpt-oss-120b";
const PRICING: ModelPricing = { prompt: 0.35e-6, completion: 0.75e-6 };
const MINUTE = 60_000;

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis.stop();
});

/** A clock the test moves, and timers that fire when it passes them. */
class ManualTime implements Timers {
  /** Starts at the real time, so real deadlines (CallScope) and this clock agree. */
  t = Date.now();
  private timers: { at: number; fn: () => void }[] = [];
  now = (): number => this.t;
  after = (ms: number, fn: () => void): (() => void) => {
    const timer = { at: this.t + ms, fn };
    this.timers.push(timer);
    return () => (this.timers = this.timers.filter((x) => x !== timer));
  };
  /** Moves the clock, firing due timers in order; then lets promise chains run. */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      const due = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((x) => x !== due);
      this.t = Math.max(this.t, due.at);
      due.fn();
      await settleTurns();
    }
    this.t = end;
    await settleTurns();
  }
}

/** Lets pending promise callbacks run (a few turns of the event loop). */
async function settleTurns(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/** Waits (in real time, bounded) until `predicate` holds: store round trips take what they take. */
async function until(predicate: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

let serial = 0;
const stores: Record<string, () => Promise<LimitStore>> = {
  memory: async () => new MemoryStore(),
  redis: async () => {
    const s = new RedisStore({ target: redis.target, prefix: `qa${++serial}`, commandTimeoutMs: 1000 });
    if (!(await s.ready(5000))) throw new Error("redis did not connect");
    return s;
  },
};

interface SetupOptions {
  readonly defaults?: CallerLimitsInput;
  readonly keys?: Record<string, CallerLimitsInput>;
  readonly org?: OrgLimitConfig;
  readonly queueMs?: number;
  readonly observer?: AdmissionObserver;
}

interface Setup {
  readonly admission: QuotaAdmission;
  readonly time: ManualTime;
  readonly scopes: CallScope[];
  /** A call context for `key` (or anonymous). */
  ctx(key?: string): CallScope;
}

describe.each(Object.keys(stores))("admission on the %s store", (kind) => {
  const open: Setup[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) {
      for (const c of s.scopes) c.dispose();
      await s.admission.close();
    }
  });

  async function setup(options: SetupOptions = {}): Promise<Setup> {
    return setupOn(await stores[kind]!(), options);
  }

  /** setup() on the memory store, without a turn (its own test is that admission takes none). */
  function setupNow(options: SetupOptions = {}): Setup {
    return setupOn(new MemoryStore(), options);
  }

  function setupOn(limitStore: LimitStore, options: SetupOptions): Setup {
    const time = new ManualTime();
    const store = new GuardedStore(limitStore, "open", createLogger("silent"), NO_OBSERVER);
    const admission = new QuotaAdmission({
      callers: new CallerLimitTable(options.defaults, new Map(Object.entries(options.keys ?? {}))),
      org: options.org === undefined ? undefined : new OrgLimitTracker(options.org),
      store,
      failMode: "open",
      pricing: (id) => (id === MODEL ? PRICING : undefined),
      defaultCompletionTokens: 1000,
      orgQueueMaxWaitMs: options.queueMs ?? 0,
      observer: options.observer ?? NO_OBSERVER,
      clock: time.now,
      timers: time,
    });
    const scopes: CallScope[] = [];
    const s: Setup = {
      admission,
      time,
      scopes,
      ctx: (key) => {
        const scope = new CallScope(Infinity, 10 * MINUTE, `req-${scopes.length}`);
        if (key !== undefined) scope.stats.keyName = key;
        scopes.push(scope);
        return scope;
      },
    };
    open.push(s);
    return s;
  }

  const ask = (text = "hello", partial: Partial<ChatCompletionRequest> = {}): ChatCompletionRequest => userRequest(text, { model: MODEL, maxCompletionTokens: 100, ...partial });

  /** The refusal `admit` throws or rejects with (a request that can never fit is refused synchronously). */
  async function refusal(admit: () => Reservation | Promise<Reservation>): Promise<GatewayError> {
    try {
      await admit();
    } catch (err) {
      if (err instanceof GatewayError) return err;
      throw err;
    }
    throw new Error("expected a refusal");
  }

  const success = (usage: { prompt: number; completion: number; cost?: number }): CallOutcome => ({
    usage: { promptTokens: usage.prompt, completionTokens: usage.completion, totalTokens: usage.prompt + usage.completion, ...(usage.cost !== undefined ? { costUsd: usage.cost } : {}) },
    error: undefined,
    processed: true,
    upstreamRateLimits: undefined,
  });

  it.runIf(kind === "memory")("answers synchronously with caller limits only: the reservation itself (no promise), a refusal thrown, a settlement in the store at once", () => {
    const s = setupNow({ keys: { k: { requests_per_minute: 2, tokens_per_minute: 10_000 } } });
    const reserved = estimatePromptTokens(ask()) + 100;
    const first = s.admission.admit(ask(), undefined, s.ctx("k"));
    expect(first).not.toBeInstanceOf(Promise);
    (first as Reservation).settle(success({ prompt: 4, completion: 6 }));
    // No await between: the second call's standing already counts the first's charge (10), not its reservation.
    const ctx = s.ctx("k");
    expect(s.admission.admit(ask(), undefined, ctx)).not.toBeInstanceOf(Promise);
    expect(ctx.responseHeaders?.["x-ratelimit-remaining-tokens-minute"]).toBe(String(10_000 - 10 - reserved));
    expect(() => s.admission.admit(ask(), undefined, s.ctx("k"))).toThrow(GatewayError); // two requests a minute
  });

  describe("caller quotas", () => {
    it("admits exactly N requests per minute, then refuses with CALLER_QUOTA_EXCEEDED, QuotaFailure on the key and RetryInfo for one refill", async () => {
      const s = await setup({ keys: { billing: { requests_per_minute: 3 } } });
      for (let i = 0; i < 3; i++) {
        const ctx = s.ctx("billing");
        const r = await s.admission.admit(ask(), undefined, ctx);
        expect(r.limited).toBe(true);
        expect(ctx.responseHeaders).toMatchObject({ "x-ratelimit-limit-requests-minute": "3", "x-ratelimit-remaining-requests-minute": String(2 - i) });
      }
      const ctx = s.ctx("billing");
      const e = await refusal(() => s.admission.admit(ask(), undefined, ctx));
      expect([e.code, e.reason]).toEqual([Code.RESOURCE_EXHAUSTED, Reason.CALLER_QUOTA_EXCEEDED]);
      expect(e.quotaViolations).toEqual([{ subject: "key:billing", description: "requests_per_minute (3) exceeded" }]);
      expect(e.metadata).toMatchObject({ key: "billing", limit: "requests_per_minute", limitValue: "3", remaining: "0" });
      expect(e.retryDelayMs).toBe(20_000);
      expect(ctx.responseHeaders).toMatchObject({ "x-ratelimit-remaining-requests-minute": "0", "x-ratelimit-reset-requests-minute": "60.00" });
      // Another key is not affected.
      expect((await s.admission.admit(ask(), undefined, s.ctx("search"))).limited).toBe(false);
    });

    it("refills with the clock: a minute later the window is whole again, with no sleep", async () => {
      const s = await setup({ defaults: { requests_per_minute: 2 } });
      await s.admission.admit(ask(), undefined, s.ctx());
      await s.admission.admit(ask(), undefined, s.ctx());
      await refusal(() => s.admission.admit(ask(), undefined, s.ctx()));
      await s.time.advance(MINUTE / 2);
      await s.admission.admit(ask(), undefined, s.ctx());
      await refusal(() => s.admission.admit(ask(), undefined, s.ctx()));
      await s.time.advance(MINUTE);
      await s.admission.admit(ask(), undefined, s.ctx());
      await s.admission.admit(ask(), undefined, s.ctx());
      await refusal(() => s.admission.admit(ask(), undefined, s.ctx()));
    });

    it("reserves the estimated prompt plus max_completion_tokens, and settlement charges exactly the usage", async () => {
      const s = await setup({ keys: { k: { tokens_per_minute: 10_000 } } });
      const request = ask("a question of some length", { maxCompletionTokens: 500 });
      const estimate = estimatePromptTokens(request);
      const first = s.ctx("k");
      const r = await s.admission.admit(request, undefined, first);
      expect(first.responseHeaders!["x-ratelimit-remaining-tokens-minute"]).toBe(String(10_000 - estimate - 500));
      r.settle(success({ prompt: 40, completion: 60 }));
      await s.admission.idle();
      const second = s.ctx("k");
      await s.admission.admit(request, undefined, second);
      expect(second.responseHeaders!["x-ratelimit-remaining-tokens-minute"]).toBe(String(10_000 - 100 - estimate - 500));
    });

    it("uses the catalog model's maximum, or QUOTA_DEFAULT_COMPLETION_TOKENS, when the request sets no max_completion_tokens", async () => {
      const s = await setup({ defaults: { tokens_per_minute: 100_000 } });
      const bare = userRequest("x", { model: MODEL });
      const estimate = estimatePromptTokens(bare);
      const a = s.ctx();
      await s.admission.admit(bare, { maxCompletionTokens: 40_960 } as never, a);
      expect(a.responseHeaders!["x-ratelimit-remaining-tokens-minute"]).toBe(String(100_000 - estimate - 40_960));
      const b = s.ctx();
      await s.admission.admit(bare, undefined, b);
      expect(b.responseHeaders!["x-ratelimit-remaining-tokens-minute"]).toBe(String(100_000 - 2 * estimate - 40_960 - 1000));
    });

    it("refuses a request larger than the whole limit without RetryInfo, saying which max_completion_tokens would fit", async () => {
      const s = await setup({ defaults: { tokens_per_minute: 1000 } });
      const request = ask("hi", { maxCompletionTokens: 5000 });
      const e = await refusal(() => s.admission.admit(request, undefined, s.ctx()));
      expect(e.reason).toBe(Reason.CALLER_QUOTA_EXCEEDED);
      expect(e.retryDelayMs).toBeUndefined();
      expect(e.message).toContain("can never fit");
      expect(e.message).toContain(`set max_completion_tokens to at most ${1000 - estimatePromptTokens(request)}`);
    });

    it("stops a key once its USD budget is spent, priced with the catalog's prices", async () => {
      const s = await setup({ keys: { k: { usd_per_day: 0.0005 } } });
      const request = ask("x", { maxCompletionTokens: 100 });
      let admitted = 0;
      let spent = 0;
      for (let i = 0; i < 100; i++) {
        const ctx = s.ctx("k");
        let r: Reservation;
        try {
          r = await s.admission.admit(request, undefined, ctx);
        } catch (err) {
          const e = err as GatewayError;
          expect(e.metadata["limit"]).toBe("usd_per_day");
          expect(ctx.responseHeaders!["x-ratelimit-limit-usd-day"]).toBe("0.0005");
          break;
        }
        admitted++;
        const cost = 20 * PRICING.prompt! + 50 * PRICING.completion!;
        spent += cost;
        r.settle(success({ prompt: 20, completion: 50, cost }));
        await s.admission.idle();
      }
      const reservation = estimatePromptTokens(request) * PRICING.prompt! + 100 * PRICING.completion!;
      expect(admitted).toBeGreaterThan(1);
      expect(spent).toBeLessThanOrEqual(0.0005 + 1e-12);
      // Refused exactly when what is left no longer covers the reservation.
      expect(0.0005 - spent).toBeLessThan(reservation);
      expect(0.0005 - (spent - 20 * PRICING.prompt! - 50 * PRICING.completion!)).toBeGreaterThanOrEqual(reservation);
    });

    it("settles once however often settle() is called", async () => {
      const s = await setup({ defaults: { tokens_per_minute: 10_000 } });
      const r = await s.admission.admit(ask(), undefined, s.ctx());
      r.settle(success({ prompt: 10, completion: 10 }));
      r.settle(success({ prompt: 0, completion: 0 }));
      r.settle({ usage: undefined, error: undefined, processed: false, upstreamRateLimits: undefined });
      await s.admission.idle();
      const ctx = s.ctx();
      const request = ask();
      await s.admission.admit(request, undefined, ctx);
      expect(ctx.responseHeaders!["x-ratelimit-remaining-tokens-minute"]).toBe(String(10_000 - 20 - estimatePromptTokens(request) - 100));
    });
  });

  describe("charging rules", () => {
    const limits = { tokens_per_minute: 100_000, requests_per_minute: 100 };
    async function chargedAfter(end: (r: Reservation) => void): Promise<{ tokens: number; requests: number }> {
      const s = await setup({ defaults: limits });
      const request = ask("charge me", { maxCompletionTokens: 1000 });
      const r = await s.admission.admit(request, undefined, s.ctx());
      end(r);
      await s.admission.idle();
      const ctx = s.ctx();
      await s.admission.admit(ask("probe", { maxCompletionTokens: 0 }), undefined, ctx);
      const probe = estimatePromptTokens(ask("probe", { maxCompletionTokens: 0 }));
      return {
        tokens: 100_000 - probe - Number(ctx.responseHeaders!["x-ratelimit-remaining-tokens-minute"]),
        requests: 100 - 1 - Number(ctx.responseHeaders!["x-ratelimit-remaining-requests-minute"]),
      };
    }
    const prompt = estimatePromptTokens(ask("charge me", { maxCompletionTokens: 1000 }));
    const chunk = (content: string): ChatCompletionChunk => ({ id: "c", object: "chat.completion.chunk", created: 0, model: MODEL, systemFingerprint: "", choices: [{ index: 0, finishReason: 0, delta: { role: 0, content, toolCalls: [] } }] });

    it("charges the upstream's usage when it reported one", async () => {
      expect(await chargedAfter((r) => r.settle(success({ prompt: 12, completion: 34 })))).toEqual({ tokens: 46, requests: 1 });
    });

    it("charges the estimated prompt plus what was streamed when a stream ends without usage (cancelled, cut)", async () => {
      const charged = await chargedAfter((r) => {
        r.delivered(chunk("Hello"));
        r.delivered(chunk(" world, how are"));
        r.settle({ usage: undefined, error: new GatewayError({ code: Code.CANCELLED, reason: Reason.CANCELLED, message: "gone" }), processed: true, upstreamRateLimits: undefined });
      });
      expect(charged.tokens).toBeGreaterThan(prompt);
      expect(charged.tokens).toBeLessThan(prompt + 10);
      expect(charged.requests).toBe(1);
    });

    it("charges the estimated prompt when the caller left while the upstream had the request (unary: nothing streamed)", async () => {
      const charged = await chargedAfter((r) => r.settle({ usage: undefined, error: GatewayError.deadlineExceeded(), processed: true, upstreamRateLimits: undefined }));
      expect(charged).toEqual({ tokens: prompt, requests: 1 });
    });

    it("charges only the request when the upstream never processed it (an error status, no connection)", async () => {
      const charged = await chargedAfter((r) => r.settle({ usage: undefined, error: new GatewayError({ code: Code.UNAVAILABLE, reason: Reason.UPSTREAM_SERVER_ERROR, message: "500" }), processed: false, upstreamRateLimits: undefined }));
      expect(charged).toEqual({ tokens: 0, requests: 1 });
    });

    it("charges the shortfall when the usage exceeds the reservation (the estimate was low)", async () => {
      expect(await chargedAfter((r) => r.settle(success({ prompt: 900, completion: 1000 })))).toEqual({ tokens: 1900, requests: 1 });
    });
  });

  describe("the organisation's limits", () => {
    const headers = (remaining: number, limit = 10): Record<string, string> => ({
      "x-ratelimit-limit-requests-minute": String(limit),
      "x-ratelimit-remaining-requests-minute": String(remaining),
      "x-ratelimit-reset-requests-minute": "6.00",
    });
    const learnedFrom = (h: Record<string, string>): CallOutcome => ({ ...success({ prompt: 1, completion: 1 }), upstreamRateLimits: h });

    it("learns them from the upstream's headers, then refuses a burst beyond what remains before it is sent", async () => {
      const s = await setup({ org: { configured: new Map() } });
      // Nothing known yet: admitted, and the response teaches the bucket.
      const first = await s.admission.admit(ask(), undefined, s.ctx("a"));
      first.settle(learnedFrom(headers(3)));
      await s.admission.idle();
      const admitted: Reservation[] = [];
      const refused: GatewayError[] = [];
      for (let i = 0; i < 6; i++) {
        try {
          admitted.push(await s.admission.admit(ask(), undefined, s.ctx(i % 2 === 0 ? "a" : "b")));
        } catch (err) {
          refused.push(err as GatewayError);
        }
      }
      expect(admitted).toHaveLength(3);
      expect(refused).toHaveLength(3);
      const e = refused[0]!;
      expect([e.code, e.reason]).toEqual([Code.RESOURCE_EXHAUSTED, Reason.UPSTREAM_QUOTA_EXCEEDED]);
      expect(e.metadata).toMatchObject({ detectedBy: "gateway", upstream: "default", model: MODEL, limit: "requests_per_minute" });
      expect(e.quotaViolations[0]!.subject).toBe(`org:default:${MODEL}`);
      expect(e.retryDelayMs).toBe(6000);
    });

    it("subtracts what the fleet reserved after the reporting call: a late report does not reopen capacity", async () => {
      const s = await setup({ org: { configured: new Map() } });
      (await s.admission.admit(ask(), undefined, s.ctx())).settle(learnedFrom(headers(5)));
      await s.admission.idle();
      const held: Reservation[] = [];
      for (let i = 0; i < 5; i++) held.push(await s.admission.admit(ask(), undefined, s.ctx()));
      // The first of them answers: the upstream counted only itself (4 left) when it did.
      held[0]!.settle(learnedFrom(headers(4)));
      await s.admission.idle();
      await refusal(() => s.admission.admit(ask(), undefined, s.ctx()));
    });

    it("uses configured limits (ORG_LIMITS) where the headers are missing", async () => {
      const s = await setup({ org: { configured: new Map([["*", [{ name: "requests_per_minute", resource: "requests", window: "minute", limit: 2 }]]]) } });
      await s.admission.admit(ask(), undefined, s.ctx());
      await s.admission.admit(ask(), undefined, s.ctx());
      const e = await refusal(() => s.admission.admit(ask(), undefined, s.ctx()));
      expect(e.reason).toBe(Reason.UPSTREAM_QUOTA_EXCEEDED);
    });

    it("queues a call within ORG_QUEUE_MAX_WAIT_MS and admits it when the refill comes", async () => {
      const s = await setup({ org: { configured: new Map([["*", [{ name: "requests_per_minute", resource: "requests", window: "minute", limit: 1 }]]]) }, queueMs: 2 * MINUTE });
      await s.admission.admit(ask(), undefined, s.ctx());
      let admitted = false;
      const waiting = Promise.resolve(s.admission.admit(ask(), undefined, s.ctx())).then(() => (admitted = true));
      await until(() => s.admission.queued === 1, "the call to queue"); // refused by the store, queued until the refill
      await s.time.advance(MINUTE / 2);
      expect(admitted).toBe(false);
      await s.time.advance(MINUTE / 2);
      await waiting;
      expect(admitted).toBe(true);
    });

    it("is fair between keys: a key's burst waits its turns while another key's call is served at the next refill", async () => {
      const s = await setup({ org: { configured: new Map([["*", [{ name: "requests_per_minute", resource: "requests", window: "minute", limit: 6 }]]]) }, queueMs: 10 * MINUTE });
      for (let i = 0; i < 6; i++) await s.admission.admit(ask(), undefined, s.ctx("greedy"));
      const order: string[] = [];
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < 5; i++) {
        calls.push(Promise.resolve(s.admission.admit(ask(), undefined, s.ctx("greedy"))).then(() => order.push(`greedy${i}`)));
        await until(() => s.admission.queued === i + 1, "greedy's calls to queue");
      }
      calls.push(Promise.resolve(s.admission.admit(ask(), undefined, s.ctx("polite"))).then(() => order.push("polite")));
      await until(() => s.admission.queued === 6, "polite's call to queue");
      // One refill every 10 s: greedy's head was due first, then the turn passes to polite.
      // Between refills, wait until the one trying has been admitted or queued again.
      for (let i = 0; i < 30 && order.length < 6; i++) {
        await s.time.advance(10_000);
        await until(() => s.admission.queued + order.length === 6, "the turn to end");
      }
      await Promise.all(calls);
      expect(order.indexOf("polite")).toBeLessThanOrEqual(1);
      expect(order.filter((o) => o.startsWith("greedy"))).toEqual(["greedy0", "greedy1", "greedy2", "greedy3", "greedy4"]);
    });

    it("refuses instead of queueing when the wait would pass the caller's deadline", async () => {
      const s = await setup({ org: { configured: new Map([["*", [{ name: "requests_per_minute", resource: "requests", window: "minute", limit: 1 }]]]) }, queueMs: 10 * MINUTE });
      await s.admission.admit(ask(), undefined, s.ctx());
      const ctx = new CallScope(Date.now() + 5000, MINUTE, "short");
      s.scopes.push(ctx);
      const e = await refusal(() => s.admission.admit(ask(), undefined, ctx));
      expect(e.reason).toBe(Reason.UPSTREAM_QUOTA_EXCEEDED);
    });
  });

  describe("the organisation's limits per upstream key (each key an organisation of its own)", () => {
    const headers = (remaining: number, limit = 10): Record<string, string> => ({
      "x-ratelimit-limit-requests-minute": String(limit),
      "x-ratelimit-remaining-requests-minute": String(remaining),
      "x-ratelimit-reset-requests-minute": "6.00",
    });
    const learnedFrom = (h: Record<string, string>): CallOutcome => ({ ...success({ prompt: 1, completion: 1 }), upstreamRateLimits: h });
    const onePerMinute: OrgLimitConfig = { configured: new Map([["*", [{ name: "requests_per_minute", resource: "requests", window: "minute", limit: 1 }]]]) };
    const on = (key: string, model = MODEL): UpstreamCandidate => ({ key, model, fallback: model === MODEL ? 0 : 1, requested: MODEL, standing: "ready" });
    const route = [on("a"), on("b")];

    it("reserves the chosen key's buckets; a key without room is passed over for the next, and when none has room the call is refused", async () => {
      const s = await setup({ org: onePerMinute });
      const first = await s.admission.admit(ask(), undefined, s.ctx(), route);
      expect([first.tracksUpstream, first.upstream?.key, first.skipped]).toEqual([true, "a", []]);
      const second = await s.admission.admit(ask(), undefined, s.ctx(), route);
      expect(second.upstream?.key).toBe("b");
      expect(second.skipped.map((x) => [x.candidate.key, x.error.reason, x.error.metadata["detectedBy"]])).toEqual([["a", Reason.UPSTREAM_QUOTA_EXCEEDED, "gateway"]]);
      const e = await refusal(() => s.admission.admit(ask(), undefined, s.ctx(), route));
      expect(e.metadata).toMatchObject({ detectedBy: "gateway", model: MODEL });
      expect(["a", "b"]).toContain(e.metadata["upstream"]);
      expect(e.quotaViolations[0]!.subject).toMatch(/^org:[ab]:gpt-oss-120b$/);
    });

    it("a move gives the failed key's hold back and takes the next key's; a move to a key without room holds nothing", async () => {
      const s = await setup({ org: onePerMinute });
      const r = await s.admission.admit(ask(), undefined, s.ctx(), route);
      expect(await r.move(on("b"))).toBeUndefined();
      expect(r.upstream?.key).toBe("b");
      await s.admission.idle();
      // a's request went back when the call moved: another call can have it.
      const other = await s.admission.admit(ask(), undefined, s.ctx(), [on("a")]);
      expect(other.upstream?.key).toBe("a");
      // Both full now: a move back to a is refused, and the call holds no organisation capacity.
      const refused = await r.move(on("a"));
      expect([refused?.reason, refused?.metadata["upstream"], r.upstream]).toEqual([Reason.UPSTREAM_QUOTA_EXCEEDED, "a", undefined]);
      await s.admission.idle();
      // b got its request back on the way: it has room again.
      expect((await s.admission.admit(ask(), undefined, s.ctx(), [on("b")])).upstream?.key).toBe("b");
    });

    it("a fallback model's buckets are its own: with the requested model full on every key, the call is held on the fallback", async () => {
      const s = await setup({ org: onePerMinute });
      const withFallback = [on("a"), on("a", "zai-glm-4.7")];
      await s.admission.admit(ask(), undefined, s.ctx(), withFallback);
      const r = await s.admission.admit(ask(), undefined, s.ctx(), withFallback);
      expect([r.upstream?.key, r.upstream?.model]).toEqual(["a", "zai-glm-4.7"]);
    });

    it("learns from the headers of the key that answered, into that key's buckets only", async () => {
      const s = await setup({ org: { configured: new Map() } });
      const r = await s.admission.admit(ask(), undefined, s.ctx(), route);
      expect(await r.move(on("b"))).toBeUndefined();
      r.settle(learnedFrom(headers(0, 5)));
      await s.admission.idle();
      // b reported no requests left: b refuses; a never reported anything and admits.
      expect((await s.admission.admit(ask(), undefined, s.ctx(), [on("b"), on("a")])).upstream?.key).toBe("a");
    });
  });
});

describe("the fail modes", () => {
  /** A store that fails while `down` is set. */
  function flakyStore(): { store: LimitStore; down: boolean } {
    const inner = new MemoryStore();
    const box = { down: false, store: undefined as unknown as LimitStore };
    const check = (): void => {
      if (box.down) throw new Error("connection refused");
    };
    box.store = {
      kind: "redis",
      reserve: async (ops, now) => (check(), inner.reserve(ops, now)),
      adjust: async (ops, now) => (check(), inner.adjust(ops, now)),
      sync: async (reports, now) => (check(), inner.sync(reports, now)),
      ping: async () => check(),
      close: () => inner.close(),
    };
    return box;
  }

  async function setup(mode: "open" | "closed"): Promise<{ admission: QuotaAdmission; box: { down: boolean }; guarded: GuardedStore; states: boolean[]; lines: string[] }> {
    const box = flakyStore();
    const states: boolean[] = [];
    const lines: string[] = [];
    const logger = createLogger("info", { write: (l: string) => void lines.push(l) });
    const observer = { ...NO_OBSERVER, storeState: (up: boolean) => void states.push(up) };
    const guarded = new GuardedStore(box.store, mode, logger, observer);
    const admission = new QuotaAdmission({ callers: new CallerLimitTable({ requests_per_minute: 1 }, new Map()), org: undefined, store: guarded, failMode: mode, pricing: () => undefined, defaultCompletionTokens: 10, orgQueueMaxWaitMs: 0, observer });
    return { admission, box, guarded, states, lines };
  }

  const ctx = (): CallScope => new CallScope(Infinity, 1000, "r");

  it("open: a store failure lets calls through unchecked, with one log line, and limits return by themselves when it answers", async () => {
    const { admission, box, guarded, states, lines } = await setup("open");
    box.down = true;
    for (let i = 0; i < 5; i++) {
      const c = ctx();
      expect((await admission.admit(userRequest("x", { model: MODEL }), undefined, c)).limited).toBe(false);
      c.dispose();
    }
    expect(states).toEqual([false]);
    expect(lines.filter((l) => l.includes("limit store unreachable"))).toHaveLength(1);
    box.down = false;
    guarded.connection(true);
    await settleTurns();
    expect(states).toEqual([false, true]);
    expect(lines.filter((l) => l.includes("limit store reachable again"))).toHaveLength(1);
    const c = ctx();
    expect((await admission.admit(userRequest("x", { model: MODEL }), undefined, c)).limited).toBe(true);
    c.dispose();
    await admission.close();
  });

  it("closed: calls get UNAVAILABLE QUOTA_STORE_UNAVAILABLE with RetryInfo while the store is down", async () => {
    const { admission, box } = await setup("closed");
    box.down = true;
    const c = ctx();
    const e = (await Promise.resolve(admission.admit(userRequest("x", { model: MODEL }), undefined, c)).catch((err: unknown) => err)) as GatewayError;
    c.dispose();
    expect([e.code, e.reason, e.retryDelayMs]).toEqual([Code.UNAVAILABLE, Reason.QUOTA_STORE_UNAVAILABLE, 1000]);
    await admission.close();
  });
});
