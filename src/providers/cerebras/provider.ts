/**
 * The Cerebras provider: proto requests in, Cerebras HTTP API over undici Pools
 * (keep-alive, one per endpoint), proto responses out.
 *
 * It knows every upstream key (its name, the key, its base URL) and makes one attempt
 * per call of its chat methods, with the key it is told to use: which key, which model,
 * and whether to try again is the core's attempt loop (src/core/upstream-walk.ts).
 *
 * Each upstream request is an Exchange (exchange.ts) on undici's dispatch API: bodies go
 * from socket reads straight to a sink (the whole text for JSON, the SSE → chunk reader
 * for streams, stream-reader.ts), with no stream objects in between. Cancellation is the
 * CallContext's abort (onAbort), so a caller leaving closes the upstream request at once.
 * Streams are watched for a first token and for gaps between chunks (watchdog.ts).
 */
import { Pool } from "undici";
import type { ChatCompletion, ChatCompletionRequest } from "../../../gen/aigateway/v1/chat.js";
import type { Model } from "../../../gen/aigateway/v1/models.js";
import { GatewayError, ProviderError, Reason } from "../../core/errors.js";
import type { CallContext, ChatProvider, ChunkSink, UpstreamAttempt } from "../../core/provider.js";
import type { UpstreamTarget } from "../../core/tracing.js";
import { DEFAULT_UPSTREAM_KEY } from "../../core/upstreams.js";
import { isJsonObject } from "../../wire/json.js";
import { chatRequestBody } from "../../wire/request.js";
import { badResponse, chatCompletionFromJson } from "../../wire/response.js";
import { errorFromNetwork, errorFromResponse, isNetworkError } from "./errors.js";
import { Exchange, type BodySink, type Headers } from "./exchange.js";
import { noteRateLimits } from "./rate-limits.js";
import { StreamReader } from "./stream-reader.js";
import { Watchdog } from "./watchdog.js";

/** One upstream key as the provider sends with it. */
export interface ProviderKey {
  /** Its name (spans, errors); never the key. */
  readonly name: string;
  readonly apiKey: string;
  /** e.g. https://api.cerebras.ai (a path prefix is kept). */
  readonly baseUrl: string;
}

export interface CerebrasProviderOptions {
  /** Every upstream key; the first is the one used when an attempt names none. */
  readonly keys?: readonly ProviderKey[];
  /** One key, `default`, when `keys` is not given. */
  readonly baseUrl?: string;
  readonly apiKey?: string;
  /** Most sockets to keep open to each endpoint. */
  readonly connections?: number;
  /** Largest non-streamed upstream body accepted. */
  readonly maxResponseBytes?: number;
  /** Streams: longest wait for the first chunk, connect included. */
  readonly firstTokenTimeoutMs?: number;
  /** Streams: longest gap between two chunks. */
  readonly streamIdleTimeoutMs?: number;
  /** Streams: plain text deltas of one socket read go to the sink as one chunk (stream-reader.ts). */
  readonly mergeDeltas?: boolean;
}

/** What a probe of a key found: it is accepted, refused (401/402/403), or the endpoint could not tell (any other failure). */
export type ProbeResult = "accepted" | "refused" | "failed";

const USER_AGENT = "cerebras-grpc-gateway/0.1";
/** Error bodies are small; reading more than this is pointless. */
const MAX_ERROR_BODY = 64 * 1024;
const CHAT_PATH = "/v1/chat/completions";

/** A key ready to send with: its endpoint's pool, the path prefix, its request headers, its span target. */
interface Target {
  readonly name: string;
  readonly pool: Pool;
  readonly basePath: string;
  /** Request headers every call with this key sends, as undici's flat [name, value, …] list. */
  readonly headers: readonly string[];
  readonly upstream: UpstreamTarget;
  /** The endpoint (origin + path prefix): keys sharing one share its catalog. */
  readonly endpoint: string;
}

