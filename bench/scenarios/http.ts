/**
 * The OpenAI-compatible HTTP shim, when the gateway has one (ctx.shim and a passing
 * preflight): the same unary and stream loads as unary.ts and stream.ts, over HTTP/1.1 and
 * SSE, against the same direct figures. Rows: "unary HTTP shim c=N", "stream HTTP shim …".
 */
import type { Ctx } from "../lib/context.js";
import { sseTarget, streams, unary, type StreamRun, type UnaryRun } from "../lib/load.js";
import { addStreamRows, addUnaryRows } from "../lib/rows.js";
import type { Fake, Gw } from "../lib/servers.js";

export async function httpUnary(ctx: Ctx, round: number, fake: Fake, gw: Gw, c: number, direct: UnaryRun): Promise<void> {
  addUnaryRows(`unary HTTP shim c=${c}`, round, direct, await unary(ctx, { kind: "http", gw, fake }, c));
}

export async function httpStream(ctx: Ctx, round: number, fake: Fake, gw: Gw, c: number, direct: StreamRun): Promise<void> {
  const s = ctx.s;
  const expect = s.streamTokens + 2;
  const h = await streams(ctx, sseTarget(gw.httpPort!), [gw.proc, fake.proc], c, s.streamWarmMs, s.streamMs, expect);
  addStreamRows(`stream HTTP shim c=${c}, ${expect} msgs, ${s.streamDelayMs} ms pacing`, round, direct, h, s.streamMs);
}
