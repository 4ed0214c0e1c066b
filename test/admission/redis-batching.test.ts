/**
 * The Redis store's batches (redis-store.ts): the operations of one event-loop turn go
 * to Redis as one script run, and each is answered exactly as if it had run alone, in
 * the order asked: the same answers as the memory store given the same calls. And when
 * Redis dies with a batch in flight, every operation of it fails at once (not at the
 * command timeout), later ones fail without waiting, and the admission makes of that
 * what QUOTA_FAIL_MODE says. A real redis-server on 127.0.0.1; time is the injected
 * `now`.
 */
import { execFileSync } from "node:child_process";
import { Redis } from "ioredis";
import { describe, expect, it } from "vitest";
import type { BucketSpec } from "../../src/admission/bucket.js";
import { NO_OBSERVER } from "../../src/admission/events.js";
import { GuardedStore } from "../../src/admission/fail-mode.js";
import type { BucketOp, LimitStore, ReserveResult, SyncOp } from "../../src/admission/limit-store.js";
import { CallerLimitTable } from "../../src/admission/limits.js";
import { MemoryStore } from "../../src/admission/memory-store.js";
import { QuotaAdmission } from "../../src/admission/quota-admission.js";
import { MAX_BATCH_NUMBERS, RedisStore, SETTLE_WAIT_MS } from "../../src/admission/redis-store.js";
import { CallScope } from "../../src/core/call-scope.js";
import { Code, GatewayError, Reason } from "../../src/core/errors.js";
import { createLogger } from "../../src/log.js";
import { userRequest } from "../helpers/harness.js";
import { redisForFile, startRedis, type RedisServer } from "../helpers/redis.js";
import { seededRandom } from "../helpers/random.js";

const MINUTE = 60_000;
const T0 = 1_750_000_000_000;

let redis: RedisServer;
let admin: Redis;
redisForFile((server, client) => {
  redis = server;
  admin = client;
});

let serial = 0;
async function redisStore(commandTimeoutMs = 2000): Promise<RedisStore> {
  const store = new RedisStore({ target: redis.target, prefix: `b${++serial}`, commandTimeoutMs });
  if (!(await store.ready(5000))) throw new Error("redis did not connect");
  return store;
}

/** Scripts Redis ran (EVALSHA, and the EVAL ioredis sends once per connection). */
async function scriptRuns(): Promise<number> {
  const stats = await admin.info("commandstats");
  let n = 0;
  for (const m of stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) n += Number(m[1]);
  return n;
}

