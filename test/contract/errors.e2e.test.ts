/**
 * Errors in the caller's language. /cerebras routes answer in Cerebras' flat envelope
 * ({message, type, param, code}), so the Cerebras SDK's `err.error.code` works as it does
 * against Cerebras; /v1 keeps OpenAI's {"error": {…}}. Over HTTP `param` (and every path in
 * the message) is the caller's JSON path; over gRPC BadRequest names the proto path. A gRPC
 * request that cannot be decoded is INVALID_ARGUMENT with exactly one ErrorInfo.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import Cerebras from "@cerebras/cerebras_cloud_sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { ERROR_DOMAIN } from "../../src/core/errors.js";
import { create, decodeStatus, rejection, userRequest } from "../helpers/harness.js";
import { chatBody, json, raw, startHttpHarness, type HttpHarness } from "../helpers/http.js";
import { frame, open, reply, session } from "../helpers/raw-grpc.js";

let h: HttpHarness;
beforeAll(async () => {
  h = await startHttpHarness();
});
afterAll(async () => {
  await h.close();
});

const HTTPS_IMAGE = [{ role: "user" as const, content: [{ type: "image_url" as const, image_url: { url: "https://example.com/cat.png" } }] }];

describe("/cerebras: Cerebras' flat error envelope", () => {
  it("the Cerebras SDK reads err.error.code, .param and .type, and its message is the message", async () => {
    const err = await h.cerebras.chat.completions.create({ model: "gpt-oss-120b", messages: HTTPS_IMAGE }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Cerebras.BadRequestError);
    const e = err as InstanceType<typeof Cerebras.BadRequestError>;
    expect(e.error).toMatchObject({ code: "invalid_request", type: "invalid_request_error", param: "messages.0.content.0.image_url.url" });
    expect(e.message).toMatch(/^400 invalid request: messages\.0\.content\.0\.image_url\.url: must be a base64 data URI/);
  });

  it("the same for refusals before the core (route, JSON) and for the upstream's own errors", async () => {
    const res = await raw(h.httpPort, { path: "/cerebras/v1/chat/completions", body: "{", headers: { "content-type": "application/json" } });
    expect(JSON.parse(res.text)).toMatchObject({ code: "invalid_json", type: "invalid_request_error", param: null, message: expect.stringContaining("not valid JSON") });
    h.fake.failNext({ kind: "http-error", status: 404, body: { message: "Model does not exist or you do not have access to it.", type: "not_found_error", param: "model", code: "model_not_found" } });
    const err = await h.cerebras.chat.completions.create({ model: "gpt-oss-120b", messages: [{ role: "user", content: "x" }] }).catch((x: unknown) => x);
    expect((err as InstanceType<typeof Cerebras.NotFoundError>).error).toMatchObject({ code: "model_not_found", type: "not_found_error" });
  });

  it("/v1 keeps OpenAI's wrapped envelope, with the JSON path as param", async () => {
    const err = await h.openai.chat.completions.create({ model: "gpt-oss-120b", messages: HTTPS_IMAGE }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("messages.0.content.0.image_url.url");
  });
});

describe("HTTP names the caller's JSON path, gRPC the proto path", () => {
  it.each<[string, Record<string, unknown>, string]>([
    ["an image part", { messages: [{ role: "user", content: [{ type: "text", text: "x" }, { type: "image", image: "https://x/y.png" }] }] }, "messages.0.content.1.image"],
    ["tool_choice naming no tool", { tools: [{ type: "function", function: { name: "f" } }], tool_choice: { type: "function", function: { name: "g" } } }, "tool_choice.function.name"],
    ["reasoning parts on a user message", { messages: [{ role: "user", content: "x" }, { role: "assistant", content: "y", reasoning: [] }] }, "messages.1.reasoning"],
    ["a legacy function's name", { functions: [{ name: "no spaces" }] }, "functions.0.name"],
    ["a too-deep legacy schema", { functions: [{ name: "f", parameters: JSON.parse('{"a":'.repeat(40) + "1" + "}".repeat(40)) as object }] }, "functions.0.parameters"],
    ["a prediction's parts", { prediction: { type: "content", content: [] } }, "prediction.content"],
  ])("%s", async (_name, extra, path) => {
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json({ ...chatBody("x"), ...extra }) });
    expect(res.status, res.text).toBe(400);
    const error = (JSON.parse(res.text) as { error: { param: string; message: string } }).error;
    expect(error.param).toBe(path);
    expect(error.message).not.toMatch(/content_parts|function_name|parameters_json|reasoning_parts/);
  });

  it("gRPC: the proto path", async () => {
    const err = (await rejection(
      create(h.chat, userRequest("x", { messages: [{ role: 3, contentKind: { $case: "contentParts", value: { parts: [{ part: { $case: "imageUrl", value: { url: "https://x/y.png" } } }] } }, toolCalls: [], toolCallId: "" }] })),
    )) as ServiceError;
    expect(decodeStatus(err).badRequest!.fieldViolations[0]!.field).toBe("messages.0.content_parts.parts.0.image_url.url");
  });
});

describe("gRPC: a request that cannot be decoded is INVALID_ARGUMENT with exactly one ErrorInfo", () => {
  const CREATE = "/aigateway.v1.ChatService/CreateChatCompletion";
  async function call(bytes: Uint8Array): Promise<{ code: number; details: ReturnType<typeof decodeStatus> }> {
    const s = await session(h.address);
    try {
      const stream = open(s, CREATE);
      stream.end(frame(bytes));
      const r = await reply(stream);
      const details = r.trailers["grpc-status-details-bin"];
      const err = { metadata: { get: () => (details ? [Buffer.from(String(details), "base64")] : []) } } as unknown as ServiceError;
      return { code: Number(r.trailers["grpc-status"]), details: decodeStatus(err) };
    } finally {
      s.close();
    }
  }
  const base = (): Uint8Array => ChatCompletionRequest.encode(userRequest("x")).finish();
  const cases: ReadonlyArray<[string, () => Uint8Array, string | undefined]> = [
    ["a seed above 2^53", () => Buffer.concat([base(), new BinaryWriter().tag(14, WireType.Varint).int64(2n ** 53n + 1n).finish()]), "seed"],
    ["a seed below -2^53", () => Buffer.concat([base(), new BinaryWriter().tag(14, WireType.Varint).int64(-(2n ** 60n)).finish()]), "seed"],
    ["bytes that are not the message", () => Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01]), undefined],
    ["invalid UTF-8 in the model", () => Buffer.concat([new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(Buffer.from([0x67, 0xc3, 0x28])).finish(), base()]), undefined],
    ["invalid UTF-8 deep in a message", () => Buffer.concat([base(), new BinaryWriter().tag(2, WireType.LengthDelimited).fork().tag(1, WireType.Varint).int32(3).tag(2, WireType.LengthDelimited).bytes(Buffer.from([0xed, 0xa0, 0x80])).join().finish()]), undefined],
  ];
  it.each(cases)("%s", async (_name, bytes, field) => {
    const before = h.fake.chatRequests().length;
    const { code, details } = await call(bytes());
    expect(code).toBe(status.INVALID_ARGUMENT);
    expect(details.code).toBe(status.INVALID_ARGUMENT);
    expect(details.errorInfoCount).toBe(1);
    expect(details.errorInfo).toMatchObject({ reason: "INVALID_REQUEST", domain: ERROR_DOMAIN });
    if (field !== undefined) expect(details.badRequest!.fieldViolations.map((v) => v.field)).toEqual([field]);
    expect(h.fake.chatRequests().length).toBe(before);
  });
});
