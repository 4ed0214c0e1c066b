/**
 * Relay capacity (group "relay"): unpaced streams of a few thousand chunks, as fast as the
 * fake can produce them, direct and through the gateway: chunks forwarded per second and
 * the gateway's CPU per chunk (then the floor's, floor.ts). Rows: "relay, N unpaced streams …".
 */
import { log, type Ctx } from "../lib/context.js";
import { grpcTarget, ordered, sseTarget, streams, warmGateway } from "../lib/load.js";
import { cpuText, errorsText, rows } from "../lib/rows.js";
import { startFake, startGw } from "../lib/servers.js";
import { relayFloor } from "./floor.js";

export async function relayScenario(ctx: Ctx, round: number): Promise<void> {
  const s = ctx.s;
  log(`round ${round}: relay capacity`);
  const fake = await startFake(ctx, 0, s.relayTokens);
  const gw = await startGw(ctx, fake, { name: `gateway-r${round}-relay`, logLevel: "warn" });
  try {
    await warmGateway(ctx, gw, fake, s.relayTokens);
    const expect = s.relayTokens + 2;
    const [d, g] = await ordered(
      round % 2 === 0,
      () => streams(ctx, sseTarget(fake.port), [fake.proc], s.relayConcurrency, s.relayWarmMs, s.relayMs, expect),
      () => streams(ctx, grpcTarget(gw), [gw.proc, fake.proc], s.relayConcurrency, s.relayWarmMs, s.relayMs, expect),
    );
    const scenario = `relay, ${s.relayConcurrency} unpaced streams of ${expect} msgs`;
    const dRate = d.r.windowMessages / (s.relayMs / 1000);
    const gRate = g.r.windowMessages / (s.relayMs / 1000);
    rows.push({ scenario, metric: "chunks/s", round, direct: dRate, gateway: gRate, compare: true, cpuDirect: cpuText(d.cpu, false), cpuGateway: cpuText(g.cpu, true), errors: errorsText(d.r.errors, g.r.errors) });
    const gwShare = (g.cpu["gateway"] ?? Number.NaN) / 100;
    rows.push({ scenario, metric: "chunks/s per gateway core (÷ its CPU share)", round, direct: undefined, gateway: gRate / gwShare, compare: false });
    rows.push({ scenario, metric: "gateway CPU µs per chunk", round, direct: undefined, gateway: (gwShare * 1e6) / gRate, compare: false });
    await gw.proc.stop();
    if (ctx.groups.has("floor")) await relayFloor(ctx, round, fake, d, `${scenario}, floor (bare grpc-js relay)`);
  } finally {
    await gw.proc.stop();
    await fake.proc.stop();
  }
}
