/**
 * The transport-free core. gRPC handlers and the HTTP shim both call this with the
 * generated message types; it validates, fills defaults and delegates to the provider.
 */
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { Model } from "../../gen/aigateway/v1/models.js";
import { GatewayError } from "./errors.js";
import type { CallContext, ChatProvider } from "./provider.js";
import { validateChatRequest } from "./validate.js";

export interface ChatServiceOptions {
  /** Used when a request leaves `model` empty. */
  readonly defaultModel: string;
  /** Upper bound on messages per request. */
  readonly maxMessages: number;
}

export class ChatService {
  constructor(
    private readonly provider: ChatProvider,
    private readonly options: ChatServiceOptions,
  ) {}

  async createChatCompletion(request: ChatCompletionRequest, ctx: CallContext): Promise<ChatCompletion> {
    return this.provider.createChatCompletion(this.prepare(request, false), ctx);
  }

  /** Throws (synchronously) a GatewayError for an invalid request, before any upstream call. */
  streamChatCompletion(request: ChatCompletionRequest, ctx: CallContext): AsyncIterable<ChatCompletionChunk> {
    return this.provider.streamChatCompletion(this.prepare(request, true), ctx);
  }

  listModels(ctx: CallContext): Promise<Model[]> {
    return this.provider.listModels(ctx);
  }

  async getModel(id: string, ctx: CallContext): Promise<Model> {
    if (id === "") throw GatewayError.invalidArgument([{ field: "id", description: "is required" }]);
    return this.provider.getModel(id, ctx);
  }

  private prepare(request: ChatCompletionRequest, stream: boolean): ChatCompletionRequest {
    const violations = validateChatRequest(request, { stream, maxMessages: this.options.maxMessages });
    if (violations.length > 0) throw GatewayError.invalidArgument(violations);
    // Mutating is safe: each transport decodes a fresh request per call.
    if (request.model === "") request.model = this.options.defaultModel;
    return request;
  }
}
