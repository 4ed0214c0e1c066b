/**
 * The SSE decoder under adversarial chunking: whatever way the bytes are split across
 * socket reads, the same events come out.
 */
import { describe, expect, it } from "vitest";
import { SseDecoder, SseLineTooLongError, type SseEvent } from "../../src/providers/cerebras/sse.js";

function decodeAll(parts: readonly Uint8Array[]): SseEvent[] {
  const d = new SseDecoder();
  const out: SseEvent[] = [];
  for (const p of parts) out.push(...d.push(p));
  out.push(...d.end());
  return out;
}

const bytes = (s: string): Buffer => Buffer.from(s, "utf8");

/** Every way to cut `buf` in two, plus one byte at a time. */
function splits(buf: Buffer): Buffer[][] {
  const out: Buffer[][] = [];
  for (let i = 0; i <= buf.length; i++) out.push([buf.subarray(0, i), buf.subarray(i)]);
  out.push(Array.from(buf, (b) => Buffer.from([b])));
  return out;
}

// A realistic Cerebras stream: no event field, usage in the last chunk, no [DONE].
const CEREBRAS_STREAM =
  'data: {"id":"c1","choices":[{"delta":{"role":"assistant"},"index":0}]}\n\n' +
  'data: {"id":"c1","choices":[{"delta":{"content":"Oi ¿qué tal? 🚀"},"index":0}]}\n\n' +
  'data: {"id":"c1","choices":[{"delta":{},"finish_reason":"stop","index":0}],"usage":{"total_tokens":3}}\n\n';

describe("SseDecoder", () => {
  it("decodes a Cerebras stream identically however the bytes are split (every split point, and byte by byte)", () => {
    const whole = decodeAll([bytes(CEREBRAS_STREAM)]);
    expect(whole.map((e) => JSON.parse(e.data).choices[0].delta)).toEqual([{ role: "assistant" }, { content: "Oi ¿qué tal? 🚀" }, {}]);
    for (const parts of splits(bytes(CEREBRAS_STREAM))) expect(decodeAll(parts)).toEqual(whole);
  });

  it("never splits a multi-byte character, even when a read ends inside it", () => {
    const text = 'data: {"c":"🚀é"}\n\n';
    const buf = bytes(text);
    const rocket = buf.indexOf(0xf0);
    for (let i = rocket + 1; i < rocket + 4; i++) {
      expect(decodeAll([buf.subarray(0, i), buf.subarray(i)])).toEqual([{ event: undefined, data: '{"c":"🚀é"}' }]);
    }
  });

  it("accepts CRLF and CR line ends, including a CRLF split between reads", () => {
    const crlf = bytes("data: a\r\n\r\ndata: b\r\n\r\n");
    const expected = [
      { event: undefined, data: "a" },
      { event: undefined, data: "b" },
    ];
    for (const parts of splits(crlf)) expect(decodeAll(parts)).toEqual(expected);
    for (const parts of splits(bytes("data: a\r\rdata: b\r\r"))) expect(decodeAll(parts)).toEqual(expected);
  });

  it("ignores comments and unknown fields, keeps event types, joins multi-line data with newlines", () => {
    const text = ": keep-alive\n\nid: 7\nretry: 100\nevent: error\ndata: {\"error\":\ndata: 1}\n\ndata:no-space\n\n";
    expect(decodeAll([bytes(text)])).toEqual([
      { event: "error", data: '{"error":\n1}' },
      { event: undefined, data: "no-space" },
    ]);
  });

  it("dispatches nothing for a blank line without data, and an empty data line is an empty event", () => {
    expect(decodeAll([bytes("\n\n\nevent: ping\n\ndata\n\n")])).toEqual([{ event: undefined, data: "" }]);
  });

  it("yields the [DONE] sentinel as plain data (the provider decides what it means)", () => {
    expect(decodeAll([bytes("data: [DONE]\n\n")])).toEqual([{ event: undefined, data: "[DONE]" }]);
  });

  it("returns an event whose blank line never came when the stream ends", () => {
    const d = new SseDecoder();
    expect(d.push(bytes('data: {"last":true}'))).toEqual([]);
    expect(d.end()).toEqual([{ event: undefined, data: '{"last":true}' }]);
  });

  it("refuses a line longer than its bound instead of buffering without end", () => {
    const d = new SseDecoder(64);
    expect(() => d.push(bytes(`data: ${"x".repeat(100)}`))).toThrow(SseLineTooLongError);
    const e = new SseDecoder(64);
    expect(() => {
      for (let i = 0; i < 10; i++) e.push(bytes(`data: ${"y".repeat(20)}\n`));
    }).toThrow(SseLineTooLongError);
  });

  it("joins multi-line data and long lines the same however they are split, CR and CRLF included", () => {
    const text = "event: e\r\ndata: one\rdata: two\r\ndata:\ndata: four\n\n" + `data: ${"z".repeat(300)}\r\n\r\n`;
    const expected = [
      { event: "e", data: "one\ntwo\n\nfour" },
      { event: undefined, data: "z".repeat(300) },
    ];
    for (const parts of splits(bytes(text))) expect(decodeAll(parts)).toEqual(expected);
    for (const size of [2, 3, 5, 7, 64]) {
      const buf = bytes(text);
      const parts: Buffer[] = [];
      for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
      expect(decodeAll(parts), `reads of ${size} bytes`).toEqual(expected);
    }
  });

  it("refuses a line over its bound when it arrives in many reads, and one of many data lines", () => {
    const d = new SseDecoder(64);
    expect(() => {
      for (let i = 0; i < 10; i++) d.push(bytes("x".repeat(10)));
    }).toThrow(SseLineTooLongError);
    const e = new SseDecoder(64);
    expect(() => e.push(bytes(`data: ${"a".repeat(30)}\ndata: ${"b".repeat(30)}\ndata: c\n`))).toThrow(SseLineTooLongError);
  });

  it("returns events from many in one read in order", () => {
    const many = Array.from({ length: 200 }, (_, i) => `data: ${i}\n\n`).join("");
    expect(decodeAll([bytes(many)]).map((e) => Number(e.data))).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });
});
