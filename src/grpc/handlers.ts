/**
 * Adapters from async business functions to grpc-js handlers. Every RPC goes through
 * one of these, because grpc-js does not protect async handlers: a rejected promise
 * would be an unhandled rejection that kills the process. They also own the per-call
 * plumbing: request id, the CallScope (cancellation + deadline budget), write
 * backpressure, error rendering and the one log line per call.
 */
import { type handleServerStreamingCall, type handleUnaryCall, type ServerUnaryCall, type ServerWritableStream } from "@grpc/grpc-js";
import { CallScope } from "../core/call-scope.js";
import type { KeyRing } from "../auth/key-ring.js";
import type { CallReporter } from "../core/call-log.js";
import { GatewayError } from "../core/errors.js";
import type { InFlightLimit } from "../core/in-flight.js";
import type { LiveCalls } from "../core/live-calls.js";
import { requestIdFrom } from "../core/request-id.js";
import type { CallContext } from "../core/provider.js";
import { headerValue, PASS_THROUGH, type Tracer } from "../core/tracing.js";
import { FALLBACKS_HEADER, fallbacksAllowed } from "../core/upstreams.js";
import { keyNameOf } from "./auth-interceptor.js";
import { replyMetadata } from "./reply-metadata.js";
import { decodeRefusal } from "./request-decoder.js";
import { toGrpcError } from "./status.js";

export interface HandlerOptions {
  /** Writes each call's log line and feeds the metrics. */
  readonly reporter: CallReporter;
  /** Server-wide cap on calls in progress. */
  readonly limit: InFlightLimit;
  /** Gateway keys callers must present; undefined: no caller authentication. */
  readonly keys: KeyRing | undefined;
  /** The longest a call may take, whatever deadline the caller set (REQUEST_TIMEOUT_S). */
  readonly ceilingMs: number;
  /** Every call is in it while in progress, so shutdown can end it in-band past the grace. */
  readonly calls: LiveCalls;
  /** Starts each call's span; undefined: PASS_THROUGH (no span; the caller's trace context is forwarded upstream). */
  readonly tracer?: Tracer | undefined;
}

export function unaryHandler<Req, Res>(
  method: string,
  options: HandlerOptions,
  fn: (request: Req, ctx: CallContext) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    const started = performance.now();
    const scope = openScope(call, options, method);
    run(() => fn(call.request, scope), call, scope, options).then(
      (response) => {
        settle(scope, options);
        // Headers in the same tick as the reply: one write, not two.
        sendHeaders(call, scope);
        callback(null, response);
        report(options.reporter, method, scope, started, undefined);
      },
      (err: unknown) => {
        settle(scope, options);
        const error = GatewayError.from(err);
        sendHeaders(call, scope);
        callback(toGrpcError(error, scope.requestId));
        report(options.reporter, method, scope, started, error);
      },
    );
  };
}

export function serverStreamHandler<Req, Res>(
  method: string,
  options: HandlerOptions,
  fn: (request: Req, ctx: CallContext, sink: (message: Res) => void | Promise<void>) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    const started = performance.now();
    const scope = openScope(call, options, method);
    const headers = { sent: false };
    run(() => pump(call, fn, scope, headers), call, scope, options).then(
      () => {
        settle(scope, options);
        if (!headers.sent) sendHeaders(call, scope);
        call.end();
        report(options.reporter, method, scope, started, undefined);
      },
      (err: unknown) => {
        settle(scope, options);
        const error = GatewayError.from(err);
        // emit('error') sends the status; destroy() would leave the client hanging.
        if (!call.cancelled) {
          if (!headers.sent) sendHeaders(call, scope);
          call.emit("error", toGrpcError(error, scope.requestId));
        }
        report(options.reporter, method, scope, started, error);
      },
    );
  };
}

/**
 * Runs `work` for an authenticated caller, holding an in-flight slot. Failing either is
 * a rejection like any other, so it is rendered, logged and counted the same way.
 */
