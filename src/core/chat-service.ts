/**
 * The transport-free core. gRPC handlers and the HTTP shim both call this with the
 * generated message types. It resolves the model (default, aliases), runs every check
 * that can fail before the upstream is asked (so no quota is spent on a doomed request),
 * delegates to the provider, and prices the usage.
 */
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Usage } from "../../gen/aigateway/v1/chat.js";
import type { ListModelsResponse, Model } from "../../gen/aigateway/v1/models.js";
import type { ModelCatalog } from "./catalog.js";
import { costUsd } from "./cost.js";
import { GatewayError } from "./errors.js";
import { checkAgainstModel, unknownModel } from "./preflight.js";
import type { CallContext, CallStats, ChatProvider, ChunkSink } from "./provider.js";
import { modelIdViolation, validateChatRequest } from "./validate.js";

export interface ChatServiceOptions {
  /** Used when a request leaves `model` empty (may be an alias). */
  readonly defaultModel: string;
  /** Upper bound on messages per request. */
  readonly maxMessages: number;
  /** Let models the catalog does not list through (dedicated endpoint ids). */
  readonly allowUnlistedModels: boolean;
}

export class ChatService {
  constructor(
    private readonly provider: ChatProvider,
    private readonly catalog: ModelCatalog,
    private readonly options: ChatServiceOptions,
  ) {}

  async createChatCompletion(request: ChatCompletionRequest, ctx: CallContext): Promise<ChatCompletion> {
    const model = this.prepare(request, false, ctx);
    const completion = await this.provider.createChatCompletion(request, ctx);
    if (completion.usage !== undefined) this.account(completion.usage, model, ctx);
    if (completion.timeInfo !== undefined) ctx.stats.timeInfo = completion.timeInfo;
    noteResponse(ctx.stats, completion);
    return completion;
  }

  /**
   * The answer's chunks, handed to `sink` as they arrive (see ChatProvider). A request that
   * cannot succeed is refused before any upstream call; the chunk carrying usage gets its
   * cost before the sink sees it.
   */
  async streamChatCompletion(request: ChatCompletionRequest, ctx: CallContext, sink: ChunkSink): Promise<void> {
    const model = this.prepare(request, true, ctx);
    await this.provider.streamChatCompletion(request, ctx, (chunk) => {
      if (chunk.usage !== undefined) {
        this.account(chunk.usage, model, ctx);
        if (chunk.timeInfo !== undefined) ctx.stats.timeInfo = chunk.timeInfo;
        noteResponse(ctx.stats, chunk);
      }
      return sink(chunk);
    });
  }

  /** The catalog; loaded now if it never was (the first call after start-up may wait for it). */
  async listModels(ctx: CallContext): Promise<ListModelsResponse> {
    await this.ensureCatalog(ctx);
    const { models, stale, fetchedAt } = this.catalog.snapshot();
    return { models: [...models], stale, fetchedAt: Math.floor(fetchedAt / 1000) };
  }

  /** One model by id or alias; NOT_FOUND when the catalog does not list it. */
  async getModel(id: string, ctx: CallContext): Promise<Model> {
    if (id === "") throw GatewayError.invalidArgument([{ field: "id", description: "is required" }]);
    const tooLong = modelIdViolation(id, "id");
    if (tooLong !== undefined) throw GatewayError.invalidArgument([tooLong]);
    await this.ensureCatalog(ctx);
    const model = this.catalog.get(id);
    if (model === undefined) throw unknownModel(this.catalog.resolve(id));
    return model;
  }

  private async ensureCatalog(ctx: CallContext): Promise<void> {
    if (this.catalog.loaded) return;
    await this.catalog.refresh();
    if (ctx.abortReason !== undefined) throw ctx.abortReason;
    if (!this.catalog.loaded) throw this.catalog.lastError ?? GatewayError.from(undefined);
  }

  /** Validates, resolves the model in place and returns its id. */
  private prepare(request: ChatCompletionRequest, stream: boolean, ctx: CallContext): string {
    const violations = validateChatRequest(request, { stream, maxMessages: this.options.maxMessages });
    if (violations.length > 0) throw GatewayError.invalidArgument(violations);
    // Mutating is safe: each transport decodes a fresh request per call.
    const id = this.catalog.resolve(request.model === "" ? this.options.defaultModel : request.model);
    request.model = id;
    ctx.stats.model = id;

    const model = this.catalog.get(id);
    if (model === undefined) {
      if (this.catalog.fresh && !this.options.allowUnlistedModels) throw unknownModel(id);
      return id;
    }
    const modelViolations = checkAgainstModel(request, model);
    if (modelViolations.length > 0) throw GatewayError.invalidArgument(modelViolations);
    return id;
  }

  /** Notes the tokens and, when the model's prices are known, the cost (into usage.cost_usd). */
  private account(usage: Usage, model: string, ctx: CallContext): void {
    const cost = costUsd(usage, this.catalog.pricing(model));
    if (cost !== undefined) usage.costUsd = cost;
    const s = ctx.stats;
    s.promptTokens = usage.promptTokens;
    s.completionTokens = usage.completionTokens;
    s.cachedTokens = usage.promptTokensDetails?.cachedTokens ?? 0;
    s.reasoningTokens = usage.completionTokensDetails?.reasoningTokens ?? 0;
    if (cost !== undefined) s.costUsd = cost;
  }
}

/**
 * The answer's id, model and finish reasons, for the call's span: from a unary answer, or
 * from a stream's usage chunk (Cerebras sends usage with the finish_reason, in the last chunk).
 */
function noteResponse(stats: CallStats, answer: ChatCompletion | ChatCompletionChunk): void {
  stats.responseId = answer.id;
  stats.responseModel = answer.model;
  stats.finishReasons = answer.choices.map((c) => c.finishReason);
}
