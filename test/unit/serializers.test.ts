/**
 * The reply serializers (src/grpc/serializers.ts: the generated fast encoders, and the
 * stream's header cache) against ts-proto's encoder: byte for byte on a corpus of chunks
 * and completions and on the descriptor-made cases, through the header cache (hits,
 * misses, collisions), on the fallback path, and through a real grpc-js server; plus the
 * check that every reply the server writes has a generated encoder wired in.
 * (test/unit/fast-encode.test.ts covers every message of the contract field by field.)
 */
import { once } from "node:events";
import { createFileRegistry, fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { credentials, Server, ServerCredentials, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionRequest,
  ChatServiceClient,
  ChatServiceService,
  FinishReason,
  Role,
  ChunkChoice,
  Delta,
  Logprobs,
  TimeInfo,
  ToolCallDelta,
  Usage,
  type ChatServiceServer,
  type DeepPartial,
} from "../../gen/aigateway/v1/chat.js";
import * as chatEncoders from "../../gen/aigateway/v1/chat.encode.js";
import { ModelServiceService } from "../../gen/aigateway/v1/models.js";
import * as modelEncoders from "../../gen/aigateway/v1/models.encode.js";
import { DESCRIPTOR_SET_BASE64 } from "../../gen/descriptor.js";
import { HEADER_END, serializeChunk, withFastModelSerializers, withFastSerializers } from "../../src/grpc/serializers.js";
import { CaseMaker, tsName, type MessageFns } from "../helpers/encode-cases.js";

const generatedChunk = (c: ChatCompletionChunk): Buffer => Buffer.from(ChatCompletionChunk.encode(c).finish());
const generatedCompletion = (c: ChatCompletion): Buffer => Buffer.from(ChatCompletion.encode(c).finish());

const ID = "chatcmpl-8b1c1d6e-1f7b-4c6a-9d44-2b3c4d5e6f70";
const FP = "fp_5a8f1c9e3b7d2a6c4e0f";

/** A chunk as src/wire/response.ts builds it (delta keys in its order). */
// On ts-proto's base objects, so that a field added to the proto (a list or a map, which its
// types require) does not need an edit here.
function chunk(choices: ChunkChoice[], extra: Partial<ChatCompletionChunk> = {}): ChatCompletionChunk {
  return { ...ChatCompletionChunk.fromPartial({}), id: ID, object: "chat.completion.chunk", created: 1761231233, model: "gpt-oss-120b", systemFingerprint: FP, choices, ...extra };
}

function delta(fields: Partial<Delta>): Delta {
  return { ...Delta.fromPartial({}), role: Role.ROLE_UNSPECIFIED, ...fields, toolCalls: (fields.toolCalls ?? []).map((t) => ToolCallDelta.fromPartial(t)) };
}

function choice(d: Delta | undefined, extra: Partial<ChunkChoice> = {}): ChunkChoice {
  const c: ChunkChoice = { ...ChunkChoice.fromPartial({}), index: 0, finishReason: FinishReason.FINISH_REASON_UNSPECIFIED, ...extra };
  if (d !== undefined) c.delta = d;
  return c;
}

const content = (text: string): ChatCompletionChunk => chunk([choice(delta({ content: text }))]);

const LOGPROBS: Logprobs = Logprobs.fromPartial({
  content: [
    { token: " Hi", logprob: -0.25, bytes: [32, 72, 105], topLogprobs: [{ token: " Hello", logprob: -1.5, bytes: [32, 72, 101, 108, 108, 111] }] },
    { token: "é", logprob: -3e-7, bytes: [195, 169], topLogprobs: [] },
  ],
  refusal: [],
});

const USAGE = Usage.fromPartial({ promptTokens: 1234, completionTokens: 2002, totalTokens: 3236, promptTokensDetails: { cachedTokens: 1024 } });
const TIME_INFO = TimeInfo.fromPartial({ queueTime: 0.000123, promptTime: 0.0042, completionTime: 0.95, totalTime: 0.9601, created: 1761231233.7300596 });

/** Chunks the fast path encodes itself. */
const FAST_CHUNKS: Record<string, ChatCompletionChunk> = {
  "first chunk, role only": chunk([choice(delta({ role: Role.ROLE_ASSISTANT }))]),
  "first chunk, role and empty content": chunk([choice(delta({ role: Role.ROLE_ASSISTANT, content: "" }))]),
  "ASCII content": content(" Hello"),
  "one-character content": content("."),
  "empty content": content(""),
  "newlines and control characters": content("\n\n\t\u0000\u007f"),
  "2-byte UTF-8": content(" Überraschung, ça marche"),
  "3-byte UTF-8": content(" 東京タワー"),
  "emoji (surrogate pairs)": content(" 🙂👍🏽🇧🇷"),
  "mixed scripts": content("aé東🙂z"),
  "UTF-8 length boundaries, short": content("\u007f\u0080\u07ff\u0800\uffff\u{10000}\u{10ffff}"),
  "UTF-8 length boundaries, long": content("\u007f\u0080\u07ff\u0800\uffff\u{10000}\u{10ffff}".repeat(5)),
  "lone high surrogate": content("x\ud800y"),
  "lone low surrogate": content("x\udc00y"),
  "trailing high surrogate": content("🙂\ud83d"),
  "reversed surrogate pair": content("\ude00\ud83d"),
  "12 units, non-ASCII last": content("abcdefghijké"),
  "13 units, non-ASCII last": content("abcdefghijklé"),
  "13 units, emoji at the boundary": content("abcdefghijk🙂"),
  "16 ASCII bytes": content("abcdefghijklmnop"),
  "17 ASCII bytes": content("abcdefghijklmnopq"),
  "127 ASCII bytes": content("x".repeat(127)),
  "128 ASCII bytes (2-byte length)": content("x".repeat(128)),
  "200 ASCII bytes": content("y".repeat(200)),
  "100 × é (200 bytes from 100 units)": content("é".repeat(100)),
  "43 × 東 (129 bytes from 43 units)": content("東".repeat(43)),
  "16383 bytes": content("z".repeat(16383)),
  "16384 bytes (3-byte length)": content("z".repeat(16384)),
  "20000 bytes": content("w".repeat(20000)),
  "6000 × 東 (18000 bytes)": content("東".repeat(6000)),
  "emoji × 5000 (20000 bytes)": content("🙂".repeat(5000)),
  "2 MB of text": content("0123456789abcdef".repeat(131072)),
  "reasoning only": chunk([choice(delta({ reasoning: " Let me think" }))]),
  "reasoning and content": chunk([choice(delta({ content: "a", reasoning: "b" }))]),
  "empty reasoning": chunk([choice(delta({ reasoning: "" }))]),
  "finish chunk with usage and time_info": chunk([choice(delta({}), { finishReason: FinishReason.FINISH_REASON_STOP })], { usage: USAGE, timeInfo: TIME_INFO }),
  "finish chunk, no delta": chunk([choice(undefined, { finishReason: FinishReason.FINISH_REASON_LENGTH })], { usage: USAGE }),
  "usage with every field": chunk([], {
    usage: Usage.fromPartial({ ...USAGE, completionTokensDetails: { reasoningTokens: 7, acceptedPredictionTokens: 2, rejectedPredictionTokens: 1 }, costUsd: 0.0012345 }),
  }),
  "usage all zero, empty details, cost 0": chunk([], {
    usage: Usage.fromPartial({ promptTokens: 0, completionTokens: 0, totalTokens: 0, promptTokensDetails: { cachedTokens: 0 }, completionTokensDetails: { reasoningTokens: 0, acceptedPredictionTokens: 0, rejectedPredictionTokens: 0 }, costUsd: 0 }),
  }),
  "usage negative and extreme int32": chunk([], { usage: Usage.fromPartial({ promptTokens: -1, completionTokens: 2147483647, totalTokens: -2147483648 }) }),
  "time_info partly absent, zeros, -0, NaN, Infinity": chunk([], { timeInfo: TimeInfo.fromPartial({ queueTime: 0, completionTime: -0, totalTime: Number.NaN, created: Number.POSITIVE_INFINITY }) }),
  "empty time_info": chunk([], { timeInfo: TimeInfo.fromPartial({}) }),
  "service tiers": chunk([choice(delta({ content: "x" }))], { serviceTier: "auto", serviceTierUsed: "flex" }),
  "empty service tiers": chunk([], { serviceTier: "", serviceTierUsed: "" }),
  "tool call, first piece": chunk([
    choice(delta({ role: Role.ROLE_ASSISTANT, toolCalls: [{ index: 0, id: "181e286b1", type: "function", function: { name: "weather", arguments: "" } }] })),
  ]),
  "tool call fragments": chunk([
    choice(delta({ toolCalls: [{ index: 0, function: { arguments: '{"location": "Flo' } }, { index: 1, function: { arguments: 'rence"}' } }] })),
  ]),
  "tool call, empty function and none": chunk([choice(delta({ toolCalls: [{ index: 2, function: {} }, { index: 0 }, { index: 3, id: "", type: "" }] }))]),
  "tool call, long arguments": chunk([choice(delta({ toolCalls: [{ index: 0, function: { name: "f", arguments: JSON.stringify({ q: "é".repeat(300) }) } }] }))]),
  "several choices": chunk([
    choice(delta({ content: "a" })),
    choice(delta({ content: "b" }), { index: 1 }),
    choice(delta({}), { index: 2, finishReason: FinishReason.FINISH_REASON_TOOL_CALLS }),
    choice(undefined, { index: 3 }),
  ]),
  "negative index, role and finish reason": chunk([choice(delta({ role: -1 as Role }), { index: -1, finishReason: -5 as FinishReason })]),
  "extreme int32 index": chunk([choice(delta({}), { index: 2147483647 }), choice(delta({}), { index: -2147483648 })]),
  "unknown enum values": chunk([choice(delta({ role: 99 as Role }), { finishReason: 300 as FinishReason })]),
  "created 0": chunk([choice(delta({ content: "x" }))], { created: 0 }),
  "created -0": chunk([], { created: -0 }),
  "created 1": chunk([], { created: 1 }),
  "created 127 / 128": chunk([], { created: 128 }),
  "created 2^31 - 1": chunk([], { created: 2147483647 }),
  "created 2^31": chunk([], { created: 2147483648 }),
  "created 2^32 - 1": chunk([], { created: 4294967295 }),
  "created 2^32": chunk([], { created: 4294967296 }),
  "created 2^35": chunk([], { created: 2 ** 35 }),
  "created 2^42 + 5": chunk([], { created: 2 ** 42 + 5 }),
  "created 2^53 - 1": chunk([], { created: Number.MAX_SAFE_INTEGER }),
  "created -1": chunk([], { created: -1 }),
  "created -2^31": chunk([], { created: -2147483648 }),
  "created -2^32 - 1": chunk([], { created: -4294967297 }),
  "created -(2^53 - 1)": chunk([], { created: Number.MIN_SAFE_INTEGER }),
  "all defaults (empty message)": ChatCompletionChunk.fromPartial({}),
  "empty header, some choices": { ...ChatCompletionChunk.fromPartial({}), choices: [choice(delta({ content: "x" }))] },
  "non-ASCII id and model": chunk([choice(delta({ content: "x" }))], { id: "chatcmpl-é東🙂", model: "modèle" }),
  "short id": chunk([choice(delta({ content: "x" }))], { id: "c1" }),
  "header longer than a cache entry": chunk([choice(delta({ content: "x" }))], { id: `chatcmpl-${"a".repeat(300)}`, model: "m".repeat(200) }),
  "long header with 2-byte lengths": chunk([choice(delta({ content: "x" }))], { id: "i".repeat(130), systemFingerprint: "f".repeat(20000) }),
  "choice longer than 127 bytes": chunk([choice(delta({ content: "c".repeat(125) }))]),
  "choice longer than 16383 bytes": chunk([choice(delta({ content: "c".repeat(16380) }))]),
};

/** Chunks with logprobs (main's hand-written encoders sent these to ts-proto; the generated ones encode them). */
const LOGPROB_CHUNKS: Record<string, ChatCompletionChunk> = {
  logprobs: chunk([choice(delta({ content: " Hi" }), { logprobs: LOGPROBS })]),
  "reasoning logprobs": chunk([choice(delta({ reasoning: "é" }), { reasoningLogprobs: LOGPROBS })]),
  "logprobs in the second choice": chunk([choice(delta({ content: "a" })), choice(delta({ content: "b" }), { index: 1, logprobs: { content: [], refusal: [] } })]),
};

const COMPLETION: ChatCompletion = ChatCompletion.fromPartial({
  id: ID,
  object: "chat.completion",
  created: 1761231233,
  model: "llama-3.3-70b",
  systemFingerprint: FP,
  choices: [
    {
      index: 0,
      message: { role: Role.ROLE_ASSISTANT, toolCalls: [], content: "The answer is 42. É 東 🙂 ".repeat(40), reasoning: "Thinking…" },
      finishReason: FinishReason.FINISH_REASON_STOP,
    },
  ],
  usage: { promptTokens: 120, completionTokens: 250, totalTokens: 370, promptTokensDetails: { cachedTokens: 0 } },
  timeInfo: { queueTime: 0.0001, promptTime: 0.002, completionTime: 0.12, totalTime: 0.125, created: 1761231233.73 },
});

/** Completions (made whole by ts-proto's fromPartial, so that a field added to the proto needs no edit here). */
const FAST_COMPLETIONS: Record<string, ChatCompletion> = fromPartials({
  "text answer": COMPLETION,
  "tool calls, no content": {
    ...COMPLETION,
    choices: [
      {
        index: 0,
        message: {
          role: Role.ROLE_ASSISTANT,
          toolCalls: [
            { id: "181e286b1", type: "function", function: { name: "weather", arguments: '{"location": "Florence"}' } },
            { id: "", type: "", function: { name: "", arguments: "" } },
            { id: "x", type: "function" },
          ],
        },
        finishReason: FinishReason.FINISH_REASON_TOOL_CALLS,
      },
    ],
  },
  "empty content, several choices, no message": {
    ...COMPLETION,
    choices: [
      { index: 0, message: { role: Role.ROLE_ASSISTANT, toolCalls: [], content: "" }, finishReason: FinishReason.FINISH_REASON_STOP },
      { index: 1, finishReason: FinishReason.FINISH_REASON_LENGTH },
      { index: -3, message: { role: Role.ROLE_UNSPECIFIED, toolCalls: [] }, finishReason: FinishReason.FINISH_REASON_UNSPECIFIED },
    ],
  },
  "no usage or time_info, service tiers": { ...COMPLETION, usage: undefined, timeInfo: undefined, serviceTier: "auto", serviceTierUsed: "priority" },
  "100 KB answer": { ...COMPLETION, choices: [{ index: 0, message: { role: Role.ROLE_ASSISTANT, toolCalls: [], content: "x".repeat(100_000) }, finishReason: FinishReason.FINISH_REASON_STOP }] },
  "all defaults": ChatCompletion.fromPartial({}),
  "created -7": { ...COMPLETION, created: -7 },
});

function fromPartials(cases: Record<string, DeepPartial<ChatCompletion>>): Record<string, ChatCompletion> {
  return Object.fromEntries(Object.entries(cases).map(([name, c]) => [name, ChatCompletion.fromPartial(c)]));
}

type Path = "fast" | "fallback";

/** Calls `serialize` and tells whether it used ts-proto's encoder `fns.encode`. */
function pathOf<T>(fns: { encode: unknown }, serialize: () => T): [T, Path] {
  const spy = vi.spyOn(fns as { encode: () => unknown }, "encode");
  try {
    const out = serialize();
    return [out, spy.mock.calls.length === 0 ? "fast" : "fallback"];
  } finally {
    spy.mockRestore();
  }
}

/** The same bytes as ts-proto's encoder, the same message when decoded, by the path expected. */
function expectSameChunk(c: ChatCompletionChunk, path: Path = "fast"): void {
  const want = generatedChunk(c);
  const [got, took] = pathOf(ChatCompletionChunk, () => serializeChunk(c));
  expect(took).toBe(path);
  expect(Buffer.isBuffer(got)).toBe(true);
  expect(ChatCompletionChunk.decode(got)).toEqual(ChatCompletionChunk.decode(want));
  // Not toEqual on multi-megabyte Buffers: its diff would be unreadable.
  expect(got.equals(want), `bytes differ: got ${got.subarray(0, 64).toString("hex")}…, want ${want.subarray(0, 64).toString("hex")}…`).toBe(true);
}

const serializeCompletion = withFastSerializers().createChatCompletion.responseSerialize;

function expectSameCompletion(c: ChatCompletion, path: Path = "fast"): void {
  const want = generatedCompletion(c);
  const [got, took] = pathOf(ChatCompletion, () => serializeCompletion(c));
  expect(took).toBe(path);
  expect(Buffer.isBuffer(got)).toBe(true);
  expect(ChatCompletion.decode(got)).toEqual(ChatCompletion.decode(want));
  expect(got.equals(want)).toBe(true);
}

const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, base64Decode(DESCRIPTOR_SET_BASE64)));
const chunkDesc = registry.getMessage("aigateway.v1.ChatCompletionChunk")!;
const tsModules: Record<string, Record<string, unknown>> = {
  "aigateway/v1/chat": await import("../../gen/aigateway/v1/chat.js"),
  "aigateway/v1/models": await import("../../gen/aigateway/v1/models.js"),
};
const maker = new CaseMaker((m: DescMessage) => tsModules[m.file.name]![tsName(m)] as MessageFns);

