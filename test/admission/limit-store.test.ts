/**
 * The LimitStore contract, one suite run against both implementations: the in-memory
 * store and the Redis store on a real redis-server (test/helpers/redis.ts). Time is the
 * injected `now`, never a sleep.
 */
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { EXPIRY_MARGIN_MS, type BucketSpec } from "../../src/admission/bucket.js";
import type { LimitStore } from "../../src/admission/limit-store.js";
import { MemoryStore } from "../../src/admission/memory-store.js";
import { RedisStore } from "../../src/admission/redis-store.js";
import { redisForFile, startRedisCluster, type RedisCluster, type RedisServer } from "../helpers/redis.js";

const MINUTE = 60_000;
const T0 = 1_750_000_000_000;

/** A bucket of `capacity` per minute. */
function bucket(id: string, capacity: number, shared = false): BucketSpec {
  return { id, capacity, ratePerMs: capacity / MINUTE, shared };
}

/** A Redis value of float64s, little-endian, as numbers. */
function doubles(raw: Buffer): number[] {
  const out: number[] = [];
  for (let at = 0; at + 8 <= raw.length; at += 8) out.push(raw.readDoubleLE(at));
  return out;
}

interface Subject {
  readonly store: LimitStore;
  /** How long the store keeps a bucket's state, ms (undefined: none kept). */
  ttl(id: string, now: number): Promise<number | undefined>;
  close(): Promise<void>;
}

let redis: RedisServer;
let admin: Redis;
redisForFile((server, client) => {
  redis = server;
  admin = client;
});

let cluster: RedisCluster;
beforeAll(async () => {
  cluster = await startRedisCluster(3);
});
afterAll(async () => {
  await cluster?.stop();
});

let serial = 0;
const subjects: Record<string, () => Promise<Subject>> = {
  memory: async () => {
    const store = new MemoryStore();
    // Memory keeps state until `expiresAt`; probe by asking at later times.
    return {
      store,
      ttl: async (id, now) => {
        const probe = store as unknown as { states: Map<string, { expiresAt: number }> };
        const s = probe.states.get(id);
        return s === undefined ? undefined : s.expiresAt - now;
      },
      close: () => store.close(),
    };
  },
  redis: async () => {
    const prefix = `t${++serial}`;
    const store = new RedisStore({ target: redis.target, prefix, commandTimeoutMs: 1000 });
    if (!(await store.ready(5000))) throw new Error("redis did not connect");
    return {
      store,
      // The bucket's hash: its caller's (or model's), the id up to its last ':'.
      ttl: async (id) => {
        const fields = await admin.hgetall(`{${prefix}}:${id.slice(0, id.lastIndexOf(":"))}`);
        if (fields[id.slice(id.lastIndexOf(":") + 1)] === undefined) return undefined;
        const ms = await admin.pttl(`{${prefix}}:${id.slice(0, id.lastIndexOf(":"))}`);
        return ms < 0 ? undefined : ms;
      },
      close: () => store.close(),
    };
  },
  // Seeded with a master that does not serve the prefix's slot: the client finds the one that does.
  "redis cluster": async () => {
    const prefix = `tc${++serial}`;
    const owner = await cluster.ownerOf(`{${prefix}}`);
    const store = new RedisStore({ target: cluster.target([(owner + 1) % 3]), prefix, commandTimeoutMs: 1000 });
    if (!(await store.ready(5000))) throw new Error("the redis cluster did not connect");
    const node = cluster.node(owner);
    return {
      store,
      ttl: async (id) => {
        const key = `{${prefix}}:${id.slice(0, id.lastIndexOf(":"))}`;
        const fields = await node.hgetall(key);
        if (fields[id.slice(id.lastIndexOf(":") + 1)] === undefined) return undefined;
        const ms = await node.pttl(key);
        return ms < 0 ? undefined : ms;
      },
      close: () => store.close(),
    };
  },
};

