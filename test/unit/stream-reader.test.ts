/**
 * The streamed body's reader on its own: every event of a socket read reaches the sink,
 * the sink's backpressure comes back as one promise for the read (which pauses the
 * socket), and a failure mid-read never leaves a promise rejecting unobserved.
 */
import { isDeepStrictEqual } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { FinishReason, type ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import type { CallStats } from "../../src/core/provider.js";
import { ProviderError, Reason } from "../../src/core/errors.js";
import { SseDecoder } from "../../src/providers/cerebras/sse.js";
import { StreamReader } from "../../src/providers/cerebras/stream-reader.js";
import { Watchdog } from "../../src/providers/cerebras/watchdog.js";
import { chatCompletionChunkFromJson } from "../../src/wire/response.js";

const event = (content: string): string => `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta: { content } }] })}\n\n`;
const finish = `data: ${JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })}\n\n`;
const read = (...events: string[]): Buffer => Buffer.from(events.join(""));

const watchdogs: Watchdog[] = [];
afterEach(() => {
  for (const w of watchdogs.splice(0)) w.dispose();
});

function reader(sink: (chunk: ChatCompletionChunk) => void | Promise<void>): { reader: StreamReader; stats: CallStats } {
  const watchdog = new Watchdog(60_000, 60_000, () => {});
  watchdogs.push(watchdog);
  const stats: CallStats = {};
  return { reader: new StreamReader(sink, watchdog, stats), stats };
}

const contents = (chunks: readonly ChatCompletionChunk[]): string[] => chunks.map((c) => c.choices[0]?.delta?.content ?? "");

describe("StreamReader", () => {
  it("hands every event of a read to the sink even when the sink asks to wait, and returns that wait", async () => {
    const seen: ChatCompletionChunk[] = [];
    let release!: () => void;
    const full = new Promise<void>((resolve) => (release = resolve));
    const { reader: r, stats } = reader((chunk) => {
      seen.push(chunk);
      return seen.length === 1 ? full : undefined; // the buffer is full after the first write
    });
    const wait = r.data(read(event("a"), event("b"), event("c")));
    expect(contents(seen)).toEqual(["a", "b", "c"]);
    expect(wait).toBeInstanceOf(Promise);
    let settled = false;
    void (wait as Promise<void>).then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false); // the socket stays paused until the sink's wait is over
    release();
    await wait;
    expect(r.delivered).toBe(3);
    expect(stats.firstChunkAt).toBeTypeOf("number");
  });

  it("one promise per full buffer is passed on as is; distinct ones are all waited for", async () => {
    const shared = Promise.resolve();
    const { reader: same } = reader(() => shared);
    expect(same.data(read(event("a"), event("b")))).toBe(shared);

    const releases: Array<() => void> = [];
    const { reader: distinct } = reader(() => new Promise<void>((resolve) => releases.push(resolve)));
    const wait = distinct.data(read(event("a"), event("b"))) as Promise<void>;
    let settled = false;
    void wait.then(() => (settled = true));
    releases[0]!();
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    releases[1]!();
    await wait;
    expect(settled).toBe(true);
  });

  it("a bad event after a pending wait fails the read, and the wait rejecting later is not an unhandled rejection", async () => {
    let reject!: (err: Error) => void;
    const { reader: r } = reader(() => new Promise<void>((_, rej) => (reject = rej)));
    expect(() => r.data(read(event("a"), "data: {not json\n\n"))).toThrow(/not JSON/);
    reject(new Error("the client went away"));
    // vitest fails the run on an unhandled rejection; give it the turns to surface one.
    await new Promise((resolve) => setImmediate(resolve));
  });

  it("stops at [DONE] and ignores the rest of the body; a finish_reason makes the stream complete", () => {
    const seen: ChatCompletionChunk[] = [];
    const { reader: r } = reader((chunk) => void seen.push(chunk));
    r.data(read(event("a"), finish, "data: [DONE]\n\n", event("after done")));
    r.data(read(event("later read")));
    r.end();
    expect(contents(seen)).toEqual(["a", ""]);
    expect(r.finished).toBe(true);
  });

  it("an event left unterminated at EOF still counts", () => {
    const seen: ChatCompletionChunk[] = [];
    const { reader: r } = reader((chunk) => void seen.push(chunk));
    r.data(Buffer.from(event("a").trimEnd()));
    expect(seen).toHaveLength(0);
    r.end();
    expect(contents(seen)).toEqual(["a"]);
    expect(r.finished).toBe(false);
  });
});

/**
 * The fast path inside the reader (wire/chunk-fast.ts): a whole stream of every kind of
 * chunk, cut into reads at every point, gives the sink exactly what JSON.parse and the
 * codec's mapper give event by event; with mergeDeltas, the text, tool calls, usage and
 * finish reasons are the same and only plain text chunks of one read are joined.
 */