describe("serializeChunk", () => {
  it("caches the five stream-constant header fields, the chunk's first five members", () => {
    expect(chatEncoders.ChatCompletionChunkMembers.slice(0, 5)).toEqual(["id", "object", "created", "model", "systemFingerprint"]);
    expect(HEADER_END).toBe(5);
  });

  it.each(Object.entries(FAST_CHUNKS))("matches ts-proto byte for byte: %s", (_, c) => {
    expectSameChunk(c);
    expectSameChunk(c); // again: now the header may come from the cache
    expectSameChunk(c);
  });

  it.each(Object.entries(LOGPROB_CHUNKS))("encodes logprobs itself: %s", (_, c) => {
    expectSameChunk(c);
    expectSameChunk(c);
  });

  it.each(maker.groups(chunkDesc).map((g) => [g.field.name, g.cases] as const))("matches ts-proto through the header cache with field %s set to each test value", (_, cases) => {
    for (const c of cases) {
      const value = c.value as ChatCompletionChunk;
      for (let i = 0; i < 3; i++) {
        const [got, took] = pathOf(ChatCompletionChunk, () => serializeChunk(value));
        expect(took, c.label).toBe("fast");
        expect(got.equals(generatedChunk(value)), `${c.label}, call ${i + 1}`).toBe(true);
      }
    }
  });

  it("encodes int64 values beyond 2^53 as ts-proto does (bytes only: ts-proto's decoder refuses them)", () => {
    for (const created of [2 ** 53, 2 ** 53 + 2, 2 ** 60, -(2 ** 60), -(2 ** 63)]) {
      const c = chunk([choice(delta({ content: "x" }))], { created });
      for (let i = 0; i < 3; i++) {
        const [got, took] = pathOf(ChatCompletionChunk, () => serializeChunk(c));
        expect(took).toBe("fast");
        expect(got.equals(generatedChunk(c)), String(created)).toBe(true);
      }
    }
  });

  it("encodes a whole stream the same, for interleaved streams (header cache hits, misses and collisions)", () => {
    // 3,000 streams take turns, more than the cache has entries: ids collide.
    const streams = Array.from({ length: 3000 }, (_, s) => ({
      id: `chatcmpl-${s.toString(16).padStart(8, "0")}-1f7b-4c6a-9d44-${(s * 7919).toString(16).padStart(12, "0")}`,
      model: s % 3 === 0 ? "gpt-oss-120b" : "llama-3.3-70b",
      created: 1761231233 + (s % 5),
    }));
    for (let round = 0; round < 4; round++) {
      for (const [s, st] of streams.entries()) {
        // A few streams only (10 in 3000) for every round, all of them for round 0.
        if (round > 0 && s % 300 !== 0) continue;
        const c = chunk([choice(delta({ content: `${round}:${s}` }))], { id: st.id, model: st.model, created: st.created });
        expectSameChunk(c);
      }
    }
  });

  it("never reuses a cached header when any of its five fields changed", () => {
    const base = content("x");
    expectSameChunk(base);
    expectSameChunk(base); // cached now
    const variants: Partial<ChatCompletionChunk>[] = [
      { id: `${ID}x` },
      { id: ID.slice(0, -1) + "1" }, // same length
      { object: "chat.completion" },
      { object: "" },
      { created: 1761231234 },
      { created: 0 },
      { model: "llama-3.3-70b" },
      { model: "" },
      { systemFingerprint: "fp_other" },
      { systemFingerprint: "" },
    ];
    for (const v of variants) {
      expectSameChunk({ ...base, ...v });
      expectSameChunk(base);
      expectSameChunk({ ...base, ...v });
      expectSameChunk({ ...base, ...v });
      expectSameChunk(base);
    }
  });

  it("returns a Buffer of its own: later calls do not change it", () => {
    const c = content(" Hello 東京");
    serializeChunk(c);
    const first = serializeChunk(c);
    const copy = Buffer.from(first);
    for (let i = 0; i < 2000; i++) serializeChunk(chunk([choice(delta({ content: `other ${i}` }))], { id: `${ID}-${i % 7}` }));
    serializeChunk(content("z".repeat(5000)));
    expect(first.equals(copy)).toBe(true);
    expect(ChatCompletionChunk.decode(first).choices[0]!.delta!.content).toBe(" Hello 東京");
  });

  it("throws where ts-proto's encoder throws (values that are not what the types say)", () => {
    const bad: Record<string, unknown> = {
      "fractional created": chunk([], { created: 1.5 }),
      "NaN created": chunk([], { created: Number.NaN }),
      "created beyond int64": chunk([], { created: 2 ** 64 }),
      "fractional index": chunk([choice(delta({}), { index: 0.5 })]),
      "index beyond int32": chunk([choice(delta({}), { index: 2 ** 31 })]),
      "fractional role": chunk([choice(delta({ role: 1.5 as Role }))]),
      "null delta": chunk([{ index: 0, delta: null, finishReason: 0 } as unknown as ChunkChoice]),
      "missing toolCalls": chunk([choice({ role: 0 } as Delta)]),
    };
    for (const [name, c] of Object.entries(bad)) {
      for (let i = 0; i < 3; i++) {
        expect(() => generatedChunk(c as ChatCompletionChunk), name).toThrow();
        expect(() => serializeChunk(c as ChatCompletionChunk), name).toThrow();
      }
    }
  });

  it("encodes values of other JS types as ts-proto does, by falling back to it", () => {
    // A number where a string belongs: ts-proto writes String(value).
    const odd = { ...content("x"), model: 42 } as unknown as ChatCompletionChunk;
    expectSameChunk(odd, "fallback");
    expectSameChunk(odd, "fallback");
    const oddContent = chunk([choice({ role: 0, toolCalls: [], content: 7 } as unknown as Delta)]);
    expectSameChunk(oddContent, "fallback");
    expectSameChunk(oddContent, "fallback");
    // Numeric strings where numbers belong.
    expectSameChunk(chunk([choice(delta({}), { index: "3" as unknown as number })]), "fallback");
    expectSameChunk(chunk([], { created: "1761231233" as unknown as number }), "fallback");
  });
});

