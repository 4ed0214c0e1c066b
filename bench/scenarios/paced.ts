/**
 * The scenarios on the paced fake upstream (1 ms between tokens): one fake and one gateway
 * per round, shared in this order: unary calls (unary.ts, with the HTTP shim at each
 * concurrency, http.ts), streams (stream.ts, with the shim), the stack's floor on the same
 * fake (floor.ts), and the unary load again at LOG_LEVEL=info (info.ts). The direct runs of
 * unary and stream are the baseline of the floor's and info's rows too.
 */
import type { Ctx } from "../lib/context.js";
import { warmGateway } from "../lib/load.js";
import { startFake, startGw } from "../lib/servers.js";
import { floorScenario } from "./floor.js";
import { infoScenario } from "./info.js";
import { streamScenario } from "./stream.js";
import { unaryScenario } from "./unary.js";

export async function pacedRound(ctx: Ctx, round: number): Promise<void> {
  const s = ctx.s;
  const gatewayFirst = round % 2 === 0; // alternate the order so neither side always runs on a warmer machine
  const fake = await startFake(ctx, s.streamDelayMs, s.streamTokens);
  const gw = await startGw(ctx, fake, { name: `gateway-r${round}-warn`, logLevel: "warn" });
  try {
    await warmGateway(ctx, gw, fake, s.streamTokens);
    const directUnary = await unaryScenario(ctx, round, fake, gw, gatewayFirst);
    const directStreams = await streamScenario(ctx, round, fake, gw, gatewayFirst);
    await gw.proc.stop();
    if (ctx.groups.has("floor")) await floorScenario(ctx, round, fake, directUnary, directStreams);
    if (ctx.groups.has("info")) await infoScenario(ctx, round, fake, directUnary);
  } finally {
    await gw.proc.stop();
    await fake.proc.stop();
  }
}
