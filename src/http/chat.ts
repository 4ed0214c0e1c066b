/**
 * POST /v1/chat/completions: JSON → proto (the wire codec), the core, proto → JSON.
 * `"stream": true` answers with server-sent events, otherwise one JSON completion.
 */
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { abortReason } from "../core/call-scope.js";
import type { ChatService } from "../core/chat-service.js";
import { toLegacyChunk, toLegacyCompletion } from "../wire/openai-fields.js";
import { chatRequestFromJson, inCallerPaths } from "../wire/request-from-json.js";
import { chatCompletionToJson } from "../wire/response-to-json.js";
import type { ChatCompletionChunkJson } from "../wire/schema.js";
import type { HttpCall } from "./call.js";
import { failureFrom } from "./errors.js";
import { sendJson, setCallHeaders } from "./respond.js";
import { SseStream } from "./sse.js";
import { StreamUsage } from "./usage.js";

export interface ChatDeps {
  readonly chat: ChatService;
  /** DROP_UNSUPPORTED_FIELDS: drop OpenAI fields Cerebras cannot honour instead of a 400. */
  readonly dropUnsupportedFields: boolean;
}

/** The body was read by the server before the call took its slot (routes.ts: `body: true`). */
export async function chatCompletions(call: HttpCall, deps: ChatDeps): Promise<void> {
  const decoded = chatRequestFromJson(call.body, { text: call.bodyText, dropUnsupported: deps.dropUnsupportedFields });
  call.bodyText = undefined; // decoded: the text is not needed any more
  const { request, stream, ignored, legacyFunctions } = decoded;
  call.ignored = ignored;
  try {
    if (!stream) {
      const completion = await deps.chat.createChatCompletion(request, call.scope);
      const cost = completion.usage?.costUsd;
      if (cost !== undefined) call.res.setHeader("x-cost-usd", String(cost));
      setCallHeaders(call.res, call.scope);
      const json = chatCompletionToJson(completion);
      sendJson(call.res, 200, legacyFunctions ? toLegacyCompletion(json) : json);
      return;
    }
    call.method = "StreamChatCompletion";
    await streamChunks(call, deps.chat, request, request.streamOptions?.includeUsage === true, legacyFunctions);
  } catch (err) {
    // The core names fields by their proto paths; the caller wrote JSON ones.
    throw inCallerPaths(err, decoded.callerPath);
  }
}

/**
 * The status line waits for the first chunk: a refusal before it (validation, 429,
 * model not found…) is still an ordinary JSON error with its HTTP status, which is what
 * SDKs turn into their typed errors. After it, a failure can only be reported in-band:
 * one last `data: {"error":{…},"status_code":N}` event (Cerebras' own mid-stream frame),
 * never a silent end.
 */
async function streamChunks(call: HttpCall, chat: ChatService, request: ChatCompletionRequest, includeUsage: boolean, legacy: boolean): Promise<void> {
  const usage = new StreamUsage(includeUsage);
  const shaped = legacy ? (events: ChatCompletionChunkJson[]) => events.map(toLegacyChunk) : (events: ChatCompletionChunkJson[]) => events;
  let sse: SseStream | undefined;
  let draining: Promise<void> | undefined;
  const send = (events: readonly unknown[]): void | Promise<void> => {
    sse ??= openSse(call);
    // Nothing to write yet (a chunk the shim does not show): the 200 goes now, on its own.
    if (events.length === 0) sse.flush();
    if (sendEvents(sse, events, call)) return undefined;
    return (draining ??= waitForDrain(sse, call).finally(() => (draining = undefined)));
  };
  try {
    await chat.streamChatCompletion(request, call.scope, (chunk) => send(shaped(usage.events(chunk))));
    await send(usage.final());
    sse!.done();
  } catch (err) {
    if (sse === undefined) throw err; // refused before the first chunk: an ordinary JSON error
    const failure = failureFrom(err);
    sse.fail({ ...failure.envelope, status_code: failure.status });
    throw err;
  }
}

function openSse(call: HttpCall): SseStream {
  setCallHeaders(call.res, call.scope);
  const sse = new SseStream(call.res);
  sse.open();
  return sse;
}

/** Writes the events; false when the socket buffer is full. A client that has gone fails the stream (which drops the upstream request). */
function sendEvents(sse: SseStream, events: readonly unknown[], call: HttpCall): boolean {
  let room = true;
  for (const event of events) if (!sse.write(event)) room = false;
  if (sse.closed) throw abortReason(call.scope);
  return room;
}

async function waitForDrain(sse: SseStream, call: HttpCall): Promise<void> {
  await sse.drained();
  if (sse.closed) throw abortReason(call.scope);
}
