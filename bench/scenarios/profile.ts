/**
 * --profile: the gateway under `node --cpu-prof` for 40,000 unary calls at c=64 and for 5 s
 * of unpaced relay streams, each profile summarised by area and function
 * (bench/lib/cpuprofile.ts) instead of the table.
 */
import { join } from "node:path";
import { log, quiet, type Ctx } from "../lib/context.js";
import { formatProfile, summariseProfile } from "../lib/cpuprofile.js";
import { grpcTarget, streams, unary } from "../lib/load.js";
import { startFake, startGw } from "../lib/servers.js";
import { fmt } from "../lib/stats.js";

/** The profile mode (--profile): CPU profiles of the gateway under unary and relay loads, summarised (bench/README.md). */
export async function profile(ctx: Ctx): Promise<string> {
  const s = ctx.s;
  const dir = join(ctx.work, "profiles");
  const out: string[] = [];

  log("profile: unary gRPC c=64");
  let fake = await startFake(ctx, s.streamDelayMs, s.streamTokens);
  try {
    const gw = await startGw(ctx, fake, { name: "gateway-profile-unary", logLevel: "warn", cpuProfile: { dir, name: "unary-c64.cpuprofile" } });
    let served = 0;
    try {
      await quiet(ctx, "profile: unary");
      const r = await unary(ctx, { kind: "grpc", gw, fake }, 64, { requests: s.quick ? 5000 : 40_000 });
      served += r.requests;
      log(`profile: ${r.requests} requests at ${fmt(r.rps)} req/s (profiling slows the gateway)`);
    } finally {
      await gw.proc.stop(15_000);
    }
    out.push(formatProfile(summariseProfile(join(dir, "unary-c64.cpuprofile"), 25, "/dist/src/grpc/handlers.js"), "Unary gRPC, concurrency 64 (gateway at LOG_LEVEL=warn)", { count: served, what: "request" }));
  } finally {
    await fake.proc.stop();
  }

  log("profile: relay");
  fake = await startFake(ctx, 0, s.relayTokens);
  try {
    const gw = await startGw(ctx, fake, { name: "gateway-profile-relay", logLevel: "warn", cpuProfile: { dir, name: "relay.cpuprofile" } });
    let chunks = 0;
    try {
      await quiet(ctx, "profile: relay");
      const { r } = await streams(ctx, grpcTarget(gw), [], s.relayConcurrency, 0, s.quick ? 1000 : 5000, s.relayTokens + 2);
      chunks = r.totalMessages;
    } finally {
      await gw.proc.stop(15_000);
    }
    out.push(formatProfile(summariseProfile(join(dir, "relay.cpuprofile"), 25, "/dist/src/grpc/handlers.js"), `Relay, ${s.relayConcurrency} unpaced streams (gateway at LOG_LEVEL=warn)`, { count: chunks, what: "chunk" }));
  } finally {
    await fake.proc.stop();
  }
  return out.join("\n\n");
}
