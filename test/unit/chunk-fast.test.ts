/**
 * The fast path for plain text chunks (src/wire/chunk-fast.ts) against the codec's full
 * mapper (src/wire/response.ts, the contract's reference): over a large adversarial
 * corpus — every shape a chunk can take, byte-level mutations of real chunks, escapes,
 * invalid UTF-8, duplicate keys — an event the fast path accepts maps to exactly the chunk
 * JSON.parse + the mapper make, and an event the mapper refuses is never accepted. If the
 * contract changes how a plain chunk is read, the tests that the fast path engages fail
 * (no template is learned) rather than the two paths drifting apart silently.
 */
import { describe, expect, it } from "vitest";
import type { ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import { chunkFromTemplate, learnTemplate, matchTemplate, type ChunkTemplate } from "../../src/wire/chunk-fast.js";
import { chatCompletionChunkFromJson } from "../../src/wire/response.js";
import { seededRandom } from "../helpers/random.js";

/** The reference: what the stream reader's full path makes of an event's data. */
function reference(data: Buffer): { ok: true; chunk: ChatCompletionChunk } | { ok: false } {
  try {
    return { ok: true, chunk: chatCompletionChunkFromJson(JSON.parse(data.toString("utf8"))) };
  } catch {
    return { ok: false };
  }
}

function learn(data: Buffer): ChunkTemplate | undefined {
  const r = reference(data);
  return r.ok ? learnTemplate(data, 0, data.length, r.chunk) : undefined;
}

const HEAD = { id: "chatcmpl-9f3c2a1e-7b44-4d0e-9a51-0c6f2d8e7a10", object: "chat.completion.chunk", created: 1764590000, model: "gpt-oss-120b", system_fingerprint: "fp_70185065a4" };

/** Plain chunks as upstreams send them (key orders, fields, text kinds): the templates' sources. */
const PLAIN_SOURCES: string[] = [
  JSON.stringify({ ...HEAD, choices: [{ delta: { content: " tok" }, index: 0 }] }),
  JSON.stringify({ ...HEAD, choices: [{ index: 0, delta: { content: "Oi ¿qué tal? 🚀" } }] }),
  JSON.stringify({ ...HEAD, choices: [{ delta: { reasoning: "The user asks" }, index: 0 }] }),
  JSON.stringify({ choices: [{ delta: { content: "x" }, index: 0 }], ...HEAD }),
  JSON.stringify({ id: HEAD.id, choices: [{ delta: { content: "x" }, index: 0 }], created: HEAD.created, model: HEAD.model, system_fingerprint: HEAD.system_fingerprint, object: HEAD.object }),
  JSON.stringify({ ...HEAD, choices: [{ delta: { content: "" }, index: 0 }] }),
  JSON.stringify({ ...HEAD, choices: [{ delta: { content: "a\"b\\c\n" }, index: 0 }] }),
  JSON.stringify({ ...HEAD, choices: [{ delta: { content: "x" }, index: 2 }] }),
  JSON.stringify({ ...HEAD, choices: [{ delta: { content: "x" }, finish_reason: null, index: 0 }] }),
  JSON.stringify({ ...HEAD, choices: [{ delta: { content: "x" }, logprobs: null, index: 0 }] }),
  JSON.stringify({ ...HEAD, usage: null, choices: [{ delta: { content: "x" }, index: 0 }] }),
  JSON.stringify({ ...HEAD, choices: [{ delta: { content: "x", role: null }, index: 0 }] }),
  JSON.stringify({ ...HEAD, choices: [{ delta: { content: "x", tool_calls: null }, index: 0 }] }),
  JSON.stringify({ ...HEAD, id: "chatcmpl-é\"😀", choices: [{ delta: { content: "x" }, index: 0 }] }),
  JSON.stringify({ ...HEAD, created: 1764590000.75, choices: [{ delta: { content: "x" }, index: 0 }] }),
  JSON.stringify({ ...HEAD, system_fingerprint: undefined, choices: [{ delta: { content: "x" }, index: 0 }] }),
  JSON.stringify({ ...HEAD, x_unknown: { content: "y" }, choices: [{ delta: { content: "x" }, index: 0 }] }),
  JSON.stringify({ ...HEAD, choices: [{ delta: { content: "x" }, index: 0, x_unknown: 1 }] }),
  JSON.stringify({ ...HEAD, choices: [{ delta: { content: "x", x_unknown: "content" }, index: 0 }] }),
  '{"id":"c1","choices":[{"delta":{"content":"a","content":"b"},"index":0}]}',
  '{"id":"c1","choices":[{"delta":{"content":"a"},"index":0}],"choices":[{"delta":{"content":"b"},"index":0}]}',
  '{"id":"c1","x":"\\"content\\":\\"","choices":[{"delta":{"content":"a"},"index":0}]}',
  '{ "id": "c1", "choices": [ { "delta": { "content": "spaced" }, "index": 0 } ] }',
  '{"id":"c1","choices":[{"delta":{"content":"a"},"index":0}],"tail":{"content":"b"}}',
  '{"id":"c1","choices":[{"delta":{"content":"\\u00e9\\ud83d\\ude80"},"index":0}]}',
  '{"id":"c1","created":"1764590000","choices":[{"delta":{"content":"a"},"index":0}]}',
];

/** Chunks that are not plain text chunks: never a template, always the full mapper. */
const OTHER_SOURCES: unknown[] = [
  { ...HEAD, choices: [{ delta: { role: "assistant" }, index: 0 }] },
  { ...HEAD, choices: [{ delta: { role: "assistant", content: "" }, index: 0 }] },
  { ...HEAD, choices: [{ delta: { content: "a", reasoning: "b" }, index: 0 }] },
  { ...HEAD, choices: [{ delta: {}, finish_reason: "stop", index: 0 }], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }, time_info: { total_time: 0.1 } },
  { ...HEAD, choices: [{ delta: { content: "a" }, finish_reason: "length", index: 0 }] },
  { ...HEAD, choices: [{ delta: { content: "a" }, index: 0, logprobs: { content: [{ token: "a", logprob: -0.1, bytes: [97], top_logprobs: [] }] } }] },
  { ...HEAD, choices: [{ delta: { tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "f", arguments: "{" } }] }, index: 0 }] },
  { ...HEAD, choices: [{ delta: { content: "a" }, index: 0 }, { delta: { content: "b" }, index: 1 }] },
  { ...HEAD, choices: [] },
  { ...HEAD, service_tier: "auto", choices: [{ delta: { content: "a" }, index: 0 }] },
  { ...HEAD, service_tier_used: "priority", choices: [{ delta: { content: "a" }, index: 0 }] },
  { ...HEAD, choices: [{ delta: { content: null }, index: 0 }] },
  { ...HEAD, choices: [{ delta: { content: 5 }, index: 0 }] },
];

