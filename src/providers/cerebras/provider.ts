/**
 * The Cerebras provider: proto requests in, Cerebras HTTP API over an undici Pool
 * (keep-alive), proto responses out.
 *
 * Cancellation is the CallContext's AbortSignal, handed to undici, so a caller leaving
 * closes the upstream request at once. Transient failures are retried (retry.ts) only
 * while nothing has reached the caller, and only within the call's budget. Streams are
 * watched for a first token and for gaps between chunks (watchdog.ts).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Pool, type Dispatcher } from "undici";
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Usage } from "../../../gen/aigateway/v1/chat.js";
import { FinishReason } from "../../../gen/aigateway/v1/chat.js";
import type { Model } from "../../../gen/aigateway/v1/models.js";
import { abortReason } from "../../core/call-scope.js";
import { GatewayError, ProviderError, Reason } from "../../core/errors.js";
import type { CallContext, ChatProvider } from "../../core/provider.js";
import { isJsonObject } from "../../wire/json.js";
import { chatRequestToJson } from "../../wire/request.js";
import { badResponse, chatCompletionChunkFromJson, chatCompletionFromJson } from "../../wire/response.js";
import { errorFromNetwork, errorFromResponse } from "./errors.js";
import { DEFAULT_RETRY_POLICY, retryDelay, type RetryPolicy } from "./retry.js";
import { SseDecoder, type SseEvent } from "./sse.js";
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
  /** Told about each retry (for a log line); never on the hot path of a good call. */
  readonly onRetry?: (event: RetryEvent) => void;
}

export interface RetryEvent {
  readonly requestId: string;
  readonly attempt: number;
  readonly delayMs: number;
  readonly error: GatewayError;
}

type ResponseData = Dispatcher.ResponseData;

const USER_AGENT = "cerebras-grpc-gateway/0.1";
/** Error bodies are small; reading more than this is pointless. */
const MAX_ERROR_BODY = 64 * 1024;
const CHAT_PATH = "/v1/chat/completions";

export class CerebrasProvider implements ChatProvider {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly authorization: string;
  private readonly maxResponseBytes: number;
  private readonly retry: RetryPolicy;
  private readonly firstTokenMs: number;
  private readonly idleMs: number;
  private readonly onRetry: ((event: RetryEvent) => void) | undefined;

