/**
 * Memory (group "memory"): many concurrent slow streams held open at once: the gateway's
 * RSS before, with all open, at the peak and after they end (several settle times), per
 * stream, its open fds and V8 heap, then a second identical wave (memory kept after the
 * first should be reused, not added to). Rows: "memory, N concurrent slow streams".
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { HoldResult } from "../loadgen.js";
import { log, quiet, type Ctx } from "../lib/context.js";
import { grpcTarget, runJob, unary } from "../lib/load.js";
import { rows } from "../lib/rows.js";
import { heapOf, startFake, startGw } from "../lib/servers.js";
import { median } from "../lib/stats.js";

export async function memoryScenario(ctx: Ctx, round: number): Promise<void> {
  const s = ctx.s;
  const n = s.holdStreams;
  log(`round ${round}: memory, ${n} slow streams`);
  const fake = await startFake(ctx, s.holdDelayMs, s.holdTokens);
  // Room for every stream upstream: with the default UPSTREAM_CONNECTIONS (128) the rest would queue inside undici.
  const gw = await startGw(ctx, fake, { name: `gateway-r${round}-memory`, logLevel: "warn", env: { UPSTREAM_CONNECTIONS: String(n + 64) } });
  const expect = s.holdTokens + 2;
  try {
    await unary(ctx, { kind: "grpc", gw, fake }, 16, { warmupS: 0.5, durationS: 1 });
    await runJob(ctx, { mode: "hold", target: grpcTarget(gw), streams: 32, expectMessages: expect, timeoutMs: 60_000 }, []);
    await quiet(ctx, "memory");
    const baselineSamples: number[] = [];
    const fakeBaselineSamples: number[] = [];
    for (let i = 0; i < 10; i++) {
      baselineSamples.push(gw.proc.rssBytes() ?? Number.NaN);
      fakeBaselineSamples.push(fake.proc.rssBytes() ?? Number.NaN);
      await sleep(100);
    }
    const baseline = median(baselineSamples);
    const heapBefore = await heapOf(gw);
    const fdsBefore = gw.proc.fdCount() ?? Number.NaN;
    let fdsAllOpen = Number.NaN;
    const fakeBaseline = median(fakeBaselineSamples);

    let peak = baseline;
    let fakePeak = fakeBaseline;
    let atAllOpen = Number.NaN;
    const sampler = setInterval(() => {
      peak = Math.max(peak, gw.proc.rssBytes() ?? 0);
      fakePeak = Math.max(fakePeak, fake.proc.rssBytes() ?? 0);
    }, 50);
    let held: HoldResult;
    try {
      const { result } = await runJob(ctx, { mode: "hold", target: grpcTarget(gw, 4), streams: n, expectMessages: expect, timeoutMs: 120_000 }, [], () => {
        atAllOpen = gw.proc.rssBytes() ?? Number.NaN;
        fdsAllOpen = gw.proc.fdCount() ?? Number.NaN;
      });
      held = result as HoldResult;
    } finally {
      clearInterval(sampler);
    }
    const ended = performance.now();
    const after: number[] = [];
    const fdsAfter: number[] = [];
    for (const t of s.settleS) {
      await sleep(Math.max(0, t * 1000 - (performance.now() - ended)));
      after.push(gw.proc.rssBytes() ?? Number.NaN);
      fdsAfter.push(gw.proc.fdCount() ?? Number.NaN);
    }
    const heapAfter = await heapOf(gw);
    const MB = 1024 * 1024;
    const scenario = `memory, ${n} concurrent slow streams`;
    const errors = held.errors > 0 ? `0 / ${held.errors}` : undefined;
    if (held.firstError !== undefined) process.stderr.write(`bench: memory round ${round}: ${held.errors} failed streams, e.g. ${held.firstError}\n`);
    rows.push({ scenario, metric: "RSS before MB (fake | gateway)", round, direct: fakeBaseline / MB, gateway: baseline / MB, compare: false, errors });
    rows.push({ scenario, metric: `RSS with all ${n} open MB`, round, direct: undefined, gateway: atAllOpen / MB, compare: false });
    rows.push({ scenario, metric: "RSS peak MB (fake | gateway)", round, direct: fakePeak / MB, gateway: peak / MB, compare: false });
    rows.push({ scenario, metric: "RSS per stream KB (fake | gateway)", round, direct: (fakePeak - fakeBaseline) / n / 1024, gateway: (peak - baseline) / n / 1024, compare: false });
    s.settleS.forEach((t, i) => {
      rows.push({ scenario, metric: `RSS ${t} s after the end MB (gateway, % of before)`, round, direct: undefined, gateway: after[i]! / MB, compare: false, cpuGateway: `${((after[i]! / baseline) * 100).toFixed(0)}% of before` });
    });
    rows.push({
      scenario,
      metric: "gateway open fds: before · all open · after (upstream keep-alive sockets)",
      round,
      direct: undefined,
      gateway: fdsAllOpen,
      compare: false,
      cpuGateway: `${fdsBefore} · ${fdsAllOpen} · ${s.settleS.map((t, i) => `${fdsAfter[i]} at ${t} s`).join(", ")}`,
    });
    if (heapBefore !== undefined && heapAfter !== undefined) {
      // Where RSS that stays after the load sits: V8's heap (new space grows under load and is kept), or outside it.
      const mb = (x: number): string => (x / MB).toFixed(1);
      const text = (h: NonNullable<typeof heapBefore>): string => `${mb(h.total)} (new ${mb(h.newSpace)}, old ${mb(h.oldSpace)}), external ${mb(h.external)}`;
      rows.push({ scenario, metric: `V8 heap MB, before → ${s.settleS[s.settleS.length - 1]} s after the end`, round, direct: undefined, gateway: heapAfter.total / MB, compare: false, cpuGateway: `${text(heapBefore)} → ${text(heapAfter)}` });
    }
    rows.push({ scenario, metric: `ms until all ${n} had their first message`, round, direct: undefined, gateway: held.allOpenMs, compare: false });
    rows.push({ scenario, metric: "first message p99 ms", round, direct: undefined, gateway: held.ttfm.p99, compare: false });

    // A second, identical wave: if the memory kept after the first was garbage V8 had not
    // given back (rather than a leak), this wave reuses it and ends where the first did.
    let peak2 = after[after.length - 1] ?? baseline;
    const sampler2 = setInterval(() => {
      peak2 = Math.max(peak2, gw.proc.rssBytes() ?? 0);
    }, 50);
    try {
      await runJob(ctx, { mode: "hold", target: grpcTarget(gw, 4), streams: n, expectMessages: expect, timeoutMs: 120_000 }, []);
    } finally {
      clearInterval(sampler2);
    }
    await sleep(s.settleS[0]! * 1000);
    const after2 = gw.proc.rssBytes() ?? Number.NaN;
    rows.push({ scenario, metric: "RSS peak of a 2nd identical wave MB", round, direct: undefined, gateway: peak2 / MB, compare: false });
    rows.push({ scenario, metric: `RSS ${s.settleS[0]} s after the 2nd wave MB (% of before)`, round, direct: undefined, gateway: after2 / MB, compare: false, cpuGateway: `${((after2 / baseline) * 100).toFixed(0)}% of before` });
  } finally {
    await gw.proc.stop();
    await fake.proc.stop();
  }
}
