/**
 * The Cerebras provider: proto requests in, Cerebras HTTP API over an undici Pool
 * (keep-alive), proto responses out. Cancellation is the CallContext's AbortSignal,
 * handed to undici, so a caller leaving closes the upstream request at once.
 */
import { Pool, type Dispatcher } from "undici";
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest } from "../../../gen/aigateway/v1/chat.js";
import { FinishReason } from "../../../gen/aigateway/v1/chat.js";
import type { Model } from "../../../gen/aigateway/v1/models.js";
import { abortReason } from "../../core/call-scope.js";
import { GatewayError, ProviderError, Reason } from "../../core/errors.js";
import type { CallContext, ChatProvider } from "../../core/provider.js";
import { chatRequestToJson } from "../../wire/request.js";
import { badResponse, chatCompletionChunkFromJson, chatCompletionFromJson } from "../../wire/response.js";
import { errorFromNetwork, errorFromResponse } from "./errors.js";
import { SseDecoder, type SseEvent } from "./sse.js";

export interface CerebrasProviderOptions {
  /** e.g. https://api.cerebras.ai (a path prefix is kept). */
  readonly baseUrl: string;
  readonly apiKey: string;
  /** Most sockets to keep open to the upstream. */
  readonly connections?: number;
  /** Largest non-streamed upstream body accepted. */
  readonly maxResponseBytes?: number;
}

type ResponseData = Dispatcher.ResponseData;

const USER_AGENT = "cerebras-grpc-gateway/0.1";
/** Error bodies are small; reading more than this is pointless. */
const MAX_ERROR_BODY = 64 * 1024;

export class CerebrasProvider implements ChatProvider {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly authorization: string;
  private readonly maxResponseBytes: number;

  constructor(options: CerebrasProviderOptions) {
    const url = new URL(options.baseUrl);
    this.basePath = url.pathname.replace(/\/+$/, "");
    this.authorization = `Bearer ${options.apiKey}`;
    this.maxResponseBytes = options.maxResponseBytes ?? 32 * 1024 * 1024;
    this.pool = new Pool(url.origin, {
      connections: options.connections ?? 128,
      keepAliveTimeout: 30_000,
      // Budgets are enforced by the call's AbortSignal; these only catch a silent peer.
      headersTimeout: 300_000,
      bodyTimeout: 300_000,
    });
  }

  async createChatCompletion(request: ChatCompletionRequest, ctx: CallContext): Promise<ChatCompletion> {
    const res = await this.send("POST", "/v1/chat/completions", JSON.stringify(chatRequestToJson(request, false)), ctx, "application/json");
    return chatCompletionFromJson(await this.readJson(res, ctx));
  }

  async *streamChatCompletion(request: ChatCompletionRequest, ctx: CallContext): AsyncGenerator<ChatCompletionChunk> {
    const body = JSON.stringify(chatRequestToJson(request, true));
    const res = await this.send("POST", "/v1/chat/completions", body, ctx, "text/event-stream");
    const decoder = new SseDecoder();
    let delivered = 0;
    let finished = false; // a finish_reason or [DONE] was seen
    let done = false; // [DONE] was seen: ignore the rest, but read to EOF to keep the socket
    let drained = false;
    try {
      for await (const bytes of res.body) {
        if (done) continue;
        const events = decoder.push(bytes as Buffer);
        for (let i = 0; i < events.length; i++) {
          const chunk = this.chunkFromEvent(events[i]!, delivered, ctx);
          if (chunk === DONE) {
            finished = done = true;
            break;
          }
          if (!finished) finished = hasFinishReason(chunk);
          delivered++;
          yield chunk;
        }
      }
      if (!done) {
        for (const event of decoder.end()) {
          const chunk = this.chunkFromEvent(event, delivered, ctx);
          if (chunk === DONE) {
            finished = true;
            break;
          }
          if (!finished) finished = hasFinishReason(chunk);
          delivered++;
          yield chunk;
        }
      }
      drained = true;
    } catch (err) {
      throw this.failure(err, ctx, delivered > 0);
    } finally {
      // The consumer stopped early or something failed: drop the upstream request now.
      if (!drained) res.body.destroy();
    }
    if (!finished) {
      throw new ProviderError({
        reason: Reason.UPSTREAM_STREAM_TRUNCATED,
        message: "the Cerebras stream ended before a finish_reason",
        metadata: { chunksDelivered: String(delivered) },
      });
    }
  }

  async listModels(ctx: CallContext): Promise<Model[]> {
    const res = await this.send("GET", "/v1/models", undefined, ctx, "application/json");
    const json = await this.readJson(res, ctx);
    const data = (json as { data?: unknown })?.data;
    if (!Array.isArray(data)) throw badResponse("model list has no data array");
    return data.map(modelFromJson);
  }

  async getModel(id: string, ctx: CallContext): Promise<Model> {
    const res = await this.send("GET", `/v1/models/${encodeURIComponent(id)}`, undefined, ctx, "application/json");
    return modelFromJson(await this.readJson(res, ctx));
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }

  /** Sends a request; resolves with a 200 response, or rejects with a GatewayError. */
  private async send(method: "GET" | "POST", path: string, body: string | undefined, ctx: CallContext, accept: string): Promise<ResponseData> {
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
        signal: ctx.signal,
      });
    } catch (err) {
      throw this.failure(err, ctx, false);
    }
    if (res.statusCode === 200) return res;
    let text = "";
    try {
      text = await readText(res.body, MAX_ERROR_BODY);
    } catch (err) {
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
      throw this.failure(err, ctx, false);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw badResponse("the body is not JSON");
    }
  }

  private chunkFromEvent(event: SseEvent, delivered: number, ctx: CallContext): ChatCompletionChunk | typeof DONE {
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

  /** Any failure as a GatewayError; an aborted call reports why it was aborted. */
  private failure(err: unknown, ctx: CallContext, afterFirstChunk: boolean): GatewayError {
    if (ctx.signal.aborted) return abortReason(ctx.signal);
    if (err instanceof GatewayError) return err;
    if (err instanceof BodyTooLargeError) return badResponse(err.message);
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
  const metadata: Record<string, string> = { chunksDelivered: String(delivered) };
  if (typeof e.code === "string") metadata["upstreamCode"] = e.code;
  if (typeof e.type === "string") metadata["upstreamType"] = e.type;
  if (status !== undefined) metadata["upstreamStatus"] = String(status);
  const text = typeof e.message === "string" ? e.message.slice(0, 500) : "stream error";
  return new ProviderError({ reason: Reason.UPSTREAM_STREAM_ERROR, message: `Cerebras: ${text}`, metadata });
}

function modelFromJson(value: unknown): Model {
  const o = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  if (typeof o["id"] !== "string") throw badResponse("a model has no id");
  return {
    id: o["id"],
    object: "model",
    created: typeof o["created"] === "number" ? Math.trunc(o["created"]) : 0,
    ownedBy: typeof o["owned_by"] === "string" ? o["owned_by"] : "",
  };
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
