/**
 * Micro-benchmark of what the contract work (issue 17) adds to decoding a request, next
 * to the floor each transport cannot go below, in one process, interleaved:
 *
 *   npm run build && node dist/bench/micro/request-decode.js [--rounds N] [--ms M]
 *
 * Rows, in µs of CPU per request (median and range of --rounds rounds of about --ms ms):
 *   gRPC  ts-proto decode        ChatCompletionRequest.decode(bytes): the floor (lax UTF-8)
 *   gRPC  gateway door           withRequestChecks' deserializer: the Struct depth scan, and
 *                                the same decoder over a strict-UTF-8 reader
 *   HTTP  JSON.parse             the floor: the body parsed, nothing checked
 *   HTTP  decode, no text        JSON.parse + chatRequestFromJson (OpenAI-field policy, zod, mapping)
 *   HTTP  decode, schema text    the same, plus the pass over the text that keeps each JSON
 *                                Schema's bytes (what the shim does)
 *
 * The request: 24 messages of mixed ASCII and non-ASCII text (≈ 600 characters each), two
 * tools with JSON Schemas, a json_schema response_format. Bounded (about --rounds × --ms
 * per row), single-threaded, nothing listens.
 */
import { parseArgs } from "node:util";
import { ChatCompletionRequest, ChatServiceService } from "../../gen/aigateway/v1/chat.js";
import { withRequestChecks } from "../../src/grpc/request-decoder.js";
import { chatRequestFromJson } from "../../src/wire/request-from-json.js";

const { values } = parseArgs({ options: { rounds: { type: "string" }, ms: { type: "string" } } });
const ROUNDS = Math.max(1, Math.min(51, Number(values.rounds ?? 9)));
const ROUND_MS = Math.max(5, Math.min(2000, Number(values.ms ?? 100)));

const TEXT = "The model reads this message, Überraschung, 東京 and 🙂 included. ".repeat(9);
const SCHEMA = { type: "object", properties: { reasoning: { type: "string" }, answer: { type: "string" }, "2": { type: "integer" }, "1": { type: "integer" } }, required: ["reasoning", "answer"], additionalProperties: false };
const body = {
  model: "gpt-oss-120b",
  messages: Array.from({ length: 24 }, (_, i) => ({ role: i % 2 === 0 ? "user" : "assistant", content: `${i}: ${TEXT}` })),
  tools: ["lookup", "answer"].map((name) => ({ type: "function", function: { name, description: `the ${name} tool`, parameters: SCHEMA } })),
  response_format: { type: "json_schema", json_schema: { name: "out", schema: SCHEMA, strict: true } },
  temperature: 0.2,
};
const text = JSON.stringify(body);
const request = chatRequestFromJson(JSON.parse(text) as unknown).request;
const bytes = Buffer.from(ChatCompletionRequest.encode(request).finish());
const door = withRequestChecks(ChatServiceService).createChatCompletion.requestDeserialize;

const rows: ReadonlyArray<readonly [string, () => unknown]> = [
  ["gRPC  ts-proto decode", () => ChatCompletionRequest.decode(bytes)],
  ["gRPC  gateway door", () => door(bytes)],
  ["HTTP  JSON.parse", () => JSON.parse(text) as unknown],
  ["HTTP  decode, no text", () => chatRequestFromJson(JSON.parse(text) as unknown)],
  ["HTTP  decode, schema text", () => chatRequestFromJson(JSON.parse(text) as unknown, { text })],
];

// A sink the optimiser cannot see through.
let sink = 0;

/** µs of CPU per call, over one round of about ROUND_MS. */
function round(fn: () => unknown): number {
  const start = process.cpuUsage();
  const wallEnd = performance.now() + ROUND_MS;
  let n = 0;
  while (performance.now() < wallEnd && n < 10_000_000) {
    for (let i = 0; i < 16; i++) if (fn() !== undefined) sink++;
    n += 16;
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

for (const [, fn] of rows) round(fn); // warm-up
const results = rows.map(() => [] as number[]);
for (let r = 0; r < ROUNDS; r++) rows.forEach(([, fn], i) => results[i]!.push(round(fn)));

console.log(`request: ${text.length} bytes of JSON, ${bytes.length} bytes of protobuf; ${ROUNDS} rounds of ~${ROUND_MS} ms`);
for (const [i, [name]] of rows.entries()) {
  const xs = [...results[i]!].sort((a, b) => a - b);
  const median = xs[Math.floor(xs.length / 2)]!;
  console.log(`${name.padEnd(28)} ${median.toFixed(1).padStart(8)} µs  (${xs[0]!.toFixed(1)}–${xs.at(-1)!.toFixed(1)})`);
}
if (sink < 0) console.log(sink);
