/**
 * The seam between the transport-free core and whatever answers chat completions.
 * The core defines it; src/providers/* implement it; src/main.ts wires one in.
 */
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { Model } from "../../gen/aigateway/v1/models.js";

/** What a provider knows about the call it serves. */
export interface CallContext {
  /**
   * Aborted when the caller cancels or disconnects (reason: a CANCELLED GatewayError)
   * or when the call's time budget runs out (reason: a DEADLINE_EXCEEDED GatewayError).
   * Providers pass it to their HTTP client so the upstream request stops at once.
   */
  readonly signal: AbortSignal;
  /** Epoch milliseconds by which the call must be over; Infinity when unbounded. */
  readonly deadline: number;
  /** The call's request id, sent upstream and echoed to the caller. */
  readonly requestId: string;
}

export interface ChatProvider {
  /** One complete answer. Rejects with a GatewayError. */
  createChatCompletion(request: ChatCompletionRequest, ctx: CallContext): Promise<ChatCompletion>;
  /**
   * The answer as chunks, in upstream order. Throws a GatewayError before the first
   * chunk (request refused) or during iteration (stream failed); ends normally only
   * after a chunk with a finish_reason. Stopping iteration early aborts the upstream.
   */
  streamChatCompletion(request: ChatCompletionRequest, ctx: CallContext): AsyncIterable<ChatCompletionChunk>;
  /** The models the upstream offers. */
  listModels(ctx: CallContext): Promise<Model[]>;
  /** One model; NOT_FOUND GatewayError when the upstream does not know it. */
  getModel(id: string, ctx: CallContext): Promise<Model>;
  /** Closes connections. In-flight calls are aborted. */
  close(): Promise<void>;
}
