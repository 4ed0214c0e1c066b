/**
 * OpenAI fields the shim translates, refuses or drops, through the official openai SDK.
 * A caller must never get a different answer than it asked for without being told:
 * fields with a Cerebras equivalent are translated (legacy `functions` / `function_call`,
 * `reasoning: {effort}`, `safety_identifier`); fields Cerebras cannot honour and that
 * change the answer are a 400 naming them (unless DROP_UNSUPPORTED_FIELDS=true); only
 * fields that change nothing are accepted and dropped.
 */
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatBody, json, raw, startHttpHarness, type HttpHarness } from "../helpers/http.js";

let h: HttpHarness;
let lenient: HttpHarness;
/** The lenient gateway's log lines, parsed. */
const lenientLog: Array<Record<string, unknown>> = [];
beforeAll(async () => {
  h = await startHttpHarness();
  lenient = await startHttpHarness({ env: { DROP_UNSUPPORTED_FIELDS: "true" }, logSink: { write: (line: string) => void lenientLog.push(JSON.parse(line) as Record<string, unknown>) } });
});
afterAll(async () => {
  await h.close();
  await lenient.close();
});

const upstream = (x: HttpHarness = h): Record<string, unknown> => x.fake.chatRequests().at(-1)!.body as Record<string, unknown>;
const WEATHER = { name: "weather", description: "Weather for a city", parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } };

describe("legacy functions and function_call (openai SDK)", () => {
  it("become tools and tool_choice upstream, and the answer comes back as a function_call", async () => {
    const completion = await h.openai.chat.completions.create({
      model: "gpt-oss-120b",
      messages: [{ role: "user", content: "What is the weather in Florence?" }],
      functions: [WEATHER],
      function_call: { name: "weather" },
    });
    expect(upstream()).toMatchObject({
      tools: [{ type: "function", function: WEATHER }],
      tool_choice: { type: "function", function: { name: "weather" } },
      parallel_tool_calls: false,
    });
    expect(upstream()).not.toHaveProperty("functions");
    const choice = completion.choices[0]!;
    expect(choice.finish_reason).toBe("function_call");
    expect(choice.message.function_call).toEqual({ name: "weather", arguments: expect.stringContaining("city") });
    expect(choice.message.tool_calls).toBeUndefined();
  });

  it("streamed: the call arrives as function_call deltas", async () => {
    const stream = await h.openai.chat.completions.create({ model: "gpt-oss-120b", messages: [{ role: "user", content: "weather please" }], functions: [WEATHER], function_call: "auto", stream: true });
    let name = "";
    let args = "";
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      const c = chunk.choices[0];
      name += c?.delta.function_call?.name ?? "";
      args += c?.delta.function_call?.arguments ?? "";
      expect(c?.delta.tool_calls).toBeUndefined();
      finish = c?.finish_reason ?? finish;
    }
    expect(upstream()).toMatchObject({ tool_choice: "auto" });
    expect({ name, finish }).toEqual({ name: "weather", finish: "function_call" });
    expect(JSON.parse(args)).toHaveProperty("city");
  });

  it("a legacy conversation (assistant function_call, then a function message) is replayed as tool calls and a tool message", async () => {
    const completion = await h.openai.chat.completions.create({
      model: "gpt-oss-120b",
      messages: [
        { role: "user", content: "weather in Florence?" },
        { role: "assistant", content: null, function_call: { name: "weather", arguments: '{"city":"Florence"}' } },
        { role: "function", name: "weather", content: "sunny, 24C" },
      ],
      functions: [WEATHER],
    });
    const messages = upstream()["messages"] as Array<Record<string, unknown>>;
    expect(messages[1]).toEqual({ role: "assistant", tool_calls: [{ id: "call_1", type: "function", function: { name: "weather", arguments: '{"city":"Florence"}' } }] });
    expect(messages[2]).toEqual({ role: "tool", tool_call_id: "call_1", name: "weather", content: "sunny, 24C" });
    expect(completion.choices[0]!.message.content).toBe("The tool returned: sunny, 24C");
  });

  it("functions and tools together → 400 naming functions", async () => {
    const err = await h.openai.chat.completions.create({ model: "gpt-oss-120b", messages: [{ role: "user", content: "x" }], functions: [WEATHER], tools: [{ type: "function", function: WEATHER }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("functions");
  });
});

describe("fields with a Cerebras equivalent", () => {
  it("reasoning: {effort} → reasoning_effort", async () => {
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("x", { reasoning: { effort: "low" } })) });
    expect(res.status, res.text).toBe(200);
    expect(upstream()).toMatchObject({ reasoning_effort: "low" });
    expect(upstream()).not.toHaveProperty("reasoning");
  });

  it("safety_identifier → user (the same end-user id for abuse monitoring); disable_reasoning: true → reasoning_effort none", async () => {
    await h.openai.chat.completions.create({ model: "gpt-oss-120b", messages: [{ role: "user", content: "x" }], safety_identifier: "user-42" });
    expect(upstream()).toMatchObject({ user: "user-42" });
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("x", { model: "zai-glm-4.7", disable_reasoning: true })) });
    expect(res.status, res.text).toBe(200);
    expect(upstream()).toMatchObject({ reasoning_effort: "none" });
    expect(upstream()).not.toHaveProperty("disable_reasoning");
  });
});

