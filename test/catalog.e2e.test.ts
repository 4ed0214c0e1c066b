/**
 * The model catalog (issue 7): loading and refreshing from the upstream, serving the last
 * good catalog when the upstream is down, aliases, pre-flight checks that spend no
 * upstream quota, and the cost of each call.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReasoningEffort, Role, type ChatCompletionRequest, type Message } from "../gen/aigateway/v1/chat.js";
import type { ListModelsResponse, Model } from "../gen/aigateway/v1/models.js";
import { FAKE_MODELS } from "../src/fake-upstream/catalog.js";
import { cerebrasErrors } from "../src/fake-upstream/faults.js";
import { create, decodeStatus, startHarness, stream, userRequest, type Harness } from "./helpers/harness.js";
import { startHttpHarness } from "./helpers/http.js";

const listModels = (h: Harness) =>
  new Promise<ListModelsResponse>((resolve, reject) => h.models.listModels({}, (err, r) => (err ? reject(err) : resolve(r!))));
const getModel = (h: Harness, id: string) => new Promise<Model>((resolve, reject) => h.models.getModel({ id }, (err, r) => (err ? reject(err) : resolve(r!))));
/** ListModels until `pred` holds (the catalog refreshes in the background); bounded. */
async function listUntil(h: Harness, pred: (r: ListModelsResponse) => boolean): Promise<ListModelsResponse> {
  let res = await listModels(h);
  for (let i = 0; i < 200 && !pred(res); i++) {
    await new Promise((r) => setTimeout(r, 20));
    res = await listModels(h);
  }
  return res;
}
const text = (role: Role, value: string, extra: Partial<Message> = {}): Message => ({ role, contentKind: { $case: "content", value }, toolCalls: [], toolCallId: "", ...extra });

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    env: {
      MODEL_ALIASES: "fast=gpt-oss-120b, llama-4-scout-17b-16e-instruct=gpt-oss-120b",
      PRICING_OVERRIDES: JSON.stringify({ "zai-glm-4.7": { prompt: 2, completion: 3, cached_prompt: 0.5 } }),
    },
  });
  await listModels(h); // the first ListModels waits for the catalog; later calls find it loaded
});
afterAll(async () => {
  await h.close();
});

describe("catalog", () => {
  it("joins /v1/models with /public/v1/models: limits, prices, capabilities, aliases", async () => {
    const res = await listModels(h);
    expect(res.stale).toBe(false);
    expect(res.fetchedAt).toBeGreaterThan(1.7e9);
    const oss = res.models.find((m) => m.id === "gpt-oss-120b")!;
    expect(oss).toMatchObject({
      ownedBy: "Cerebras",
      name: "OpenAI GPT OSS 120B",
      contextLength: 131_072,
      maxCompletionTokens: 40_960,
      pricing: { prompt: 0.00000035, completion: 0.00000075 },
      capabilities: { tools: true, jsonSchema: true, streaming: true, vision: false, reasoning: true },
      deprecated: false,
      aliases: ["fast", "llama-4-scout-17b-16e-instruct"],
    });
    expect(res.models.find((m) => m.id === "zai-glm-4.7")!.pricing).toEqual({ prompt: 2e-6, completion: 3e-6, cachedPrompt: 0.5e-6 });
  });

  it("GetModel takes an alias and returns the real model", async () => {
    expect((await getModel(h, "fast")).id).toBe("gpt-oss-120b");
    await expect(getModel(h, "llama-3.3-70b")).rejects.toMatchObject({ code: status.NOT_FOUND });
  });
});

describe("refresh and staleness", () => {
  it("picks up upstream changes on the TTL, and serves the last good catalog marked stale while the upstream is down", async () => {
    const t = await startHarness({ env: { CATALOG_TTL_S: "0.1" } });
    try {
      await listModels(t);
      t.fake.setModels([...FAKE_MODELS, { ...FAKE_MODELS[0]!, id: "qwen-3.8-27b", name: "Qwen 3.8 27B" }]);
      let res = await listUntil(t, (r) => r.models.some((m) => m.id === "qwen-3.8-27b"));
      expect(res.models.map((m) => m.id)).toContain("qwen-3.8-27b");

      for (let i = 0; i < 1000; i++) t.fake.failModelsNext(cerebrasErrors.serverError(503));
      res = await listUntil(t, (r) => r.stale);
      expect(res.stale).toBe(true);
      expect(res.models.map((m) => m.id)).toContain("qwen-3.8-27b");
      // A stale catalog cannot say a model is gone, so the upstream gets to decide.
      const before = t.fake.chatRequests().length;
      const err = (await create(t.chat, userRequest("x", { model: "brand-new-model" })).catch((e: unknown) => e)) as ServiceError;
      expect(err.code).toBe(status.NOT_FOUND);
      expect(t.fake.chatRequests().length).toBe(before + 1);
    } finally {
      await t.close();
    }
  });

  it("does not hold start-up: the gateway serves chat while the catalog cannot load, and ListModels says why", async () => {
    const t = await startHarness({
      env: { CATALOG_TTL_S: "60" },
      beforeGateway: (fake) => {
        for (let i = 0; i < 4; i++) fake.failModelsNext(cerebrasErrors.serverError(503));
      },
    });
    try {
      const res = await create(t.chat, userRequest("no catalog needed"));
      expect(res.choices[0]!.message!.content).toBe("Echo: no catalog needed");
      const err = (await listModels(t).catch((e: unknown) => e)) as ServiceError;
      expect(err.code).toBe(status.UNAVAILABLE);
      expect(decodeStatus(err).errorInfo!.reason).toBe("UPSTREAM_SERVER_ERROR");
      expect((await listModels(t)).stale).toBe(false); // the upstream is back: loaded on demand
    } finally {
      await t.close();
    }
  });
});

