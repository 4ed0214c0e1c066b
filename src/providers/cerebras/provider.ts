/**
 * The Cerebras provider: proto requests in, Cerebras HTTP API over an undici Pool
 * (keep-alive), proto responses out.
 *
 * Each upstream request is an Exchange (exchange.ts) on undici's dispatch API: bodies go
 * from socket reads straight to a sink (the whole text for JSON, the SSE → chunk reader
 * for streams, stream-reader.ts), with no stream objects in between. Cancellation is the
 * CallContext's abort (onAbort), so a caller leaving closes the upstream request at once.
 * Transient failures are retried (retry.ts) only while nothing has reached the caller,
 * and only within the call's budget. Streams are watched for a first token and for gaps
 * between chunks (watchdog.ts).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Pool } from "undici";
import type { ChatCompletion, ChatCompletionRequest } from "../../../gen/aigateway/v1/chat.js";
import type { Model } from "../../../gen/aigateway/v1/models.js";
import { abortReason } from "../../core/call-scope.js";
import { GatewayError, ProviderError, Reason } from "../../core/errors.js";
import type { CallContext, ChatProvider, ChunkSink } from "../../core/provider.js";
import type { UpstreamTarget } from "../../core/tracing.js";
import { isJsonObject } from "../../wire/json.js";
import { chatRequestToJson } from "../../wire/request.js";
import { badResponse, chatCompletionFromJson } from "../../wire/response.js";
import { errorFromNetwork, errorFromResponse, isNetworkError } from "./errors.js";
import { Exchange, type BodySink, type Headers } from "./exchange.js";
import { noteRateLimits } from "./rate-limits.js";
import { DEFAULT_RETRY_POLICY, retryDelay, type RetryPolicy } from "./retry.js";
import { StreamReader } from "./stream-reader.js";
import { Watchdog } from "./watchdog.js";

export interface CerebrasProviderOptions {
  /** e.g. https://api.cerebras.ai (a path prefix is kept). */
  readonly baseUrl: string;
  readonly apiKey: string;
  /** Most sockets to keep open to the upstream. */
  readonly connections?: number;
  /** Largest non-streamed upstream body accepted. */
  readonly maxResponseBytes?: number;
  readonly retry?: RetryPolicy;
  /** Streams: longest wait for the first chunk, connect included. */
  readonly firstTokenTimeoutMs?: number;
  /** Streams: longest gap between two chunks. */
  readonly streamIdleTimeoutMs?: number;
  /** Streams: plain text deltas of one socket read go to the sink as one chunk (stream-reader.ts). */
  readonly mergeDeltas?: boolean;
  /** Told about each retry (for a log line); never on the hot path of a good call. */
  readonly onRetry?: (event: RetryEvent) => void;
}

export interface RetryEvent {
  readonly requestId: string;
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: GatewayError;
}

const USER_AGENT = "cerebras-grpc-gateway/0.1";
/** Error bodies are small; reading more than this is pointless. */
const MAX_ERROR_BODY = 64 * 1024;
const CHAT_PATH = "/v1/chat/completions";

export class CerebrasProvider implements ChatProvider {
  private readonly pool: Pool;
  private readonly basePath: string;
  /** Request headers every upstream call sends, as undici's flat [name, value, …] list. */
  private readonly headers: readonly string[];
  private readonly maxResponseBytes: number;
  private readonly retry: RetryPolicy;
  private readonly firstTokenMs: number;
  private readonly idleMs: number;
  private readonly mergeDeltas: boolean;
  private readonly onRetry: ((event: RetryEvent) => void) | undefined;
  /** Where attempts go, for their spans. */
  private readonly upstream: UpstreamTarget;