/** Texts that exercise the path between prefix and suffix. */
const TEXTS = ["", " tok", "a", "Oi ¿qué tal? 🚀", 'say "hi"', "back\\slash", "line\nbreak", "tab\t", "\u0000", "\u001f", "\u007f", "é", "\ud83d\ude80", "</think>", "{\"a\":1}", "x".repeat(3000)];

function mutations(source: Buffer, rand: () => number, count: number): Buffer[] {
  const out: Buffer[] = [];
  const pool = [0x22, 0x5c, 0x7b, 0x7d, 0x2c, 0x3a, 0x5b, 0x5d, 0x00, 0x0a, 0x20, 0x61, 0x30, 0xff, 0xc3, 0xa9, 0xf0, 0x9f, 0x80, 0x75];
  for (let k = 0; k < count; k++) {
    const b = Buffer.from(source);
    const edits = 1 + Math.floor(rand() * 3);
    let cur = b;
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(rand() * (cur.length + 1));
      const byte = pool[Math.floor(rand() * pool.length)]!;
      const kind = rand();
      if (kind < 0.4 && at < cur.length) cur[at] = byte;
      else if (kind < 0.7) cur = Buffer.concat([cur.subarray(0, at), Buffer.from([byte]), cur.subarray(at)]);
      else if (at < cur.length) cur = Buffer.concat([cur.subarray(0, at), cur.subarray(at + 1)]);
    }
    out.push(cur);
  }
  return out;
}

