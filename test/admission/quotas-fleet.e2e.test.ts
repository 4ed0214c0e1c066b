/**
 * Tenant isolation across replicas: three gateway processes (as `npm start` runs them)
 * sharing one real redis-server enforce the same limits as one gateway (the shared
 * behaviours of quota-scenarios.ts, also run in memory by quotas.e2e.test.ts); Redis
 * killed under traffic gives the configured fail mode with no call hanging past its
 * deadline and one log line per gateway; Redis restarted, the limits are exact again.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLUSTER_NODE_WITHOUT_CLUSTER_MODE } from "../../src/redis/client.js";
import { decodeStatus, userRequest } from "../helpers/harness.js";
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from "../helpers/redis.js";
import { processFleet, unary, type Fleet, type Member } from "./fleet.js";
import { expectFiveOfFifteen, FAKE_ORG_LIMITS, KEYS, quotaBehaviours } from "./quota-scenarios.js";

const STARTUP_MS = 60_000;

// The outage tests' key (never limited by its traffic), log lines and deadline.
const TRAFFIC = { name: "traffic-team", key: "traffic-team-key-0123456789", limits: { requests_per_minute: 100_000 } };
const DOWN_OPEN = "limit store unreachable: calls go through unchecked until it is back (QUOTA_FAIL_MODE=open)";
const DOWN_CLOSED = "limit store unreachable: calls are refused with UNAVAILABLE until it is back (QUOTA_FAIL_MODE=closed)";
const UP = "limit store reachable again: limits are enforced";
const DEADLINE_MS = 2000;

const lines = (m: Member, msg: string) => m.process!.lines().filter((l) => l["msg"] === msg);
const ask = (tag: string, i: number) => userRequest(`${tag} ${i}`, { model: "gpt-oss-120b", maxCompletionTokens: 20 });

/**
 * Three streams of 30 sequential calls of TRAFFIC, one per gateway, with `outage` started a
 * third of the way in: every call succeeds (fail open) within its deadline, and each
 * gateway logs the store down exactly once.
 */
async function trafficThrough(fleet: Fleet, tag: string, outage: () => Promise<void>): Promise<void> {
  const results: { code: number; ms: number }[] = [];
  let out: Promise<void> | undefined;
  await Promise.all(
    fleet.members.map(async (m, g) => {
      for (let i = 0; i < 30; i++) {
        if (g === 0 && i === 10) out = outage();
        const r = await unary(m, ask(tag, i), TRAFFIC.key, DEADLINE_MS);
        results.push({ code: r.error?.code ?? status.OK, ms: r.ms });
      }
    }),
  );
  await out;
  expect(results).toHaveLength(30 * fleet.members.length);
  expect(results.filter((r) => r.code !== status.OK)).toEqual([]);
  expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(DEADLINE_MS);
  for (const m of fleet.members) {
    await m.process!.line(DOWN_OPEN);
    expect(lines(m, DOWN_OPEN)).toHaveLength(1);
  }
}

/** After the store came back (one line per gateway), empty: KEYS.rpm's window starts whole, and is exact again. */
async function exactAgain(fleet: Fleet, tag: string): Promise<void> {
  for (const m of fleet.members) {
    await m.process!.line(UP, undefined, 15_000);
    expect(lines(m, UP)).toHaveLength(1);
  }
  await expectFiveOfFifteen(fleet, `${tag} after`);
}

describe("three gateways sharing one Redis", () => {
  let redis: RedisServer;
  let fleet: Fleet;
  beforeAll(async () => {
    redis = await startRedis();
    fleet = await processFleet(3, redis.url, { keys: Object.values(KEYS), env: { ORG_LIMITS: "learn", ORG_QUEUE_MAX_WAIT_MS: "0" }, fake: { rateLimits: FAKE_ORG_LIMITS } });
  }, STARTUP_MS);
  afterAll(async () => {
    await fleet?.close();
    await redis?.stop();
  });

  quotaBehaviours(() => fleet);
});

