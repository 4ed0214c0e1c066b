/**
 * Leases end to end (QUOTA_LEASE_CALLS): two gateway processes on one real redis-server.
 * A busy key is admitted from each replica's leases, so Redis runs far fewer scripts than
 * there are calls; a key with a small limit stays exact (N of 3N), because no lease is
 * taken while a bucket holds less than LEASE_HEADROOM leases' worth.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeStatus, userRequest } from "../helpers/harness.js";
import { scrape } from "../helpers/prometheus.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { header, processFleet, unary, type Fleet, type TestKey } from "./fleet.js";

const STARTUP_MS = 60_000;
const BUSY: TestKey = { name: "busy-team", key: "busy-team-key-0123456789", limits: { requests_per_day: 10_000, tokens_per_day: 10_000_000 } };
const SMALL: TestKey = { name: "small-team", key: "small-team-key-0123456789", limits: { requests_per_minute: 5 } };

describe("two gateways with leases (QUOTA_LEASE_CALLS=8) on one Redis", () => {
  let redis: RedisServer;
  let admin: Redis;
  let fleet: Fleet;
  beforeAll(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url);
    fleet = await processFleet(2, redis.url, { keys: [BUSY, SMALL], env: { QUOTA_LEASE_CALLS: "8" } });
  }, STARTUP_MS);
  afterAll(async () => {
    admin?.disconnect();
    await fleet?.close();
    await redis?.stop();
  });

  const scripts = async (): Promise<number> => {
    const info = await admin.info("commandstats");
    return ["evalsha", "eval"].reduce((n, cmd) => n + Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(info)?.[1] ?? 0), 0);
  };
  const ask = (i: number) => userRequest(`lease ${i}`, { model: "gpt-oss-120b", maxCompletionTokens: 20 });

  it("admits a busy key's calls from the replicas' leases: Redis runs a script for a fraction of them, and the standing still counts down", async () => {
    const before = await scripts();
    const remaining: number[] = [];
    for (let i = 0; i < 40; i++) {
      const r = await unary(fleet.members[i % 2]!, ask(i), BUSY.key);
      expect(r.error).toBeUndefined();
      if (i % 2 === 0) remaining.push(Number(header(r.headers, "x-ratelimit-remaining-requests-day")));
    }
    await fleet.settled();
    const runs = (await scripts()) - before;
    let local = 0;
    for (const m of fleet.members) local += (await scrape(m.httpPort)).metrics.sum("gateway_quota_lease_admissions_total");
    expect(local).toBeGreaterThanOrEqual(30);
    // Exact admission runs at least one script per call (40 here); leases, one per top-up,
    // plus the first call of each replica and settlements that do not fit a full lease.
    expect(runs).toBeLessThanOrEqual(40 * 0.6);
    // One replica's view: every call it admitted is one fewer (what the other used since its
    // last round trip aside; the bucket refills one request in 8.6 s, longer than this test).
    expect(remaining[0]).toBe(9_999);
    for (let i = 1; i < remaining.length; i++) expect(remaining[i]).toBeLessThan(remaining[i - 1]!);
  });

  it("keeps a small limit exact: a key limited to 5 requests a minute gets exactly 5 of 15 sent at once", async () => {
    const results = await Promise.all(Array.from({ length: 15 }, (_, i) => unary(fleet.members[i % 2]!, ask(100 + i), SMALL.key)));
    expect(results.filter((r) => r.error === undefined)).toHaveLength(5);
    const refused = results.filter((r) => r.error !== undefined).map((r) => decodeStatus(r.error!).errorInfo!.reason);
    expect(refused).toEqual(Array(10).fill("CALLER_QUOTA_EXCEEDED"));
    await fleet.settled();
  });
});
