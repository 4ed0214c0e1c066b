/**
 * Paced streams (group "stream"): the stream load generator at each concurrency, SSE direct
 * to the fake upstream and gRPC through the gateway (which goes first alternates by round),
 * then SSE through the HTTP shim (http.ts). Rows: "stream gRPC c=N, M msgs, D ms pacing".
 */
import { log, type Ctx } from "../lib/context.js";
import { grpcTarget, ordered, sseTarget, streams, type StreamRun } from "../lib/load.js";
import { addStreamRows } from "../lib/rows.js";
import type { Fake, Gw } from "../lib/servers.js";
import { httpStream } from "./http.js";

/** Runs the stream rows on the round's fake and gateway; returns the direct figures by concurrency. */
export async function streamScenario(ctx: Ctx, round: number, fake: Fake, gw: Gw, gatewayFirst: boolean): Promise<Map<number, StreamRun>> {
  const s = ctx.s;
  const streamDirect = new Map<number, StreamRun>();
  const expect = s.streamTokens + 2;
  for (const c of ctx.groups.has("stream") ? s.streamConcurrency : []) {
    log(`round ${round}: streaming c=${c}`);
    const [d, g] = await ordered(
      gatewayFirst,
      () => streams(ctx, sseTarget(fake.port), [fake.proc], c, s.streamWarmMs, s.streamMs, expect),
      () => streams(ctx, grpcTarget(gw), [gw.proc, fake.proc], c, s.streamWarmMs, s.streamMs, expect),
    );
    streamDirect.set(c, d);
    addStreamRows(`stream gRPC c=${c}, ${expect} msgs, ${s.streamDelayMs} ms pacing`, round, d, g, s.streamMs);
    if (gw.httpPort !== undefined) await httpStream(ctx, round, fake, gw, c, d);
  }
  return streamDirect;
}
