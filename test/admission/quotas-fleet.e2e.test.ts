/**
 * Tenant isolation across replicas: three gateway processes (as `npm start` runs them)
 * sharing one real redis-server enforce the same limits as one gateway (the shared
 * behaviours of quota-scenarios.ts, also run in memory by quotas.e2e.test.ts); Redis
 * killed under traffic gives the configured fail mode with no call hanging past its
 * deadline and one log line per gateway; Redis restarted, the limits are exact again.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeStatus, userRequest } from "../helpers/harness.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { processFleet, unary, type Fleet, type Member } from "./fleet.js";
import { FAKE_ORG_LIMITS, KEYS, quotaBehaviours } from "./quota-scenarios.js";

const STARTUP_MS = 60_000;

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

describe("Redis killed under traffic, then restarted", () => {
  const TRAFFIC = { name: "traffic-team", key: "traffic-team-key-0123456789", limits: { requests_per_minute: 100_000 } };
  const DOWN_OPEN = "limit store unreachable: calls go through unchecked until it is back (QUOTA_FAIL_MODE=open)";
  const DOWN_CLOSED = "limit store unreachable: calls are refused with UNAVAILABLE until it is back (QUOTA_FAIL_MODE=closed)";
  const UP = "limit store reachable again: limits are enforced";
  const DEADLINE_MS = 2000;

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

  const lines = (m: Member, msg: string) => m.process!.lines().filter((l) => l["msg"] === msg);

  it("fail open: calls keep succeeding within their deadlines, each gateway logs one line, and limits are exact again after the restart", async () => {
    const ask = (i: number) => userRequest(`traffic ${i}`, { model: "gpt-oss-120b", maxCompletionTokens: 20 });
    const results: { code: number; ms: number }[] = [];
    let killed: Promise<void> | undefined;
    // Three streams of sequential calls, one per gateway; Redis dies a third of the way in.
    await Promise.all(
      open.members.map(async (m, g) => {
        for (let i = 0; i < 30; i++) {
          if (g === 0 && i === 10) killed = redis.kill();
          const r = await unary(m, ask(i), TRAFFIC.key, DEADLINE_MS);
          results.push({ code: r.error?.code ?? status.OK, ms: r.ms });
        }
      }),
    );
    await killed;
    expect(results).toHaveLength(90);
    expect(results.filter((r) => r.code !== status.OK)).toEqual([]);
    expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(DEADLINE_MS);
    for (const m of open.members) {
      await m.process!.line(DOWN_OPEN);
      expect(lines(m, DOWN_OPEN)).toHaveLength(1);
    }

    await redis.start();
    for (const m of open.members) {
      await m.process!.line(UP, undefined, 15_000);
      expect(lines(m, UP)).toHaveLength(1);
    }
    // The restarted Redis is empty: the key's window starts whole, and is exact again.
    const burst = await Promise.all(Array.from({ length: 15 }, (_, i) => unary(open.members[i % 3]!, ask(100 + i), KEYS.rpm.key)));
    expect(burst.filter((r) => r.error === undefined)).toHaveLength(5);
    expect(burst.filter((r) => r.error !== undefined).map((r) => decodeStatus(r.error!).errorInfo!.reason)).toEqual(Array(10).fill("CALLER_QUOTA_EXCEEDED"));
  }, 60_000);

  it("fail closed: while Redis is down calls are refused UNAVAILABLE (QUOTA_STORE_UNAVAILABLE) at once, and served again once it is back", async () => {
    const m = closed.members[0]!;
    const ask = userRequest("closed", { model: "gpt-oss-120b", maxCompletionTokens: 20 });
    expect((await unary(m, ask, TRAFFIC.key)).error).toBeUndefined();
    // This gateway shares the Redis of the test above: it saw that outage too.
    const before = lines(m, DOWN_CLOSED).length;
    await redis.kill();
    await m.process!.line(DOWN_CLOSED, (l) => lines(m, DOWN_CLOSED).indexOf(l) === before);
    const refused = await unary(m, ask, TRAFFIC.key, DEADLINE_MS);
    expect(refused.error!.code).toBe(status.UNAVAILABLE);
    const d = decodeStatus(refused.error!);
    expect(d.errorInfo!.reason).toBe("QUOTA_STORE_UNAVAILABLE");
    expect(d.retryInfo!.retryDelay!.seconds).toBe(1);
    expect(refused.ms).toBeLessThan(DEADLINE_MS);
    expect(lines(m, DOWN_CLOSED)).toHaveLength(before + 1);
    const ups = lines(m, UP).length;
    await redis.start();
    await m.process!.line(UP, (l) => lines(m, UP).indexOf(l) === ups, 15_000);
    expect((await unary(m, ask, TRAFFIC.key)).error).toBeUndefined();
  }, 60_000);
});