  constructor(options: CerebrasProviderOptions) {
    const url = new URL(options.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, "");
    this.headers = ["authorization", `Bearer ${options.apiKey}`, "content-type", "application/json", "user-agent", USER_AGENT];
    this.maxResponseBytes = options.maxResponseBytes ?? 32 * 1024 * 1024;
    this.retry = options.retry ?? DEFAULT_RETRY_POLICY;
    this.firstTokenMs = options.firstTokenTimeoutMs ?? 60_000;
    this.idleMs = options.streamIdleTimeoutMs ?? 30_000;
    this.mergeDeltas = options.mergeDeltas ?? false;
    this.onRetry = options.onRetry;
    this.upstream = { host: url.hostname, port: url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port) };
    this.pool = new Pool(url.origin, {
      connections: options.connections ?? 128,
      keepAliveTimeout: 30_000,
      // The call's budget and the stream watchdog do the real timing; these only catch
      // a silent peer on a call with no budget at all.
      headersTimeout: 600_000,
      bodyTimeout: 600_000,
    });
  }

  async createChatCompletion(request: ChatCompletionRequest, ctx: CallContext): Promise<ChatCompletion> {
    const body = JSON.stringify(chatRequestToJson(request, false));
    for (let retries = 0; ; retries++) {
      ctx.stats.attempts = retries + 1;
      const sent = performance.now();
      const attempt = ctx.trace.startAttempt(request, retries + 1, false, this.upstream);
      try {
        const text = await this.fetchText("POST", CHAT_PATH, body, ctx, attempt.headers);
        const completion = chatCompletionFromJson(parseJson(text));
        ctx.stats.firstChunkAt = performance.now();
        attempt.end(undefined, ctx.stats);
        return completion;
      } catch (err) {
        const failure = GatewayError.from(err);
        attempt.end(failure, ctx.stats);
        await this.beforeRetry(failure, retries, ctx);
      } finally {
        ctx.stats.upstreamMs = (ctx.stats.upstreamMs ?? 0) + (performance.now() - sent);
      }
    }
  }

  async streamChatCompletion(request: ChatCompletionRequest, ctx: CallContext, sink: ChunkSink): Promise<void> {
    const body = JSON.stringify(chatRequestToJson(request, true));
    for (let retries = 0; ; retries++) {
      ctx.stats.attempts = retries + 1;
      const sent = performance.now();
      let exchange: Exchange | undefined;
      const watchdog = new Watchdog(this.firstTokenMs, this.idleMs, (stall) => exchange?.abort(stall));
      const reader = new StreamReader(sink, watchdog, ctx.stats, { mergeDeltas: this.mergeDeltas });
      const open = new Exchange(reader, ctx, MAX_ERROR_BODY, (_status, headers) => noteRateLimits(ctx, headers));
      exchange = open;
      const attempt = ctx.trace.startAttempt(request, retries + 1, true, this.upstream);
      const sending = this.exchange(open, "POST", CHAT_PATH, body, ctx, "text/event-stream", attempt.headers);
      let early = false;
      try {
        // The answer can be complete before its body ends (stream-reader.ts): then the call is over.
        early = await Promise.race([sending.then(() => false), reader.completed.then(() => true)]);
        if (early || reader.finished) attempt.end(undefined, ctx.stats);
      } catch (err) {
        const failure = this.failure(err, ctx, reader.delivered > 0);
        attempt.end(failure, ctx.stats);
        // Once a chunk reached the caller, a retry would repeat it: the stream fails instead.
        if (reader.delivered > 0) throw failure.withMetadata({ chunksDelivered: String(reader.delivered) });
        await this.beforeRetry(failure, retries, ctx);
        continue;
      } finally {
        ctx.stats.upstreamMs = (ctx.stats.upstreamMs ?? 0) + (performance.now() - sent);
        if (!early) watchdog.dispose();
      }
      if (early) {
        // The rest of the body drains in the background (so the socket can be reused), or is dropped if it does not end soon.
        noteUpstream(open, ctx);
        watchdog.settle(() => open.abort(BODY_NOT_ENDED));
        sending.then(
          () => watchdog.dispose(),
          () => watchdog.dispose(),
        );
        return;
      }
      if (reader.finished) return;
      const truncated = new ProviderError({
        reason: Reason.UPSTREAM_STREAM_TRUNCATED,
        message: "the Cerebras stream ended before a finish_reason",
        metadata: { chunksDelivered: String(reader.delivered) },
      });
      attempt.end(truncated, ctx.stats);
      throw truncated;
    }
  }

  /**
   * The models the key can use (/v1/models), with limits, prices and capabilities from
   * the public catalog (/public/v1/models) where it has them. The public catalog is
   * optional: without it the models come back without details.
   */
  async listModels(ctx: CallContext): Promise<Model[]> {
    const [listed, details] = await Promise.all([
      this.fetchText("GET", "/v1/models", undefined, ctx).then(parseJson),
      this.fetchText("GET", "/public/v1/models", undefined, ctx).then(parseJson, () => undefined),
    ]);
    const data = (listed as { data?: unknown })?.data;
    if (!Array.isArray(data)) throw badResponse("model list has no data array");
    const publicRows = (details as { data?: unknown })?.data;
    const byId = new Map<string, Record<string, unknown>>();
    if (Array.isArray(publicRows)) {
      for (const row of publicRows) if (isJsonObject(row) && typeof row["id"] === "string") byId.set(row["id"], row);
    }
    return data.map((row) => modelFromJson(row, byId));
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }

  /**
   * Returns after the backoff when `err` is worth another attempt; throws the error to
   * give to the caller otherwise (with the attempt count when there was more than one).
   */
  private async beforeRetry(err: GatewayError, retries: number, ctx: CallContext): Promise<void> {
    if (ctx.abortReason !== undefined) throw ctx.abortReason;
    const delay = retryDelay(err, retries, ctx.deadline - Date.now(), this.retry);
    if (delay === undefined) throw retries === 0 ? err : err.withMetadata({ attempts: String(retries + 1) });
    this.onRetry?.({ requestId: ctx.requestId, attempt: retries + 1, delayMs: Math.round(delay), error: err });
    try {
      await sleep(delay, undefined, { signal: ctx.signal });
    } catch {
      throw abortReason(ctx);
    }
  }

  /**
   * A request whose 200 body is wanted whole, as text; rejects with a GatewayError otherwise.
   * Chat completions note the upstream's rate-limit headers on the call (rate-limits.ts).
   */
  private async fetchText(method: "GET" | "POST", path: string, body: string | undefined, ctx: CallContext, traceHeaders?: readonly string[]): Promise<string> {
    const text = new TextSink(this.maxResponseBytes);
    const onResponse = path === CHAT_PATH ? (_status: number, headers: Headers) => noteRateLimits(ctx, headers) : undefined;
    try {
      await this.exchange(new Exchange(text, ctx, MAX_ERROR_BODY, onResponse), method, path, body, ctx, "application/json", traceHeaders);
    } catch (err) {
      throw this.failure(err, ctx, false);
    }
    return text.text();
  }

  /**
   * Runs `exchange` to its end and notes the upstream's status and request id; rejects
   * with the exchange's failure, or with the mapped error of a non-200 response.
   */
  private async exchange(
    exchange: Exchange,
    method: "GET" | "POST",
    path: string,
    body: string | undefined,
    ctx: CallContext,
    accept: string,
    traceHeaders?: readonly string[],
  ): Promise<void> {
    const headers = [...this.headers, "accept", accept, "x-request-id", ctx.requestId];
    // W3C trace context (traceparent, tracestate): the attempt's span, or the caller's own.
    if (traceHeaders !== undefined && traceHeaders.length > 0) headers.push(...traceHeaders);
    try {
      await exchange.send(this.pool, { method, path: this.basePath + path, headers, body: body ?? null });
    } finally {
      noteUpstream(exchange, ctx);
    }
    if (exchange.status !== 200) throw errorFromResponse(exchange.status, exchange.headers, exchange.errorText());
  }

  /**
   * Any failure as a GatewayError: an aborted call says why (a stalled stream's watchdog
   * says so itself). Only errors with a code (undici's, the socket's) are the network's;
   * anything else thrown while reading (by the chunk reader or the caller's sink) is a
   * bug, INTERNAL and never retried, not an upstream failure.
   */
  private failure(err: unknown, ctx: CallContext, afterFirstChunk: boolean): GatewayError {
    if (ctx.abortReason !== undefined) return ctx.abortReason;
    if (err instanceof GatewayError) return err;
    if (err instanceof BodyTooLargeError) return badResponse(err.message);
    if (err instanceof Error && err.name === "SseLineTooLongError") return badResponse(err.message);
    if (!isNetworkError(err)) return GatewayError.from(err);
    return errorFromNetwork(err, afterFirstChunk);
  }
}

