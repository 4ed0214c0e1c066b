/**
 * Time to the first message at c=1, interleaved (issue 18):
 *
 *   npm run build && node dist/bench/first-message.js [--streams N] [--tokens T] [--baseline DIR]
 *
 * One stream at a time, taking turns: direct (SSE to the fake), the floor (bench/floor.ts
 * over gRPC), the gateway over gRPC and through its HTTP shim (SSE), and with
 * --baseline DIR another build's gateway over gRPC (DIR: a checkout with its dist/ built); the order of the turn reverses every
 * round. Each figure is a median of per-round differences (this round's stream minus
 * this round's direct one, or minus the floor's), so a machine whose c=1 price drifts by
 * a millisecond within the hour (bench/micro/idle-wake.ts) moves every target of a round
 * alike and the difference stays put. `npm run bench -- --only stream` measures each
 * target in its own 5 s window instead, where that drift lands on one side only.
 *
 * Processes and pinning are bench/lib's (the gateways and the floor on the gateway's CPU,
 * taking turns, the fake and this process on the other). Bounded: N rounds of one stream
 * per target (400 by default), each with its own timeout.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT, type Ctx } from "./lib/context.js";
import { grpcTarget, sseTarget } from "./lib/load.js";
import { pinSelf, stopAll } from "./lib/proc.js";
import { machine } from "./lib/report.js";
import { startFake, startFloor, startGw, type Gw } from "./lib/servers.js";
import { layout, settings } from "./lib/settings.js";
import { bounded, fmt, median, percentile, signed } from "./lib/stats.js";
import { clientFor, type Target } from "./lib/stream-clients.js";

const { values } = parseArgs({ options: { streams: { type: "string" }, tokens: { type: "string" }, baseline: { type: "string" } } });
const ROUNDS = bounded(values.streams, 400, 20, 5000);
const TOKENS = bounded(values.tokens, 4, 1, 64);
const WARM_ROUNDS = 100;
const STREAM_TIMEOUT_MS = 10_000;

interface Turn {
  readonly name: string;
  readonly what: string;
  readonly target: Target;
  /** Compared with the floor too (gRPC, as the floor is). */
  readonly grpc: boolean;
}

async function main(): Promise<void> {
  const lay = layout(availableParallelism());
  if (lay.loadgen !== undefined) pinSelf(lay.loadgen);
  const work = mkdtempSync(join(tmpdir(), "gateway-first-message-"));
  const ctx: Ctx = { s: settings(true, 1), layout: lay, work, snapshot: ROOT, shim: true, grpcBodyFile: "", jsonBodyFile: "", notes: [], groups: new Set(), gatewayNodeArgs: [], gatewayEnv: {} };
  try {
    // The fake pauses 1 ms between chunks, as bench/run.ts' streams; the first chunk goes at once.
    const fake = await startFake(ctx, 1, TOKENS);
    const gw = await startGw(ctx, fake, { name: "gateway", logLevel: "warn" });
    const floor = await startFloor(ctx, fake, "floor");
    const baseline: Gw | undefined = values.baseline === undefined ? undefined : await startGw({ ...ctx, shim: false, snapshot: values.baseline }, fake, { name: "baseline", logLevel: "warn" });
    if (gw.httpPort === undefined) throw new Error("the gateway's HTTP shim did not answer its preflight");
    const turns: Turn[] = [
      { name: "direct", what: "SSE straight to the fake", target: sseTarget(fake.port), grpc: false },
      { name: "floor", what: "bare grpc-js + undici relay", target: grpcTarget(floor), grpc: true },
      { name: "gateway gRPC", what: "this build", target: grpcTarget(gw), grpc: true },
      { name: "gateway HTTP shim", what: "this build, SSE", target: sseTarget(gw.httpPort), grpc: false },
      ...(baseline === undefined ? [] : [{ name: "baseline gRPC", what: values.baseline!, target: grpcTarget(baseline), grpc: true }]),
    ];
    const clients = turns.map((t) => clientFor(t.target, TOKENS + 2));
    const firsts: number[][] = turns.map(() => []);
    const once = async (i: number): Promise<number> => {
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${turns[i]!.name}: no stream end within ${STREAM_TIMEOUT_MS} ms`)), STREAM_TIMEOUT_MS).unref());
      const r = await Promise.race([clients[i]!.stream(() => {}), timeout]);
      if (r.error !== undefined) throw new Error(`${turns[i]!.name}: ${r.error}`);
      return r.first - r.start;
    };
    for (let round = 0; round < WARM_ROUNDS; round++) for (let i = 0; i < turns.length; i++) await once(i);
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? turns.map((_, i) => i) : turns.map((_, i) => turns.length - 1 - i);
      for (const i of order) firsts[i]!.push(await once(i));
    }
    for (const c of clients) c.close();
    print(turns, firsts);
  } finally {
    await stopAll();
    rmSync(work, { recursive: true, force: true });
  }
}

function print(turns: readonly Turn[], firsts: readonly number[][]): void {
  const direct = firsts[0]!;
  const floor = firsts[1]!;
  const paired = (a: readonly number[], b: readonly number[]): number => median(a.map((v, r) => v - b[r]!));
  const sorted = (a: readonly number[]): number[] => [...a].sort((x, y) => x - y);
  const out = [
    `Machine: ${machine()}`,
    "",
    `Time to the first message at c=1, ${ROUNDS} rounds of one stream per target, interleaved (order reversed every round); streams of ${TOKENS + 2} chunks, the fake pausing 1 ms between chunks. ms.`,
    "",
    "| target | what | p50 | p90 | added over direct (paired median) | over the floor (paired median) |",
    "| --- | --- | --: | --: | --: | --: |",
  ];
  turns.forEach((t, i) => {
    const f = firsts[i]!;
    const s = sorted(f);
    const overDirect = i === 0 ? "–" : signed(paired(f, direct), 3);
    const overFloor = t.grpc && i !== 1 ? signed(paired(f, floor), 3) : "–";
    out.push(`| ${t.name} | ${t.what} | ${fmt(percentile(s, 50), 3)} | ${fmt(percentile(s, 90), 3)} | ${overDirect} | ${overFloor} |`);
  });
  process.stdout.write(`${out.join("\n")}\n`);
}

main().catch(async (err: unknown) => {
  process.stderr.write(`first-message: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  await stopAll();
  process.exit(1);
});