/** scriptRuns() asked by another process (redis-cli) while this one's event loop waits: what reached Redis so far. */
function scriptRunsNow(): number {
  const stats = execFileSync("redis-cli", ["-h", "127.0.0.1", "-p", String(redis.port), "INFO", "commandstats"], { encoding: "utf8" });
  let n = 0;
  for (const m of stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) n += Number(m[1]);
  return n;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function bucket(id: string, capacity: number, shared = false): BucketSpec {
  return { id, capacity, ratePerMs: capacity / MINUTE, shared };
}

/** One call to a store, replayable on another. */
type Call = { kind: "reserve"; ops: BucketOp[]; now: number } | { kind: "adjust"; ops: BucketOp[]; now: number } | { kind: "sync"; reports: SyncOp[]; now: number };

/** Issues every call of a group in the same turn (none awaited before the next), groups one after another; returns each call's answer. */
async function play(store: LimitStore, groups: readonly (readonly Call[])[]): Promise<(ReserveResult | undefined)[]> {
  const out: (ReserveResult | undefined)[] = [];
  for (const group of groups) {
    const pending = group.map((c) => (c.kind === "reserve" ? store.reserve(c.ops, c.now) : c.kind === "adjust" ? store.adjust(c.ops, c.now).then(() => undefined) : store.sync(c.reports, c.now).then(() => undefined)));
    out.push(...(await Promise.all(pending)));
  }
  return out;
}

/** The parts of an answer both stores must agree on (a caller bucket's seq is the memory store's own bookkeeping). */
function comparable(r: ReserveResult | undefined, call: Call): unknown {
  if (r === undefined) return undefined;
  const round = (xs: readonly number[]): number[] => xs.map((x) => (Number.isFinite(x) ? Math.round(x * 1e6) / 1e6 : x));
  if (!r.ok) return { ok: false, index: r.index, waitMs: Number.isFinite(r.waitMs) ? Math.round(r.waitMs * 1e3) / 1e3 : r.waitMs, levels: round(r.levels), capacities: round(r.capacities) };
  const shared = call.kind === "reserve" ? call.ops.map((o) => o.bucket.shared) : [];
  return { ok: true, levels: round(r.levels), capacities: round(r.capacities), seqs: round(r.seqs.filter((_, i) => shared[i])) };
}

describe("the Redis store's batches", () => {
  it("send a reservation at once while no batch is in flight, and the rest of its turn as one script run, each answered as if it ran alone, in order", async () => {
    const store = await redisStore();
    try {
      const b = bucket("c:k:requests_per_minute", 5);
      const before = await scriptRuns();
      const calls = [store.reserve([{ bucket: b, amount: 1 }], T0)];
      // Redis was idle: the first is on the wire before reserve() returns (another client, asked now, finds it run)…
      expect(scriptRunsNow()).toBe(before + 1);
      for (let i = 0; i < 7; i++) calls.push(store.reserve([{ bucket: b, amount: 1 }], T0));
      // …and the seven behind it wait for the end of the turn, to go together.
      expect(scriptRunsNow()).toBe(before + 1);
      const results = await Promise.all(calls);
      expect(await scriptRuns()).toBe(before + 2);
      expect(results.map((r) => r.ok)).toEqual([true, true, true, true, true, false, false, false]);
      expect(results.slice(0, 5).map((r) => r.levels[0])).toEqual([4, 3, 2, 1, 0]);
      const refused = results[5]!;
      if (!refused.ok) expect(refused.waitMs).toBeCloseTo(MINUTE / 5, 6);
    } finally {
      await store.close();
    }
  });

  it("keep the order across kinds: a refund queued before a reservation in the same turn is there for it", async () => {
    const store = await redisStore();
    try {
      const b = bucket("c:k:tokens_per_minute", 100);
      const org = bucket("o:default:m:tokens_per_minute", 100, true);
      await store.reserve([{ bucket: b, amount: 100 }, { bucket: org, amount: 100 }], T0);
      const before = await scriptRuns();
      const [, refusedFirst, , admitted] = await Promise.all([
        store.adjust([{ bucket: b, amount: 0 }], T0),
        store.reserve([{ bucket: b, amount: 40 }], T0),
        store.adjust([{ bucket: b, amount: 50 }], T0),
        store.reserve([{ bucket: b, amount: 40 }, { bucket: org, amount: 10 }], T0),
        store.sync([{ bucket: org, remaining: 60, seqAtAdmission: 100 }], T0),
        store.reserve([{ bucket: org, amount: 0 }], T0),
      ]).then((rs) => [rs[0], rs[1] as ReserveResult, rs[2], rs[3] as ReserveResult]);
      // The first reservation went at once with the refund queued before it, the rest of the turn after it.
      expect(await scriptRuns()).toBe(before + 2);
      expect(refusedFirst).toMatchObject({ ok: false, levels: [0] });
      // The org bucket was empty: the second reservation is refused by it, not by the refunded caller bucket.
      expect(admitted).toMatchObject({ ok: false, index: 1, levels: [50, 0] });
    } finally {
      await store.close();
    }
  });

  it("let a settlement ride with the next reservation (one script run for both, the refund there for it), or send it alone after SETTLE_WAIT_MS", async () => {
    const store = await redisStore();
    try {
      const b = bucket("c:k:tokens_per_minute", 100);
      await store.reserve([{ bucket: b, amount: 100 }], T0);
      // A refund, then in a later turn a reservation that needs it: both go in one script run, in that order.
      let before = await scriptRuns();
      const refund = store.adjust([{ bucket: b, amount: 60 }], T0);
      await turn();
      const admitted = await store.reserve([{ bucket: b, amount: 50 }], T0);
      await refund;
      expect(await scriptRuns()).toBe(before + 1);
      expect(admitted).toMatchObject({ ok: true, levels: [10] });
      // A settlement with no reservation after it still reaches Redis, on its own (bounded wait: the timer).
      before = await scriptRuns();
      const started = performance.now();
      await store.adjust([{ bucket: b, amount: 30 }], T0);
      expect(performance.now() - started).toBeGreaterThanOrEqual(SETTLE_WAIT_MS - 1);
      expect(await scriptRuns()).toBe(before + 1);
      expect(await store.reserve([{ bucket: b, amount: 40 }], T0)).toMatchObject({ ok: true, levels: [0] });
      // close() sends what is still queued rather than drop it.
      const last = store.adjust([{ bucket: b, amount: 25 }], T0);
      await store.close();
      await last;
      expect((await admin.hgetBuffer(`{b${serial}}:c:k`, "tokens_per_minute"))?.readDoubleLE(0)).toBe(25);
    } finally {
      await store.close();
    }
  });

  /** A seeded mix of reservations, refunds, extra use and reports, in turns of 1-12 calls. */
  function mix(seed: number, seqs: boolean): Call[][] {
    const rand = seededRandom(seed);
    const buckets = [bucket("c:a:requests_per_minute", 20), bucket("c:a:tokens_per_minute", 500), bucket("c:b:tokens_per_minute", 300), bucket("o:default:m:tokens_per_minute", 800, true), bucket("o:default:m:requests_per_minute", 30, true), bucket("o:default:n:tokens_per_minute", 400, true)];
    const pick = (): BucketSpec => buckets[Math.floor(rand() * buckets.length)]!;
    const distinct = (n: number): BucketSpec[] => [...new Set(Array.from({ length: n }, pick))];
    let now = T0;
    const groups: Call[][] = [];
    for (let g = 0; g < 40; g++) {
      const group: Call[] = [];
      const size = 1 + Math.floor(rand() * 12);
      for (let i = 0; i < size; i++) {
        // Time mostly moves on, sometimes not at all, now and then backwards (a replica's clock behind).
        now += rand() < 0.2 ? -Math.floor(rand() * 500) : Math.floor(rand() * 800);
        const x = rand();
        if (x < 0.6) group.push({ kind: "reserve", ops: distinct(1 + Math.floor(rand() * 3)).map((b) => ({ bucket: b, amount: Math.floor(rand() * b.capacity * 0.3) })), now });
        else if (x < 0.85) group.push({ kind: "adjust", ops: distinct(1 + Math.floor(rand() * 2)).map((b) => ({ bucket: b, amount: Math.floor((rand() - 0.3) * b.capacity * 0.2) })), now });
        else {
          const shared = buckets.filter((b) => b.shared);
          const b = shared[Math.floor(rand() * shared.length)]!;
          group.push({ kind: "sync", reports: [{ bucket: b, remaining: Math.floor(rand() * b.capacity), seqAtAdmission: seqs && rand() < 0.5 ? Math.floor(rand() * 2000) : undefined }], now });
        }
      }
      groups.push(group);
    }
    return groups;
  }

  it("answer a seeded mix of reservations, refunds, extra use and reports turn by turn exactly as the same calls one at a time", async () => {
    const groups = mix(14, true);
    const calls = groups.flat();
    const batched = await redisStore();
    const alone = await redisStore();
    try {
      const before = await scriptRuns();
      const fromBatches = await play(batched, groups);
      // Per turn, not per call: a turn's first reservation goes at once (each turn starts with Redis idle)
      // with what was queued before it, and the rest of the turn as one more run.
      const runs = groups.reduce((n, g) => {
        const first = g.findIndex((c) => c.kind === "reserve");
        return n + (first === -1 || first === g.length - 1 ? 1 : 2);
      }, 0);
      expect(await scriptRuns()).toBe(before + runs);
      expect(runs).toBeLessThan(groups.length * 2);
      expect(calls.length).toBeGreaterThan(3 * groups.length);
      const oneByOne = await play(alone, calls.map((c) => [c]));
      expect(fromBatches).toEqual(oneByOne);
    } finally {
      await batched.close();
      await alone.close();
    }
  });

  it("give the memory store's answers for the same mix", async () => {
    // Reports without a seq: a bucket's running total is kept per bucket in memory but per
    // hash in Redis (a hash outlives a bucket that filled up first), so after an expiry
    // the two count reservations "since" a report differently; the arithmetic is the same.
    const groups = mix(15, false);
    const calls = groups.flat();
    const store = await redisStore();
    try {
      const fromRedis = await play(store, groups);
      const fromMemory = await play(new MemoryStore(), groups);
      expect(fromRedis.map((r, i) => comparable(r, calls[i]!))).toEqual(fromMemory.map((r, i) => comparable(r, calls[i]!)));
    } finally {
      await store.close();
    }
  });

  it("split a turn too large for one script run into several, in order, with the same answers", async () => {
    const store = await redisStore();
    try {
      const buckets = [bucket("c:k:requests_per_minute", 10_000), bucket("c:k:tokens_per_minute", 1e6), bucket("o:default:m:requests_per_minute", 10_000, true), bucket("o:default:m:tokens_per_minute", 1e6, true)];
      const n = Math.ceil(MAX_BATCH_NUMBERS / (3 + 11 * buckets.length)) * 3;
      const before = await scriptRuns();
      const results = await Promise.all(Array.from({ length: n }, () => store.reserve(buckets.map((b) => ({ bucket: b, amount: 1 })), T0)));
      const runs = (await scriptRuns()) - before;
      expect(runs).toBeGreaterThanOrEqual(3);
      expect(runs).toBeLessThan(n);
      expect(results.map((r) => (r.ok ? r.levels[0] : undefined))).toEqual(Array.from({ length: n }, (_, i) => 10_000 - 1 - i));
      expect(results.map((r) => (r.ok ? r.seqs[2] : undefined))).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    } finally {
      await store.close();
    }
  });

  it("refuse an operation with a non-finite amount alone, before Redis sees it; the rest of its turn goes through", async () => {
    const store = await redisStore();
    try {
      const b = bucket("c:k:tokens_per_minute", 100);
      const [bad, good] = await Promise.allSettled([store.reserve([{ bucket: b, amount: Number.NaN }], T0), store.reserve([{ bucket: b, amount: 10 }], T0)]);
      expect(bad.status).toBe("rejected");
      expect(good).toMatchObject({ status: "fulfilled", value: { ok: true, levels: [90] } });
    } finally {
      await store.close();
    }
  });
});

describe("Redis dying with a batch in flight", () => {
  it("fails every operation of the batch at once, not at the command timeout, and later ones without waiting; the store recovers by itself", async () => {
    const local = await startRedis();
    const store = new RedisStore({ target: local.target, prefix: "dying", commandTimeoutMs: 20_000 });
    try {
      expect(await store.ready(5000)).toBe(true);
      const b = bucket("c:k:requests_per_minute", 100);
      await store.reserve([{ bucket: b, amount: 1 }], T0);
      // Hold every command at the server, so the batch below is written and stays unanswered.
      const pauser = new Redis(local.url);
      await pauser.call("CLIENT", "PAUSE", "20000", "ALL");
      const started = Date.now();
      const inFlight = Array.from({ length: 10 }, () => store.reserve([{ bucket: b, amount: 1 }], T0).then(() => "answered", (err: unknown) => err));
      await turn(); // the flush ran: one command on the wire
      await turn();
      await local.kill();
      const outcomes = await Promise.all(inFlight);
      pauser.disconnect();
      expect(outcomes.every((o) => o instanceof Error)).toBe(true);
      // Well before the 20 s command timeout: the connection's close failed them.
      expect(Date.now() - started).toBeLessThan(10_000);
      const later = Date.now();
      await expect(store.reserve([{ bucket: b, amount: 1 }], T0)).rejects.toThrow();
      expect(Date.now() - later).toBeLessThan(10_000);
      await local.start();
      // Reconnects with backoff (≤ 1 s) by itself; a restarted Redis starts every bucket full.
      const deadline = Date.now() + 15_000;
      let back: ReserveResult | undefined;
      while (back === undefined && Date.now() < deadline) {
        back = await store.reserve([{ bucket: b, amount: 1 }], T0).catch(async () => {
          await new Promise((r) => setTimeout(r, 50));
          return undefined;
        });
      }
      expect(back).toMatchObject({ ok: true, levels: [99] });
    } finally {
      await store.close();
      await local.stop();
    }
  });

  for (const mode of ["open", "closed"] as const) {
    it(`QUOTA_FAIL_MODE=${mode}: every call of the batch ${mode === "open" ? "goes through unchecked" : "gets UNAVAILABLE QUOTA_STORE_UNAVAILABLE"}, at once`, async () => {
      const local = await startRedis();
      const store = new RedisStore({ target: local.target, prefix: "dying", commandTimeoutMs: 20_000 });
      const guarded = new GuardedStore(store, mode, createLogger("silent"), NO_OBSERVER);
      const admission = new QuotaAdmission({ callers: new CallerLimitTable({ requests_per_minute: 100 }, new Map()), org: undefined, store: guarded, failMode: mode, pricing: () => undefined, defaultCompletionTokens: 10, orgQueueMaxWaitMs: 0, observer: NO_OBSERVER });
      const scopes: CallScope[] = [];
      try {
        expect(await store.ready(5000)).toBe(true);
        const pauser = new Redis(local.url);
        await pauser.call("CLIENT", "PAUSE", "20000", "ALL");
        const started = Date.now();
        const calls = Array.from({ length: 8 }, () => {
          const scope = new CallScope(Infinity, 60_000, "r");
          scopes.push(scope);
          return Promise.resolve(admission.admit(userRequest("x", { model: "gpt-oss-120b" }), undefined, scope)).then(
            (r) => ({ limited: r.limited }),
            (err: unknown) => err,
          );
        });
        await turn();
        await turn();
        await local.kill();
        const outcomes = await Promise.all(calls);
        pauser.disconnect();
        expect(Date.now() - started).toBeLessThan(10_000);
        if (mode === "open") expect(outcomes).toEqual(Array.from({ length: 8 }, () => ({ limited: false })));
        else for (const o of outcomes) expect(o instanceof GatewayError ? [o.code, o.reason] : o).toEqual([Code.UNAVAILABLE, Reason.QUOTA_STORE_UNAVAILABLE]);
        expect(guarded.up).toBe(false);
      } finally {
        for (const s of scopes) s.dispose();
        await admission.close();
        await local.stop();
      }
    });
  }
});
