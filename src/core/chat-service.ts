/**
 * The transport-free core. gRPC handlers and the HTTP shim both call this with the
 * generated message types. It resolves the model (default, aliases), runs every check
 * that can fail before the upstream is asked (so no quota is spent on a doomed request),
 * asks the router for the call's candidates (upstream keys and fallback models,
 * upstreams.ts), admits the call against the caller's and the organisation's limits
 * (admission.ts), walks the candidates with the provider (upstream-walk.ts), prices the
 * usage, and settles the admission.
 */
import { FinishReason, type ChatCompletion, type ChatCompletionChunk, type ChatCompletionRequest, type Usage } from "../../gen/aigateway/v1/chat.js";
import type { ListModelsResponse, Model } from "../../gen/aigateway/v1/models.js";
import { NO_ADMISSION, type Admission, type Reservation } from "./admission.js";
import type { ModelCatalog } from "./catalog.js";
import { costUsd } from "./cost.js";
import { clip, Code, GatewayError, Reason } from "./errors.js";
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "./failover.js";
import { checkAgainstModel, unknownModel } from "./preflight.js";
import type { CallContext, CallStats, ChatProvider, ChunkSink } from "./provider.js";
import { walkUpstreams, type RetryEvent, type WalkOptions } from "./upstream-walk.js";
import { SINGLE_UPSTREAM, type UpstreamRoute, type UpstreamRouter } from "./upstreams.js";
import { modelIdViolation, validateChatRequest } from "./validate.js";

export interface ChatServiceOptions {
  /** Used when a request leaves `model` empty (may be an alias). */
  readonly defaultModel: string;
  /** Upper bound on messages per request. */
  readonly maxMessages: number;
  /** Let models the catalog does not list through (dedicated endpoint ids). */
  readonly allowUnlistedModels: boolean;
  /** The attempt loop's rules (UPSTREAM_MAX_RETRIES, UPSTREAM_QUOTA_MAX_WAIT_MS); default DEFAULT_RETRY_POLICY. */
  readonly retry?: RetryPolicy;
  /** Told about each failed attempt another follows (a log line, a metric). */
  readonly onRetry?: (event: RetryEvent) => void;
}

const NOT_DELIVERED = (): boolean => false;

export class ChatService {
  private readonly walk: WalkOptions;

  constructor(
    private readonly provider: ChatProvider,
    private readonly catalog: ModelCatalog,
    private readonly options: ChatServiceOptions,
    /** Caller quotas and organisation limits; NO_ADMISSION when nothing is limited. */
    private readonly admission: Admission = NO_ADMISSION,
    /** Which upstream key (and fallback model) to try, in order; SINGLE_UPSTREAM: the one key. */
    private readonly upstreams: UpstreamRouter = SINGLE_UPSTREAM,
  ) {
    this.walk = { router: upstreams, policy: options.retry ?? DEFAULT_RETRY_POLICY, onRetry: options.onRetry };
  }

  async createChatCompletion(request: ChatCompletionRequest, ctx: CallContext): Promise<ChatCompletion> {
    const model = this.prepare(request, false, ctx);
    const route = this.route(request, model, ctx);
    const admitted = this.admission.admit(request, model, ctx, route.candidates);
    // The no-op admission answers synchronously: no promise, no extra turn.
    const reservation = admitted instanceof Promise ? await admitted : admitted;
    let completion: ChatCompletion;
    try {
      leftDuringAdmission(ctx);
      completion = await walkUpstreams(this.walk, {
        request,
        ctx,
        reservation,
        route,
        reroute: () => this.route(request, model, ctx),
        attempt: (req, c, n) => this.provider.createChatCompletion(req, ctx, { key: c.key, number: n }),
        delivered: NOT_DELIVERED,
      });
    } catch (err) {
      if (reservation.limited) settle(reservation, ctx, undefined, err);
      throw err;
    }
    if (completion.usage !== undefined) this.account(completion.usage, ctx.stats.upstreamModel ?? request.model, ctx);
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
    const route = this.route(request, model, ctx);
    const admitted = this.admission.admit(request, model, ctx, route.candidates);
    const reservation = admitted instanceof Promise ? await admitted : admitted;
    const limited = reservation.limited;
    let usage: Usage | undefined;
    let delivered = false;
    // The model that answers prices the usage: a fallback's prices are its own.
    let answering = request.model;
    const chunks: ChunkSink = (chunk) => {
      delivered = true;
      if (chunk.usage !== undefined) {
        this.account(chunk.usage, answering, ctx);
        usage = chunk.usage;
        if (chunk.timeInfo !== undefined) ctx.stats.timeInfo = chunk.timeInfo;
        noteResponse(ctx.stats, chunk);
      }
      if (limited) reservation.delivered(chunk);
      return sink(chunk);
    };
    try {
      leftDuringAdmission(ctx);
      await walkUpstreams(this.walk, {
        request,
        ctx,
        reservation,
        route,
        reroute: () => this.route(request, model, ctx),
        attempt: (req, c, n) => {
          answering = req.model;
          return this.provider.streamChatCompletion(req, ctx, chunks, { key: c.key, number: n });
        },
        delivered: () => delivered,
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

  /**
   * The call's candidates: the router's, less the fallback models the catalog says
   * cannot take this request (unknown while the catalog is fresh, or the request breaks
   * one of their limits). NOT_FOUND when no upstream key serves the requested model.
   */
  private route(request: ChatCompletionRequest, model: Model | undefined, ctx: CallContext): UpstreamRoute {
    const route = this.upstreams.route(request, model, ctx.fallbacks !== false);
    let fallbacks = false;
    let primary = false;
    for (const c of route.candidates) {
      if (c.fallback > 0) fallbacks = true;
      else primary = true;
    }
    if (!primary) throw noUpstreamFor(request.model);
    if (!fallbacks) return route;
    const fits = new Map<string, boolean>();
    const candidates = route.candidates.filter((c) => {
      if (c.fallback === 0) return true;
      let ok = fits.get(c.model);
      if (ok === undefined) fits.set(c.model, (ok = this.fallbackFits(request, c.model)));
      return ok;
    });
    return candidates.length === route.candidates.length ? route : { candidates, tokens: route.tokens };
  }

  /** Whether `id` could take `request` as far as the catalog knows (the checks prepare() runs for the requested model). */
  private fallbackFits(request: ChatCompletionRequest, id: string): boolean {
    const model = this.catalog.get(id);
    if (model === undefined) return !this.catalog.fresh || this.options.allowUnlistedModels;
    return checkAgainstModel(request, model).length === 0;
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
 * A reason the contract does not know is kept as the upstream said it.
 */
function noteResponse(stats: CallStats, answer: ChatCompletion | ChatCompletionChunk): void {
  stats.responseId = answer.id;
  stats.responseModel = answer.model;
  stats.finishReasons = answer.choices.map((c) => (c.finishReason === FinishReason.FINISH_REASON_OTHER ? (c.finishReasonRaw ?? c.finishReason) : c.finishReason));
}

/** No upstream key is configured to serve the model (the keys' `models` lists leave it out). */
function noUpstreamFor(id: string): GatewayError {
  const shown = clip(id);
  return new GatewayError({
    code: Code.NOT_FOUND,
    reason: Reason.MODEL_NOT_FOUND,
    message: `no upstream key serves model "${shown}" (see the keys' models in CEREBRAS_KEYS_FILE)`,
    metadata: { model: shown },
    fieldViolations: [{ field: "model", description: `no upstream key serves "${shown}"` }],
  });
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