describe("fields Cerebras cannot honour, that change the answer", () => {
  const cases: ReadonlyArray<[string, Record<string, unknown>]> = [
    ["web_search_options", { web_search_options: {} }],
    ["top_k", { top_k: 5 }],
    ["min_p", { min_p: 0.1 }],
    ["verbosity", { verbosity: "low" }],
    ["audio", { audio: { voice: "alloy", format: "mp3" } }],
    ["modalities", { modalities: ["text", "audio"] }],
    ["moderation", { moderation: { model: "omni-moderation-latest" } }],
    ["reasoning.summary", { reasoning: { effort: "low", summary: "auto" } }],
  ];
  it.each(cases)("%s → 400 naming it, nothing sent upstream", async (field, extra) => {
    const before = h.fake.chatRequests().length;
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("x", extra)) });
    expect(res.status, res.text).toBe(400);
    const error = (JSON.parse(res.text) as { error: { param: string; message: string } }).error;
    expect(error.param).toBe(field);
    expect(error.message).toContain("DROP_UNSUPPORTED_FIELDS");
    expect(h.fake.chatRequests().length).toBe(before);
  });

  it("with DROP_UNSUPPORTED_FIELDS=true they are dropped instead (and logged as ignored)", async () => {
    const res = await raw(lenient.httpPort, { path: "/v1/chat/completions", ...json(chatBody("x", { top_k: 5, min_p: 0.1, verbosity: "low", web_search_options: {} })) });
    expect(res.status, res.text).toBe(200);
    expect(upstream(lenient)).toEqual({ model: "gpt-oss-120b", messages: [{ role: "user", content: "x" }] });
    const line = lenientLog.find((l) => Array.isArray(l["ignoredFields"]));
    expect(line?.["ignoredFields"]).toEqual(["top_k", "min_p", "verbosity", "web_search_options"]);
  });

  it("modalities: [\"text\"] asks for nothing Cerebras does not do: accepted and dropped", async () => {
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("x", { modalities: ["text"] })) });
    expect(res.status, res.text).toBe(200);
    expect(upstream()).toEqual({ model: "gpt-oss-120b", messages: [{ role: "user", content: "x" }] });
  });
});

describe("fields that change nothing: accepted and dropped", () => {
  it("store, metadata, prompt_cache_retention, prompt_cache_options, stream_options.include_obfuscation (openai SDK)", async () => {
    const stream = await h.openai.chat.completions.create({
      model: "gpt-oss-120b",
      messages: [{ role: "user", content: "x" }],
      store: true,
      metadata: { team: "a" },
      prompt_cache_retention: "24h",
      prompt_cache_options: { mode: "implicit" },
      stream: true,
      stream_options: { include_usage: true, include_obfuscation: false },
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text).toBe("Echo: x");
    expect(upstream()).toEqual({ model: "gpt-oss-120b", messages: [{ role: "user", content: "x" }], stream: true, stream_options: { include_usage: true } });
  });
});
