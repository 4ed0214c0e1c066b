/**
 * The CLI's pure parts: how tokens are rendered (reasoning dimmed only when asked to
 * colour, i.e. on a terminal), the figures line, durations and exit codes.
 */
import { describe, expect, it } from "vitest";
import { ChatCompletionChunk, FinishReason, type DeepPartial } from "../../gen/aigateway/v1/chat.js";
import { parseDuration } from "../../src/cli/args.js";
import { exitCodeFor } from "../../src/cli/exit-codes.js";
import { figuresLine, StreamStats, TokenPrinter } from "../../src/cli/render.js";
import { Code, GatewayError, Reason } from "../../src/core/errors.js";

const chunk = (delta: { content?: string; reasoning?: string }, extra: DeepPartial<ChatCompletionChunk> = {}) =>
  ChatCompletionChunk.fromPartial({ model: "m", choices: [{ delta }], ...extra });

function render(color: boolean, showReasoning = true): string {
  let out = "";
  const p = new TokenPrinter((s) => (out += s), { color, showReasoning });
  for (const c of [chunk({}), chunk({ reasoning: "Think" }), chunk({ reasoning: "ing." }), chunk({ content: "Hi" }), chunk({ content: " there" })]) p.chunk(c);
  p.finish();
  return out;
}

describe("TokenPrinter", () => {
  it("dims reasoning on a terminal, then a blank line, then the answer", () => {
    expect(render(true)).toBe("\x1b[2mThinking.\x1b[22m\n\nHi there\n");
  });

  it("writes no escape codes otherwise", () => {
    expect(render(false)).toBe("Thinking.\n\nHi there\n");
  });

  it("can leave reasoning out", () => {
    expect(render(true, false)).toBe("Hi there\n");
  });

  it("restores the terminal when a stream ends inside reasoning", () => {
    let out = "";
    const p = new TokenPrinter((s) => (out += s), { color: true, showReasoning: true });
    p.chunk(chunk({ reasoning: "cut" }));
    p.finish();
    expect(out).toBe("\x1b[2mcut\x1b[22m\n");
  });

  it("prints nothing, not even a newline, for an empty answer", () => {
    let out = "";
    const p = new TokenPrinter((s) => (out += s), { color: false, showReasoning: true });
    p.chunk(chunk({}));
    p.finish();
    expect(out).toBe("");
  });
});

describe("figures", () => {
  it("time to first token, tokens/s over the generation, totals, model, finish reason when not stop, request id", () => {
    let t = 0;
    const stats = new StreamStats(() => t);
    t = 5;
    stats.chunk(chunk({}));
    t = 120;
    stats.chunk(chunk({ content: "a" }));
    t = 620;
    stats.chunk(
      chunk({}, { choices: [{ delta: {}, finishReason: FinishReason.FINISH_REASON_LENGTH }], usage: { promptTokens: 7, completionTokens: 50, totalTokens: 57, costUsd: 0.0000400 } }),
    );
    expect(figuresLine(stats, "req-1")).toBe("ttft 120 ms · 100 tok/s · 57 tokens (7 in, 50 out) · $0.0000400 · m · finish: length · request req-1");
  });
});

describe("parseDuration", () => {
  it.each([
    ["300ms", 300],
    ["30s", 30_000],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["2.5", 2500],
  ])("%s → %i ms", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(["", "0", "-1s", "soon", "5 d", "1e3"])("rejects %j", (text) => expect(parseDuration(text)).toBeUndefined());
});

describe("exitCodeFor", () => {
  const e = (code: Code) => new GatewayError({ code, reason: Reason.INTERNAL, message: "x" });
  it.each([
    [Code.INVALID_ARGUMENT, 3],
    [Code.DEADLINE_EXCEEDED, 4],
    [Code.NOT_FOUND, 5],
    [Code.RESOURCE_EXHAUSTED, 8],
    [Code.INTERNAL, 13],
    [Code.UNAVAILABLE, 14],
    [Code.UNAUTHENTICATED, 16],
    [Code.CANCELLED, 1],
    [Code.UNKNOWN, 1],
  ])("gRPC %i → exit %i", (code, exit) => expect(exitCodeFor(e(code))).toBe(exit));

  it("anything else → 1", () => expect(exitCodeFor(new Error("x"))).toBe(1));
});
