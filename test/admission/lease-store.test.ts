/**
 * Leases (lease-store.ts) on a real redis-server: replicas are LeasedStores over their
 * own RedisStore connection and one key prefix, as gateway processes would be. Time is
 * the injected `now` (buckets of a day, so nothing refills between calls); the Redis
 * work a replica does is read from redis-server itself (INFO commandstats).
 */
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import type { BucketSpec } from "../../src/admission/bucket.js";
import { NO_OBSERVER } from "../../src/admission/events.js";
import { GuardedStore, StoreDown } from "../../src/admission/fail-mode.js";
import { LEASE_HEADROOM, LEASE_MAX_SCALE, LeasedStore } from "../../src/admission/lease-store.js";
import type { AdmissionStore, BucketOp } from "../../src/admission/limit-store.js";
import { RedisStore } from "../../src/admission/redis-store.js";
import { createLogger } from "../../src/log.js";
import { redisForFile, type RedisServer } from "../helpers/redis.js";

const DAY = 86_400_000;
const T0 = 1_750_000_000_000;
const CALLS = 8;
const IDLE_MS = 1000;

function bucket(id: string, capacity: number, shared = false): BucketSpec {
  return { id, capacity, ratePerMs: capacity / DAY, shared };
}

let redis: RedisServer;
let admin: Redis;
redisForFile((server, client) => {
  redis = server;
  admin = client;
});

interface Replica {
  readonly leased: LeasedStore;
  readonly guarded: GuardedStore;
  /** Resolves at the next change of the store's state to `up`. */
  state(up: boolean): Promise<void>;
}

let serial = 0;
let prefix = "";
const open: AdmissionStore[] = [];

