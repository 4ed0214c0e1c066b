/**
 * A scale-up behind an L4 balancer (test/helpers/tcp-balancer.ts, standing in for a
 * Kubernetes ClusterIP Service): clients with long-lived connections stick to the
 * replicas they first reached, so a replica started later gets no calls, unless the
 * gateway's max connection age makes clients reconnect. With it, new calls reach the
 * fourth replica within the configured age. The same holds for clients that balance
 * themselves over a headless Service's DNS: the connection closed by its age makes grpc-js
 * re-resolve the name, and the answer now lists the fourth replica.
 */
import { experimental } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { GatewayClient } from "../../src/client/gateway-client.js";
import { loggedCalls, startGatewayProcess, type StartedGateway } from "../helpers/gateway-process.js";
import { userRequest } from "../helpers/harness.js";
import { startTcpBalancer, type TcpBalancer } from "../helpers/tcp-balancer.js";

/** One connection each (no shared subchannel pool), as separate services would have. */
const CLIENTS = 8;

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function fleetBehindBalancer(env: Record<string, string>): Promise<{ replicas: StartedGateway[]; balancer: TcpBalancer; clients: GatewayClient[] }> {
  const start = async (): Promise<StartedGateway> => {
    const r = await startGatewayProcess({ GRPC_PORT: "0", HTTP_ENABLED: "false", METRICS_ENABLED: "false", FAKE_UPSTREAM_TOKEN_DELAY_MS: "0", ...env });
    cleanups.push(() => r.process.kill());
    return r;
  };
  const replicas: StartedGateway[] = await Promise.all([start(), start(), start()]);
  const balancer = await startTcpBalancer(replicas.map((r) => r.grpcPort));
  cleanups.push(() => balancer.close());
  const clients = Array.from({ length: CLIENTS }, () => new GatewayClient({ target: `127.0.0.1:${balancer.port}`, channelOptions: { "grpc.use_local_subchannel_pool": 1 } }));
  cleanups.push(() => clients.forEach((c) => c.close()));
  // Every client connects (and so picks its replica) before the scale-up.
  await Promise.all(clients.map((c, i) => c.createChatCompletion(userRequest(`warm ${i}`))));
  replicas.push(await start());
  balancer.add(replicas[3]!.grpcPort);
  return { replicas, balancer, clients };
}

/** One round: every client makes one call. */
const round = (clients: readonly GatewayClient[], n: number) => Promise.all(clients.map((c, i) => c.createChatCompletion(userRequest(`round ${n} client ${i}`))));

describe("a scale-up behind an L4 balancer", () => {
  it("without a max connection age, the fourth replica gets no calls: every connection stays where it was", { timeout: 60_000 }, async () => {
    const { replicas, balancer, clients } = await fleetBehindBalancer({ GRPC_MAX_CONNECTION_AGE_S: "0" });
    for (let n = 0; n < 10; n++) await round(clients, n);
    expect(loggedCalls(replicas[3]!.process)).toHaveLength(0);
    expect(balancer.connectionsTo(replicas[3]!.grpcPort)).toBe(0);
  });

  it("with GRPC_MAX_CONNECTION_AGE_S, new calls reach the fourth replica within the connection age", { timeout: 60_000 }, async () => {
    const AGE_S = 2;
    const { replicas, clients } = await fleetBehindBalancer({ GRPC_MAX_CONNECTION_AGE_S: String(AGE_S), GRPC_MAX_CONNECTION_AGE_GRACE_S: "10" });
    const fourth = replicas[3]!;
    const started = Date.now();
    // Every connection ages out (±10% jitter) at most 1.1 × AGE_S after it was opened, all
    // before the fourth replica started; the reconnections are spread by the balancer.
    const bound = AGE_S * 1000 * 1.1 + 2000; // + the reconnect and the call, on a loaded machine
    const reached = fourth.process.line("call", undefined, bound);
    let stop = false;
    void reached.finally(() => (stop = true)).catch(() => undefined);
    for (let n = 0; !stop && Date.now() - started < bound + 1000; n++) await round(clients, n);
    const first = await reached;
    expect(Date.now() - started).toBeLessThanOrEqual(bound + 1000);
    expect(first["code"]).toBe("OK");
    // And it keeps its share: a few more rounds all succeed, some of them on the fourth.
    const before = loggedCalls(fourth.process).length;
    for (let n = 0; n < 5; n++) await round(clients, 100 + n);
    expect(loggedCalls(fourth.process).length).toBeGreaterThan(before);
  });
});

/**
 * A headless Service's DNS records as a grpc-js resolver the test controls: a dns: name
 * with several addresses needs one port for all of them, and replicas on 127.0.0.1 differ
 * by port. grpc-js asks it again whenever a connection closes, as it asks DNS.
 */
const records: number[] = [];
let resolutions = 0;
class HeadlessServiceDns implements experimental.Resolver {
  constructor(
    _target: unknown,
    private readonly listener: experimental.ResolverListener,
  ) {}
  updateResolution(): void {
    resolutions++;
    const endpoints = records.map((port) => ({ addresses: [{ host: "127.0.0.1", port }] }));
    setImmediate(() => this.listener({ ok: true, value: endpoints }, {}, null, ""));
  }
  destroy(): void {}
  static getDefaultAuthority(): string {
    return "aigw-headless";
  }
}
experimental.registerResolver("headless-test", HeadlessServiceDns);

describe("a scale-up with client-side balancing", () => {
  it("the re-resolution a connection's age triggers finds the fourth replica, which then gets calls", { timeout: 60_000 }, async () => {
    const AGE_S = 2;
    const start = async (): Promise<StartedGateway> => {
      const r = await startGatewayProcess({ GRPC_PORT: "0", HTTP_ENABLED: "false", METRICS_ENABLED: "false", FAKE_UPSTREAM_TOKEN_DELAY_MS: "0", GRPC_MAX_CONNECTION_AGE_S: String(AGE_S) });
      cleanups.push(() => r.process.kill());
      return r;
    };
    const replicas: StartedGateway[] = await Promise.all([start(), start(), start()]);
    records.splice(0, records.length, ...replicas.map((r) => r.grpcPort));
    const client = new GatewayClient({ target: "headless-test:///aigw-headless:50051", loadBalancing: true });
    cleanups.push(() => client.close());
    for (let n = 0; n < 6; n++) await client.createChatCompletion(userRequest(`warm ${n}`));
    expect(replicas.every((r) => loggedCalls(r.process).length > 0)).toBe(true);

    const fourth = await start();
    records.push(fourth.grpcPort); // the new pod is ready: DNS lists it
    const resolvedBefore = resolutions;
    const started = Date.now();
    const bound = AGE_S * 1000 * 1.1 + 2000;
    const reached = fourth.process.line("call", undefined, bound);
    let stop = false;
    void reached.finally(() => (stop = true)).catch(() => undefined);
    for (let n = 0; !stop && Date.now() - started < bound + 1000; n++) await client.createChatCompletion(userRequest(`call ${n}`));
    expect((await reached)["code"]).toBe("OK");
    expect(resolutions).toBeGreaterThan(resolvedBefore);
    expect(Date.now() - started).toBeLessThanOrEqual(bound + 1000);
  });
});
