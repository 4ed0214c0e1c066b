/**
 * Micro-benchmark of the gRPC reply serializers: ts-proto's encoder against the generated
 * fast encoders (gen/**\/*.encode.ts, through src/grpc/serializers.ts for chunks), in one
 * process, interleaved:
 *
 *   npm run build && node dist/bench/micro/serializers.js [--rounds N] [--ms M] [--case TEXT] [--impl NAME,…]
 *
 * Rows, in ns of CPU per message:
 *   ts-proto         `Buffer.from(X.encode(v).finish())`, what gen/'s ChatServiceService does
 *                    (and what the generated encoders fall back to for a value of an
 *                    unexpected JS type)
 *   generated fast   serializeChunk (the generated encoder behind the stream's header cache)
 *                    / encodeChatCompletion
 * then both followed by what grpc-js does with the bytes
 * (serializeMessage in server-interceptors.js: `Buffer.allocUnsafe(n + 5)`, a 5-byte
 * header, `copy`): the whole serialization cost of a message on the server.
 *
 * Messages are built as the gateway builds them (JSON.parse of the upstream's SSE data,
 * then src/wire/response.ts's mapping to the proto object), one object per message, so no strings are shared between
 * iterations: content chunks (Cerebras' shape: id, object, created, model, fingerprint and
 * one choice whose delta has a few bytes of content) of 16 and of 64 streams taking turns,
 * content and first (role) chunks that each open a new stream (the header cache never
 * hits: the worst case), last chunks (finish_reason, usage, time_info), and a unary
 * completion with ≈ 1 KB of text.
 *
 * Figures are process CPU time (user + system) per message rather than wall time, so a
 * busy machine slows the run down without inflating the figures much: the median and the
 * range of --rounds rounds of about --ms ms each, implementations taking turns. (No forced
 * GC between rounds: tried, it nearly doubled ts-proto's figures — V8 presumably resizing
 * its young generation after a full GC — and overstated the gain.) Bounded (about 3 s per
 * case with the defaults), single-threaded, nothing listens.
 *
 * --count N encodes N messages per case and implementation, untimed: for instruction
 * counts, which a shared machine does not disturb, e.g. the difference between
 * `valgrind --tool=callgrind node --single-threaded dist/bench/micro/serializers.js --count
 * 100000 --case "64 streams" --impl "generated fast"` and the same with `--count 10000`,
 * divided by 90,000 (bench/README.md, "Generated reply encoders").
 */
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { ChatCompletion, ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import { encodeChatCompletion } from "../../gen/aigateway/v1/chat.encode.js";
import { serializeChunk } from "../../src/grpc/serializers.js";
import { chatCompletionChunkFromJson, chatCompletionFromJson } from "../../src/wire/response.js";

const { values } = parseArgs({ options: { rounds: { type: "string" }, ms: { type: "string" }, case: { type: "string" }, impl: { type: "string" }, count: { type: "string" } } });
const ROUNDS = Math.max(1, Math.min(51, Number(values.rounds ?? 9)));
/** Only the cases whose name contains this, and only these implementations (comma-separated names). */
const CASE_FILTER = values.case;
const IMPL_FILTER = values.impl?.split(",").map((s) => s.trim());
/** Encode this many messages per case and implementation, untimed (for instruction counts under callgrind). */
const COUNT = values.count === undefined ? undefined : Math.max(0, Math.min(10_000_000, Number(values.count)));
const ROUND_MS = Math.max(5, Math.min(2000, Number(values.ms ?? 100)));
const VARIANTS = 512;

const WORDS = [" the", " model", " is", " streaming", " tokens", ",", " and", " each", " chunk", " carries", " a", " few", " bytes", ".", "\n\n", " Überraschung", " 東京", " 🙂"];

/** A Cerebras-like id for stream `s`: "chatcmpl-" and a UUID (deterministic). */
function streamId(s: number): string {
  const h = createHash("sha1").update(`stream ${s}`).digest("hex");
  return `chatcmpl-${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The upstream SSE data of chunk `i`, from stream `stream`. */
function chunkJson(i: number, stream: number, kind: "first" | "content" | "last"): string {
  const base = {
    id: streamId(stream),
    object: "chat.completion.chunk",
    created: 1761231233 + (stream % 60),
    model: "gpt-oss-120b",
    system_fingerprint: "fp_5a8f1c9e3b7d2a6c4e0f",
  };
  if (kind === "first") return JSON.stringify({ ...base, choices: [{ delta: { role: "assistant" }, index: 0 }] });
  if (kind === "content") return JSON.stringify({ ...base, choices: [{ delta: { content: WORDS[i % WORDS.length] }, index: 0 }] });
  return JSON.stringify({
    ...base,
    choices: [{ delta: {}, finish_reason: "stop", index: 0 }],
    usage: { prompt_tokens: 1234 + i, completion_tokens: 2002, total_tokens: 3236 + i, prompt_tokens_details: { cached_tokens: 1024 } },
    time_info: { queue_time: 0.000123 * i, prompt_time: 0.0042, completion_time: 0.95 + i / 1000, total_time: 0.9601 + i / 1000, created: 1761231233.7300596 + i },
  });
}

/** The proto object the gateway builds from an upstream chunk (its own mapping, src/wire/response.ts). */
function chunkFromJson(text: string): ChatCompletionChunk {
  return chatCompletionChunkFromJson(JSON.parse(text));
}

/** A unary completion with ≈ 1 KB of ASCII text, mapped by the gateway's own code from the upstream's JSON. */
function completion(i: number): ChatCompletion {
  let text = "";
  for (let k = 0; text.length < 1000; k++) text += WORDS[(i + k) % 15]; // ASCII words only
  const upstream = {
    id: `chatcmpl-${i}-5a8f1c9e3b7d`,
    object: "chat.completion",
    created: 1761231233 + i,
    model: "llama-3.3-70b",
    system_fingerprint: "fp_5a8f1c9e3b7d2a6c4e0f",
    choices: [{ index: 0, message: { role: "assistant", content: text, reasoning: `thinking ${i}` }, finish_reason: "stop" }],
    usage: { prompt_tokens: 120, completion_tokens: 250, total_tokens: 370, prompt_tokens_details: { cached_tokens: 0 } },
    time_info: { queue_time: 0.0001, prompt_time: 0.002, completion_time: 0.12, total_time: 0.125, created: 1761231233.73 },
  };
  return chatCompletionFromJson(JSON.parse(JSON.stringify(upstream)));
}

type Serialize<T> = (v: T) => Buffer;

const generatedChunk: Serialize<ChatCompletionChunk> = (v) => Buffer.from(ChatCompletionChunk.encode(v).finish());
const generatedCompletion: Serialize<ChatCompletion> = (v) => Buffer.from(ChatCompletion.encode(v).finish());

/** grpc-js' BaseServerInterceptingCall.serializeMessage around a serializer. */
function framed<T>(serialize: Serialize<T>): Serialize<T> {
  return (v) => {
    const messageBuffer = serialize(v);
    const byteLength = messageBuffer.byteLength;
    const output = Buffer.allocUnsafe(byteLength + 5);
    output.writeUInt8(0, 0);
    output.writeUInt32BE(byteLength, 1);
    messageBuffer.copy(output, 5);
    return output;
  };
}

let sink = 0;

/**
 * ns of this process's CPU time (user + system) per message over one round of about
 * ROUND_MS of wall time. CPU time rather than wall time, so that time the process spends
 * descheduled on a busy machine does not count; it includes V8's GC helper threads.
 */
function round<T>(fn: Serialize<T>, inputs: readonly T[]): number {
  const deadline = performance.now() + ROUND_MS;
  const cpu = process.cpuUsage();
  let n = 0;
  let acc = 0;
  // Batches of one pass over the inputs; the clock is read between batches only.
  for (let batch = 0; batch < 1_000_000; batch++) {
    for (let i = 0; i < inputs.length; i++) {
      const b = fn(inputs[i]!);
      acc += b.byteLength + b[b.byteLength - 1]!;
    }
    n += inputs.length;
    if (performance.now() >= deadline) break;
  }
  const used = process.cpuUsage(cpu);
  sink += acc;
  return ((used.user + used.system) * 1000) / n;
}

interface Case<T> {
  readonly name: string;
  readonly inputs: readonly T[];
  readonly impls: readonly (readonly [string, Serialize<T>])[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function run<T>(c: Case<T>): void {
  if (CASE_FILTER !== undefined && !c.name.includes(CASE_FILTER)) return;
  // Same bytes from every implementation, before timing anything.
  const reference = c.impls[0]![1];
  for (const input of c.inputs) {
    const want = reference(input);
    for (const [name, fn] of c.impls) {
      if (!fn(input).equals(want)) throw new Error(`${c.name}: ${name} differs from ${c.impls[0]![0]}`);
    }
  }
  const impls = c.impls.filter(([name]) => IMPL_FILTER === undefined || IMPL_FILTER.includes(name));
  if (COUNT !== undefined) {
    for (const [name, fn] of impls) {
      let acc = 0;
      for (let i = 0; i < COUNT; i++) acc += fn(c.inputs[i % c.inputs.length]!).byteLength;
      sink += acc;
      process.stdout.write(`${c.name}: ${name}: ${COUNT} messages encoded\n`);
    }
    return;
  }
  const all = [...impls, ...impls.map(([name, fn]) => [`${name} + grpc-js frame`, framed(fn)] as const)];
  const samples = new Map<string, number[]>(all.map(([name]) => [name, []]));
  for (const [, fn] of all) round(fn, c.inputs); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate the order so that no implementation always runs first in a round.
    for (let k = 0; k < all.length; k++) {
      const [name, fn] = all[(k + r) % all.length]!;
      samples.get(name)!.push(round(fn, c.inputs));
    }
  }
  const bytes = reference(c.inputs[0]!).byteLength;
  process.stdout.write(`\n${c.name} (${bytes} bytes)\n`);
  all.forEach(([name], i) => {
    const xs = samples.get(name)!;
    const m = median(xs);
    const lo = Math.min(...xs);
    const hi = Math.max(...xs);
    // Each row against the first implementation (and the second), framed rows against framed ones.
    const group = i < impls.length ? 0 : impls.length;
    const vs = all.slice(group, group + 2).map(([n]) => n)
      .filter((other) => other !== name && all.findIndex(([n]) => n === other) < i)
      .map((other) => `${(median(samples.get(other)!) / m).toFixed(2)}× as fast as ${other}`);
    process.stdout.write(`  ${name.padEnd(40)} ${m.toFixed(0).padStart(6)} ns/msg  (${lo.toFixed(0)}-${hi.toFixed(0)})${vs.length > 0 ? `   ${vs.join(", ")}` : ""}\n`);
  });
}

/**
 * `n` chunks of `streams` streams taking turns (chunk i belongs to stream i % streams), as
 * a gateway relaying that many concurrent streams writes them.
 */
function chunks(n: number, streams: number, kind: "first" | "content" | "last"): ChatCompletionChunk[] {
  return Array.from({ length: n }, (_, i) => chunkFromJson(chunkJson(i, i % streams, kind)));
}

const completions = Array.from({ length: VARIANTS }, (_, i) => completion(i));

const chunkImpls: (readonly [string, Serialize<ChatCompletionChunk>])[] = [
  ["ts-proto", generatedChunk],
  ["generated fast", serializeChunk],
];
const completionImpls: (readonly [string, Serialize<ChatCompletion>])[] = [
  ["ts-proto", generatedCompletion],
  ["generated fast", encodeChatCompletion],
];

if (COUNT === undefined) process.stdout.write(`node ${process.version}: ns of CPU per message, median (range) of ${ROUNDS} rounds of ${ROUND_MS} ms\n`);
run({ name: "content chunk, 16 streams taking turns", inputs: chunks(VARIANTS, 16, "content"), impls: chunkImpls });
run({ name: "content chunk, 64 streams taking turns", inputs: chunks(VARIANTS, 64, "content"), impls: chunkImpls });
// 8,192 ids cycling through the 1,024-entry header cache: it never hits (the worst case).
run({ name: "content chunk, a new stream every chunk", inputs: chunks(8192, 8192, "content"), impls: chunkImpls });
run({ name: "first chunk (role), a new stream every chunk", inputs: chunks(8192, 8192, "first"), impls: chunkImpls });
run({ name: "last chunk (finish_reason, usage, time_info), 16 streams", inputs: chunks(VARIANTS, 16, "last"), impls: chunkImpls });
run({ name: "unary completion (≈ 1 KB of text)", inputs: completions, impls: completionImpls });
if (sink === 0.5) process.stdout.write("\n"); // keeps the results observable