describe.each(Object.keys(subjects))("the %s limit store", (kind) => {
  let s: Subject;
  const fresh = async (): Promise<LimitStore> => {
    s = await subjects[kind]!();
    return s.store;
  };
  afterEach(async () => {
    await s?.close();
  });

  it("starts a bucket full and takes exactly its capacity, then refuses with the wait for the shortfall", async () => {
    const store = await fresh();
    const b = bucket("c:a:requests_per_minute", 5);
    for (let i = 0; i < 5; i++) expect((await store.reserve([{ bucket: b, amount: 1 }], T0)).ok).toBe(true);
    const refused = await store.reserve([{ bucket: b, amount: 1 }], T0);
    expect(refused).toMatchObject({ ok: false, index: 0 });
    if (refused.ok) return;
    expect(refused.waitMs).toBeCloseTo(MINUTE / 5, 6);
    expect(refused.levels[0]).toBeCloseTo(0, 9);
  });

  it("reserves every bucket or none: a refusal by one leaves the others untouched", async () => {
    const store = await fresh();
    const roomy = bucket("c:a:tokens_per_minute", 1000);
    const tight = bucket("o:default:m:tokens_per_minute", 100, true);
    const r1 = await store.reserve([{ bucket: roomy, amount: 80 }, { bucket: tight, amount: 80 }], T0);
    expect(r1).toMatchObject({ ok: true, levels: [920, 20], capacities: [1000, 100] });
    const r2 = await store.reserve([{ bucket: roomy, amount: 80 }, { bucket: tight, amount: 80 }], T0);
    expect(r2).toMatchObject({ ok: false, index: 1, levels: [920, 20] });
    const r3 = await store.reserve([{ bucket: roomy, amount: 900 }], T0);
    expect(r3).toMatchObject({ ok: true, levels: [20] });
  });

  it("refills continuously with the clock: half a window gives back half the capacity, never more than full", async () => {
    const store = await fresh();
    const b = bucket("c:a:tokens_per_minute", 600);
    await store.reserve([{ bucket: b, amount: 600 }], T0);
    const half = await store.reserve([{ bucket: b, amount: 0 }], T0 + MINUTE / 2);
    expect(half.levels[0]).toBeCloseTo(300, 6);
    const much = await store.reserve([{ bucket: b, amount: 0 }], T0 + 10 * MINUTE);
    expect(much.levels[0]).toBe(600);
  });

  it("refuses a cost larger than a bucket's whole capacity with an infinite wait, ahead of buckets that only need time", async () => {
    const store = await fresh();
    const busy = bucket("c:a:requests_per_minute", 1);
    const small = bucket("c:a:tokens_per_minute", 100);
    await store.reserve([{ bucket: busy, amount: 1 }], T0);
    const r = await store.reserve([{ bucket: busy, amount: 1 }, { bucket: small, amount: 101 }], T0);
    expect(r).toMatchObject({ ok: false, index: 1, waitMs: Infinity });
  });

  it("gives back unused reservations (never past capacity) and takes extra use, which later calls wait out", async () => {
    const store = await fresh();
    const b = bucket("c:a:tokens_per_minute", 1000);
    await store.reserve([{ bucket: b, amount: 700 }], T0);
    await store.adjust([{ bucket: b, amount: 500 }], T0);
    expect((await store.reserve([{ bucket: b, amount: 0 }], T0)).levels[0]).toBe(800);
    await store.adjust([{ bucket: b, amount: 5000 }], T0);
    expect((await store.reserve([{ bucket: b, amount: 0 }], T0)).levels[0]).toBe(1000);
    await store.adjust([{ bucket: b, amount: -1500 }], T0);
    const r = await store.reserve([{ bucket: b, amount: 100 }], T0);
    expect(r).toMatchObject({ ok: false, levels: [-500] });
    if (!r.ok) expect(r.waitMs).toBeCloseTo((600 / 1000) * MINUTE, 6);
  });

  it("ignores a refund to a bucket with no state (it is full), but charges extra use to it", async () => {
    const store = await fresh();
    const b = bucket("c:b:tokens_per_minute", 1000);
    await store.adjust([{ bucket: b, amount: 300 }], T0);
    expect(await s.ttl(b.id, T0)).toBeUndefined();
    await store.adjust([{ bucket: b, amount: -300 }], T0);
    expect((await store.reserve([{ bucket: b, amount: 0 }], T0)).levels[0]).toBe(700);
  });

  it("keeps a bucket's state only until it would be full again, plus a margin", async () => {
    const store = await fresh();
    const b = bucket("c:a:requests_per_day", 60);
    await store.reserve([{ bucket: b, amount: 30 }], T0);
    const ttl = await s.ttl(b.id, T0);
    expect(ttl).toBeGreaterThan(MINUTE / 2);
    expect(ttl).toBeLessThanOrEqual(MINUTE / 2 + EXPIRY_MARGIN_MS);
  });

  it("never runs time backwards: a replica whose clock is behind refills nothing and does not rewind the bucket", async () => {
    const store = await fresh();
    const b = bucket("c:a:tokens_per_minute", 600);
    await store.reserve([{ bucket: b, amount: 600 }], T0 + 10_000);
    const behind = await store.reserve([{ bucket: b, amount: 0 }], T0);
    expect(behind.levels[0]).toBeCloseTo(0, 9);
    const later = await store.reserve([{ bucket: b, amount: 0 }], T0 + 20_000);
    expect(later.levels[0]).toBeCloseTo(100, 6);
  });

  it("keeps a shared bucket's learned capacity over a replica's stale one", async () => {
    const store = await fresh();
    const learned = bucket("o:default:m:requests_per_minute", 100, true);
    await store.sync([{ bucket: learned, remaining: 100, seqAtAdmission: undefined }], T0);
    const stale = bucket("o:default:m:requests_per_minute", 10, true);
    const r = await store.reserve([{ bucket: stale, amount: 50 }], T0);
    expect(r).toMatchObject({ ok: true, levels: [50], capacities: [100] });
  });

  it("syncs a shared bucket to the upstream's remaining, less what the fleet reserved after the reporting call", async () => {
    const store = await fresh();
    const b = bucket("o:default:m:tokens_per_minute", 100, true);
    const seqs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await store.reserve([{ bucket: b, amount: 10 }], T0);
      if (r.ok) seqs.push(r.seqs[0]!);
    }
    expect(seqs).toEqual([10, 20, 30]);
    // The first call's response says 60 remain (it counted the first reservation and
    // other traffic): the two reservations made after it had not reached the upstream.
    await store.sync([{ bucket: b, remaining: 60, seqAtAdmission: seqs[0] }], T0);
    expect((await store.reserve([{ bucket: b, amount: 0 }], T0)).levels[0]).toBe(40);
    // A report for a call not admitted against the bucket counts as it is.
    await store.sync([{ bucket: b, remaining: 25, seqAtAdmission: undefined }], T0);
    expect((await store.reserve([{ bucket: b, amount: 0 }], T0)).levels[0]).toBe(25);
  });

  it("never raises a shared bucket on a report: calls admitted before the reporting one may still be on their way", async () => {
    const store = await fresh();
    const b = bucket("o:default:m:requests_per_minute", 100, true);
    await store.reserve([{ bucket: b, amount: 30 }], T0);
    await store.sync([{ bucket: b, remaining: 90, seqAtAdmission: undefined }], T0);
    expect((await store.reserve([{ bucket: b, amount: 0 }], T0)).levels[0]).toBe(70);
    // Capacity comes back by refill (and releases) instead.
    expect((await store.reserve([{ bucket: b, amount: 0 }], T0 + 6000)).levels[0]).toBeCloseTo(80, 6);
  });
});