describe("the unary completion serializer", () => {
  it.each(Object.entries(FAST_COMPLETIONS))("matches ts-proto byte for byte: %s", (_, c) => {
    expectSameCompletion(c);
  });

  it("encodes logprobs itself", () => {
    expectSameCompletion({ ...COMPLETION, choices: [{ ...COMPLETION.choices[0]!, logprobs: LOGPROBS, reasoningLogprobs: LOGPROBS }] });
  });

  it("does not disturb the chunk header cache", () => {
    const c = content("x");
    expectSameChunk(c);
    expectSameChunk(c);
    expectSameCompletion({ ...COMPLETION, id: ID });
    expectSameChunk(c);
  });
});

describe("every reply the server writes has a generated encoder", () => {
  const contract = [...registry.files].filter((f) => f.proto.package.startsWith("aigateway."));
  const services = contract.flatMap((f) => f.services);
  const encoderModules: Record<string, Record<string, unknown>> = { "aigateway/v1/chat": chatEncoders, "aigateway/v1/models": modelEncoders };
  /** The hook src/grpc/server.ts registers each service with, and ts-proto's definition. */
  const hooks: Record<string, { hooked: Record<string, { path: string; responseSerialize: unknown }>; original: Record<string, { path: string; responseSerialize: unknown }> }> = {
    "aigateway.v1.ChatService": { hooked: withFastSerializers(ChatServiceService), original: ChatServiceService },
    "aigateway.v1.ModelService": { hooked: withFastModelSerializers(ModelServiceService), original: ModelServiceService },
  };

  it("finds the contract's services", () => {
    expect(services.map((s) => s.typeName).sort()).toEqual(["aigateway.v1.ChatService", "aigateway.v1.ModelService"]);
  });

  it.each(services.map((s) => [s.typeName, s] as const))("%s: every method's reply, and every message in it, has a generated encoder with no slow fields", (_, s) => {
    for (const method of s.methods) {
      const seen = new Set<DescMessage>();
      const walk = (m: DescMessage): void => {
        if (seen.has(m) || m.typeName.startsWith("google.protobuf.")) return;
        seen.add(m);
        const mod = encoderModules[m.file.name];
        expect(mod, `${m.file.name}.encode.ts is not generated`).toBeDefined();
        for (const fn of ["size", "write", "encode"]) expect(typeof mod![`${fn}${tsName(m)}`], `${fn}${tsName(m)} for ${method.name}'s reply`).toBe("function");
        const slow = (mod!["SLOW_FIELDS"] as readonly string[]).filter((f) => f.startsWith(`${m.typeName}.`));
        expect(slow, `${m.typeName} has fields with no fast path (extend scripts/fast-encode/generate.mjs)`).toEqual([]);
        for (const f of m.fields) if (f.message !== undefined) walk(f.message);
      };
      walk(method.output);
    }
  });

  it.each(services.map((s) => [s.typeName, s] as const))("%s: the definition the server registers serializes every reply with it", (_, s) => {
    const hook = hooks[s.typeName];
    expect(hook, `no with*Serializers hook for ${s.typeName} in src/grpc/serializers.ts`).toBeDefined();
    const mod = encoderModules[s.file.name]!;
    const table = mod[`${s.name}ResponseEncoders`] as Record<string, unknown>;
    expect(Object.keys(table).sort()).toEqual(s.methods.map((m) => `/${s.typeName}/${m.name}`).sort());
    const methods = Object.values(hook!.hooked);
    expect(methods.length).toBe(s.methods.length);
    for (const method of methods) {
      const original = Object.values(hook!.original).find((o) => o.path === method.path)!;
      expect(method.responseSerialize, method.path).not.toBe(original.responseSerialize);
      if (method.path !== ChatServiceService.streamChatCompletion.path) expect(method.responseSerialize, method.path).toBe(table[method.path]);
    }
    expect(hooks["aigateway.v1.ChatService"]!.hooked["streamChatCompletion"]!.responseSerialize).toBe(serializeChunk);
  });
});