async function replica(options: { leases?: boolean; onLocal?: () => void } = {}): Promise<Replica> {
  const waiters: { up: boolean; resolve: () => void }[] = [];
  const observer = {
    ...NO_OBSERVER,
    storeState: (up: boolean) => {
      for (const w of waiters.splice(0)) if (w.up === up) w.resolve();
    },
  };
  const store = new RedisStore({ target: redis.target, prefix, commandTimeoutMs: 1000, onConnection: (up) => guarded.connection(up) });
  const guarded: GuardedStore = new GuardedStore(store, "closed", createLogger("silent"), observer);
  if (!(await store.ready(5000))) throw new Error("redis did not connect");
  const leased = new LeasedStore(guarded, { calls: options.leases === false ? 1 : CALLS, idleMs: IDLE_MS, clock: () => T0, ...(options.onLocal === undefined ? {} : { onLocal: options.onLocal }) });
  open.push(options.leases === false ? guarded : leased);
  return { leased, guarded, state: (up) => new Promise((resolve) => waiters.push({ up, resolve })) };
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

/** Script runs redis-server has done so far (a store batch is one EVALSHA, or its first on a connection an EVAL). */
async function scriptRuns(): Promise<number> {
  const info = await admin.info("commandstats");
  const calls = (cmd: string) => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
  return calls("evalsha") + calls("eval");
}

/** What the bucket holds in Redis itself, leases excluded (the script's level field). */
async function levelInRedis(b: BucketSpec): Promise<number> {
  const cut = b.id.lastIndexOf(":");
  const raw = await admin.hgetBuffer(`{${prefix}}:${b.id.slice(0, cut)}`, b.id.slice(cut + 1));
  return raw === null ? b.capacity : raw.readDoubleLE(0);
}

const one = (b: BucketSpec, amount = 1): BucketOp[] => [{ bucket: b, amount }];

describe("leases of a caller's buckets", () => {
  it("admit a steady caller from memory: one script run per half lease, not one per call, and no unit lost", async () => {
    prefix = `lease${++serial}`;
    const r = await replica();
    const b = bucket("c:steady:requests_per_day", 100_000);
    const before = await scriptRuns();
    for (let i = 0; i < 41; i++) {
      const result = await r.leased.reserve(one(b), T0);
      expect(result.ok).toBe(true);
      await r.leased.idle();
    }
    const runs = (await scriptRuns()) - before;
    // The first call is exact; then a top-up each time the lease falls under half: 40 / (8 / 2) of them.
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(runs).toBeLessThanOrEqual(1 + 40 / (CALLS / 2) + 1);
    const held = r.leased.held().get(b.id) ?? 0;
    expect(held).toBeGreaterThan(0);
    // Redis counted every call and every unit leased.
    expect(await levelInRedis(b)).toBe(100_000 - 41 - held);
  });

  it("grow while calls outrun their top-ups, so a burst larger than a lease is admitted from memory, within LEASE_MAX_SCALE leases and no unit lost", async () => {
    prefix = `lease${++serial}`;
    let local = 0;
    const r = await replica({ onLocal: () => local++ });
    const b = bucket("c:burst:requests_per_day", 10_000_000);
    const BURST = 64; // 8 leases' worth of calls at once, as 64 calls in flight on one replica
    const fromLease: number[] = [];
    let admitted = 0;
    for (let burst = 0; burst < 8; burst++) {
      const before = local;
      const results = await Promise.all(Array.from({ length: BURST }, () => r.leased.reserve(one(b), T0)));
      admitted += results.filter((x) => x.ok).length;
      await r.leased.idle();
      fromLease.push(local - before);
      expect(r.leased.held().get(b.id) ?? 0).toBeLessThanOrEqual(LEASE_MAX_SCALE * CALLS);
    }
    expect(admitted).toBe(8 * BURST);
    // At first a lease of 8 covers a few calls of each burst; once grown, the whole burst.
    expect(fromLease[1]).toBeLessThan(BURST / 2);
    expect(fromLease[fromLease.length - 1]).toBe(BURST);
    // Redis counted every call and every unit leased.
    expect(await levelInRedis(b)).toBe(10_000_000 - admitted - (r.leased.held().get(b.id) ?? 0));
    // Swept for idling: the lease goes back, and the next one starts again at QUOTA_LEASE_CALLS.
    r.leased.sweep(T0 + IDLE_MS);
    expect(r.leased.held().size).toBe(0);
    await r.leased.reserve(one(b), T0 + IDLE_MS);
    await r.leased.idle();
    expect(r.leased.held().get(b.id)).toBe(CALLS);
  });

  it("report the caller's standing as Redis' level plus what the lease still holds", async () => {
    prefix = `lease${++serial}`;
    const r = await replica();
    const b = bucket("c:standing:requests_per_day", 10_000);
    await r.leased.reserve(one(b), T0);
    await r.leased.idle();
    const local = await r.leased.reserve(one(b), T0);
    expect(local.ok && local.levels[0]).toBe(10_000 - 2);
  });

  it("are not taken for a small limit: every call of a key under LEASE_HEADROOM leases' worth is reserved in Redis", async () => {
    prefix = `lease${++serial}`;
    const r = await replica();
    const small = bucket("c:small:requests_per_day", LEASE_HEADROOM * CALLS);
    const before = await scriptRuns();
    for (let i = 0; i < 10; i++) {
      expect((await r.leased.reserve(one(small), T0)).ok).toBe(true);
      await r.leased.idle();
    }
    expect((await scriptRuns()) - before).toBe(10);
    expect(r.leased.held().size).toBe(0);
  });

  it("never let more than the limit through across replicas, and exactly the limit once idle leases are back", async () => {
    prefix = `lease${++serial}`;
    const replicas = [await replica(), await replica(), await replica({ leases: false })];
    const b = bucket("c:fleet:requests_per_day", 1000);
    const store = (i: number): AdmissionStore => (i === 2 ? replicas[2]!.guarded : replicas[i]!.leased);
    let ok = 0;
    // 3,000 calls in waves of 30 at once, spread over the three.
    for (let wave = 0; wave < 100; wave++) {
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => store((wave + i) % 3).reserve(one(b), T0)));
      ok += results.filter((x) => x.ok).length;
      await Promise.all(replicas.map((r) => r.leased.idle()));
    }
    expect(ok).toBeLessThanOrEqual(1000);
    // What the leases still hold is what the fleet was short of.
    const held = replicas.reduce((n, r) => n + (r.leased.held().get(b.id) ?? 0), 0);
    expect(ok + held).toBe(1000);
    expect(held).toBeLessThanOrEqual(2 * CALLS);
    // Idle: the leases go back, and the replica without leases gets the rest.
    for (const r of replicas) r.leased.sweep(T0 + IDLE_MS);
    for (let i = 0; i < held + 5; i++) if ((await store(2).reserve(one(b), T0 + IDLE_MS)).ok) ok++;
    expect(ok).toBe(1000);
  });

  it("give back what is left when it cannot cover a call, in the same script run as the call's reservation", async () => {
    prefix = `lease${++serial}`;
    const r = await replica();
    const b = bucket("c:big:tokens_per_day", 1_000_000);
    await r.leased.reserve(one(b, 100), T0);
    await r.leased.idle();
    const held = r.leased.held().get(b.id)!;
    expect(held).toBe(CALLS * 100);
    const before = await scriptRuns();
    const big = await r.leased.reserve(one(b, held + 1), T0);
    expect(big.ok).toBe(true);
    // The level is exact: nothing held.
    expect(big.ok && big.levels[0]).toBe(1_000_000 - 100 - (held + 1));
    await r.leased.idle();
    // The give-back and the reservation went as one run; the new lease's top-up is the other.
    expect((await scriptRuns()) - before).toBe(2);
    expect(r.leased.held().get(b.id)).toBe(CALLS * (held + 1));
  });

  it("take settlement refunds into the lease up to a full one, and send the rest to Redis", async () => {
    prefix = `lease${++serial}`;
    const r = await replica();
    const b = bucket("c:refund:tokens_per_day", 1_000_000);
    await r.leased.reserve(one(b, 100), T0);
    await r.leased.idle();
    await r.leased.reserve(one(b, 100), T0); // from the lease: 700 held of a full 800
    expect(r.leased.held().get(b.id)).toBe(700);
    const redisBefore = await levelInRedis(b);
    await r.leased.adjust(one(b, 250), T0);
    expect(r.leased.held().get(b.id)).toBe(800);
    expect(await levelInRedis(b)).toBe(redisBefore + 150);
  });

  it("answer a call they cover at once (reserveNow), absorb a refund that fits at once (adjustNow), and leave the rest to the async path untouched", async () => {
    prefix = `lease${++serial}`;
    const r = await replica();
    const b = bucket("c:now:tokens_per_day", 1_000_000);
    expect(r.leased.reserveNow(one(b, 100), T0)).toBeUndefined(); // no lease yet: reserve() goes to Redis
    await r.leased.reserve(one(b, 100), T0);
    await r.leased.idle(); // the lease: 800
    const now = r.leased.reserveNow(one(b, 100), T0);
    expect(now?.ok).toBe(true);
    expect(r.leased.held().get(b.id)).toBe(700);
    const redisBefore = await levelInRedis(b);
    expect(r.leased.adjustNow(one(b, 60), T0)).toBe(true); // fits: into the lease
    expect(r.leased.held().get(b.id)).toBe(760);
    expect(r.leased.adjustNow(one(b, 100), T0)).toBe(false); // 60 would overflow a full lease: nothing applied
    expect(r.leased.held().get(b.id)).toBe(760);
    expect(r.leased.reserveNow(one(b, 900), T0)).toBeUndefined(); // more than the lease holds: nothing taken
    expect(r.leased.held().get(b.id)).toBe(760);
    expect(await levelInRedis(b)).toBe(redisBefore);
  });

  it("leave organisation buckets to Redis: a call that counts against one is reserved there whole", async () => {
    prefix = `lease${++serial}`;
    const r = await replica();
    const caller = bucket("c:mixed:requests_per_day", 100_000);
    const org = bucket("o:default:m:requests_per_day", 100_000, true);
    const before = await scriptRuns();
    for (let i = 0; i < 5; i++) {
      expect((await r.leased.reserve([...one(caller), ...one(org)], T0)).ok).toBe(true);
      await r.leased.idle();
    }
    expect((await scriptRuns()) - before).toBe(5);
    expect(r.leased.held().size).toBe(0);
  });

  it("are dropped when Redis goes away: the fail mode applies at once, and leasing starts over once it is back", async () => {
    prefix = `lease${++serial}`;
    const r = await replica();
    const b = bucket("c:outage:requests_per_day", 100_000);
    await r.leased.reserve(one(b), T0);
    await r.leased.idle();
    expect(r.leased.held().get(b.id)).toBe(CALLS);
    const down = r.state(false);
    await redis.kill();
    await down;
    await expect(r.leased.reserve(one(b), T0)).rejects.toBeInstanceOf(StoreDown);
    expect(r.leased.held().size).toBe(0);
    const up = r.state(true);
    await redis.start();
    await up;
    // A fresh Redis: the first call is exact again, and its lease follows.
    const again = await r.leased.reserve(one(b), T0);
    expect(again.ok && again.levels[0]).toBe(100_000 - 1);
    await r.leased.idle();
    expect(r.leased.held().get(b.id)).toBe(CALLS);
  });
});