export class CerebrasProvider implements ChatProvider {
  private readonly pools = new Map<string, Pool>();
  private readonly targets = new Map<string, Target>();
  private readonly first: Target;
  private readonly maxResponseBytes: number;
  private readonly firstTokenMs: number;
  private readonly idleMs: number;
  private readonly mergeDeltas: boolean;

  constructor(options: CerebrasProviderOptions) {
    const keys = options.keys ?? [{ name: DEFAULT_UPSTREAM_KEY, apiKey: options.apiKey ?? "", baseUrl: options.baseUrl ?? "" }];
    if (keys.length === 0) throw new Error("CerebrasProvider needs at least one key");
    this.maxResponseBytes = options.maxResponseBytes ?? 32 * 1024 * 1024;
    this.firstTokenMs = options.firstTokenTimeoutMs ?? 60_000;
    this.idleMs = options.streamIdleTimeoutMs ?? 30_000;
    this.mergeDeltas = options.mergeDeltas ?? false;
    for (const k of keys) {
      const url = new URL(k.baseUrl);
      let pool = this.pools.get(url.origin);
      if (pool === undefined) {
        pool = new Pool(url.origin, {
          connections: options.connections ?? 128,
          keepAliveTimeout: 30_000,
          // The call's budget and the stream watchdog do the real timing; these only catch
          // a silent peer on a call with no budget at all.
          headersTimeout: 600_000,
          bodyTimeout: 600_000,
        });
        this.pools.set(url.origin, pool);
      }
      const basePath = url.pathname.replace(/\/+$/, "");
      const port = url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
      this.targets.set(k.name, {
        name: k.name,
        pool,
        basePath,
        headers: ["authorization", `Bearer ${k.apiKey}`, "content-type", "application/json", "user-agent", USER_AGENT],
        upstream: { host: url.hostname, port, keyName: k.name },
        endpoint: url.origin + basePath,
      });
    }
    this.first = this.targets.get(keys[0]!.name)!;
  }

  async createChatCompletion(request: ChatCompletionRequest, ctx: CallContext, upstream?: UpstreamAttempt): Promise<ChatCompletion> {
    const t = this.target(upstream);
    const body = chatRequestBody(request, false);
    const sent = performance.now();
    const attempt = ctx.trace.startAttempt(request, upstream?.number ?? 1, false, t.upstream);
    try {
      const text = await this.fetchText(t, "POST", CHAT_PATH, body, ctx, attempt.headers);
      const completion = chatCompletionFromJson(parseJson(text));
      ctx.stats.firstChunkAt = performance.now();
      attempt.end(undefined, ctx.stats);
      return completion;
    } catch (err) {
      const failure = GatewayError.from(err);
      attempt.end(failure, ctx.stats);
      throw failure;
    } finally {
      ctx.stats.upstreamMs = (ctx.stats.upstreamMs ?? 0) + (performance.now() - sent);
    }
  }