  constructor(options: CerebrasProviderOptions) {
    const url = new URL(options.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, "");
    this.authorization = `Bearer ${options.apiKey}`;
    this.maxResponseBytes = options.maxResponseBytes ?? 32 * 1024 * 1024;
    this.retry = options.retry ?? DEFAULT_RETRY_POLICY;
    this.firstTokenMs = options.firstTokenTimeoutMs ?? 60_000;
    this.idleMs = options.streamIdleTimeoutMs ?? 30_000;
    this.onRetry = options.onRetry;
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
      try {
        const res = await this.send("POST", CHAT_PATH, body, ctx, ctx.signal, "application/json");
        const completion = chatCompletionFromJson(await this.readJson(res, ctx));
        ctx.stats.firstChunkAt = performance.now();
        return completion;
      } catch (err) {
        await this.beforeRetry(GatewayError.from(err), retries, ctx);
      } finally {
        ctx.stats.upstreamMs = (ctx.stats.upstreamMs ?? 0) + (performance.now() - sent);
      }
    }
  }

  async *streamChatCompletion(
    request: ChatCompletionRequest,
    ctx: CallContext,
    onUsage?: (chunk: ChatCompletionChunk & { usage: Usage }) => void,
  ): AsyncGenerator<ChatCompletionChunk> {
    const body = JSON.stringify(chatRequestToJson(request, true));
    let delivered = 0;
    let finished = false; // a finish_reason or [DONE] was seen
    /** Bookkeeping for a chunk about to be yielded. */
    const deliver = (chunk: ChatCompletionChunk): void => {
      if (!finished) finished = hasFinishReason(chunk);
      if (chunk.usage !== undefined) onUsage?.(chunk as ChatCompletionChunk & { usage: Usage });
      if (delivered++ === 0) ctx.stats.firstChunkAt = performance.now();
    };
    for (let retries = 0; ; retries++) {
      ctx.stats.attempts = retries + 1;
      const watchdog = new Watchdog(ctx.signal, this.firstTokenMs, this.idleMs);
      const sent = performance.now();
      let res: ResponseData | undefined;
      let drained = false;
      let done = false; // [DONE] was seen: ignore the rest, but read to EOF to keep the socket
      try {
        res = await this.send("POST", CHAT_PATH, body, ctx, watchdog.signal, "text/event-stream");
        const decoder = new SseDecoder();
        const reads = res.body[Symbol.asyncIterator]();
        // One pass per socket read, and a last one at EOF for an event left unterminated.
        for (let eof = false; !eof; ) {
          const read = await reads.next();
          eof = read.done === true;
          watchdog.touch();
          if (done) continue;
          const events = eof ? decoder.end() : decoder.push(read.value as Buffer);
          for (let i = 0; i < events.length; i++) {
            const chunk = this.chunkFromEvent(events[i]!, delivered);
            if (chunk === DONE) {
              finished = done = true;
              break;
            }
            deliver(chunk);
            yield chunk;
          }
        }
        drained = true;
      } catch (err) {
        const failure = this.failure(err, ctx, watchdog, delivered > 0);
        // Once a chunk reached the caller, a retry would repeat it: the stream fails instead.
        if (delivered > 0) throw failure.withMetadata({ chunksDelivered: String(delivered) });
        await this.beforeRetry(failure, retries, ctx);
        continue;
      } finally {
        ctx.stats.upstreamMs = (ctx.stats.upstreamMs ?? 0) + (performance.now() - sent);
        watchdog.dispose();
        // The consumer stopped early or something failed: drop the upstream request now.
        if (!drained) res?.body.destroy();
      }
      if (finished) return;
      throw new ProviderError({
        reason: Reason.UPSTREAM_STREAM_TRUNCATED,
        message: "the Cerebras stream ended before a finish_reason",
        metadata: { chunksDelivered: String(delivered) },
      });
    }
  }

  /**
   * The models the key can use (/v1/models), with limits, prices and capabilities from
   * the public catalog (/public/v1/models) where it has them. The public catalog is
   * optional: without it the models come back without details.
   */
  async listModels(ctx: CallContext): Promise<Model[]> {
    const [listed, details] = await Promise.all([
      this.send("GET", "/v1/models", undefined, ctx, ctx.signal, "application/json").then((res) => this.readJson(res, ctx)),
      this.send("GET", "/public/v1/models", undefined, ctx, ctx.signal, "application/json").then(
        (res) => this.readJson(res, ctx),
        () => undefined,
      ),
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
    if (ctx.signal.aborted) throw abortReason(ctx.signal);
    const delay = retryDelay(err, retries, ctx.deadline - Date.now(), this.retry);
    if (delay === undefined) throw retries === 0 ? err : err.withMetadata({ attempts: String(retries + 1) });
    this.onRetry?.({ requestId: ctx.requestId, attempt: retries + 1, delayMs: Math.round(delay), error: err });
    try {
      await sleep(delay, undefined, { signal: ctx.signal });
    } catch {
      throw abortReason(ctx.signal);
    }
  }

  /** Sends a request; resolves with a 200 response, or rejects with a GatewayError. */
  private async send(method: "GET" | "POST", path: string, body: string | undefined, ctx: CallContext, signal: AbortSignal, accept: string): Promise<ResponseData> {
    let res: ResponseData;
    try {
      res = await this.pool.request({
        method,
        path: this.basePath + path,
        headers: {
          authorization: this.authorization,
          accept,
          "content-type": "application/json",
          "user-agent": USER_AGENT,
          "x-request-id": ctx.requestId,
        },
        body: body ?? null,
        signal,
      });
    } catch (err) {
      throw this.failure(err, ctx, undefined, false);
    }
    ctx.stats.upstreamStatus = res.statusCode;
    const upstreamId = res.headers["x-request-id"] ?? res.headers["cf-ray"];
    if (typeof upstreamId === "string") ctx.stats.upstreamRequestId = upstreamId;
    if (res.statusCode === 200) return res;
    let text = "";
    try {
      text = await readText(res.body, MAX_ERROR_BODY);
    } catch {
      if (ctx.signal.aborted) throw abortReason(ctx.signal);
      // An unreadable error body still has a status worth reporting.
    }
    throw errorFromResponse(res.statusCode, res.headers, text);
  }

  private async readJson(res: ResponseData, ctx: CallContext): Promise<unknown> {
    let text: string;
    try {
      text = await readText(res.body, this.maxResponseBytes);
    } catch (err) {
      throw this.failure(err, ctx, undefined, false);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw badResponse("the body is not JSON");
    }
  }

  private chunkFromEvent(event: SseEvent, delivered: number): ChatCompletionChunk | typeof DONE {
    const data = event.data;
    if (data === "[DONE]") return DONE;
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      throw badResponse("a stream event is not JSON");
    }
    if (event.event === "error" || (typeof json === "object" && json !== null && "error" in json)) {
      throw streamError(json, delivered);
    }
    return chatCompletionChunkFromJson(json);
  }

  /** Any failure as a GatewayError: an aborted call says why, a stalled stream says so. */
  private failure(err: unknown, ctx: CallContext, watchdog: Watchdog | undefined, afterFirstChunk: boolean): GatewayError {
    if (ctx.signal.aborted) return abortReason(ctx.signal);
    if (watchdog?.stalled) return watchdog.signal.reason as GatewayError;
    if (err instanceof GatewayError) return err;
    if (err instanceof BodyTooLargeError) return badResponse(err.message);
    if (err instanceof Error && err.name === "SseLineTooLongError") return badResponse(err.message);
    return errorFromNetwork(err, afterFirstChunk);
  }
}

