/**
 * The stack's floor (group "floor"): bench/floor.ts, a bare grpc-js relay of raw bytes
 * through undici, in the gateway's place on the same fake and core, under the same unary,
 * stream and relay loads. Its rows say what grpc-js, node:http2 and undici cost on their
 * own; the gateway's figures minus these are what its own code costs. Rows: "… floor (bare
 * grpc-js relay)".
 */
import { log, type Ctx } from "../lib/context.js";
import { grpcTarget, sseTarget, streams, unary, type StreamRun, type UnaryRun } from "../lib/load.js";
import { addStreamRows, addUnaryRows, cpuText, errorsText, gatewayCpu, rows } from "../lib/rows.js";
import { startFloor, type Fake } from "../lib/servers.js";

/** The floor's unary and streaming rows, against the same round's direct figures (run when the gateway's ran). */
export async function floorScenario(ctx: Ctx, round: number, fake: Fake, directUnary: ReadonlyMap<number, UnaryRun>, streamDirect: ReadonlyMap<number, StreamRun>): Promise<void> {
  const s = ctx.s;
  const floor = await startFloor(ctx, fake, `floor-r${round}`);
  try {
    await unary(ctx, { kind: "grpc", gw: floor, fake }, 16, { warmupS: 0.5, durationS: ctx.s.gatewayWarmS });
    for (const c of s.unaryConcurrency) {
      log(`round ${round}: unary c=${c}, floor`);
      const d = directUnary.get(c) ?? (await unary(ctx, { kind: "direct", fake }, c));
      addUnaryRows(`unary gRPC c=${c}, floor (bare grpc-js relay)`, round, d, await unary(ctx, { kind: "grpc", gw: floor, fake }, c));
    }
    const expect = s.streamTokens + 2;
    for (const c of s.streamConcurrency) {
      log(`round ${round}: streaming c=${c}, floor`);
      const d = streamDirect.get(c) ?? (await streams(ctx, sseTarget(fake.port), [fake.proc], c, s.streamWarmMs, s.streamMs, expect));
      const f = await streams(ctx, grpcTarget(floor), [floor.proc, fake.proc], c, s.streamWarmMs, s.streamMs, expect);
      addStreamRows(`stream gRPC c=${c}, ${expect} msgs, floor (bare grpc-js relay)`, round, d, f, s.streamMs);
    }
  } finally {
    await floor.proc.stop();
  }
}

/** The floor's relay rows, against the relay scenario's direct figures (relay.ts calls it when the floor group runs). */
export async function relayFloor(ctx: Ctx, round: number, fake: Fake, d: StreamRun, scenario: string): Promise<void> {
  const s = ctx.s;
  const floor = await startFloor(ctx, fake, `floor-r${round}-relay`);
  try {
    log(`round ${round}: relay capacity, floor`);
    const expect = s.relayTokens + 2;
    await streams(ctx, grpcTarget(floor), [], 8, 0, 1000, expect); // warm-up
    const f = await streams(ctx, grpcTarget(floor), [floor.proc, fake.proc], s.relayConcurrency, s.relayWarmMs, s.relayMs, expect);
    const dRate = d.r.windowMessages / (s.relayMs / 1000);
    const fRate = f.r.windowMessages / (s.relayMs / 1000);
    rows.push({ scenario, metric: "chunks/s", round, direct: dRate, gateway: fRate, compare: true, cpuDirect: cpuText(d.cpu, false), cpuGateway: cpuText(f.cpu, true), errors: errorsText(d.r.errors, f.r.errors) });
    const share = (gatewayCpu(f.cpu) ?? Number.NaN) / 100;
    rows.push({ scenario, metric: "floor CPU µs per chunk", round, direct: undefined, gateway: (share * 1e6) / fRate, compare: false });
  } finally {
    await floor.proc.stop();
  }
}
