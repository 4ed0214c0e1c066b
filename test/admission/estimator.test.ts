/**
 * The prompt-token estimator against a real o200k tokenizer (gpt-tokenizer's
 * o200k_base; gpt-oss uses o200k) over a varied corpus: the figures the README quotes.
 * The weights were fitted on the first corpus (in-sample); the held-out files were not
 * looked at while fitting. Run with `npx vitest run test/admission/estimator.test.ts`
 * to see the table.
 */
import { countTokens } from "gpt-tokenizer/encoding/o200k_base";
import { describe, expect, it } from "vitest";
import { ChatCompletionChunk, ChatCompletionRequest, Delta, Role, type DeepPartial } from "../../gen/aigateway/v1/chat.js";
import { CompletionTally, estimatePromptTokens, estimateTextTokens, IMAGE_TOKENS } from "../../src/admission/estimator.js";
import { corpus, heldOut, type Sample } from "../fixtures/estimator-corpus.js";

interface Row {
  readonly kind: string;
  readonly real: number;
  readonly estimate: number;
  /** estimate / real − 1 */
  readonly error: number;
}

function measure(samples: readonly Sample[]): { rows: Row[]; overall: number; meanAbs: number; worst: Row } {
  const rows = samples.map((s) => {
    const real = countTokens(s.text);
    const estimate = estimateTextTokens(s.text);
    return { kind: s.kind, real, estimate, error: estimate / real - 1 };
  });
  const real = rows.reduce((n, r) => n + r.real, 0);
  const estimate = rows.reduce((n, r) => n + r.estimate, 0);
  const worst = rows.reduce((a, b) => (Math.abs(b.error) > Math.abs(a.error) ? b : a));
  return { rows, overall: estimate / real - 1, meanAbs: rows.reduce((n, r) => n + Math.abs(r.error), 0) / rows.length, worst };
}

function print(title: string, m: ReturnType<typeof measure>): void {
  const pct = (x: number): string => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%`;
  const lines = m.rows.map((r) => `| ${r.kind} | ${r.real} | ${r.estimate} | ${pct(r.error)} |`);
  console.log([`${title}: overall ${pct(m.overall)}, mean |error| ${(m.meanAbs * 100).toFixed(1)}%, worst ${m.worst.kind} ${pct(m.worst.error)}`, "| sample | o200k | estimate | error |", "|---|---|---|---|", ...lines].join("\n"));
}

describe("the prompt-token estimator against o200k", () => {
  it("is within 20% on every sample of the fitting corpus, and within 3% over all of it", () => {
    const m = measure(corpus());
    print("fitting corpus", m);
    for (const r of m.rows) expect(Math.abs(r.error), r.kind).toBeLessThan(0.2);
    expect(Math.abs(m.overall)).toBeLessThan(0.03);
  });

  it("is within 25% on every held-out sample, and within 10% over all of them", () => {
    const m = measure(heldOut());
    print("held-out files", m);
    for (const r of m.rows) expect(Math.abs(r.error), r.kind).toBeLessThan(0.25);
    expect(Math.abs(m.overall)).toBeLessThan(0.1);
  });

  it("counts every part of a request the model reads: messages, tool calls, tool schemas, the output schema, images", () => {
    const text = (s: string): ChatCompletionRequest["messages"][number] => ({ role: Role.ROLE_USER, contentKind: { $case: "content", value: s }, toolCalls: [], toolCallId: "" });
    const bare = ChatCompletionRequest.fromPartial({ messages: [text("What is the weather in Florence?")] });
    const base = estimatePromptTokens(bare);
    expect(base).toBeGreaterThan(estimateTextTokens("What is the weather in Florence?"));

    const schema = { type: "object", properties: { city: { type: "string" }, unit: { type: "string", enum: ["c", "f"] } }, required: ["city", "unit"], additionalProperties: false };
    const withTools = ChatCompletionRequest.fromPartial({ ...bare, tools: [{ function: { name: "weather", description: "Current weather for a city", parameters: schema } }] });
    expect(estimatePromptTokens(withTools)).toBeGreaterThanOrEqual(base + estimateTextTokens(JSON.stringify(schema)));

    const withFormat = ChatCompletionRequest.fromPartial({ ...bare, responseFormat: { format: { $case: "jsonSchema", value: { name: "w", schema } } } });
    expect(estimatePromptTokens(withFormat)).toBe(base + estimateTextTokens(JSON.stringify(schema)));

    const withImage = ChatCompletionRequest.fromPartial({
      messages: [{ role: Role.ROLE_USER, contentKind: { $case: "contentParts", value: { parts: [{ part: { $case: "text", value: "What is this?" } }, { part: { $case: "imageUrl", value: { url: "data:image/png;base64,AAAA" } } }] } } }],
    });
    expect(estimatePromptTokens(withImage)).toBeGreaterThanOrEqual(IMAGE_TOKENS);

    const withCall = ChatCompletionRequest.fromPartial({
      messages: [...bare.messages, { role: Role.ROLE_ASSISTANT, toolCalls: [{ id: "a1b2c3d4e", type: "function", function: { name: "weather", arguments: '{"city":"Florence","unit":"c"}' } }] }],
    });
    expect(estimatePromptTokens(withCall)).toBeGreaterThan(base + estimateTextTokens('{"city":"Florence","unit":"c"}'));
  });

  it("tallies what a stream delivered: content, reasoning and tool-call arguments", () => {
    const tally = new CompletionTally();
    const chunk = (delta: DeepPartial<Delta>): ChatCompletionChunk => ({ ...ChatCompletionChunk.fromPartial({}), choices: [{ index: 0, finishReason: 0, delta: Delta.fromPartial(delta as Delta) }] });
    tally.add(chunk({ role: Role.ROLE_ASSISTANT }));
    expect(tally.tokens).toBe(0);
    tally.add(chunk({ reasoning: "The user wants a greeting." }));
    tally.add(chunk({ content: "Hello there" }));
    tally.add(chunk({ toolCalls: [{ index: 0, function: { name: "weather", arguments: '{"city":' } }] }));
    const expected = estimateTextTokens("The user wants a greeting.") + estimateTextTokens("Hello there") + estimateTextTokens("weather") + estimateTextTokens('{"city":');
    expect(tally.tokens).toBe(expected);
  });
});