describe("the Redis store's keys", () => {
  it("only extend a hash's expiry: a bucket written later that fills sooner does not drop a slower one's state", async () => {
    const store = new RedisStore({ target: redis.target, prefix: "expiry", commandTimeoutMs: 1000 });
    await store.ready(5000);
    try {
      const day = { id: "c:k:tokens_per_day", capacity: 86_400, ratePerMs: 86_400 / 86_400_000, shared: false };
      const minute = bucket("c:k:requests_per_minute", 60);
      await store.reserve([{ bucket: day, amount: 43_200 }], T0); // half a day to refill
      await store.reserve([{ bucket: minute, amount: 1 }], T0); // one second to refill
      expect(await admin.pttl("{expiry}:c:k")).toBeGreaterThan(43_000_000);
    } finally {
      await store.close();
    }
  });

  it("are one hash per caller key and per model, under one hash tag ({prefix}), so one script may touch them all on Redis Cluster", async () => {
    const store = new RedisStore({ target: redis.target, prefix: "tagged", commandTimeoutMs: 1000 });
    await store.ready(5000);
    try {
      await store.reserve([{ bucket: bucket("c:k%3Aey:tokens_per_minute", 10), amount: 1 }, { bucket: bucket("o:default:gpt-oss-120b:requests_per_minute", 10, true), amount: 1 }], T0);
      expect((await admin.keys("{tagged}:*")).sort()).toEqual(["{tagged}:c:k%3Aey", "{tagged}:o:default:gpt-oss-120b"]);
      // A field per bucket, its value float64s (little-endian): level and time; the organisation's also capacity, rate and running total.
      const caller = await admin.hgetallBuffer("{tagged}:c:k%3Aey");
      expect(Object.keys(caller)).toEqual(["tokens_per_minute"]);
      expect(doubles(caller["tokens_per_minute"]!)).toEqual([9, T0]);
      const org = await admin.hgetallBuffer("{tagged}:o:default:gpt-oss-120b");
      expect(Object.keys(org)).toEqual(["requests_per_minute"]);
      expect(doubles(org["requests_per_minute"]!)).toEqual([9, T0, 10, 10 / 60_000, 1]);
    } finally {
      await store.close();
    }
  });
});

