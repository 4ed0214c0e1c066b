/**
 * The streamed body's reader on its own: every event of a socket read reaches the sink,
 * the sink's backpressure comes back as one promise for the read (which pauses the
 * socket), and a failure mid-read never leaves a promise rejecting unobserved.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import type { CallStats } from "../../src/core/provider.js";
import { StreamReader } from "../../src/providers/cerebras/stream-reader.js";
import { Watchdog } from "../../src/providers/cerebras/watchdog.js";

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
