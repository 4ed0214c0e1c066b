/**
 * What a refusal costs is bounded, whatever was asked: at most 20 field violations are
 * reported (checking stops there), echoed values (model ids, names, ids) are clipped, and
 * every status's trailers stay well under the 8 KiB C-core and Java clients accept by
 * default; a grpc-js client always gets its status, and its connection survives. SIGTERM
 * after the worst request still finishes within its grace.
 */
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatCompletionRequest, ChatServiceClient, Role, type Message } from "../../gen/aigateway/v1/chat.js";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { listening, spawnGateway } from "../helpers/gateway-process.js";
import { create, decodeStatus, rejection, startHarness, userRequest, type Harness } from "../helpers/harness.js";
import { chatBody, json, raw } from "../helpers/http.js";
import { frame, headerListSize, open, reply, session } from "../helpers/raw-grpc.js";

/** What the trailers may weigh at most: half of C-core's and Java's 8 KiB default. */
const TRAILER_BUDGET = 4096;
const CREATE = "/aigateway.v1.ChatService/CreateChatCompletion";

const text = (value: string): Message => ({ role: Role.ROLE_USER, contentKind: { $case: "content", value }, toolCalls: [], toolCallId: "" });

/** One assistant message with `n` tool calls, every one of them wrong (no id, a bad name), then nothing answering them. */
function manyViolations(n: number): ChatCompletionRequest {
  const toolCalls = Array.from({ length: n }, () => ({ id: "", type: "nope", function: { name: "not a name!", arguments: "" } }));
  return userRequest("x", { messages: [text("hi"), { role: Role.ROLE_ASSISTANT, toolCalls, toolCallId: "" }] });
}

const huge = (n: number, unit = "x"): string => unit.repeat(n);

/** The worst cases: each must come back small, with its code. */
const CASES: ReadonlyArray<{ name: string; request: () => ChatCompletionRequest; code: status; before?: (h: Harness) => void }> = [
  { name: "100k violations", request: () => manyViolations(100_000), code: status.INVALID_ARGUMENT },
  { name: "a 24 KB model id", request: () => userRequest("x", { model: huge(24_000) }), code: status.INVALID_ARGUMENT },
  { name: "a 24 KB model id of 3-byte characters", request: () => userRequest("x", { model: huge(8_000, "€") }), code: status.INVALID_ARGUMENT },
  { name: "a huge tool_call_id echoed", request: () => userRequest("x", { messages: [text("hi"), { role: Role.ROLE_TOOL, contentKind: { $case: "content", value: "r" }, toolCalls: [], toolCallId: huge(30_000, "é") }] }), code: status.INVALID_ARGUMENT },
  { name: "a huge tool_choice function name echoed", request: () => userRequest("x", { tools: [{ function: { name: "f" } }], toolChoice: { choice: { $case: "functionName", value: huge(30_000) } } }), code: status.INVALID_ARGUMENT },
  { name: "2048 huge logit_bias keys", request: () => userRequest("x", { logitBias: Object.fromEntries(Array.from({ length: 2048 }, (_, i) => [`${i}${huge(200, "k")}`, 1])) }), code: status.INVALID_ARGUMENT },
  {
    name: "a huge upstream message, type, code and param",
    request: () => userRequest("x"),
    code: status.INVALID_ARGUMENT,
    before: (h) => h.fake.failNext({ kind: "http-error", status: 400, body: { message: huge(200_000, "ü"), type: huge(50_000), code: huge(50_000), param: huge(50_000, "€") } }),
  },
  {
    name: "a huge upstream FastAPI detail list",
    request: () => userRequest("x"),
    code: status.INVALID_ARGUMENT,
    before: (h) => h.fake.failNext({ kind: "http-error", status: 422, body: { detail: Array.from({ length: 50_000 }, (_, i) => ({ loc: ["body", `f${i}${huge(50)}`], msg: huge(100), type: "x" })) } }),
  },
  { name: "a huge upstream 429 message", request: () => userRequest("x"), code: status.RESOURCE_EXHAUSTED, before: (h) => h.fake.failNext({ kind: "http-error", status: 429, body: { message: huge(100_000), type: "too_many_requests_error", code: "request_quota_exceeded" } }) },
];

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { UPSTREAM_MAX_RETRIES: "0", MAX_REQUEST_BYTES: String(64 * 1024 * 1024) } });
});
afterAll(async () => {
  await h.close();
});

