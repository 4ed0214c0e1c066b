/**
 * What Cerebras accepts, both transports accept and pass on, the same way: a recorded
 * conversation replayed as it is (a tool message's `name`, assistant `tool_calls[].index`),
 * reasoning sent back as text parts, and Cerebras' own `{type: "image"}` part. gRPC used to
 * drop the tool `name` silently while HTTP refused it; now both send it upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatCompletionRequest, Role } from "../../gen/aigateway/v1/chat.js";
import { create } from "../helpers/harness.js";
import { startHttpHarness, type HttpHarness } from "../helpers/http.js";
import { RECORDED_CONVERSATION } from "../fixtures/recorded-conversation.js";

let h: HttpHarness;
beforeAll(async () => {
  h = await startHttpHarness();
});
afterAll(async () => {
  await h.close();
});

const upstream = (): { messages: unknown[] } => h.fake.chatRequests().at(-1)!.body as { messages: unknown[] };

/** The same conversation as a gRPC request. */
function recordedAsProto(): ChatCompletionRequest {
  const [system, user] = RECORDED_CONVERSATION.messages;
  return ChatCompletionRequest.fromPartial({
    model: RECORDED_CONVERSATION.model,
    messages: [
      { role: Role.ROLE_SYSTEM, contentKind: { $case: "content", value: system.content } },
      { role: Role.ROLE_USER, contentKind: { $case: "content", value: user.content } },
      {
        role: Role.ROLE_ASSISTANT,
        toolCalls: [
          { id: "ab8048658", type: "function", index: 0, function: { name: "add", arguments: '{"a": 2, "b": 3}' } },
          { id: "27781e665", type: "function", index: 1, function: { name: "multiply", arguments: '{"a": 2, "b": 3}' } },
        ],
      },
      { role: Role.ROLE_TOOL, toolCallId: "ab8048658", name: "add", contentKind: { $case: "content", value: "5" } },
      { role: Role.ROLE_TOOL, toolCallId: "27781e665", name: "multiply", contentKind: { $case: "content", value: "6" } },
    ],
    tools: RECORDED_CONVERSATION.tools.map((t) => ({ function: { name: t.function.name, description: t.function.description, parameters: t.function.parameters } })),
  });
}

const EXPECTED_UPSTREAM = [
  { role: "system", content: "You are a helpful assistant. Use the tools when they help." },
  { role: "user", content: "Add 2 and 3, and multiply 2 by 3." },
  {
    role: "assistant",
    tool_calls: [
      { id: "ab8048658", type: "function", index: 0, function: { name: "add", arguments: '{"a": 2, "b": 3}' } },
      { id: "27781e665", type: "function", index: 1, function: { name: "multiply", arguments: '{"a": 2, "b": 3}' } },
    ],
  },
  { role: "tool", content: "5", tool_call_id: "ab8048658", name: "add" },
  { role: "tool", content: "6", tool_call_id: "27781e665", name: "multiply" },
];

describe("replaying a recorded Cerebras conversation (tool name, tool_calls index)", () => {
  it("through the Cerebras SDK on /cerebras", async () => {
    const completion = (await h.cerebras.chat.completions.create(RECORDED_CONVERSATION as never)) as { choices: Array<{ message: { content?: string | null } }> };
    expect(completion.choices[0]!.message.content).toBe("The tool returned: 6");
    expect(upstream().messages).toEqual(EXPECTED_UPSTREAM);
  });

  it("through gRPC: the same upstream messages (the tool name is no longer dropped)", async () => {
    const completion = await create(h.chat, recordedAsProto());
    expect(completion.choices[0]!.message!.content).toBe("The tool returned: 6");
    expect(upstream().messages).toEqual(EXPECTED_UPSTREAM);
  });
});

describe("reasoning as text parts, and Cerebras' image part", () => {
  const IMAGE = "data:image/png;base64,iVBORw0KGgo=";
  const expected = [
    { role: "user", content: [{ type: "text", text: "what is this?" }, { type: "image", image: IMAGE }] },
    { role: "assistant", content: "A pixel.", reasoning: [{ type: "text", text: "It is tiny." }] },
    { role: "user", content: "sure?" },
  ];

  it("HTTP", async () => {
    const res = await fetch(`${h.baseUrl}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "gemma-4-31b", messages: expected }) });
    expect(res.status, await res.clone().text()).toBe(200);
    expect(upstream().messages).toEqual(expected);
  });

  it("gRPC", async () => {
    await create(
      h.chat,
      ChatCompletionRequest.fromPartial({
        model: "gemma-4-31b",
        messages: [
          { role: Role.ROLE_USER, contentKind: { $case: "contentParts", value: { parts: [{ part: { $case: "text", value: "what is this?" } }, { part: { $case: "image", value: IMAGE } }] } } },
          { role: Role.ROLE_ASSISTANT, contentKind: { $case: "content", value: "A pixel." }, reasoningParts: { parts: [{ part: { $case: "text", value: "It is tiny." } }] } },
          { role: Role.ROLE_USER, contentKind: { $case: "content", value: "sure?" } },
        ],
      }),
    );
    expect(upstream().messages).toEqual(expected);
  });
});
