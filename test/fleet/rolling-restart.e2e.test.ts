/**
 * A fleet of three gateway processes on 127.0.0.1 behind one round-robin GatewayClient
 * (an ipv4: target listing them, as a dns: name of a headless Service resolves), under
 * steady unary and streaming load, restarted one after another with SIGTERM, each on its
 * own port again. No call may fail, and every answer must be whole.
 */
import { afterAll, describe, expect, it } from "vitest";
import { FinishReason } from "../../gen/aigateway/v1/chat.js";
import { GatewayClient } from "../../src/client/gateway-client.js";
import { GatewayError } from "../../src/core/errors.js";
import { loggedCalls, startGatewayProcess, type StartedGateway } from "../helpers/gateway-process.js";
import { until, userRequest } from "../helpers/harness.js";

const REPLICA_ENV = {
  GRPC_HOST: "127.0.0.1",
  HTTP_PORT: "0",
  // Streams of ≈ 1 s (17 chunks), so some are always in flight when a replica is stopped.
  FAKE_UPSTREAM_TOKEN_DELAY_MS: "60",
  SHUTDOWN_GRACE_S: "10",
};
const WORKERS = 6;
/** A bound on the load, whatever happens: the test stops it much sooner. */
const MAX_CALLS = 20_000;

const running: StartedGateway[] = [];
afterAll(() => {
  for (const r of running) r.process.kill();
});

async function start(env: Record<string, string>): Promise<StartedGateway> {
  const r = await startGatewayProcess({ ...REPLICA_ENV, ...env });
  running.push(r);
  return r;
}

async function streamsInFlight(r: StartedGateway): Promise<number> {
  const text = await (await fetch(`http://${r.at.http}/metrics`)).text();
  return Number(/^gateway_in_flight_streams (\d+)/m.exec(text)?.[1] ?? "0");
}

interface Load {
  readonly calls: number;
  readonly streams: number;
  readonly failures: string[];
}

/** WORKERS loops of alternating unary calls and streams until `stop` says so (or MAX_CALLS). */
function steadyLoad(client: GatewayClient, stop: () => boolean): Promise<Load> {
  const result = { calls: 0, streams: 0, failures: [] as string[] };
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; !stop() && result.calls < MAX_CALLS; i++) {
      const text = `worker ${w} call ${i}`;
      result.calls++;
      try {
        if (i % 2 === 0) {
          const res = await client.createChatCompletion(userRequest(text), { deadlineMs: 15_000 });
          if (res.choices[0]?.message?.content !== `Echo: ${text}`) result.failures.push(`unary "${text}": wrong answer ${JSON.stringify(res.choices[0]?.message?.content)}`);
        } else {
          result.streams++;
          let content = "";
          let finish: FinishReason | undefined;
          for await (const chunk of client.streamChatCompletion(userRequest(text), { deadlineMs: 15_000 })) {
            content += chunk.choices[0]?.delta?.content ?? "";
            finish = chunk.choices[0]?.finishReason ?? finish;
          }
          if (content !== `Echo: ${text}` || finish !== FinishReason.FINISH_REASON_STOP) result.failures.push(`stream "${text}": incomplete (${JSON.stringify(content)}, finish ${finish})`);
        }
      } catch (err) {
        const e = err instanceof GatewayError ? `code ${err.code} ${err.reason}: ${err.message}` : String(err);
        result.failures.push(`${i % 2 === 0 ? "unary" : "stream"} "${text}": ${e}`);
      }
    }
  };
  return Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w))).then(() => result);
}

describe("a rolling restart of three replicas", () => {
  it("loses no call: each replica drains on SIGTERM (streams in flight finish) and comes back on its port while a round-robin client keeps calling", { timeout: 120_000 }, async () => {
    const fleet = await Promise.all([start({ GRPC_PORT: "0" }), start({ GRPC_PORT: "0" }), start({ GRPC_PORT: "0" })]);
    const ports = fleet.map((r) => r.grpcPort);
    const client = new GatewayClient({ target: `ipv4:${ports.map((p) => `127.0.0.1:${p}`).join(",")}`, loadBalancing: true });
    let stopped = false;
    const load = steadyLoad(client, () => stopped);
    const drainedStreams: number[] = [];
    try {
      // Every replica is serving before the first restart.
      for (const r of fleet) await until(() => loggedCalls(r.process).length > 0, 15_000, `replica :${r.grpcPort} to serve a call`);

      for (let i = 0; i < fleet.length; i++) {
        const old = fleet[i]!;
        // Stop it while it has streams in flight, so the drain is exercised, not just an idle exit.
        for (let tries = 0; tries < 200 && (await streamsInFlight(old)) === 0; tries++) await new Promise((r) => setTimeout(r, 10));
        expect(await old.process.stop()).toBe(0);
        const shutdownAt = old.process.lines().findIndex((l) => l["msg"] === "shutting down");
        expect(shutdownAt).toBeGreaterThan(-1);
        // Streams that were in flight at SIGTERM and still ended OK.
        drainedStreams.push(old.process.lines().slice(shutdownAt).filter((l) => l["msg"] === "call" && l["method"] === "StreamChatCompletion" && l["code"] === "OK").length);

        const fresh = await start({ GRPC_PORT: String(old.grpcPort) });
        fleet[i] = fresh;
        // The client has found the new process before the next one goes (a rollout waits for readiness too).
        await until(() => loggedCalls(fresh.process).length > 0, 15_000, `the restarted replica :${fresh.grpcPort} to serve a call`);
      }
    } finally {
      stopped = true;
      const result = await load;
      client.close();
      expect(result.failures).toEqual([]);
      expect(result.calls).toBeGreaterThan(50);
      expect(result.streams).toBeGreaterThan(20);
    }
    expect(drainedStreams.reduce((a, b) => a + b)).toBeGreaterThan(0);
    for (const r of fleet) expect(loggedCalls(r.process).length).toBeGreaterThan(0);
  });
});
