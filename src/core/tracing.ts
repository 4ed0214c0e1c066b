/**
 * Tracing as the core sees it: one span per call (the transports start it, the
 * CallReporter ends it with the call's record) and one per upstream attempt (the provider
 * starts and ends it, and sends its trace context upstream).
 *
 * The core owns this interface; src/tracing/ holds the OpenTelemetry implementation,
 * which src/gateway.ts loads (dynamic import) only when tracing is configured. Without
 * it the gateway uses PASS_THROUGH: no span, no allocation for a call that carries no
 * trace context, and a caller's valid `traceparent`/`tracestate` forwarded upstream
 * unchanged, so the caller's trace still reaches Cerebras through an untraced gateway.
 */
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { CallRecord } from "./call-log.js";
import type { GatewayError } from "./errors.js";
import type { CallStats } from "./provider.js";

/** How a call arrived, as its span starts. */
export interface CallStart {
  readonly transport: "grpc" | "http";
  /** The RPC name (CreateChatCompletion, ListModels…), the same on both transports. */
  readonly method: string;
  readonly requestId: string;
  /** The caller's W3C trace context (gRPC metadata or HTTP headers), unchecked. */
  readonly traceparent: string | undefined;
  readonly tracestate: string | undefined;
}

/** The upstream an attempt goes to: a constant per provider (and per key, once there is a key pool). */
export interface UpstreamTarget {
  /** Host name of the upstream (server.address). */
  readonly host: string;
  readonly port: number;
  /** The name of the upstream key the attempt uses; undefined: the one configured key. */
  readonly keyName?: string | undefined;
}

/** One upstream attempt's span. */
export interface AttemptTrace {
  /**
   * Header pairs for the upstream request, flat ([name, value, …], undici's form):
   * `traceparent` (and `tracestate`) naming this attempt, or the caller's own when
   * tracing is off. Empty when there is nothing to send.
   */
  readonly headers: readonly string[];
  /**
   * The attempt is over: `error` undefined means the upstream answered 200 and the body
   * was read. `stats` is the call's (its upstreamStatus and upstreamRequestId are this
   * attempt's when it succeeded).
   */
  end(error: GatewayError | undefined, stats: CallStats): void;
}

/** One call's span. */
export interface CallTrace {
  /**
   * An upstream attempt begins (1 for the first). `request` is the request as it goes
   * upstream (model resolved); it is read for the span's attributes, never its content.
   */
  startAttempt(request: ChatCompletionRequest, attempt: number, stream: boolean, upstream: UpstreamTarget): AttemptTrace;
  /** The call is over: called once, by the CallReporter, with the call's record. */
  end(record: CallRecord): void;
}

export interface Tracer {
  /** A call begins. */
  startCall(start: CallStart): CallTrace;
  /** Exports what is still buffered and stops. */
  shutdown(): Promise<void>;
}

const NO_HEADERS: readonly string[] = Object.freeze([]);

const NO_ATTEMPT: AttemptTrace = { headers: NO_HEADERS, end: () => {} };

/** A call nobody traces and that carried no trace context: nothing to do, nothing to send. */
export const NO_TRACE: CallTrace = { startAttempt: () => NO_ATTEMPT, end: () => {} };

/** version-traceid-parentid-flags, lower-case hex (W3C Trace Context §3.2), version ff forbidden. */
const TRACEPARENT = /^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(?:-[^\s]*)?$/;
/** W3C: a tracestate of more than 512 characters may be dropped. */
const MAX_TRACESTATE = 512;
/** Future versions may append fields; no header of ours needs more than this. */
const MAX_TRACEPARENT = 128;

/** The caller's traceparent when it is a well-formed W3C one; undefined otherwise. */
export function validTraceparent(value: string | undefined): string | undefined {
  return value !== undefined && value.length <= MAX_TRACEPARENT && TRACEPARENT.test(value) ? value : undefined;
}

/**
 * Tracing off: calls get no span. A call that came with a valid traceparent has it (and
 * its tracestate, when not oversized) forwarded on every upstream attempt, unchanged.
 */
export const PASS_THROUGH: Tracer = {
  startCall(start) {
    if (start.traceparent === undefined) return NO_TRACE;
    const traceparent = validTraceparent(start.traceparent);
    if (traceparent === undefined) return NO_TRACE;
    const state = start.tracestate;
    const headers = Object.freeze(
      state !== undefined && state !== "" && state.length <= MAX_TRACESTATE ? ["traceparent", traceparent, "tracestate", state] : ["traceparent", traceparent],
    );
    const attempt: AttemptTrace = { headers, end: () => {} };
    return { startAttempt: () => attempt, end: () => {} };
  },
  shutdown: () => Promise.resolve(),
};

/** The first value of a gRPC metadata entry or an HTTP header, when it is a string. */
export function headerValue(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (Array.isArray(value) && typeof value[0] === "string") return value[0];
  return undefined;
}
