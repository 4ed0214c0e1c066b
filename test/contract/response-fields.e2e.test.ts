/**
 * What Cerebras answers reaches the caller, on both transports: every usage and timing
 * field of CEREBRAS_API.md §3 (image tokens, prediction tokens, time_info,
 * service_tier_used), logprobs, finish reasons and roles the contract does not know yet
 * (FINISH_REASON_OTHER / ROLE_OTHER plus the raw string on gRPC, the string itself over
 * HTTP), and a stream whose usage comes in a chunk with `choices` empty, null or absent.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ContentPart, FinishReason, ReasoningFormat, Role, ServiceTier, type ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { create, stream, userRequest } from "../helpers/harness.js";
import { chatBody, json, raw, sseData, startHttpHarness, type HttpHarness } from "../helpers/http.js";

let h: HttpHarness;
beforeAll(async () => {
  h = await startHttpHarness({ fake: { emptyDeltas: true } });
});
afterAll(async () => {
  await h.close();
});

const IMAGE = "data:image/png;base64,iVBORw0KGgo=";
const visionRequest = (): ChatCompletionRequest =>
  userRequest("x", {
    model: "gemma-4-31b",
    serviceTier: ServiceTier.SERVICE_TIER_AUTO,
    prediction: { contentKind: { $case: "content", value: "Echo: look elsewhere" } },
    messages: [{ role: Role.ROLE_USER, contentKind: { $case: "contentParts", value: { parts: [ContentPart.fromPartial({ part: { $case: "text", value: "look" } }), { part: { $case: "image", value: IMAGE } }] } }, toolCalls: [], toolCallId: "" }],
  });
const visionJson = {
  model: "gemma-4-31b",
  service_tier: "auto",
  prediction: { type: "content", content: "Echo: look elsewhere" },
  messages: [{ role: "user", content: [{ type: "text", text: "look" }, { type: "image", image: IMAGE }] }],
};

describe("usage and timing fields", () => {
  it("gRPC unary and streamed: image_tokens, prediction tokens, time_info, service_tier_used", async () => {
    const c = await create(h.chat, visionRequest());
    expect(c.usage).toMatchObject({ imageTokens: 256, completionTokensDetails: { acceptedPredictionTokens: 2, rejectedPredictionTokens: 1 } });
    expect(c.timeInfo).toMatchObject({ queueTime: expect.any(Number), promptTime: expect.any(Number), completionTime: expect.any(Number), totalTime: expect.any(Number), created: expect.any(Number) });
    expect(c).toMatchObject({ serviceTier: "auto", serviceTierUsed: "default" });
    const s = await stream(h.chat, visionRequest());
    expect(s.error).toBeUndefined();
    const last = s.chunks.at(-1)!;
    expect(last.usage).toMatchObject({ imageTokens: 256, completionTokensDetails: { acceptedPredictionTokens: 2, rejectedPredictionTokens: 1 } });
    expect(last).toMatchObject({ serviceTierUsed: "default" });
  });

  it("HTTP unary and streamed: the same fields, snake_case", async () => {
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(visionJson) });
    expect(res.status, res.text).toBe(200);
    const body = JSON.parse(res.text) as Record<string, any>; // any: a loose JSON reply, read field by field
    expect(body["usage"]).toMatchObject({ image_tokens: 256, completion_tokens_details: { accepted_prediction_tokens: 2, rejected_prediction_tokens: 1 } });
    expect(body).toMatchObject({ service_tier: "auto", service_tier_used: "default", time_info: { queue_time: expect.any(Number), created: expect.any(Number) } });
    const streamed = await raw(h.httpPort, { path: "/v1/chat/completions", ...json({ ...visionJson, stream: true }) });
    const events = sseData(streamed.text).filter((d) => d !== "[DONE]").map((d) => JSON.parse(d) as Record<string, any>); // any: as above
    expect(events.at(-1)!["usage"]).toMatchObject({ image_tokens: 256 });
  });

  it("logprobs and reasoning_logprobs, both transports", async () => {
    const c = await create(h.chat, userRequest("a b", { logprobs: true, topLogprobs: 2, reasoningFormat: ReasoningFormat.REASONING_FORMAT_PARSED }));
    expect(c.choices[0]!.logprobs!.content.map((t) => t.token).join("")).toBe("Echo: a b");
    expect(c.choices[0]!.logprobs!.content[0]!.topLogprobs).toHaveLength(2);
    expect(c.choices[0]!.reasoningLogprobs!.content.length).toBeGreaterThan(0);
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("a b", { logprobs: true, top_logprobs: 2, reasoning_format: "parsed" })) });
    const choice = (JSON.parse(res.text) as { choices: Array<Record<string, any>> }).choices[0]!; // any: as above
    expect(choice["logprobs"].content[0]).toMatchObject({ token: "Echo:", bytes: [...Buffer.from("Echo:")], top_logprobs: [{ token: "Echo:" }, {}] });
    expect(choice["reasoning_logprobs"].content.length).toBeGreaterThan(0);
  });
});

describe("values the contract does not know yet", () => {
  it("gRPC: an unknown finish_reason is FINISH_REASON_OTHER with the raw string, an unknown role ROLE_OTHER with its string", async () => {
    h.fake.failNext({ kind: "odd-values", finishReason: "eos_token", role: "model" });
    const c = await create(h.chat, userRequest("x"));
    expect(c.choices[0]).toMatchObject({ finishReason: FinishReason.FINISH_REASON_OTHER, finishReasonRaw: "eos_token", message: { role: Role.ROLE_OTHER, roleRaw: "model" } });
    h.fake.failNext({ kind: "odd-values", finishReason: "eos_token", role: "model" });
    const s = await stream(h.chat, userRequest("x"));
    expect(s.error).toBeUndefined();
    expect(s.chunks[0]!.choices[0]!.delta).toMatchObject({ role: Role.ROLE_OTHER, roleRaw: "model" });
    expect(s.chunks.at(-1)!.choices[0]).toMatchObject({ finishReason: FinishReason.FINISH_REASON_OTHER, finishReasonRaw: "eos_token" });
  });

  it("HTTP passes the raw strings through", async () => {
    h.fake.failNext({ kind: "odd-values", finishReason: "eos_token", role: "model" });
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("x")) });
    expect(JSON.parse(res.text)).toMatchObject({ choices: [{ finish_reason: "eos_token", message: { role: "model" } }] });
    h.fake.failNext({ kind: "odd-values", finishReason: "eos_token", role: "model" });
    const streamed = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("x", { stream: true })) });
    const events = sseData(streamed.text).filter((d) => d !== "[DONE]").map((d) => JSON.parse(d) as { choices: Array<{ delta: { role?: string }; finish_reason: string | null }> });
    expect(events[0]!.choices[0]!.delta.role).toBe("model");
    expect(events.map((e) => e.choices[0]?.finish_reason).filter((r) => r != null)).toEqual(["eos_token"]);
  });
});

describe("a chunk whose choices are empty, null or absent", () => {
  for (const choices of ["empty", "null", "absent"] as const) {
    it(`${choices}: the stream completes and keeps its usage (gRPC and HTTP)`, async () => {
      h.fake.failNext({ kind: "usage-apart", choices });
      const s = await stream(h.chat, userRequest("x"));
      expect(s.error).toBeUndefined();
      expect(s.chunks.at(-1)!).toMatchObject({ choices: [], usage: { totalTokens: expect.any(Number) } });
      expect(s.chunks.at(-1)!.usage!.totalTokens).toBeGreaterThan(0);

      h.fake.failNext({ kind: "usage-apart", choices });
      const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("x", { stream: true, stream_options: { include_usage: true } })) });
      const data = sseData(res.text);
      expect(data.at(-1)).toBe("[DONE]");
      const usageChunk = JSON.parse(data.at(-2)!) as { choices: unknown[]; usage: { total_tokens: number } };
      expect(usageChunk.choices).toEqual([]);
      expect(usageChunk.usage.total_tokens).toBeGreaterThan(0);
    });
  }

  it("empty deltas pass through as chunks with an empty delta", async () => {
    const s = await stream(h.chat, userRequest("x"));
    expect(s.chunks.some((c) => c.choices[0] !== undefined && c.choices[0].delta!.content === undefined && c.choices[0].delta!.role === Role.ROLE_UNSPECIFIED && c.choices[0].finishReason === FinishReason.FINISH_REASON_UNSPECIFIED && c.choices[0].delta!.toolCalls.length === 0 && c.choices[0].delta!.reasoning === undefined)).toBe(true);
  });
});