describe("every refusal's trailers stay under 4 KiB, and the caller gets its status", () => {
  for (const c of CASES) {
    it(c.name, async () => {
      c.before?.(h);
      const s = await session(h.address);
      try {
        const call = open(s, CREATE);
        call.end(frame(ChatCompletionRequest.encode(c.request()).finish()));
        const r = await reply(call);
        expect(Number(r.trailers["grpc-status"])).toBe(c.code);
        expect(headerListSize(r.trailers)).toBeLessThan(TRAILER_BUDGET);
      } finally {
        s.close();
      }
      // A grpc-js client gets the same status with decodable details, and its connection is fine after.
      c.before?.(h);
      const err = (await rejection(create(h.chat, c.request()))) as ServiceError;
      expect(err.code).toBe(c.code);
      const d = decodeStatus(err);
      expect(d.errorInfoCount).toBe(1);
      expect(d.badRequest?.fieldViolations.length ?? 0).toBeLessThanOrEqual(20);
      expect((await create(h.chat, userRequest("still connected"))).choices[0]!.message!.content).toBe("Echo: still connected");
    });
  }

  it("reports the first 20 violations and says there are more", async () => {
    const err = (await rejection(create(h.chat, manyViolations(100_000)))) as ServiceError;
    const d = decodeStatus(err);
    expect(d.badRequest!.fieldViolations).toHaveLength(20);
    expect(d.badRequest!.fieldViolations[0]!.field).toBe("messages.1.tool_calls.0.id");
    expect(err.details).toMatch(/^invalid request: messages\.1\.tool_calls\.0\.id: is required \(and more: only the first 20 problems are reported\)$/);
  });

  it("clips an echoed model id (and refuses it at the door: INVALID_ARGUMENT on model)", async () => {
    const id = huge(300, "m");
    const err = (await rejection(create(h.chat, userRequest("x", { model: id })))) as ServiceError;
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    const d = decodeStatus(err);
    expect(d.badRequest!.fieldViolations.map((v) => v.field)).toEqual(["model"]);
    expect(JSON.stringify(d)).not.toContain(id.slice(0, 100));
  });
});

describe("the HTTP shim's error bodies are bounded too", () => {
  it("100k bad messages: a 400 naming at most 20, in a small body", async () => {
    const h2 = await startHarness({ env: { HTTP_PORT: "0", MAX_REQUEST_BYTES: String(64 * 1024 * 1024), MAX_MESSAGES: "1000000" } });
    try {
      const messages = Array.from({ length: 100_000 }, () => ({ role: "user", content: 1 }));
      const res = await raw(h2.gateway.httpPort!, { path: "/v1/chat/completions", ...json(chatBody("x", { messages })) });
      expect(res.status).toBe(400);
      expect(res.text.length).toBeLessThan(TRAILER_BUDGET);
      expect((JSON.parse(res.text) as { error: { message: string } }).error.message).toContain("(and more: checking stops after the first 20 problems)");
    } finally {
      await h2.close();
    }
  });
});

describe("SIGTERM after the worst request", () => {
  it("finishes within its grace", { timeout: 30_000 }, async () => {
    const p = spawnGateway({ GRPC_PORT: "0", HTTP_PORT: "0", FAKE_UPSTREAM_TOKEN_DELAY_MS: "0", SHUTDOWN_GRACE_S: "1", MAX_REQUEST_BYTES: String(64 * 1024 * 1024) });
    try {
      const at = await listening(p);
      const client = new ChatServiceClient(at.grpc, credentials.createInsecure());
      // Whatever the call's fate (today: INVALID_ARGUMENT), SIGTERM must then finish.
      const err = (await rejection(create(client, manyViolations(100_000), { deadline: Date.now() + 4_000 }, new Metadata()))) as ServiceError;
      client.close();
      const t0 = performance.now();
      expect(await p.stop()).toBe(0);
      expect(performance.now() - t0).toBeLessThan(5_000); // grace 1 s, with room for a loaded machine
      expect(err.code).toBe(status.INVALID_ARGUMENT);
    } finally {
      p.kill();
    }
  });
});
