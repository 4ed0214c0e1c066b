/**
 * Micro-benchmark of a stream's per-chunk path in the gateway's own code (issue 18): the
 * upstream's SSE bytes in, the gRPC message bytes out, in one process, implementations
 * taking turns:
 *
 *   npm run build && node dist/bench/micro/stream-reader.js [--rounds N] [--ms M]
 *
 * Rows, in ns of CPU per upstream event (process user + system time, median and range of
 * the rounds):
 *   mapper (before)   SseDecoder.push → JSON.parse → chatCompletionChunkFromJson (the
 *                     contract's reference mapper): the reader before the fast path
 *   fast path         StreamReader as the gateway runs it (STREAM_MERGE_DELTAS=false): a
 *                     stream's plain text chunks mapped from their bytes (wire/chunk-fast.ts)
 *   fast path, merged StreamReader with mergeDeltas: the plain chunks of one read joined
 * each followed by serializeChunk (src/grpc/serializers.ts) of every chunk handed over,
 * which is what the gateway's gRPC handler does next.
 *
 * The stream is Cerebras-shaped (gpt-oss-120b: role chunk, 2,000 one-token content chunks
 * with a 36-character id, the final chunk with usage and time_info), cut into reads of 1
 * event (an idle gateway: every event read as it comes) and of 4 (a loaded one). Each read
 * is its own microtask turn, as socket reads are. Bounded (rounds × ms), nothing listens.
 */
import { parseArgs } from "node:util";
import type { ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import type { CallStats } from "../../src/core/provider.js";
import { serializeChunk } from "../../src/grpc/serializers.js";
import { SseDecoder } from "../../src/providers/cerebras/sse.js";
import { StreamReader } from "../../src/providers/cerebras/stream-reader.js";
import { Watchdog } from "../../src/providers/cerebras/watchdog.js";
import { chatCompletionChunkFromJson } from "../../src/wire/response.js";

const { values } = parseArgs({ options: { rounds: { type: "string" }, ms: { type: "string" } } });
const ROUNDS = Math.max(1, Math.min(51, Number(values.rounds ?? 9)));
const MS = Math.max(50, Math.min(5000, Number(values.ms ?? 300)));

const TOKENS = 2000;

function streamEvents(n: number): Buffer[] {
  const head = { id: `chatcmpl-${n.toString(16).padStart(8, "0")}-7b44-4d0e-9a51-0c6f2d8e7a10`, object: "chat.completion.chunk", created: 1764590000, model: "gpt-oss-120b", system_fingerprint: "fp_70185065a4" };
  const ev = (o: unknown): Buffer => Buffer.from(`data: ${JSON.stringify(o)}\n\n`);
  const out = [ev({ ...head, choices: [{ delta: { role: "assistant" }, index: 0 }] })];
  for (let i = 0; i < TOKENS; i++) out.push(ev({ ...head, choices: [{ delta: { content: ` tok${i % 10}` }, index: 0 }] }));
  out.push(ev({ ...head, choices: [{ delta: {}, finish_reason: "stop", index: 0 }], usage: { prompt_tokens: 10, completion_tokens: TOKENS, total_tokens: TOKENS + 10 }, time_info: { queue_time: 0.0001, prompt_time: 0.0001, completion_time: 1, total_time: 1, created: 1764590000.5 } }));
  return out;
}

function reads(events: readonly Buffer[], perRead: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < events.length; i += perRead) out.push(Buffer.concat(events.slice(i, i + perRead)));
  return out;
}

let sink = 0;
const serialize = (chunk: ChatCompletionChunk): void => {
  sink += serializeChunk(chunk).length;
};

type Impl = (body: readonly Buffer[]) => Promise<number>;

const mapper: Impl = async (body) => {
  const decoder = new SseDecoder();
  let events = 0;
  for (const b of body) {
    for (const e of decoder.push(b)) {
      events++;
      if (e.data === "[DONE]") continue;
      serialize(chatCompletionChunkFromJson(JSON.parse(e.data)));
    }
    await undefined;
  }
  return events;
};

const noStall = (): void => {};
function readerImpl(mergeDeltas: boolean): Impl {
  return async (body) => {
    const watchdog = new Watchdog(60_000, 60_000, noStall);
    const stats: CallStats = {};
    const r = new StreamReader(serialize, watchdog, stats, { mergeDeltas });
    for (const b of body) {
      void r.data(b);
      await undefined;
    }
    void r.end();
    watchdog.dispose();
    return TOKENS + 2;
  };
}

const IMPLS: Array<[string, Impl]> = [
  ["mapper (before)", mapper],
  ["fast path", readerImpl(false)],
  ["fast path, merged", readerImpl(true)],
];

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

async function main(): Promise<void> {
  const lines = ["| events per read | implementation | ns CPU per event, median | range |", "| --: | --- | --: | --- |"];
  for (const perRead of [1, 4]) {
    // Streams take turns so the header cache sees several ids, as under load.
    const bodies = Array.from({ length: 16 }, (_, i) => reads(streamEvents(i), perRead));
    const samples = new Map<string, number[]>(IMPLS.map(([name]) => [name, []]));
    for (const [, impl] of IMPLS) for (const body of bodies) await impl(body); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, impl] of IMPLS) {
        const start = cpuNs();
        const until = performance.now() + MS;
        let events = 0;
        let k = 0;
        while (performance.now() < until) events += await impl(bodies[k++ % bodies.length]!);
        samples.get(name)!.push((cpuNs() - start) / events);
      }
    }
    for (const [name] of IMPLS) {
      const s = samples.get(name)!.sort((a, b) => a - b);
      lines.push(`| ${perRead} | ${name} | ${Math.round(s[s.length >> 1]!)} | ${Math.round(s[0]!)}–${Math.round(s[s.length - 1]!)} |`);
    }
  }
  process.stdout.write(`${lines.join("\n")}\n(${ROUNDS} rounds of ${MS} ms per implementation; checksum ${sink})\n`);
}

await main();
