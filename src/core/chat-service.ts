/**
 * The transport-free core. gRPC handlers and the HTTP shim both call this with the
 * generated message types. It resolves the model (default, aliases), runs every check
 * that can fail before the upstream is asked (so no quota is spent on a doomed request),
 * admits the call against the caller's and the organisation's limits (admission.ts),
 * delegates to the provider, prices the usage, and settles the admission.
 */
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Usage } from "../../gen/aigateway/v1/chat.js";
import type { ListModelsResponse, Model } from "../../gen/aigateway/v1/models.js";
import { NO_ADMISSION, type Admission, type Reservation } from "./admission.js";
import type { ModelCatalog } from "./catalog.js";
import { costUsd } from "./cost.js";
import { Code, GatewayError } from "./errors.js";
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
    /** Caller quotas and organisation limits; NO_ADMISSION when nothing is limited. */
    private readonly admission: Admission = NO_ADMISSION,
  ) {}

  async createChatCompletion(request: ChatCompletionRequest, ctx: CallContext): Promise<ChatCompletion> {
    const model = this.prepare(request, false, ctx);
    const admitted = this.admission.admit(request, model, ctx);
    // The no-op admission answers synchronously: no promise, no extra turn.
    const reservation = admitted instanceof Promise ? await admitted : admitted;
    let completion: ChatCompletion;
    try {
      leftDuringAdmission(ctx);
      completion = await this.provider.createChatCompletion(request, ctx);
    } catch (err) {
      if (reservation.limited) settle(reservation, ctx, undefined, err);
      throw err;
    }
    if (completion.usage !== undefined) this.account(completion.usage, request.model, ctx);
    if (completion.timeInfo !== undefined) ctx.stats.timeInfo = completion.timeInfo;
    noteResponse(ctx.stats, completion);
    if (reservation.limited) settle(reservation, ctx, completion.usage, undefined);
    return completion;
  }

  /**
   * The answer's chunks, handed to `sink` as they arrive (see ChatProvider). A request that
   * cannot succeed is refused before any upstream call; the chunk carrying usage gets its
   * cost before the sink sees it.
   */
  async streamChatCompletion(request: ChatCompletionRequest, ctx: CallContext, sink: ChunkSink): Promise<void> {
    const model = this.prepare(request, true, ctx);
    const admitted = this.admission.admit(request, model, ctx);
    const reservation = admitted instanceof Promise ? await admitted : admitted;
    const id = request.model;
    const limited = reservation.limited;
    let usage: Usage | undefined;
    try {
      leftDuringAdmission(ctx);
      await this.provider.streamChatCompletion(request, ctx, (chunk) => {
        if (chunk.usage !== undefined) {
          this.account(chunk.usage, id, ctx);
          usage = chunk.usage;
          if (chunk.timeInfo !== undefined) ctx.stats.timeInfo = chunk.timeInfo;
          noteResponse(ctx.stats, chunk);
        }
        if (limited) reservation.delivered(chunk);
        return sink(chunk);
      });
    } catch (err) {
      if (limited) settle(reservation, ctx, usage, err);
      throw err;
    }
    if (limited) settle(reservation, ctx, usage, undefined);
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

  /** Validates and resolves the model in place (request.model is its id); returns the catalog's entry for it, if any. */
  private prepare(request: ChatCompletionRequest, stream: boolean, ctx: CallContext): Model | undefined {
    const violations = validateChatRequest(request, { stream, maxMessages: this.options.maxMessages });
    if (violations.length > 0) throw GatewayError.invalidArgument(violations);
    // Mutating is safe: each transport decodes a fresh request per call.
    const id = this.catalog.resolve(request.model === "" ? this.options.defaultModel : request.model);
    request.model = id;
    ctx.stats.model = id;

    const model = this.catalog.get(id);
    if (model === undefined) {
      if (this.catalog.fresh && !this.options.allowUnlistedModels) throw unknownModel(id);
      return undefined;
    }
    const modelViolations = checkAgainstModel(request, model);
    if (modelViolations.length > 0) throw GatewayError.invalidArgument(modelViolations);
    return model;
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

/** The caller left while the call waited for admission (a store round trip, the organisation's queue): nothing goes upstream. */
function leftDuringAdmission(ctx: CallContext): void {
  if (ctx.abortReason !== undefined) throw ctx.abortReason;
}

/** Settles an admitted call with what the core saw of its end (see CallOutcome). */
function settle(reservation: Reservation, ctx: CallContext, usage: Usage | undefined, err: unknown): void {
  const error = err === undefined ? undefined : GatewayError.from(err);
  reservation.settle({ usage, error, processed: processed(ctx, error), upstreamRateLimits: ctx.stats.upstreamRateLimits });
}

/**
 * Whether the upstream took the request in: it succeeded, or it answered 200 (a stream
 * that failed later), or the caller left while a request was out (attempts made, no
 * answer yet): the upstream may well be working on it. An error status from the upstream,
 * or a connection that never got one, means it did not.
 */
function processed(ctx: CallContext, error: GatewayError | undefined): boolean {
  if (error === undefined) return true;
  const s = ctx.stats;
  if (s.upstreamStatus === 200) return true;
  // attempts is set as a request is sent: without it, the caller left before anything was.
  const left = error.code === Code.CANCELLED || error.code === Code.DEADLINE_EXCEEDED;
  return left && s.attempts !== undefined && s.upstreamStatus === undefined;
}
