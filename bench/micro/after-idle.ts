/**
 * What code costs right after an idle wait, against the same code in a hot loop: the
 * factor that turns a few µs of a call's work at high load into tens of µs at c=1.
 *
 *   npm run build && node dist/bench/micro/after-idle.js [--samples N]
 *
 * The work is a fixed piece of the relay's kind (JSON.parse of a Cerebras chunk, a
 * change, JSON.stringify), of three sizes; each is timed in a hot loop, then right after
 * this process waited idle in its event loop for 0, 1, 2, 5 or 20 ms (a timer), as a
 * gateway at c=1 waits between a request and its upstream's answer. On this 2-core VM,
 * 2026-12-02 (two runs): the smallest piece (≈ 27-46 µs hot) took 1.8-2.3× its hot time
 * after a 0-1 ms wait and 3-4× after 5-20 ms; the largest (≈ 450-550 µs) only 1.0-1.3×.
 * So the smaller and more varied a
 * call's code (a chain of many functions, each run once), the more of its time at c=1 is
 * the CPU refilling caches and predictors, not the work.
 *
 * Bounded: N samples per row (300 by default), pinned to CPU 1 where taskset exists.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { pinSelf } from "../lib/proc.js";
import { bounded, fmt, median } from "../lib/stats.js";

const { values } = parseArgs({ options: { samples: { type: "string" } } });
const SAMPLES = bounded(values.samples, 300, 20, 10_000);
const WAITS_MS = [0, 1, 2, 5, 20];
const SIZES = [5, 20, 100];

const CHUNK = JSON.stringify({
  id: "chatcmpl-0b8f3c1e-6a4d-4c1b-9f0e-2d7a5b3c8e91",
  object: "chat.completion.chunk",
  created: 1_764_633_600,
  model: "gpt-oss-120b",
  system_fingerprint: "fp_0123456789",
  choices: [{ index: 0, delta: { content: " hello" }, finish_reason: null }],
});

let sink = 0;
function work(reps: number): void {
  for (let i = 0; i < reps; i++) {
    const o = JSON.parse(CHUNK) as { choices: { delta: { content: string } }[] };
    o.choices[0]!.delta.content += String(i);
    sink += JSON.stringify(o).length;
  }
}

function timed(reps: number): number {
  const t = process.hrtime.bigint();
  work(reps);
  return Number(process.hrtime.bigint() - t) / 1000;
}

async function main(): Promise<void> {
  pinSelf("1");
  for (let i = 0; i < 20_000; i++) work(5); // JIT
  const lines = [
    `The same work hot and right after an idle wait (${SAMPLES} samples a cell, µs, median; in brackets: × the hot time):`,
    "",
    `| work | hot | ${WAITS_MS.map((w) => `after ${w} ms idle`).join(" | ")} |`,
    `|--:|--:|${WAITS_MS.map(() => "--:").join("|")}|`,
  ];
  for (const reps of SIZES) {
    const hot = median(Array.from({ length: SAMPLES * 4 }, () => timed(reps)));
    const cells: string[] = [];
    for (const ms of WAITS_MS) {
      const after: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        await sleep(ms);
        after.push(timed(reps));
      }
      const m = median(after);
      cells.push(`${fmt(m, 1)} (${(m / hot).toFixed(1)}×)`);
    }
    lines.push(`| ${reps} chunks parsed and written | ${fmt(hot, 1)} | ${cells.join(" | ")} |`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  if (sink === 0) process.exit(1); // the work must not be optimised away
}

void main();
