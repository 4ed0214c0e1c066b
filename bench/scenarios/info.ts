/**
 * LOG_LEVEL=info (group "info"): the unary load again on a gateway that logs one JSON line
 * per call, against the round's direct figures, to show what logging costs. Rows:
 * "unary gRPC c=N, LOG_LEVEL=info".
 */
import { log, note, type Ctx } from "../lib/context.js";
import { unary, warmGateway, type UnaryRun } from "../lib/load.js";
import { addUnaryRows } from "../lib/rows.js";
import { loggedCalls, startGw, type Fake } from "../lib/servers.js";

export async function infoScenario(ctx: Ctx, round: number, fake: Fake, directUnary: ReadonlyMap<number, UnaryRun>): Promise<void> {
  const s = ctx.s;
  // The same unary load with one JSON log line per call, to show what it costs.
  const gw = await startGw(ctx, fake, { name: `gateway-r${round}-info`, logLevel: "info" });
  try {
    await warmGateway(ctx, gw, fake, s.streamTokens);
    for (const c of s.infoConcurrency) {
      log(`round ${round}: unary c=${c}, LOG_LEVEL=info`);
      const before = loggedCalls(gw);
      const g = await unary(ctx, { kind: "grpc", gw, fake }, c);
      const logged = loggedCalls(gw) - before;
      // Every call (warm-up phase included) logs one line; fewer means the log is not what we think.
      if (logged < g.requests) note(ctx, `LOG_LEVEL=info run logged ${logged} call lines for ${g.requests} measured calls`);
      addUnaryRows(`unary gRPC c=${c}, LOG_LEVEL=info`, round, directUnary.get(c)!, g);
    }
  } finally {
    await gw.proc.stop();
  }
}
