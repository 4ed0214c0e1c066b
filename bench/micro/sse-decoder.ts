/**
 * Micro-benchmark of the SSE decoder on what a broken or hostile upstream can send: one
 * long line, and one event of many short data lines, next to the same number of bytes of
 * ordinary small events (the baseline, measured in the same run). A decoder linear in its
 * input decodes the long line at about the baseline's MB/s and the many lines at about
 * the baseline's ns per line; one that re-copies or rescans what it holds falls behind as
 * the line or the event grows (before the fix, in commit "SSE decoder: linear…", the 8 MB
 * line took about 1.2 s and the 1M-line event did not end in minutes).
 *
 *   npm run build && node dist/bench/micro/sse-decoder.js [--rounds N]
 *
 * Bounded (rounds × three inputs of 8 MB), in process, nothing listens.
 */
import { parseArgs } from "node:util";
import { SseDecoder } from "../../src/providers/cerebras/sse.js";

const { values } = parseArgs({ options: { rounds: { type: "string" } } });
const ROUNDS = Math.max(1, Math.min(51, Number(values.rounds ?? 5)));
const READ = 64 * 1024;
const BYTES = 8 * 1024 * 1024 - 1024; // just under the decoder's default bound

function reads(text: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < text.length; i += READ) out.push(text.subarray(i, i + READ));
  return out;
}

const small = Buffer.from(`data: ${"s".repeat(90)}\n\n`.repeat(Math.floor(BYTES / 98)));
const longLine = Buffer.from(`data: ${"l".repeat(BYTES - 8)}\n\n`);
const manyLines = Buffer.from(`${"data: m\n".repeat(Math.floor(BYTES / 8) - 1)}\n`);

const count = (b: Buffer): number => {
  let n = 0;
  for (let i = b.indexOf(0x0a); i !== -1; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
};
const inputs: ReadonlyArray<readonly [string, Buffer[], number]> = [
  ["small events (baseline)", reads(small), count(small)],
  ["one line of 8 MB", reads(longLine), count(longLine)],
  ["one event of 1M data lines", reads(manyLines), count(manyLines)],
];

function run(parts: readonly Buffer[]): number {
  const d = new SseDecoder();
  let events = 0;
  const t = process.hrtime.bigint();
  for (const p of parts) d.feed(p, () => void events++);
  d.finish(() => void events++);
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (events === 0) throw new Error("no event decoded");
  return ms;
}

const results = new Map<string, number[]>();
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, parts] of inputs) {
    const ms = run(parts);
    const list = results.get(name) ?? [];
    list.push(ms);
    results.set(name, list);
  }
}
console.log(`SSE decoder, ${(BYTES / 1024 / 1024).toFixed(1)} MB in ${READ / 1024} KB reads, median of ${ROUNDS} rounds`);
console.log("| input | lines | ms | MB/s | ns per line |");
console.log("| --- | --: | --: | --: | --: |");
for (const [name, , lines] of inputs) {
  const sorted = [...results.get(name)!].sort((a, b) => a - b);
  const ms = sorted[Math.floor(sorted.length / 2)]!;
  console.log(`| ${name} | ${lines} | ${ms.toFixed(1)} | ${(BYTES / 1024 / 1024 / (ms / 1000)).toFixed(0)} | ${((ms * 1e6) / lines).toFixed(0)} |`);
}