describe("pre-flight checks: rejected before any upstream call", () => {
  const rejected = async (request: ChatCompletionRequest, code: status, field: string, streaming = false) => {
    const before = h.fake.chatRequests().length;
    const err = streaming ? (await stream(h.chat, request)).error! : ((await create(h.chat, request).catch((e: unknown) => e)) as ServiceError);
    expect(err.code, err.details).toBe(code);
    expect(decodeStatus(err).badRequest!.fieldViolations.map((v) => v.field)).toContain(field);
    expect(h.fake.chatRequests().length).toBe(before);
    return err;
  };

  it("an unknown model → NOT_FOUND naming `model`", async () => {
    const err = await rejected(userRequest("x", { model: "llama-4-maverick-17b-128e-instruct" }), status.NOT_FOUND, "model");
    expect(decodeStatus(err).errorInfo!.reason).toBe("MODEL_NOT_FOUND");
  });

  it("max_completion_tokens above the model's limit", async () => {
    await rejected(userRequest("x", { maxCompletionTokens: 50_000 }), status.INVALID_ARGUMENT, "max_completion_tokens");
  });

  it("json_object output on a stream", async () => {
    await rejected(userRequest("x", { responseFormat: { format: { $case: "jsonObject", value: {} } } }), status.INVALID_ARGUMENT, "response_format", true);
  });

  it("tool_choice without tools", async () => {
    await rejected(userRequest("x", { toolChoice: { choice: { $case: "functionName", value: "f" } } }), status.INVALID_ARGUMENT, "tool_choice");
  });

  const call = (id: string) => ({ id, type: "function", function: { name: "f", arguments: "{}" } });

  it("a tool call left unanswered, and a tool message answering nothing", async () => {
    await rejected(
      userRequest("", { tools: [{ function: { name: "f" } }], messages: [text(Role.ROLE_USER, "go"), { ...text(Role.ROLE_ASSISTANT, ""), contentKind: undefined, toolCalls: [call("a1")] }, text(Role.ROLE_USER, "next")] }),
      status.INVALID_ARGUMENT,
      "messages.1.tool_calls",
    );
    await rejected(userRequest("", { messages: [text(Role.ROLE_USER, "go"), text(Role.ROLE_TOOL, "42", { toolCallId: "zzz" })] }), status.INVALID_ARGUMENT, "messages.1.tool_call_id");
  });

  it("duplicate tool-call ids", async () => {
    const assistant = (id: string): Message => ({ ...text(Role.ROLE_ASSISTANT, ""), contentKind: undefined, toolCalls: [call(id)] });
    await rejected(
      userRequest("", {
        messages: [text(Role.ROLE_USER, "go"), assistant("a1"), text(Role.ROLE_TOOL, "1", { toolCallId: "a1" }), assistant("a1"), text(Role.ROLE_TOOL, "2", { toolCallId: "a1" })],
      }),
      status.INVALID_ARGUMENT,
      "messages.3.tool_calls.0.id",
    );
  });

  it("an image for a model without vision", async () => {
    const image: Message = {
      ...text(Role.ROLE_USER, ""),
      contentKind: { $case: "contentParts", value: { parts: [{ part: { $case: "imageUrl", value: { url: "data:image/png;base64,iVBORw0KGgo=" } } }] } },
    };
    await rejected(userRequest("", { model: "gpt-oss-120b", messages: [image] }), status.INVALID_ARGUMENT, "messages.0.content_parts.parts.0.image_url");
    expect((await create(h.chat, userRequest("", { model: "gemma-4-31b", messages: [image] }))).choices).toHaveLength(1);
  });

  it("a reasoning_effort the model does not take (gpt-oss-120b has no 'none')", async () => {
    await rejected(userRequest("x", { reasoningEffort: ReasoningEffort.REASONING_EFFORT_NONE }), status.INVALID_ARGUMENT, "reasoning_effort");
    expect((await create(h.chat, userRequest("x", { reasoningEffort: ReasoningEffort.REASONING_EFFORT_HIGH }))).choices).toHaveLength(1);
  });

  it("ALLOW_UNLISTED_MODELS lets ids the catalog does not list through to the upstream (dedicated endpoints)", async () => {
    const open = await startHarness({ env: { ALLOW_UNLISTED_MODELS: "true" } });
    try {
      const err = (await create(open.chat, userRequest("x", { model: "my-dedicated-endpoint" })).catch((e: unknown) => e)) as ServiceError;
      expect(decodeStatus(err).errorInfo!.metadata["upstreamCode"]).toBe("model_not_found");
      expect(open.fake.chatRequests()).toHaveLength(1);
    } finally {
      await open.close();
    }
  });
});

