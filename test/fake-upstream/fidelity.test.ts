/**
 * The fake upstream behaves as Cerebras documents (CEREBRAS_API.md §2-§4, the SDK's doc
 * comments), so tests against it can catch a gateway that loses or invents something:
 * it refuses keys Cerebras refuses at any depth, honours stop, n and reasoning_format, and
 * sends logprobs, service_tier_used, image tokens, prediction tokens, empty deltas and
 * usage apart from the finish chunk when asked. Talks to the fake directly, over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeUpstream, type FakeUpstream } from "../../src/fake-upstream/server.js";

// any: the replies are loose JSON that the test reads field by field; narrowing every read would only add noise.
type Json = Record<string, any>;

let fake: FakeUpstream;
beforeAll(async () => {
  fake = await startFakeUpstream({ emptyDeltas: false });
});
afterAll(async () => {
  await fake.close();
});

const IMAGE = "data:image/png;base64,iVBORw0KGgo=";

async function chat(body: Json, f: FakeUpstream = fake): Promise<{ status: number; json: Json; events: Json[] }> {
  const res = await fetch(`${f.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "gpt-oss-120b", ...body }) });
  const text = await res.text();
  if (body["stream"] === true && res.status === 200) {
    const events = text.split("\n\n").filter((e) => e.startsWith("data: ") && e !== "data: [DONE]").map((e) => JSON.parse(e.slice(6)) as Json);
    return { status: res.status, json: {}, events };
  }
  return { status: res.status, json: JSON.parse(text) as Json, events: [] };
}

const user = (content: unknown) => ({ messages: [{ role: "user", content }] });

describe("fake upstream: what Cerebras refuses", () => {
  it.each<[string, Json, string]>([
    ["a top-level OpenAI-only field", { ...user("x"), top_k: 3 }, "body.top_k: property 'body.top_k' is unsupported"],
    ["stream_options.include_obfuscation", { ...user("x"), stream: true, stream_options: { include_usage: true, include_obfuscation: false } }, "body.stream_options.include_obfuscation"],
    ["a tool function's unknown key", { ...user("x"), tools: [{ type: "function", function: { name: "f", parameters: {}, extra: 1 } }] }, "body.tools.0.function.extra"],
    ["an assistant message's refusal", { messages: [{ role: "user", content: "x" }, { role: "assistant", content: "y", refusal: null }, { role: "user", content: "z" }] }, "messages.1.assistant.refusal"],
    ["an image in an assistant message", { messages: [{ role: "user", content: "x" }, { role: "assistant", content: [{ type: "image", image: IMAGE }] }, { role: "user", content: "z" }] }, "messages.1.assistant.content.0.type"],
    ["more than 4 stop sequences", { ...user("x"), stop: ["a", "b", "c", "d", "e"] }, "body.stop"],
    ["a fractional seed", { ...user("x"), seed: 1.5 }, "body.seed"],
    ["raw reasoning with a JSON format", { ...user("x"), reasoning_format: "raw", response_format: { type: "json_object" } }, "body.reasoning_format"],
    ["an image for a model without vision", user([{ type: "image_url", image_url: { url: IMAGE } }]), "does not support image inputs"],
  ])("%s → 400 wrong_api_format", async (_name, body, message) => {
    const r = await chat(body);
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ code: "wrong_api_format", type: "invalid_request_error" });
    expect(r.json["message"]).toContain(message);
  });

  it("accepts what Cerebras' types allow: a tool message's name, a tool call's index, reasoning as text parts, the image part", async () => {
    const r = await chat({
      model: "gemma-4-31b",
      messages: [
        { role: "user", content: [{ type: "text", text: "weather?" }, { type: "image", image: IMAGE }] },
        { role: "assistant", reasoning: [{ type: "text", text: "call it" }], tool_calls: [{ id: "181e286b1", type: "function", index: 0, function: { name: "weather", arguments: "{}" } }] },
        { role: "tool", tool_call_id: "181e286b1", name: "weather", content: "sunny" },
      ],
    });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json["choices"][0].message.content).toBe("The tool returned: sunny");
  });
});

describe("fake upstream: what Cerebras honours", () => {
  it("stop: the text ends before the first stop sequence, which is not returned", async () => {
    const r = await chat({ ...user("one two three four"), reasoning_effort: "low", stop: ["four", "three"] });
    expect(r.json["choices"][0]).toMatchObject({ finish_reason: "stop", message: { content: "Echo: one two" } });
  });

  it("n: that many choices, unary and streamed", async () => {
    const unary = await chat({ ...user("hi"), n: 2 });
    expect(unary.json["choices"].map((c: Json) => c["index"])).toEqual([0, 1]);
    const streamed = await chat({ ...user("hi"), n: 2, stream: true });
    const last = streamed.events.at(-1)!;
    expect(last["choices"].map((c: Json) => [c["index"], c["finish_reason"]])).toEqual([[0, "stop"], [1, "stop"]]);
    expect(new Set(streamed.events.flatMap((e) => e["choices"].map((c: Json) => c["index"])))).toEqual(new Set([0, 1]));
    expect(last["usage"]["completion_tokens"]).toBe(unary.json["usage"]["completion_tokens"]);
  });

  it("seed: the same request gets the same answer", async () => {
    const a = await chat({ ...user("determinism"), seed: 42 });
    const b = await chat({ ...user("determinism"), seed: 42 });
    expect(a.json["choices"]).toEqual(b.json["choices"]);
  });

  it("reasoning_format: none is the model's default (reasoning shown), hidden counts it but returns none, raw puts it inline", async () => {
    const none = await chat({ ...user("q"), reasoning_format: "none" });
    expect(none.json["choices"][0].message.reasoning).toContain("The user asked");
    const hidden = await chat({ ...user("q"), reasoning_format: "hidden" });
    expect(hidden.json["choices"][0].message.reasoning).toBeUndefined();
    expect(hidden.json["usage"]["completion_tokens_details"]["reasoning_tokens"]).toBeGreaterThan(0);
    const raw = await chat({ ...user("q"), reasoning_format: "raw" });
    expect(raw.json["choices"][0].message.content).toMatch(/^<think>The user asked.*<\/think>Echo: q$/);
  });

  it("logprobs: one entry per token with top_logprobs alternatives; reasoning's apart only under parsed", async () => {
    const parsed = await chat({ ...user("a b"), logprobs: true, top_logprobs: 2, reasoning_format: "parsed" });
    const c = parsed.json["choices"][0];
    expect(c.logprobs.content.map((t: Json) => t["token"]).join("")).toBe("Echo: a b");
    expect(c.logprobs.content[0].top_logprobs).toHaveLength(2);
    expect(c.logprobs.content[0].bytes).toEqual([...Buffer.from("Echo:")]);
    expect(c.reasoning_logprobs.content.length).toBeGreaterThan(0);
    const textParsed = await chat({ ...user("a b"), logprobs: true, reasoning_format: "text_parsed" });
    expect(textParsed.json["choices"][0].reasoning_logprobs).toBeUndefined();
    const streamed = await chat({ ...user("a b"), logprobs: true, stream: true, reasoning_effort: "low", reasoning_format: "parsed" });
    expect(streamed.events.some((e) => e["choices"][0]?.logprobs?.content?.[0]?.token === " b")).toBe(true);
    expect(streamed.events.some((e) => e["choices"][0]?.reasoning_logprobs !== undefined)).toBe(true);
  });

  it("service_tier auto: service_tier_used says which tier served", async () => {
    expect((await chat({ ...user("x"), service_tier: "auto" })).json).toMatchObject({ service_tier: "auto", service_tier_used: "default" });
    expect((await chat({ ...user("x"), service_tier: "flex" })).json["service_tier_used"]).toBeUndefined();
  });

  it("images: image_tokens, counted in prompt_tokens too; a prediction's accepted and rejected tokens", async () => {
    const r = await chat({ model: "gemma-4-31b", ...user([{ type: "text", text: "look" }, { type: "image_url", image_url: { url: IMAGE } }]), prediction: { type: "content", content: "Echo: look elsewhere" } });
    expect(r.json["usage"]["image_tokens"]).toBe(256);
    expect(r.json["usage"]["prompt_tokens"]).toBeGreaterThan(256);
    expect(r.json["usage"]["completion_tokens_details"]).toMatchObject({ accepted_prediction_tokens: 2, rejected_prediction_tokens: 1 });
  });

  it("empty deltas when asked (emptyDeltas), as Cerebras was recorded sending", async () => {
    const f = await startFakeUpstream({ emptyDeltas: true });
    try {
      const r = await chat({ ...user("x"), stream: true }, f);
      const empties = r.events.filter((e) => e["choices"][0] && Object.keys(e["choices"][0].delta).length === 0 && e["choices"][0].finish_reason === undefined);
      expect(empties).toHaveLength(1);
    } finally {
      await f.close();
    }
  });

  it.each(["empty", "null", "absent"] as const)("usage apart from the finish chunk, choices %s", async (choices) => {
    fake.failNext({ kind: "usage-apart", choices });
    const r = await chat({ ...user("x"), stream: true });
    const last = r.events.at(-1)!;
    expect(last["usage"]["total_tokens"]).toBeGreaterThan(0);
    expect(last["choices"]).toEqual(choices === "empty" ? [] : choices === "null" ? null : undefined);
    expect(r.events.at(-2)!["usage"]).toBeUndefined();
  });

  it("odd values when told to: an unknown finish_reason and role", async () => {
    fake.failNext({ kind: "odd-values", finishReason: "eos_token", role: "model" });
    const r = await chat(user("x"));
    expect(r.json["choices"][0]).toMatchObject({ finish_reason: "eos_token", message: { role: "model" } });
  });

  it("records the body as it came, byte for byte", async () => {
    const text = '{"model":"gpt-oss-120b","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"2":{},"1":{}}}}]}';
    await fetch(`${fake.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: text });
    expect(fake.chatRequests().at(-1)!.rawBody).toBe(text);
  });
});