/** The upstream's status and request id, for the call's log line. */
function noteUpstream(exchange: Exchange, ctx: CallContext): void {
  if (exchange.status === 0) return;
  ctx.stats.upstreamStatus = exchange.status;
  const upstreamId = exchange.headers["x-request-id"] ?? exchange.headers["cf-ray"];
  if (typeof upstreamId === "string") ctx.stats.upstreamRequestId = upstreamId;
}

/** Why a finished stream's upstream request is dropped: its body did not end soon after the answer did. Never shown to a caller. */
const BODY_NOT_ENDED = new ProviderError({ reason: Reason.UPSTREAM_CONNECTION_FAILED, message: "the upstream body did not end after the stream finished" });

function modelFromJson(value: unknown, details: ReadonlyMap<string, Record<string, unknown>>): Model {
  const o = isJsonObject(value) ? value : {};
  if (typeof o["id"] !== "string") throw badResponse("a model has no id");
  const model: Model = {
    id: o["id"],
    object: "model",
    created: typeof o["created"] === "number" ? Math.trunc(o["created"]) : 0,
    ownedBy: typeof o["owned_by"] === "string" ? o["owned_by"] : "",
    deprecated: false,
    preview: false,
    aliases: [],
  };
  const d = details.get(model.id);
  if (d === undefined) return model;
  if (typeof d["name"] === "string") model.name = d["name"];
  model.deprecated = d["deprecated"] === true;
  model.preview = d["preview"] === true;
  const limits = isJsonObject(d["limits"]) ? d["limits"] : {};
  if (typeof limits["max_context_length"] === "number") model.contextLength = limits["max_context_length"];
  if (typeof limits["max_completion_tokens"] === "number") model.maxCompletionTokens = limits["max_completion_tokens"];
  if (isJsonObject(d["pricing"])) {
    // Per-token USD, as strings ("0.00000035"); an unparsable price stays unknown.
    const price = (v: unknown): number | undefined => {
      const n = typeof v === "string" || typeof v === "number" ? Number(v) : Number.NaN;
      return Number.isFinite(n) && n >= 0 ? n : undefined;
    };
    const p = d["pricing"];
    const pricing: Model["pricing"] = {};
    const prompt = price(p["prompt"]);
    const completion = price(p["completion"]);
    const cached = price(p["input_cache_read"]);
    if (prompt !== undefined) pricing.prompt = prompt;
    if (completion !== undefined) pricing.completion = completion;
    if (cached !== undefined) pricing.cachedPrompt = cached;
    model.pricing = pricing;
  }
  if (isJsonObject(d["capabilities"])) {
    const c = d["capabilities"];
    model.capabilities = {
      tools: c["tools"] === true || c["function_calling"] === true,
      jsonSchema: c["structured_outputs"] === true,
      streaming: c["streaming"] === true,
      vision: c["vision"] === true,
      reasoning: c["reasoning"] === true,
    };
  }
  return model;
}

class BodyTooLargeError extends Error {
  constructor(limit: number) {
    super(`the body exceeds ${limit} bytes`);
  }
}

/** A body kept whole, refused (and the connection dropped) past `limit` bytes. */
class TextSink implements BodySink {
  private readonly parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly limit: number) {}

  data(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size > this.limit) throw new BodyTooLargeError(this.limit);
    this.parts.push(chunk);
  }

  end(): void {}

  text(): string {
    const parts = this.parts;
    return (parts.length === 1 ? parts[0]! : Buffer.concat(parts)).toString("utf8");
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw badResponse("the body is not JSON");
  }
}