  async streamChatCompletion(request: ChatCompletionRequest, ctx: CallContext, sink: ChunkSink, upstream?: UpstreamAttempt): Promise<void> {
    const t = this.target(upstream);
    const body = chatRequestBody(request, true);
    const sent = performance.now();
    let exchange: Exchange | undefined;
    const watchdog = new Watchdog(this.firstTokenMs, this.idleMs, (stall) => exchange?.abort(stall));
    const reader = new StreamReader(sink, watchdog, ctx.stats, { mergeDeltas: this.mergeDeltas });
    const open = new Exchange(reader, ctx, MAX_ERROR_BODY, (_status, headers) => noteRateLimits(ctx, headers));
    exchange = open;
    const attempt = ctx.trace.startAttempt(request, upstream?.number ?? 1, true, t.upstream);
    const sending = this.exchange(t, open, "POST", CHAT_PATH, body, ctx, "text/event-stream", attempt.headers);
    let early = false;
    try {
      // The answer can be complete before its body ends (stream-reader.ts): then the call is over.
      early = await Promise.race([sending.then(() => false), reader.completed.then(() => true)]);
      if (early || reader.finished) attempt.end(undefined, ctx.stats);
    } catch (err) {
      const failure = this.failure(err, ctx, reader.delivered > 0);
      attempt.end(failure, ctx.stats);
      // Once a chunk reached the caller, another attempt would repeat it: the stream fails, saying how far it got.
      throw reader.delivered > 0 ? failure.withMetadata({ chunksDelivered: String(reader.delivered) }) : failure;
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

  /**
   * The models the keys can use (/v1/models), with limits, prices and capabilities from
   * the public catalog (/public/v1/models) where it has them; one endpoint's list per
   * distinct base URL (dedicated endpoints serve their own models), merged by id. The
   * public catalog is optional: without it the models come back without details. Fails
   * only when no endpoint answered.
   */
  async listModels(ctx: CallContext): Promise<Model[]> {
    const endpoints = new Map<string, Target>();
    for (const t of this.targets.values()) if (!endpoints.has(t.endpoint)) endpoints.set(t.endpoint, t);
    const lists = await Promise.allSettled([...endpoints.values()].map((t) => this.endpointModels(t, ctx)));
    const merged = new Map<string, Model>();
    let failure: unknown;
    let answered = false;
    for (const r of lists) {
      if (r.status === "rejected") {
        failure ??= r.reason;
        continue;
      }
      answered = true;
      for (const m of r.value) if (!merged.has(m.id)) merged.set(m.id, m);
    }
    if (!answered) throw failure;
    return [...merged.values()];
  }

  /**
   * Whether Cerebras accepts `key` again (a revoked key's probe): GET /v1/models with it.
   * Costs no tokens and no quota.
   */
  async probe(key: string, ctx: CallContext): Promise<ProbeResult> {
    const t = this.targets.get(key);
    if (t === undefined) return "failed";
    try {
      await this.fetchText(t, "GET", "/v1/models", undefined, ctx);
      return "accepted";
    } catch (err) {
      return GatewayError.from(err).reason === Reason.UPSTREAM_AUTH_FAILED ? "refused" : "failed";
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.destroy()));
  }

  private target(upstream: UpstreamAttempt | undefined): Target {
    if (upstream === undefined) return this.first;
    const t = this.targets.get(upstream.key);
    // The pool and the provider are built from the same keys: an unknown name is a bug.
    if (t === undefined) throw new Error(`no upstream key named ${upstream.key}`);
    return t;
  }

  private async endpointModels(t: Target, ctx: CallContext): Promise<Model[]> {
    const [listed, details] = await Promise.all([
      this.fetchText(t, "GET", "/v1/models", undefined, ctx).then(parseJson),
      this.fetchText(t, "GET", "/public/v1/models", undefined, ctx).then(parseJson, () => undefined),
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

  /**
   * A request whose 200 body is wanted whole, as text; rejects with a GatewayError otherwise.
   * Chat completions note the upstream's rate-limit headers on the call (rate-limits.ts).
   */
  private async fetchText(t: Target, method: "GET" | "POST", path: string, body: string | undefined, ctx: CallContext, traceHeaders?: readonly string[]): Promise<string> {
    const text = new TextSink(this.maxResponseBytes);
    const onResponse = path === CHAT_PATH ? (_status: number, headers: Headers) => noteRateLimits(ctx, headers) : undefined;
    try {
      await this.exchange(t, new Exchange(text, ctx, MAX_ERROR_BODY, onResponse), method, path, body, ctx, "application/json", traceHeaders);
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
    t: Target,
    exchange: Exchange,
    method: "GET" | "POST",
    path: string,
    body: string | undefined,
    ctx: CallContext,
    accept: string,
    traceHeaders?: readonly string[],
  ): Promise<void> {
    const headers = [...t.headers, "accept", accept, "x-request-id", ctx.requestId];
    // W3C trace context (traceparent, tracestate): the attempt's span, or the caller's own.
    if (traceHeaders !== undefined && traceHeaders.length > 0) headers.push(...traceHeaders);
    try {
      await exchange.send(t.pool, { method, path: t.basePath + path, headers, body: body ?? null });
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