const DONE = Symbol("done");

function hasFinishReason(chunk: ChatCompletionChunk): boolean {
  for (const c of chunk.choices) if (c.finishReason !== FinishReason.FINISH_REASON_UNSPECIFIED) return true;
  return false;
}

/**
 * A mid-stream `{"error":{…},"status_code":N}` frame. Before any chunk was delivered it
 * is as good as an HTTP error status, so it maps like one; after, the stream is broken.
 */
function streamError(json: unknown, delivered: number): GatewayError {
  const o = (typeof json === "object" && json !== null ? json : {}) as { error?: unknown; status_code?: unknown };
  const error = typeof o.error === "object" && o.error !== null ? o.error : {};
  const status = typeof o.status_code === "number" ? o.status_code : undefined;
  if (delivered === 0 && status !== undefined && status !== 200) {
    return errorFromResponse(status, {}, JSON.stringify(error));
  }
  const e = error as { message?: unknown; code?: unknown; type?: unknown };
  const metadata: Record<string, string> = {};
  if (typeof e.code === "string") metadata["upstreamCode"] = e.code;
  if (typeof e.type === "string") metadata["upstreamType"] = e.type;
  if (status !== undefined) metadata["upstreamStatus"] = String(status);
  const text = typeof e.message === "string" ? e.message.slice(0, 500) : "stream error";
  return new ProviderError({ reason: Reason.UPSTREAM_STREAM_ERROR, message: `Cerebras: ${text}`, metadata });
}

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

/** Reads a body to a string, refusing (and dropping the connection) past `limit` bytes. */
async function readText(body: ResponseData["body"], limit: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of body) {
    size += (part as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new BodyTooLargeError(limit);
    }
    parts.push(part as Buffer);
  }
  return parts.length === 1 ? parts[0]!.toString("utf8") : Buffer.concat(parts).toString("utf8");
}