describe("aliases", () => {
  it("resolve before the upstream call; the response names the real model", async () => {
    const res = await create(h.chat, userRequest("x", { model: "llama-4-scout-17b-16e-instruct" }));
    expect(res.model).toBe("gpt-oss-120b");
    expect((h.fake.chatRequests().at(-1)!.body as { model: string }).model).toBe("gpt-oss-120b");
  });

  it("DEFAULT_MODEL may be an alias", async () => {
    const t = await startHarness({ env: { MODEL_ALIASES: "vision=gemma-4-31b", DEFAULT_MODEL: "vision" } });
    try {
      expect((await create(t.chat, userRequest("x"))).model).toBe("gemma-4-31b");
    } finally {
      await t.close();
    }
  });
});

describe("cost", () => {
  const price = { prompt: 0.35e-6, completion: 0.75e-6 };

  it("prices a unary call from usage × the catalog's per-token prices", async () => {
    const res = await create(h.chat, userRequest("what does this cost?"));
    const u = res.usage!;
    expect(u.costUsd).toBeCloseTo(u.promptTokens * price.prompt + u.completionTokens * price.completion, 12);
    expect(u.costUsd).toBeGreaterThan(0);
  });

  it("puts the cost on the final chunk of a stream", async () => {
    const { chunks } = await stream(h.chat, userRequest("stream cost"));
    const u = chunks.at(-1)!.usage!;
    expect(u.costUsd).toBeCloseTo(u.promptTokens * price.prompt + u.completionTokens * price.completion, 12);
    expect(chunks.slice(0, -1).every((c) => c.usage === undefined)).toBe(true);
  });

  it("prices cached prompt tokens apart when an override says so", async () => {
    const turn1: Message[] = [text(Role.ROLE_SYSTEM, "You are terse."), text(Role.ROLE_USER, "first question")];
    await create(h.chat, userRequest("", { model: "zai-glm-4.7", messages: turn1 }));
    const res = await create(h.chat, userRequest("", { model: "zai-glm-4.7", messages: [...turn1, text(Role.ROLE_ASSISTANT, "ok"), text(Role.ROLE_USER, "second")] }));
    const u = res.usage!;
    const cached = u.promptTokensDetails!.cachedTokens;
    expect(cached).toBeGreaterThan(0);
    expect(u.costUsd).toBeCloseTo((u.promptTokens - cached) * 2e-6 + cached * 0.5e-6 + u.completionTokens * 3e-6, 12);
  });

  it("reports an unknown cost (absent), not 0, for a model without published prices", async () => {
    const t = await startHarness({ env: { CATALOG_TTL_S: "0.05" } });
    try {
      t.fake.setModels([...FAKE_MODELS, { ...FAKE_MODELS[0]!, id: "mystery-1", pricing: undefined }]);
      await listUntil(t, (r) => r.models.some((m) => m.id === "mystery-1"));
      const res = await create(t.chat, userRequest("x", { model: "mystery-1" }));
      expect(res.usage!.totalTokens).toBeGreaterThan(0);
      expect(res.usage!.costUsd).toBeUndefined();
    } finally {
      await t.close();
    }
  });
});

describe("cost over the HTTP shim", () => {
  it("unary: usage.cost_usd and an x-cost-usd header; streaming: cost_usd on the usage chunk", async () => {
    const web = await startHttpHarness();
    try {
      const ask = { model: "gpt-oss-120b", messages: [{ role: "user" as const, content: "http cost" }] };
      const { data, response } = await web.openai.chat.completions.create(ask).withResponse();
      const usage = data.usage as typeof data.usage & { cost_usd?: number };
      const expected = usage!.prompt_tokens * 0.35e-6 + usage!.completion_tokens * 0.75e-6;
      expect(usage!.cost_usd).toBeCloseTo(expected, 12);
      expect(Number(response.headers.get("x-cost-usd"))).toBeCloseTo(expected, 12);

      const stream = await web.openai.chat.completions.create({ ...ask, stream: true, stream_options: { include_usage: true } });
      let last: { usage?: unknown } | undefined;
      for await (const chunk of stream) last = chunk;
      const u = last!.usage as { prompt_tokens: number; completion_tokens: number; cost_usd?: number };
      expect(u.cost_usd).toBeCloseTo(u.prompt_tokens * 0.35e-6 + u.completion_tokens * 0.75e-6, 12);
    } finally {
      await web.close();
    }
  });
});