/** The same event with its text token replaced by `raw` (bytes as they would be on the wire). */
function withText(source: string, t: ChunkTemplate, raw: Buffer): Buffer {
  void source;
  return Buffer.concat([t.prefix, raw, t.suffix]);
}

describe("chunk fast path", () => {
  it("learns a template from the plain chunks upstreams send, and matches the next chunk of the stream", () => {
    const typical = Buffer.from(PLAIN_SOURCES[0]!);
    const t = learn(typical);
    expect(t).toBeDefined();
    const next = Buffer.from(JSON.stringify({ ...HEAD, choices: [{ delta: { content: " world" }, index: 0 }] }));
    expect(matchTemplate(t!, next, 0, next.length)).toBe(" world");
    const reasoning = learn(Buffer.from(PLAIN_SOURCES[2]!));
    expect(reasoning?.field).toBe("reasoning");
    // The fake upstream's key order (id, object, created, model, system_fingerprint, choices) and Cerebras' own both engage it.
    expect(learn(Buffer.from(PLAIN_SOURCES[4]!))).toBeDefined();
  });

  it("never learns a template from a chunk that is not a plain text chunk", () => {
    for (const o of OTHER_SOURCES) expect(learn(Buffer.from(JSON.stringify(o))), JSON.stringify(o)).toBeUndefined();
    // A "content" key after the delta's (the mapper does not read it as the text), or spacing it does not locate: no template.
    expect(learn(Buffer.from(PLAIN_SOURCES[23]!))).toBeUndefined();
    expect(learn(Buffer.from(PLAIN_SOURCES[22]!))).toBeUndefined();
    // Duplicate keys: JSON.parse keeps the last, which is the token the template varies (the corpus test checks it is sound).
    expect(learn(Buffer.from(PLAIN_SOURCES[19]!))?.prefix.toString()).toBe('{"id":"c1","choices":[{"delta":{"content":"a","content":"');
  });

  it("gives what JSON.parse and the full mapper give, for every event it accepts, over an adversarial corpus", () => {
    const rand = seededRandom(18);
    let accepted = 0;
    let cases = 0;
    const check = (t: ChunkTemplate, ev: Buffer, where: string): void => {
      cases++;
      const text = matchTemplate(t, ev, 0, ev.length);
      if (text === undefined) return;
      accepted++;
      const ref = reference(ev);
      expect(ref.ok, `${where}: accepted an event the mapper refuses: ${ev.toString("latin1")}`).toBe(true);
      if (ref.ok) expect(chunkFromTemplate(t, text), `${where}: ${ev.toString("latin1")}`).toStrictEqual(ref.chunk);
    };
    const templates: Array<{ source: string; t: ChunkTemplate }> = [];
    for (const source of PLAIN_SOURCES) {
      const t = learn(Buffer.from(source));
      if (t !== undefined) templates.push({ source, t });
    }
    expect(templates.length).toBeGreaterThanOrEqual(15);
    for (const { source, t } of templates) {
      // Every text, as JSON.stringify writes it and as raw bytes (escapes, control bytes, invalid UTF-8).
      for (const text of TEXTS) {
        check(t, withText(source, t, Buffer.from(JSON.stringify(text).slice(1, -1))), source);
        check(t, withText(source, t, Buffer.from(text)), source);
      }
      for (const raw of [[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf0, 0x9f, 0x9a], [0xc3, 0xa9, 0xff]]) check(t, withText(source, t, Buffer.from(raw)), source);
      // Every other source and shape against this template.
      for (const other of [...PLAIN_SOURCES, ...OTHER_SOURCES.map((o) => JSON.stringify(o))]) check(t, Buffer.from(other), source);
      // Byte-level mutations of the source and of a text-substituted event.
      for (const ev of mutations(Buffer.from(source), rand, 600)) check(t, ev, source);
      for (const ev of mutations(withText(source, t, Buffer.from("hello world")), rand, 600)) check(t, ev, source);
    }
    // The corpus must exercise the fast path, not only its refusals.
    expect(cases).toBeGreaterThan(20_000);
    expect(accepted).toBeGreaterThan(1000);
  });
});