describe("a caller's and the organisation's buckets side by side in one script", () => {
  it("keep their own figures whatever their order (a caller bucket's fields never read as the next bucket's)", async () => {
    const store = new RedisStore({ target: redis.target, prefix: "mixed", commandTimeoutMs: 1000 });
    await store.ready(5000);
    try {
      const a = bucket("c:k:requests_per_minute", 10);
      const b = bucket("c:k:tokens_per_minute", 1000);
      const org = bucket("o:default:m:tokens_per_minute", 500, true);
      for (let i = 0; i < 3; i++) {
        const r = await store.reserve([{ bucket: a, amount: 1 }, { bucket: org, amount: 100 }, { bucket: b, amount: 100 }], T0);
        expect(r).toMatchObject({ ok: true, levels: [9 - i, 400 - 100 * i, 900 - 100 * i], capacities: [10, 500, 1000], seqs: [0, 100 * (i + 1), 0].map((x, j) => (j === 1 ? x : expect.any(Number))) });
      }
    } finally {
      await store.close();
    }
  });
});

describe("on a Redis Cluster, the store's probe", () => {
  it("asks the master of the limits' slot, not any node: with it down the store stays down, with it back the store is up", async () => {
    const prefix = "probe";
    const owner = await cluster.ownerOf(`{${prefix}}`);
    const store = new RedisStore({ target: cluster.target([0, 1, 2]), prefix, commandTimeoutMs: 150 });
    try {
      expect(await store.ready(5000)).toBe(true);
      await store.ping();
      await cluster.kill(owner);
      // A PING would go to a random node, two of three still up: ten in a row would not all fail.
      const outcomes = [];
      for (let i = 0; i < 10; i++) outcomes.push(await store.ping().then(() => "up", () => "down"));
      expect(outcomes).toEqual(Array(10).fill("down"));
      await cluster.restart(owner);
      await store.ping();
    } finally {
      await store.close();
    }
  }, 60_000);
});
