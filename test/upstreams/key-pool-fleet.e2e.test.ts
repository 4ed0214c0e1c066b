/**
 * Two gateway processes (as `npm start` runs them) sharing one real redis-server agree on
 * the upstream keys: a cooldown or a revocation one replica learns from Cerebras keeps
 * the other away from that key too, without it sending a request there first. Waits are
 * bounded polls of the second replica's own metrics, never sleeps.
 */
import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatServiceClient } from "../../gen/aigateway/v1/chat.js";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { loggedCalls, type StartedGateway } from "../helpers/gateway-process.js";
import { create, userRequest } from "../helpers/harness.js";
import { scrape } from "../helpers/prometheus.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { keyOf, serve, startFakes, startPoolProcesses, type Fakes } from "./pool-harness.js";

const MODEL = "gpt-oss-120b";

let redis: RedisServer;
let fakes: Fakes;
let gateways: StartedGateway[] = [];
let clients: ChatServiceClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  fakes = await startFakes([{ name: "a" }, { name: "b" }]);
  gateways = await startPoolProcesses(2, fakes, redis.url, { UPSTREAM_KEY_PROBE_S: "3600" });
  clients = gateways.map((g) => new ChatServiceClient(g.at.grpc, credentials.createInsecure()));
  // Both have loaded the catalog and know each other's picture is empty.
  for (const c of clients) await create(c, userRequest("warm up", { model: MODEL }));
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(gateways.map((g) => g.process.stop()));
  await fakes?.close();
  await redis?.stop();
});

const httpPort = (g: StartedGateway): number => Number(g.at.http!.slice(g.at.http!.lastIndexOf(":") + 1));

/** Polls the gateway's /metrics until `ok` holds for it (bounded). */
async function untilMetric(g: StartedGateway, ok: (m: Awaited<ReturnType<typeof scrape>>["metrics"]) => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  for (;;) {
    if (ok((await scrape(httpPort(g))).metrics)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("two gateways sharing Redis", () => {
  it("agree on a key's cooldown: the second never sends to the key the first saw exhausted", async () => {
    const [one, two] = gateways as [StartedGateway, StartedGateway];
    // Each replica made one call (to a, the first key of equally full ones): the first replica's next goes to b.
    fakes.fakes.b!.failNext(cerebrasErrors.tokenQuotaPerMinute(30));
    const first = await serve(clients[0]!, userRequest("one", { model: MODEL }));
    expect([first.error, first.upstreamKey, first.attempts]).toEqual([undefined, "a", 2]);
    const [exhausted, fine] = ["b", "a"];
    await untilMetric(two, (m) => (m.value("cerebras_upstream_key_cooldown_seconds", { upstream_key: exhausted, model: MODEL }) ?? 0) > 0, "the second replica to learn the cooldown");
    const before = fakes.counts()[exhausted]!;
    for (let i = 0; i < 5; i++) {
      const s = await serve(clients[1]!, userRequest(`two ${i}`, { model: MODEL }));
      expect(s.error).toBeUndefined();
      expect([s.upstreamKey, s.attempts]).toEqual([fine, 1]);
    }
    expect(fakes.counts()[exhausted]).toBe(before);
    // Only the replica that saw the 429 counted the cooldown; the other learned it from Redis.
    expect((await scrape(httpPort(one))).metrics.value("cerebras_upstream_key_cooldowns_total", { upstream_key: exhausted })).toBe(1);
    expect((await scrape(httpPort(two))).metrics.value("cerebras_upstream_key_cooldowns_total", { upstream_key: exhausted })).toBeUndefined();
  });

  it("agree on a revocation: one error line in the fleet, and the other replica keeps away from the key", async () => {
    const [one, two] = gateways as [StartedGateway, StartedGateway];
    // Cerebras refuses a from now on (b is still cooling from the test before, so a goes first and is refused).
    fakes.fakes.a!.setApiKey("csk-revoked-elsewhere-0123456789");
    for (let i = 0; i < 4; i++) expect(await serve(clients[0]!, userRequest(`r${i}`, { model: MODEL }))).toMatchObject({ error: undefined, upstreamKey: "b" });
    await untilMetric(two, (m) => m.value("cerebras_upstream_key_in_rotation", { upstream_key: "a" }) === 0, "the second replica to take a out");
    const before = fakes.counts().a!;
    for (let i = 0; i < 4; i++) expect(await serve(clients[1]!, userRequest(`s${i}`, { model: MODEL }))).toMatchObject({ error: undefined, upstreamKey: "b", attempts: 1 });
    expect(fakes.counts().a).toBe(before);
    const errorLines = [...one.process.lines(), ...two.process.lines()].filter((l) => l["level"] === 50 && l["upstreamKey"] === "a");
    expect(errorLines).toHaveLength(1);
    for (const g of gateways) for (const k of ["a", "b"]) expect(JSON.stringify(g.process.lines())).not.toContain(keyOf(k));
    expect(loggedCalls(two.process, (l) => l["code"] !== "OK")).toEqual([]);
  });

  it("a replica started later catches up on the shared state when it connects", async () => {
    // a is still out of rotation (the probe runs hourly here): a new replica knows it from Redis at once.
    const [late] = await startPoolProcesses(1, fakes, redis.url, { UPSTREAM_KEY_PROBE_S: "3600" });
    try {
      await untilMetric(late!, (m) => m.value("cerebras_upstream_key_in_rotation", { upstream_key: "a" }) === 0, "the late replica to read a's state");
    } finally {
      await late!.process.stop();
    }
  });
});
