/**
 * The seam between the transport-free core and whatever answers chat completions.
 * The core defines it; src/providers/* implement it; src/main.ts wires one in.
 */
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, FinishReason, TimeInfo } from "../../gen/aigateway/v1/chat.js";
import type { Model } from "../../gen/aigateway/v1/models.js";
import type { GatewayError } from "./errors.js";
import { isLegalHeaderName, isLegalHeaderValue, ResponseHeaders } from "./response-headers.js";
import type { CallTrace } from "./tracing.js";

/** Something an aborted call stops: an upstream request, a wait. */
export interface Abortable {
  abort(reason: GatewayError): void;
}

/** What a provider knows about the call it serves. */
export interface CallContext {
  /**
   * Why the call was aborted, once it was: the caller cancelled or disconnected (a
   * CANCELLED GatewayError) or its time budget ran out (DEADLINE_EXCEEDED).
   */
  readonly abortReason: GatewayError | undefined;
  /**
   * Tells `listener` about the abort (at once if it already happened), until offAbort.
   * Providers register their upstream request so a caller leaving stops it at once.
   */
  onAbort(listener: Abortable): void;
  offAbort(listener: Abortable): void;
  /** The same abort as an AbortSignal, for APIs that take one (made on first use: prefer onAbort on hot paths). */
  readonly signal: AbortSignal;
  /** Epoch milliseconds by which the call must be over; Infinity when unbounded. */
  readonly deadline: number;
  /** The call's request id, sent upstream and echoed to the caller. */
  readonly requestId: string;
  /** Figures the core and provider note about the call, for its log line and metrics. */
  readonly stats: CallStats;
  /** The call's span (tracing.ts): providers start one attempt span per upstream request. */
  readonly trace: CallTrace;
  /** False when the caller refused model fallbacks for this call (`x-aigw-fallbacks: off`); undefined: allowed. */
  readonly fallbacks?: boolean | undefined;
  /**
   * Headers for the caller, which both transports send with the reply: HTTP response
   * headers; gRPC initial metadata (with a stream's first message, with a unary reply, or
   * before a failure's status). The core, the admission and the provider add to it before
   * the first message (setResponseHeader); undefined until one does.
   */
  replyHeaders: ResponseHeaders | undefined;
}

/**
 * Adds a header for the caller to the call's reply (see CallContext.replyHeaders),
 * replacing the value it had. An entry that could not travel on both transports (gRPC
 * metadata takes less than HTTP: response-headers.ts) is dropped: sending it would fail
 * the gRPC reply, and a caller must see the same headers on both.
 */
export function setResponseHeader(ctx: CallContext, name: string, value: string): void {
  if (isLegalHeaderName(name) && isLegalHeaderValue(value)) replyHeadersOf(ctx).setLegal(name, value);
}

/** The call's reply headers, made on first use: for code whose names and values are legal by construction (ResponseHeaders.setLegal). */
export function replyHeadersOf(ctx: CallContext): ResponseHeaders {
  return (ctx.replyHeaders ??= new ResponseHeaders());
}

/**
 * What happened in one call, filled in as it goes (never read on the hot path): the
 * transport writes it to the call's log line when the call ends.
 */
export interface CallStats {
  /** The model actually asked for (aliases resolved). */
  model?: string;
  /** The name of the gateway key the caller presented (auth on). */
  keyName?: string;
  /** The upstream's own id for the request (x-request-id / cf-ray), for support tickets. */
  upstreamRequestId?: string;
  /** Time spent waiting on the upstream across attempts, ms (the rest is the gateway's). */
  upstreamMs?: number;
  /** Cerebras' own timings of the completion. */
  timeInfo?: TimeInfo;
  /** Upstream attempts made (1 unless retried or moved to another key or model). */
  attempts?: number;
  /** The name of the upstream key of the last attempt (never the key). */
  upstreamKey?: string;
  /** The model the last attempt asked for: the requested one, or a fallback. */
  upstreamModel?: string;
  /** HTTP status of the last upstream response. */
  upstreamStatus?: number;
  /** The upstream's own `x-ratelimit-*` headers of its last response (names as sent), for the organisation's limits. */
  upstreamRateLimits?: Readonly<Record<string, string>> | undefined;
  /** performance.now() when the first chunk (or the whole answer) arrived. */
  firstChunkAt?: number;
  promptTokens?: number;
  completionTokens?: number;
  cachedTokens?: number;
  reasoningTokens?: number;
  costUsd?: number;
  /** The completion's id and model as the upstream reported them (for the call's span). */
  responseId?: string;
  responseModel?: string;
  /**
   * The finish reasons of the answer's choices (a stream's: of its last chunk); one the
   * contract does not know (FINISH_REASON_OTHER) as the upstream's own string (finish_reason_raw).
   */
  finishReasons?: readonly (FinishReason | string)[];
}

/** Where a stream's chunks go; see ChatProvider.streamChatCompletion. */
export type ChunkSink = (chunk: ChatCompletionChunk) => void | Promise<void>;

/** Which upstream one attempt goes to: the key (by name) and the attempt's number in its call. */
export interface UpstreamAttempt {
  readonly key: string;
  /** 1 for the call's first attempt (its span's `gateway.attempt`). */
  readonly number: number;
}

/**
 * One upstream attempt per call of its chat methods: the core's attempt loop
 * (upstream-walk.ts) decides what to try next. `upstream` undefined: the provider's first
 * key, as attempt 1.
 */
export interface ChatProvider {
  /** One complete answer. Rejects with a GatewayError. */
  createChatCompletion(request: ChatCompletionRequest, ctx: CallContext, upstream?: UpstreamAttempt): Promise<ChatCompletion>;
  /**
   * The answer as chunks, handed to `sink` in upstream order as they arrive. Resolves
   * after the last chunk (one with a finish_reason); rejects with a GatewayError when the
   * request is refused (before any chunk) or the stream fails (after some). A promise
   * returned by `sink` is backpressure: nothing more is read from the upstream until it
   * settles. A sink that throws or rejects ends the stream (and the upstream request)
   * with that error.
   */
  streamChatCompletion(request: ChatCompletionRequest, ctx: CallContext, sink: ChunkSink, upstream?: UpstreamAttempt): Promise<void>;
  /** The models the upstream offers, with whatever limits, prices and capabilities it publishes. */
  listModels(ctx: CallContext): Promise<Model[]>;
  /** Closes connections. In-flight calls are aborted. */
  close(): Promise<void>;
}