async function run<T>(work: () => Promise<T>, call: SurfaceCall, scope: CallScope, options: HandlerOptions): Promise<T> {
  if (options.keys !== undefined) {
    // The interceptor authenticated the call on its metadata (auth-interceptor.ts); checked
    // here again only if it did not run (a server built without it).
    const authorization = call.metadata.get("authorization")[0];
    scope.stats.keyName = keyNameOf(call.metadata) ?? options.keys.authenticate(typeof authorization === "string" ? authorization : undefined);
  }
  // A request the deserializer could not take (too deep, not protobuf): refused like any bad request.
  const refusal = decodeRefusal(call.request);
  if (refusal !== undefined) throw refusal;
  // The caller may refuse model fallbacks for this call (x-aigw-fallbacks: off).
  const fallbacks = call.metadata.get(FALLBACKS_HEADER);
  if (fallbacks.length > 0) scope.fallbacks = fallbacksAllowed(headerValue(fallbacks[0]) ?? "");
  options.limit.acquire();
  try {
    return await work();
  } finally {
    options.limit.release();
  }
}

/** Runs the stream, writing each message as it comes; a full write buffer holds the upstream. */
function pump<Req, Res>(
  call: ServerWritableStream<Req, Res>,
  fn: (request: Req, ctx: CallContext, sink: (message: Res) => void | Promise<void>) => Promise<void>,
  scope: CallScope,
  headers: { sent: boolean },
): Promise<void> {
  let draining: Promise<void> | undefined;
  return fn(call.request, scope, (message) => {
    if (!headers.sent) {
      // With the first message, so headers and message leave in one write.
      sendHeaders(call, scope);
      headers.sent = true;
    }
    if (call.write(message)) return undefined;
    // A full buffer means a slow reader: stop reading from upstream until it drains (one
    // wait however many messages are written meanwhile; aborted: the provider fails with why).
    return (draining ??= drained(call, scope).then(() => (draining = undefined)));
  });
}

/**
 * Resolves at the call's next "drain", or when the call is aborted. A plain listener and
 * the scope's abort list rather than events.once with an AbortSignal: an unpaced stream
 * fills grpc-js' buffer every few messages, and the signal's listeners showed in the profile.
 */
function drained(call: ServerWritableStream<unknown, unknown>, scope: CallScope): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      call.off("drain", done);
      scope.offAbort(aborted);
      resolve();
    };
    const aborted = { abort: done };
    call.on("drain", done);
    scope.onAbort(aborted);
  });
}

function noop(): void {}

/** Unary and server-streaming calls share these members. */
type SurfaceCall = ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>;

function openScope(call: SurfaceCall, options: HandlerOptions, method: string): CallScope {
  const requestId = requestIdFrom(call.metadata.get("x-request-id")[0]);
  const deadline = call.getDeadline();
  const scope = new CallScope(deadline instanceof Date ? deadline.getTime() : deadline, options.ceilingMs, requestId);
  // The call's span, a child of the caller's W3C trace context when it sent one.
  const traceparent = headerValue(call.metadata.get("traceparent")[0]);
  const tracestate = traceparent === undefined ? undefined : headerValue(call.metadata.get("tracestate")[0]);
  scope.trace = (options.tracer ?? PASS_THROUGH).startCall({ transport: "grpc", method, requestId, traceparent, tracestate });
  // Fires on client cancel, disconnect and grpc-js' own deadline expiry (and, in grpc-js
  // 1.14, when any finished call's stream closes: the scope ignores it once settled).
  call.on("cancelled", () => scope.cancel());
  options.calls.add(scope);
  return scope;
}

/** The call's work is over (its reply is about to be sent). */
function settle(scope: CallScope, options: HandlerOptions): void {
  scope.dispose();
  options.calls.delete(scope);
}

/**
 * Response headers carry the request id and whatever the call added for its caller
 * (CallContext.replyHeaders: rate-limit standing, …); sent with the reply, never on their own.
 */
function sendHeaders(call: SurfaceCall, scope: CallScope): void {
  call.sendMetadata(replyMetadata(scope.requestId, scope.replyHeaders));
}

function report(reporter: CallReporter, method: string, scope: CallScope, started: number, error: GatewayError | undefined): void {
  reporter.report({ transport: "grpc", method, requestId: scope.requestId, trace: scope.trace }, {}, scope.stats, started, error);
}
