/**
 * The gateway's own replies go through the generated fast encoders, not ts-proto's: a
 * unary completion, a stream (content, tool-call, reasoning and final chunks) and the
 * model catalog, from the fake upstream through the real server, with ts-proto's encoders
 * spied on. (A value of an unexpected JS type would silently take ts-proto's slower path.)
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ChatCompletion, ChatCompletionChunk, ToolChoiceMode } from "../gen/aigateway/v1/chat.js";
import { ListModelsResponse, Model } from "../gen/aigateway/v1/models.js";
import { create, startHarness, stream, userRequest, type Harness } from "./helpers/harness.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

/** Runs `call` with ts-proto's reply encoders spied on; returns how often each ran. */
async function tsProtoEncodes<T>(call: () => Promise<T>): Promise<{ result: T; calls: number }> {
  const spies = [ChatCompletion, ChatCompletionChunk, ListModelsResponse, Model].map((fns) => vi.spyOn(fns, "encode"));
  try {
    const result = await call();
    return { result, calls: spies.reduce((n, s) => n + s.mock.calls.length, 0) };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

describe("the gateway's replies take the generated encoders' fast path", () => {
  it("for a unary completion", async () => {
    const { result, calls } = await tsProtoEncodes(() => create(h.chat, userRequest("hello")));
    expect(result.choices[0]?.message?.content).toBeTruthy();
    expect(result.usage).toBeDefined();
    expect(calls).toBe(0);
  });

  it("for every chunk of a stream, and of a tool-call stream", async () => {
    const text = await tsProtoEncodes(() => stream(h.chat, userRequest("hello")));
    expect(text.result.error).toBeUndefined();
    expect(text.result.chunks.length).toBeGreaterThan(2);
    expect(text.calls).toBe(0);
    const tools = await tsProtoEncodes(() =>
      stream(
        h.chat,
        userRequest("weather in Florence?", {
          tools: [{ function: { name: "weather", parameters: { type: "object", properties: { location: { type: "string" } } } } }],
          toolChoice: { choice: { $case: "mode", value: ToolChoiceMode.TOOL_CHOICE_MODE_REQUIRED } },
        }),
      ),
    );
    expect(tools.result.error).toBeUndefined();
    expect(tools.result.chunks.some((c) => (c.choices[0]?.delta?.toolCalls.length ?? 0) > 0)).toBe(true);
    expect(tools.calls).toBe(0);
  });

  it("for the model catalog", async () => {
    const { result, calls } = await tsProtoEncodes(
      () => new Promise<ListModelsResponse>((resolve, reject) => h.models.listModels({}, (err, res) => (err ? reject(err) : resolve(res!)))),
    );
    expect(result.models.length).toBeGreaterThan(0);
    const one = await tsProtoEncodes(() => new Promise<Model>((resolve, reject) => h.models.getModel({ id: result.models[0]!.id }, (err, res) => (err ? reject(err) : resolve(res!)))));
    expect(one.result.id).toBe(result.models[0]!.id);
    expect(calls + one.calls).toBe(0);
  });
});
