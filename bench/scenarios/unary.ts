/**
 * Unary calls (group "unary"): h2load at each concurrency, direct to the fake upstream and
 * through the gateway's gRPC port (which goes first alternates by round), then through the
 * HTTP shim (http.ts). With only --only info, the concurrencies info needs run, for its
 * baseline. Rows: "unary gRPC c=N".
 */
import { log, type Ctx } from "../lib/context.js";
import { ordered, unary, type UnaryRun } from "../lib/load.js";
import { addUnaryRows } from "../lib/rows.js";
import type { Fake, Gw } from "../lib/servers.js";
import { httpUnary } from "./http.js";

/** Runs the unary rows on the round's fake and gateway; returns the direct figures by concurrency. */
export async function unaryScenario(ctx: Ctx, round: number, fake: Fake, gw: Gw, gatewayFirst: boolean): Promise<Map<number, UnaryRun>> {
  const s = ctx.s;
  const directUnary = new Map<number, UnaryRun>();
  for (const c of ctx.groups.has("unary") || ctx.groups.has("info") ? s.unaryConcurrency : []) {
    if (!ctx.groups.has("unary") && !s.infoConcurrency.includes(c)) continue;
    log(`round ${round}: unary c=${c}`);
    const [d, g] = await ordered(gatewayFirst, () => unary(ctx, { kind: "direct", fake }, c), () => unary(ctx, { kind: "grpc", gw, fake }, c));
    directUnary.set(c, d);
    addUnaryRows(`unary gRPC c=${c}`, round, d, g);
    if (gw.httpPort !== undefined) await httpUnary(ctx, round, fake, gw, c, d);
  }
  return directUnary;
}
