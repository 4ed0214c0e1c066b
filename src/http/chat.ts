/**
 * POST /v1/chat/completions: JSON → proto (the wire codec), the core, proto → JSON.
 * `"stream": true` answers with server-sent events, otherwise one JSON completion.
 */
import type { ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import { abortReason } from "../core/call-scope.js";
import type { ChatService } from "../core/chat-service.js";
import { chatRequestFromJson } from "../wire/request-from-json.js";
import { chatCompletionToJson } from "../wire/response-to-json.js";
import { readJsonBody } from "./body.js";
import type { HttpCall } from "./call.js";
import { failureFrom } from "./errors.js";
import { sendJson } from "./respond.js";
import { SseStream } from "./sse.js";
import { StreamUsage } from "./usage.js";

export interface ChatDeps {
  readonly chat: ChatService;
  readonly maxRequestBytes: number;
}

export async function chatCompletions(call: HttpCall, deps: ChatDeps): Promise<void> {
  const { request, stream, ignored } = chatRequestFromJson(await readJsonBody(call.req, deps.maxRequestBytes));
  call.ignored = ignored;
  if (!stream) {
    const completion = await deps.chat.createChatCompletion(request, call.scope);
    const cost = completion.usage?.costUsd;
    if (cost !== undefined) call.res.setHeader("x-cost-usd", String(cost));
    sendJson(call.res, 200, chatCompletionToJson(completion));
    return;
  }
  call.method = "StreamChatCompletion";
  await streamChunks(call, deps.chat.streamChatCompletion(request, call.scope), request.streamOptions?.includeUsage === true);
}

/**
 * The status line waits for the first chunk: a refusal before it (validation, 429,
 * model not found…) is still an ordinary JSON error with its HTTP status, which is what
 * SDKs turn into their typed errors. After it, a failure can only be reported in-band:
 * one last `data: {"error":{…},"status_code":N}` event (Cerebras' own mid-stream frame),
 * never a silent end.
 */
async function streamChunks(call: HttpCall, chunks: AsyncIterable<ChatCompletionChunk>, includeUsage: boolean): Promise<void> {
  const iterator = chunks[Symbol.asyncIterator]();
  let next = await iterator.next();
  const sse = new SseStream(call.res);
  const usage = new StreamUsage(includeUsage);
  let finished = false;
  sse.open();
  try {
    for (;;) {
      if (next.done) {
        finished = true;
        break;
      }
      for (const event of usage.events(next.value)) if (!(await sse.send(event))) throw abortReason(call.scope.signal);
      next = await iterator.next();
    }
    for (const event of usage.final()) if (!(await sse.send(event))) throw abortReason(call.scope.signal);
    sse.done();
  } catch (err) {
    const failure = failureFrom(err);
    sse.fail({ ...failure.envelope, status_code: failure.status });
    throw err;
  } finally {
    // Stopped early (client gone, write failed): let the provider drop the upstream now.
    if (!finished) await iterator.return?.();
  }
}