describe("withFastSerializers", () => {
  it("replaces the response serializers only", () => {
    const def = withFastSerializers(ChatServiceService);
    expect(Object.keys(def)).toEqual(Object.keys(ChatServiceService));
    expect(def.streamChatCompletion.responseSerialize).toBe(serializeChunk);
    expect(def.createChatCompletion.responseSerialize).toBe(chatEncoders.encodeChatCompletion);
    for (const method of ["streamChatCompletion", "createChatCompletion"] as const) {
      const { responseSerialize: _a, ...rest } = def[method];
      const { responseSerialize: _b, ...original } = ChatServiceService[method];
      expect(rest).toEqual(original);
      expect(rest.requestDeserialize).toBe(original.requestDeserialize);
      expect(rest.responseDeserialize).toBe(original.responseDeserialize);
    }
    expect(ChatServiceService.streamChatCompletion.responseSerialize).not.toBe(serializeChunk); // the original is untouched
  });

  it("composes with another wrapper of the definition (it copies what it is given)", () => {
    const requestDeserialize = (b: Buffer): ChatCompletionRequest => ChatCompletionRequest.decode(b);
    const wrapped = { ...ChatServiceService, createChatCompletion: { ...ChatServiceService.createChatCompletion, requestDeserialize } };
    const def = withFastSerializers(wrapped);
    expect(def.createChatCompletion.requestDeserialize).toBe(requestDeserialize);
    expect(def.createChatCompletion.responseSerialize).toBe(chatEncoders.encodeChatCompletion);
  });

  describe("behind a grpc-js server", () => {
    const stream = Object.values(FAST_CHUNKS).filter((c) => generatedChunk(c).length < 1_000_000);
    stream.push(...Object.values(LOGPROB_CHUNKS));
    let server: Server;
    let client: ChatServiceClient;

    beforeAll(async () => {
      server = new Server();
      const impl: ChatServiceServer = {
        createChatCompletion(_call: ServerUnaryCall<ChatCompletionRequest, ChatCompletion>, callback: sendUnaryData<ChatCompletion>) {
          callback(null, COMPLETION);
        },
        streamChatCompletion(call: ServerWritableStream<ChatCompletionRequest, ChatCompletionChunk>) {
          for (const c of stream) call.write(c);
          call.end();
        },
      };
      server.addService(withFastSerializers(ChatServiceService), impl);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      client = new ChatServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
    });

    afterAll(() => {
      client?.close();
      server?.forceShutdown();
    });

    const request = ChatCompletionRequest.fromPartial({ model: "m", messages: [{ role: Role.ROLE_USER, contentKind: { $case: "content", value: "hi" } }] });

    it("streams chunks that decode to what the handler wrote", async () => {
      const call = client.streamChatCompletion(request);
      const got: ChatCompletionChunk[] = [];
      call.on("data", (c: ChatCompletionChunk) => got.push(c));
      await once(call, "end");
      expect(got.length).toBe(stream.length);
      got.forEach((c, i) => expect(c).toEqual(ChatCompletionChunk.decode(generatedChunk(stream[i]!))));
    });

    it("answers a unary call", async () => {
      const got = await new Promise<ChatCompletion>((resolve, reject) => client.createChatCompletion(request, (err, res) => (err ? reject(err) : resolve(res!))));
      expect(got).toEqual(ChatCompletion.decode(generatedCompletion(COMPLETION)));
    });
  });
});
