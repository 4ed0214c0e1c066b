/**
 * The KeyStateStore contract, one suite run against both implementations: memory, and
 * Redis on a real redis-server (test/helpers/redis.ts). "Another replica" is a second
 * store on the same Redis (the same store, for memory: one process is one replica).
 * Time is the injected `now`, never a sleep.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BACKOFF_MAX_MS, FORGET_FAILURES_MS, type KeyState, type KeyStateStore } from "../../src/upstreams/key-state.js";
import { MemoryKeyStateStore } from "../../src/upstreams/memory-key-state.js";
import { RedisKeyStateStore } from "../../src/upstreams/redis-key-state.js";
import { freePort, startRedis, startRedisCluster, type RedisCluster, type RedisServer } from "../helpers/redis.js";

const T0 = 1_750_000_000_000;

let redis: RedisServer;
let cluster: RedisCluster;
beforeAll(async () => {
  [redis, cluster] = await Promise.all([startRedis(), startRedisCluster(3)]);
});
afterAll(async () => {
  await Promise.all([redis?.stop(), cluster?.stop()]);
});

interface Pair {
  readonly one: KeyStateStore;
  /** Another replica's store (the same object for memory). */
  readonly other: KeyStateStore;
}

let serial = 0;
const subjects: Record<string, () => Promise<Pair>> = {
  memory: async () => {
    const store = new MemoryKeyStateStore();
    return { one: store, other: store };
  },
  redis: async () => {
    const prefix = `ks${++serial}`;
    const make = async (): Promise<RedisKeyStateStore> => {
      const s = new RedisKeyStateStore({ target: redis.target, prefix, commandTimeoutMs: 1000 });
      if (!(await s.ready(5000))) throw new Error("redis did not connect");
      return s;
    };
    return { one: await make(), other: await make() };
  },
  // Two replicas seeded with different nodes of a three-master cluster: the script and
  // the reads go to the slot's master, the PUBLISH reaches a subscriber on any node.
  "redis cluster": async () => {
    const prefix = `ksc${++serial}`;
    const make = async (seeds: readonly number[]): Promise<RedisKeyStateStore> => {
      const s = new RedisKeyStateStore({ target: cluster.target(seeds), prefix, commandTimeoutMs: 1000 });
      if (!(await s.ready(5000))) throw new Error("the redis cluster did not connect");
      return s;
    };
    return { one: await make([0]), other: await make([1, 2]) };
  },
};

/** The first state `store` tells its watcher about for `key` that `wanted` accepts. */
function told(store: KeyStateStore, key: string, wanted: (state: KeyState) => boolean): Promise<KeyState> {
  return new Promise((resolve) => {
    let done = false;
    store.watch([key], (k, state) => {
      if (done || k !== key || !wanted(state)) return;
      done = true;
      resolve(state);
    });
  });
}

describe.each(Object.keys(subjects))("the %s key state store", (kind) => {
  let pair: Pair;
  const open = async (): Promise<Pair> => (pair = await subjects[kind]!());
  afterEach(async () => {
    await pair.one.close();
    if (pair.other !== pair.one) await pair.other.close();
  });

  it("a cooldown holds until its time, per model, and a shorter one never shortens it", async () => {
    const { one } = await open();
    expect((await one.apply("a", { kind: "cooldown", model: "m1", until: T0 + 10_000 }, T0))!.changed).toBe(true);
    const shorter = await one.apply("a", { kind: "cooldown", model: "m1", until: T0 + 5000 }, T0);
    expect(shorter!.changed).toBe(false);
    expect(shorter!.state.cooldowns).toEqual(new Map([["m1", T0 + 10_000]]));
    await one.apply("a", { kind: "cooldown", model: "m2", until: T0 + 3000 }, T0);
    expect((await one.read("a", T0 + 4000))!.cooldowns).toEqual(new Map([["m1", T0 + 10_000]]));
    expect((await one.read("a", T0 + 10_000))!.cooldowns.size).toBe(0);
    expect((await one.read("b", T0))!.cooldowns.size).toBe(0);
  });

  it("another replica is told of a change at once, and sees the same state", async () => {
    const { one, other } = await open();
    const seen = told(other, "a", (s) => s.cooldowns.size > 0);
    await one.apply("a", { kind: "cooldown", model: "gpt-oss-120b", until: Date.now() + 60_000 }, Date.now());
    const state = await seen;
    expect([...state.cooldowns.keys()]).toEqual(["gpt-oss-120b"]);
    expect((await other.read("a", Date.now()))!.cooldowns.has("gpt-oss-120b")).toBe(true);
  });

  it("revoking reports a change once, whichever replica revoked first; restoring brings the key back", async () => {
    const { one, other } = await open();
    const first = await one.apply("a", { kind: "revoke", status: 401 }, T0);
    expect(first!.changed).toBe(true);
    expect(first!.state.revoked).toEqual({ status: 401, at: T0 });
    const again = await other.apply("a", { kind: "revoke", status: 403 }, T0 + 5);
    expect(again!.changed).toBe(false);
    expect(again!.state.revoked).toEqual({ status: 401, at: T0 });
    const restored = await other.apply("a", { kind: "restore" }, T0 + 10);
    expect([restored!.changed, restored!.state.revoked]).toEqual([true, undefined]);
    expect((await one.apply("a", { kind: "restore" }, T0 + 11))!.changed).toBe(false);
  });

  it("connection failures in a row double the backoff up to 30 s; a success ends it", async () => {
    const { one } = await open();
    const backoffs: number[] = [];
    for (let i = 0; i < 7; i++) backoffs.push((await one.apply("a", { kind: "connection-failed" }, T0))!.state.backoffUntil - T0);
    expect(backoffs).toEqual([1000, 2000, 4000, 8000, 16_000, BACKOFF_MAX_MS, BACKOFF_MAX_MS]);
    const ok = await one.apply("a", { kind: "connected" }, T0 + 1);
    expect([ok!.changed, ok!.state.failures, ok!.state.backoffUntil]).toEqual([true, 0, 0]);
    expect((await one.apply("a", { kind: "connected" }, T0 + 2))!.changed).toBe(false);
  });

  it("failures are forgotten a minute after their backoff ended: the next one starts at 1 s again", async () => {
    const { one } = await open();
    await one.apply("a", { kind: "connection-failed" }, T0);
    await one.apply("a", { kind: "connection-failed" }, T0);
    const later = T0 + 2000 + FORGET_FAILURES_MS;
    const next = await one.apply("a", { kind: "connection-failed" }, later);
    expect([next!.state.failures, next!.state.backoffUntil - later]).toEqual([1, 1000]);
  });

  it("a replica that starts watching late finds the state as it is", async () => {
    const { one, other } = await open();
    await one.apply("late", { kind: "revoke", status: 402 }, Date.now());
    expect((await other.read("late", Date.now()))!.revoked?.status).toBe(402);
    // Redis: watching reads the key at once (and again after every reconnect), so a message missed while away is caught up.
    if (kind === "redis") expect((await told(other, "late", () => true)).revoked?.status).toBe(402);
  });
});

describe("the redis key state store, unreachable", () => {
  it("never rejects: apply and read resolve undefined, and the caller keeps its own view", async () => {
    const store = new RedisKeyStateStore({ target: { kind: "node", url: `redis://127.0.0.1:${await freePort()}` }, prefix: "gone", commandTimeoutMs: 100 });
    try {
      expect(await store.apply("a", { kind: "revoke", status: 401 }, T0)).toBeUndefined();
      expect(await store.read("a", T0)).toBeUndefined();
    } finally {
      await store.close();
    }
  });
});