describe("three gateways sharing one Redis Cluster (REDIS_CLUSTER=true)", () => {
  let cluster: RedisCluster;
  let fleet: Fleet;
  let owner: number;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    // Every key shares the tag {aigw}: one slot, one master. The gateways are seeded with the
    // other two, so they find it through the cluster's slot map, as a client of a managed cluster does.
    owner = await cluster.ownerOf("{aigw}");
    const seeds = [0, 1, 2].filter((i) => i !== owner);
    fleet = await processFleet(3, cluster.url(seeds), { keys: Object.values(KEYS), env: { REDIS_CLUSTER: "true", ORG_LIMITS: "learn", ORG_QUEUE_MAX_WAIT_MS: "0" }, fake: { rateLimits: FAKE_ORG_LIMITS } });
  }, STARTUP_MS);
  afterAll(async () => {
    await fleet?.close();
    await cluster?.stop();
  });

  quotaBehaviours(() => fleet);

  it("keeps every bucket on the master of the {aigw} slot", async () => {
    const keys = await cluster.node(owner).keys("{aigw}:*");
    expect(keys.some((k) => k.startsWith("{aigw}:c:"))).toBe(true);
    expect(keys.some((k) => k.startsWith("{aigw}:o:"))).toBe(true);
    for (const i of [0, 1, 2].filter((n) => n !== owner)) expect(await cluster.node(i).dbsize()).toBe(0);
  });

  it("says so in its log when REDIS_URL names a cluster node and REDIS_CLUSTER is not set", async () => {
    const stray = await processFleet(1, cluster.url([(owner + 1) % 3]), { keys: [KEYS.rpm] });
    try {
      const line = await stray.members[0]!.process!.line(CLUSTER_NODE_WITHOUT_CLUSTER_MODE);
      expect(line["level"]).toBe(50); // pino's error
    } finally {
      await stray.close();
    }
  });
});

describe("Redis killed under traffic, then restarted", () => {
  let redis: RedisServer;
  let open: Fleet;
  let closed: Fleet;
  beforeAll(async () => {
    redis = await startRedis();
    [open, closed] = await Promise.all([
      processFleet(3, redis.url, { keys: [TRAFFIC, KEYS.rpm] }),
      processFleet(1, redis.url, { keys: [TRAFFIC], env: { QUOTA_FAIL_MODE: "closed" } }),
    ]);
  }, STARTUP_MS);
  afterAll(async () => {
    await Promise.all([open?.close(), closed?.close()]);
    await redis?.stop();
  });

  it("fail open: calls keep succeeding within their deadlines, each gateway logs one line, and limits are exact again after the restart", async () => {
    await trafficThrough(open, "traffic", () => redis.kill());
    await redis.start();
    await exactAgain(open, "traffic");
  }, 60_000);

  it("fail closed: while Redis is down calls are refused UNAVAILABLE (QUOTA_STORE_UNAVAILABLE) at once, and served again once it is back", async () => {
    const m = closed.members[0]!;
    const call = ask("closed", 0);
    expect((await unary(m, call, TRAFFIC.key)).error).toBeUndefined();
    // This gateway shares the Redis of the test above: it saw that outage too.
    const before = lines(m, DOWN_CLOSED).length;
    await redis.kill();
    await m.process!.line(DOWN_CLOSED, (l) => lines(m, DOWN_CLOSED).indexOf(l) === before);
    const refused = await unary(m, call, TRAFFIC.key, DEADLINE_MS);
    expect(refused.error!.code).toBe(status.UNAVAILABLE);
    const d = decodeStatus(refused.error!);
    expect(d.errorInfo!.reason).toBe("QUOTA_STORE_UNAVAILABLE");
    expect(d.retryInfo!.retryDelay!.seconds).toBe(1);
    expect(refused.ms).toBeLessThan(DEADLINE_MS);
    expect(lines(m, DOWN_CLOSED)).toHaveLength(before + 1);
    const ups = lines(m, UP).length;
    await redis.start();
    await m.process!.line(UP, (l) => lines(m, UP).indexOf(l) === ups, 15_000);
    expect((await unary(m, call, TRAFFIC.key)).error).toBeUndefined();
  }, 60_000);
});

describe("a Redis Cluster's limits master killed under traffic, then restarted", () => {
  let cluster: RedisCluster;
  let owner: number;
  let fleet: Fleet;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    owner = await cluster.ownerOf("{aigw}");
    fleet = await processFleet(3, cluster.url([0, 1, 2]), { keys: [TRAFFIC, KEYS.rpm], env: { REDIS_CLUSTER: "true" } });
  }, STARTUP_MS);
  afterAll(async () => {
    await fleet?.close();
    await cluster?.stop();
  });

  // That the other two masters' answers never make the store look up is limit-store.test.ts' (its probe).
  it("fail open: calls keep succeeding within their deadlines, each gateway logs one line each way, and limits are exact again after the master's restart", async () => {
    await trafficThrough(fleet, "cluster traffic", () => cluster.kill(owner));
    await cluster.restart(owner);
    await exactAgain(fleet, "cluster traffic");
  }, 60_000);
});
