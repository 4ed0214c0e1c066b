/**
 * Shared limits over TLS (rediss://) and with a password, as managed Redis services
 * require: gateway processes on a real redis-server that takes only TLS, and on a Redis
 * Cluster whose clients, bus and replication are all TLS (test/fixtures/tls' certificate
 * for localhost and 127.0.0.1), both asking for a password (the URL's). The gateways trust
 * the test CA through NODE_EXTRA_CA_CERTS, Node's own way for a private CA; without it they
 * refuse the server, and say so. No log line holds the password.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REDIS_TLS_CA, startRedis, startRedisCluster, type RedisCluster, type RedisServer } from "../helpers/redis.js";
import { processFleet, type Fleet } from "./fleet.js";
import { expectFiveOfFifteen, KEYS } from "./quota-scenarios.js";

const STARTUP_MS = 60_000;
const PASSWORD = "s3cret/pa55:word";
const DOWN_OPEN = "limit store unreachable: calls go through unchecked until it is back (QUOTA_FAIL_MODE=open)";

/** No line any gateway of `fleet` logged holds the password (raw or URL-encoded). */
function passwordNeverLogged(fleet: Fleet): void {
  for (const m of fleet.members) {
    const text = JSON.stringify(m.process!.lines());
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(encodeURIComponent(PASSWORD));
  }
}

describe("limits on a Redis that takes only TLS (rediss://) and a password", () => {
  let redis: RedisServer;
  let fleet: Fleet;
  beforeAll(async () => {
    redis = await startRedis({ tls: true, password: PASSWORD });
    fleet = await processFleet(2, redis.url, { keys: [KEYS.rpm], env: { NODE_EXTRA_CA_CERTS: REDIS_TLS_CA } });
  }, STARTUP_MS);
  afterAll(async () => {
    await fleet?.close();
    await redis?.stop();
  });

  it("are shared by the gateways, exactly", async () => {
    expect(redis.url.startsWith("rediss://")).toBe(true);
    await expectFiveOfFifteen(fleet, "tls");
    passwordNeverLogged(fleet);
  });

  it("are not reached by a gateway that does not trust the server's certificate: it says the store is unreachable", async () => {
    const stranger = await processFleet(1, redis.url, { keys: [KEYS.rpm] });
    try {
      await stranger.members[0]!.process!.line(DOWN_OPEN);
      passwordNeverLogged(stranger);
    } finally {
      await stranger.close();
    }
  });
});

describe("limits on a Redis Cluster over TLS, with a password (REDIS_CLUSTER=true, rediss:// seeds)", () => {
  let cluster: RedisCluster;
  let fleet: Fleet;
  beforeAll(async () => {
    cluster = await startRedisCluster(3, { tls: true, password: PASSWORD });
    fleet = await processFleet(2, cluster.url([0, 1]), { keys: [KEYS.rpm], env: { REDIS_CLUSTER: "true", NODE_EXTRA_CA_CERTS: REDIS_TLS_CA } });
  }, STARTUP_MS);
  afterAll(async () => {
    await fleet?.close();
    await cluster?.stop();
  });

  it("are shared by the gateways, exactly, on the master of the {aigw} slot", async () => {
    await expectFiveOfFifteen(fleet, "cluster tls");
    const owner = await cluster.ownerOf("{aigw}");
    expect(await cluster.node(owner).exists(`{aigw}:c:${KEYS.rpm.name}`)).toBe(1);
    passwordNeverLogged(fleet);
  });
});
