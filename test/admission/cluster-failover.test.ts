/**
 * A Redis Cluster failing over under the limit store: three masters with a replica each
 * (real redis-servers, test/helpers/redis.ts). The master of the limits' slot is killed;
 * the store goes down at once (closed mode refuses), its replica is promoted by the
 * cluster itself, and the store comes back by itself, with the buckets the replica had
 * replicated: nothing is restarted, nothing reconfigured. Time in the buckets is the
 * injected `now`; the waits are for the store's own state changes, bounded.
 */
import { describe, expect, it } from "vitest";
import type { BucketSpec } from "../../src/admission/bucket.js";
import { NO_OBSERVER } from "../../src/admission/events.js";
import { GuardedStore, StoreDown } from "../../src/admission/fail-mode.js";
import { RedisStore } from "../../src/admission/redis-store.js";
import { createLogger } from "../../src/log.js";
import { withinBound } from "../helpers/in-process.js";
import { startRedisCluster } from "../helpers/redis.js";

const T0 = 1_750_000_000_000;
const RPM: BucketSpec = { id: "c:team:rpm", capacity: 10, ratePerMs: 10 / 60_000, shared: false };

describe("a Redis Cluster failover under the limit store", () => {
  it("goes down when the slot's master dies, and is back by itself once its replica is promoted, with the replicated buckets", async () => {
    // A 2 s node timeout: the master is declared failed, and its replica promoted, within seconds.
    const cluster = await startRedisCluster(3, { replicas: 1, nodeTimeoutMs: 2000 });
    const waiters: { up: boolean; resolve: () => void }[] = [];
    const observer = { ...NO_OBSERVER, storeState: (up: boolean) => void waiters.filter((w) => w.up === up).forEach((w) => w.resolve()) };
    const state = (up: boolean): Promise<void> => new Promise((resolve) => waiters.push({ up, resolve }));
    const prefix = "failover";
    const store = new RedisStore({ target: cluster.target([0, 1, 2]), prefix, commandTimeoutMs: 300, onConnection: (up) => guarded.connection(up) });
    const guarded: GuardedStore = new GuardedStore(store, "closed", createLogger("silent"), observer);
    const take = () => guarded.reserve([{ bucket: RPM, amount: 1 }], T0);
    try {
      expect(await store.ready(5000)).toBe(true);
      for (let i = 0; i < 4; i++) expect((await take()).ok).toBe(true);
      const owner = await cluster.ownerOf(`{${prefix}}`);
      // The four reservations reached the replica (replication is asynchronous).
      expect(Number(await cluster.node(owner).call("WAIT", "1", "5000"))).toBe(1);

      const down = state(false);
      await cluster.kill(owner);
      await expect(take()).rejects.toThrow();
      await withinBound(down, "the store to go down", 5000);
      await expect(take()).rejects.toBeInstanceOf(StoreDown);

      // Failure detection (2 s node timeout), the replica's election, then ioredis' slot map refresh.
      await withinBound(state(true), "the store to come back on the promoted replica", 30_000);
      const results = [];
      for (let i = 0; i < 7; i++) results.push((await take()).ok);
      expect(results).toEqual([true, true, true, true, true, true, false]);
    } finally {
      await store.close();
      await cluster.stop();
    }
  }, 60_000);
});