describe("StreamReader fast path", () => {
  const head = { id: "chatcmpl-1", object: "chat.completion.chunk", created: 1764590000, model: "gpt-oss-120b", system_fingerprint: "fp_1" };
  const ev = (o: unknown): string => `data: ${JSON.stringify(o)}\n\n`;
  const content = (text: string): string => ev({ ...head, choices: [{ delta: { content: text }, index: 0 }] });
  const reasoning = (text: string): string => ev({ ...head, choices: [{ delta: { reasoning: text }, index: 0 }] });
  /** Every kind of event a stream can carry, plain runs between them. */
  const STREAM: string[] = [
    ev({ ...head, choices: [{ delta: { role: "assistant", content: "" }, index: 0 }] }),
    reasoning("The user"),
    reasoning(" asks é"),
    reasoning(" 🚀"),
    content("Hello"),
    content(" world"),
    content(' "quoted"'),
    content(" back\\slash\nline"),
    content(" after"),
    ": keep-alive comment\n\n",
    content(" é🚀"),
    ev({ ...head, choices: [{ delta: { content: " lp" }, index: 0, logprobs: { content: [{ token: " lp", logprob: -0.25, bytes: [32, 108, 112], top_logprobs: [{ token: " lp", logprob: -0.25, bytes: [32] }] }] } }] }),
    content(" next"),
    ev({ ...head, x_future_field: { content: "not text" }, choices: [{ delta: { content: " unknown-top" }, index: 0 }] }),
    ev({ ...head, choices: [{ delta: { content: " unknown-delta", x_future: 1 }, index: 0 }] }),
    content(" plain"),
    ev({ ...head, choices: [{ delta: { tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: "" } }] }, index: 0 }] }),
    ev({ ...head, choices: [{ delta: { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] }, index: 0 }] }),
    ev({ ...head, choices: [{ delta: { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }, index: 0 }] }),
    content(" more"),
    content(" text"),
    `data: ${JSON.stringify({ ...head, choices: [{ delta: { content: " multi" }, index: 0 }] }).replace('"choices"', '\ndata: "choices"')}\n\n`,
    content(" last"),
    ev({ ...head, choices: [{ delta: {}, finish_reason: "tool_calls", index: 0 }], usage: { prompt_tokens: 10, completion_tokens: 20, total_tokens: 30, completion_tokens_details: { reasoning_tokens: 3 } }, time_info: { queue_time: 0.001, total_time: 0.5, created: 1764590000.5 } }),
    "data: [DONE]\n\n",
  ];
  const BODY = Buffer.from(STREAM.join(""));

  /** The reference: each event through JSON.parse and the mapper, up to [DONE]. */
  function referenceChunks(): ChatCompletionChunk[] {
    const out: ChatCompletionChunk[] = [];
    const decoder = new SseDecoder();
    for (const e of [...decoder.push(BODY), ...decoder.end()]) {
      if (e.data === "[DONE]") break;
      out.push(chatCompletionChunkFromJson(JSON.parse(e.data)));
    }
    return out;
  }

  function run(reads: readonly Buffer[], mergeDeltas: boolean): ChatCompletionChunk[] {
    const seen: ChatCompletionChunk[] = [];
    const watchdog = new Watchdog(60_000, 60_000, () => {});
    watchdogs.push(watchdog);
    const r = new StreamReader((chunk) => void seen.push(chunk), watchdog, {}, { mergeDeltas });
    for (const b of reads) r.data(b);
    r.end();
    if (!r.finished) throw new Error("the stream did not finish");
    return seen;
  }

  /** As run(), with mergeDeltas, each read in its own turn (as socket reads come): held chunks go out in between. */
  async function runMerged(reads: readonly Buffer[]): Promise<ChatCompletionChunk[]> {
    const seen: ChatCompletionChunk[] = [];
    const watchdog = new Watchdog(60_000, 60_000, () => {});
    watchdogs.push(watchdog);
    const r = new StreamReader((chunk) => void seen.push(chunk), watchdog, {}, { mergeDeltas: true });
    for (const b of reads) {
      r.data(b);
      await Promise.resolve();
    }
    r.end();
    if (!r.finished) throw new Error("the stream did not finish");
    return seen;
  }

  /** What a caller makes of a stream: text per field, tool calls, usage, finish reasons, everything that is not plain text. */
  function summary(chunks: readonly ChatCompletionChunk[]): unknown {
    let text = "";
    let thought = "";
    const others: ChatCompletionChunk[] = [];
    for (const c of chunks) {
      const d = c.choices[0]?.delta;
      text += d?.content ?? "";
      thought += d?.reasoning ?? "";
      const plain = c.choices.length === 1 && c.usage === undefined && c.choices[0]!.finishReason === FinishReason.FINISH_REASON_UNSPECIFIED && c.choices[0]!.logprobs === undefined && d !== undefined && d.toolCalls.length === 0 && d.role === 0 && (d.content === undefined) !== (d.reasoning === undefined);
      if (!plain) others.push(c);
    }
    return { text, thought, others };
  }

  /** toStrictEqual, fast on the passing path (node's comparison; vitest's only for the diff). */
  const same = (got: unknown, want: unknown, where: string): void => {
    if (!isDeepStrictEqual(got, want)) expect(got, where).toStrictEqual(want);
  };
  const splitAt = (...at: number[]): Buffer[] => [0, ...at, BODY.length].slice(1).map((end, i, ends) => BODY.subarray(i === 0 ? 0 : ends[i - 1]!, end));

  it("engages: the reference mapper is skipped for the plain chunks of a stream", () => {
    const reference = referenceChunks();
    const watchdog = new Watchdog(60_000, 60_000, () => {});
    watchdogs.push(watchdog);
    const seen: ChatCompletionChunk[] = [];
    const r = new StreamReader((chunk) => void seen.push(chunk), watchdog, {});
    r.data(BODY);
    expect(seen).toStrictEqual(reference);
    // " asks é", " 🚀", " world", " after", " é🚀", " next", " plain", " more", " text", " last":
    // the plain chunks after the first of their field, with nothing to unescape.
    expect(r.fast).toBe(10);
  });

  it("gives the sink exactly the reference mapper's chunks, whatever the reads (every split point, and random multi-way splits)", () => {
    const reference = referenceChunks();
    expect(run([BODY], false)).toStrictEqual(reference);
    for (let i = 1; i < BODY.length; i++) same(run(splitAt(i), false), reference, `split at ${i}`);
    let seed = 18;
    const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let k = 0; k < 300; k++) {
      const cuts = [...new Set(Array.from({ length: 1 + rand(12) }, () => 1 + rand(BODY.length - 1)))].sort((a, b) => a - b);
      same(run(splitAt(...cuts), false), reference, `split at ${cuts.join(",")}`);
    }
    // One byte per read: every event completes in a copy, not a view of the read.
    expect(run(Array.from({ length: BODY.length }, (_, i) => BODY.subarray(i, i + 1)), false)).toStrictEqual(reference);
  }, 60_000);

  it("with mergeDeltas: text, reasoning, tool calls, logprobs, usage and finish reason are the reference's, whatever the reads; only plain chunks of one read are joined", async () => {
    const reference = referenceChunks();
    const want = summary(reference);
    const whole = await runMerged([BODY]);
    expect(summary(whole)).toStrictEqual(want);
    expect(whole.length).toBeLessThan(reference.length);
    // Runs of plain chunks in one read became one chunk each. The first of each field was
    // read by the mapper (the template is learned from it) and a text with an escape
    // (quote, backslash, newline) takes the full path, so runs break there.
    const texts = whole.map((c) => c.choices[0]?.delta?.content ?? c.choices[0]?.delta?.reasoning);
    expect(texts).toEqual(["", "The user", " asks é 🚀", "Hello", " world", ' "quoted"', " back\\slash\nline", " after é🚀", " lp", " next", " unknown-top", " unknown-delta", " plain", undefined, undefined, undefined, " more text", " multi", " last", undefined]);
    for (let i = 1; i < BODY.length; i++) same(summary(await runMerged(splitAt(i))), want, `split at ${i}`);
    // One event per read: nothing to join, the reference's chunks exactly.
    const perEvent = STREAM.map((e) => Buffer.from(e));
    expect(await runMerged(perEvent)).toStrictEqual(reference);
    // One event per data() call but all in one turn (one socket read of a chunked body, which
    // undici hands over one HTTP chunk at a time): joined as if they were one data() call.
    expect(run(perEvent, true)).toStrictEqual(whole);
  }, 60_000);

  it("with mergeDeltas: a chunk held to the end of a read goes out before the next read; its backpressure pauses the next read, its failure ends the attempt", async () => {
    const seen: ChatCompletionChunk[] = [];
    const stalls: unknown[] = [];
    const watchdog = new Watchdog(60_000, 60_000, (e) => stalls.push(e));
    watchdogs.push(watchdog);
    let release!: () => void;
    const full = new Promise<void>((resolve) => (release = resolve));
    let fail = false;
    const broke = new ProviderError({ reason: Reason.UPSTREAM_STREAM_ERROR, message: "the caller's sink broke" });
    const r = new StreamReader(
      (chunk) => {
        if (fail) throw broke;
        seen.push(chunk);
        return seen.length === 3 ? full : undefined;
      },
      watchdog,
      {},
      { mergeDeltas: true },
    );
    // "a" is read by the mapper (learning), then "b" and "c" are joined and held.
    expect(r.data(Buffer.from(content("a") + content("b")))).toBeUndefined();
    expect(r.data(Buffer.from(content("c")))).toBeUndefined();
    expect(seen.map((c) => c.choices[0]!.delta!.content)).toEqual(["a"]);
    await Promise.resolve();
    expect(seen.map((c) => c.choices[0]!.delta!.content)).toEqual(["a", "bc"]);
    // The third chunk's sink asks to wait: the next read returns that wait.
    r.data(Buffer.from(content("d")));
    await Promise.resolve();
    expect(seen.map((c) => c.choices[0]!.delta!.content)).toEqual(["a", "bc", "d"]);
    const wait = r.data(Buffer.from(": ping\n\n"));
    expect(wait).toBeInstanceOf(Promise);
    release();
    await wait;
    // A sink that throws after the read: the attempt ends through the watchdog, with that error.
    fail = true;
    r.data(Buffer.from(content("e")));
    expect(stalls).toHaveLength(0);
    await Promise.resolve();
    expect(stalls).toHaveLength(1);
    expect(stalls[0]).toBe(broke);
  });

  it("several choices taking turns (n=2): each choice's chunks are the reference's, never another choice's template", () => {
    const two: string[] = [ev({ ...head, choices: [{ delta: { role: "assistant" }, index: 0 }] }), ev({ ...head, choices: [{ delta: { role: "assistant" }, index: 1 }] })];
    for (let i = 0; i < 40; i++) two.push(ev({ ...head, choices: [{ delta: { content: ` a${i}` }, index: i % 2 }] }));
    two.push(ev({ ...head, choices: [{ delta: {}, finish_reason: "stop", index: 0 }] }), ev({ ...head, choices: [{ delta: {}, finish_reason: "length", index: 1 }], usage: { prompt_tokens: 1, completion_tokens: 40, total_tokens: 41 } }));
    const body = Buffer.from(two.join(""));
    const decoder = new SseDecoder();
    const reference = decoder.push(body).map((e) => chatCompletionChunkFromJson(JSON.parse(e.data)));
    for (const reads of [[body], Array.from({ length: two.length }, (_, i) => Buffer.from(two[i]!))]) {
      const watchdog = new Watchdog(60_000, 60_000, () => {});
      watchdogs.push(watchdog);
      const seen: ChatCompletionChunk[] = [];
      const r = new StreamReader((chunk) => void seen.push(chunk), watchdog, {});
      for (const b of reads) r.data(b);
      r.end();
      expect(seen).toStrictEqual(reference);
    }
  });

  it("an event the mapper refuses (choices not an array, not JSON) fails the read as it does without the fast path", () => {
    for (const bad of [ev({ ...head, choices: "x" }), "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"content\":\"x\"}\n\n"]) {
      for (const merge of [false, true]) {
        const seen: ChatCompletionChunk[] = [];
        const watchdog = new Watchdog(60_000, 60_000, () => {});
        watchdogs.push(watchdog);
        const r = new StreamReader((chunk) => void seen.push(chunk), watchdog, {}, { mergeDeltas: merge });
        let thrown: unknown;
        try {
          r.data(Buffer.from(content("a") + content("b") + bad));
        } catch (err) {
          thrown = err;
        }
        expect(thrown, bad).toBeInstanceOf(Error);
        expect((thrown as Error).message).toMatch(/choices is not an array|not JSON/);
        // What came before the bad event was delivered, in full.
        expect(seen.map((c) => c.choices[0]?.delta?.content).join("")).toBe("ab");
      }
    }
  });

  it("a chunk whose choices is null or absent (a usage-only chunk, as the SDK's types allow) is the mapper's, after the fast path's chunks", () => {
    for (const odd of [ev({ ...head, choices: null }), ev({ ...head })]) {
      for (const merge of [false, true]) {
        const seen: ChatCompletionChunk[] = [];
        const watchdog = new Watchdog(60_000, 60_000, () => {});
        watchdogs.push(watchdog);
        const r = new StreamReader((chunk) => void seen.push(chunk), watchdog, {}, { mergeDeltas: merge });
        r.data(Buffer.from(content("a") + content("b") + odd));
        expect(seen.map((c) => c.choices[0]?.delta?.content ?? "").join(""), odd).toBe("ab");
        expect(seen.at(-1)!.choices, odd).toEqual([]);
      }
    }
  });
});
