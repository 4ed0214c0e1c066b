/**
 * A request must arrive in time: the bound the HTTP shim puts on a body
 * (REQUEST_BODY_TIMEOUT_S), on the gRPC port. Without it, a caller that sends a message's
 * length prefix and part of it, then stalls without a deadline, has grpc-js buffer the
 * partial message (up to MAX_REQUEST_BYTES; request-size-cap.ts caps it far lower for the
 * services open without a key) and hold the HTTP/2 stream (one of MAX_CONCURRENT_STREAMS)
 * for as long as the connection lives.
 *
 * - Unary and server-streaming: the request (its one message and the end of its stream)
 *   must be whole within the bound of the call's metadata. The bound ends at the
 *   half-close, not at the message: grpc-js runs the handler only then, so a whole
 *   message without it is held just the same.
 * - Client-streaming and bidi (reflection): each message must arrive whole within the
 *   bound of the metadata or of the previous message, until the half-close. So the
 *   silence between messages counts too: a stream left open and idle is ended after
 *   REQUEST_BODY_TIMEOUT_S. Why not bound only a message once it has started: grpc-js
 *   does not tell an interceptor that a message has started (its decoder is fed by the
 *   HTTP/2 stream's 'data' events; `onReceiveMessage` fires only once one is whole and
 *   the handler asked for it), and a watcher of those events (as request-size-cap.ts has)
 *   sees nothing while grpc-js has the stream paused (the handler applying backpressure,
 *   reflection.ts), when up to a flow-control window of the client's bytes wait in Node
 *   unseen. An idle stream still holds its slot, grpc-js' call and a handler; this way
 *   nothing an unauthenticated caller opens is held past the bound without sending. Real
 *   clients are not hurt: grpcurl, buf curl and IDE plugins open a reflection stream, send
 *   their requests one after another (each as soon as the last was answered) and close
 *   it; grpcurl's and Evans' client (jhump/protoreflect grpcreflect) opens a new stream
 *   when it finds one closed by the server, and retries the request on it.
 *
 * It never applies to the response: the handler's time, a response stream.
 *
 * Past the bound the call ends DEADLINE_EXCEEDED, reason REQUEST_BODY_TIMEOUT: a deadline
 * (the gateway's, on the request's arrival) passed. The same code the HTTP shim's 408
 * maps to, so both transports count it alike; not CANCELLED, which says the caller went
 * away (DESIGN.md's table), nor UNAVAILABLE, which clients retry: sending the same
 * request the same slow way again would fail the same way.
 *
 * Tearing down: the status goes out trailers-only (nothing was sent yet) or as trailers,
 * and grpc-js stops reading, but it sends no RST_STREAM when the client has not
 * half-closed, so the HTTP/2 stream stays half-open, and with it grpc-js' decoder and the
 * partial message it holds, until the client ends it. So the stream is then closed with
 * RST_STREAM(NO_ERROR), which RFC 9113 §8.1 provides for this case (a complete response
 * before the request ended; clients must not discard the response) and gRPC servers are
 * expected to send (grpc-java#2162). That closes grpc-js' call and frees the partial
 * buffer. A message over request-size-cap.ts' cap (MAX_REQUEST_BYTES; 8 KiB for health and
 * reflection) ends the same way, at its prefix, and so does any other status sent before
 * the request ended (a refused key: auth-interceptor.ts answers on the metadata, and
 * grpc-js never reads the rest), as every status passes this interceptor's sendStatus.
 *
 * Cost: one `setTimeout` per call, refreshed on each message of a request stream and
 * cleared at the half-close. Node keeps all timers of one duration in one list behind one
 * native timer, so arming, refreshing and clearing are O(1) list operations (the "coarse
 * timer wheel" is built in), and the timer is unref'd so it never holds the process up.
 * A refused call (bad key) clears it in the same tick. The watcher of request-size-cap.ts
 * reads only the first prefix of a unary or server-streaming call (every chat call).
 */
import type { ServerHttp2Stream } from "node:http2";
import { constants as http2 } from "node:http2";
import { Duplex } from "node:stream";
import { ServerInterceptingCall, type Metadata, type ServerInterceptingCallInterface, type ServerInterceptor } from "@grpc/grpc-js";
import { Code, GatewayError, Reason } from "../core/errors.js";
import { keyNameOf } from "./auth-interceptor.js";
import { refuseCall, type RefusalOptions } from "./refusal.js";
import { requestSizeCaps, watchMessageSizes } from "./request-size-cap.js";

export interface RequestBodyTimeoutOptions extends RefusalOptions {
  /** REQUEST_BODY_TIMEOUT_S in ms. */
  readonly timeoutMs: number;
  /** MAX_REQUEST_BYTES: no request message announced over it is read (request-size-cap.ts). */
  readonly maxRequestBytes: number;
}

/**
 * Must be the first interceptor in the server's list: grpc-js hands the first one its own
 * call, which holds the HTTP/2 stream this closes past the bound (and watches for
 * messages over request-size-cap.ts' caps).
 */
export function requestBodyTimeoutInterceptor(options: RequestBodyTimeoutOptions): ServerInterceptor {
  const caps = requestSizeCaps(options.maxRequestBytes);
  return (method, call) => {
    const streaming = method.requestStream;
    const cap = caps.of(method.path);
    let timer: NodeJS.Timeout | undefined;
    let unwatch: (() => void) | undefined;
    /** The client ended its request (grpc-js read it whole): a status then ends the stream by itself. */
    let halfClosed = false;
    const stop = (): void => {
      unwatch?.();
      unwatch = undefined;
      if (timer === undefined) return;
      clearTimeout(timer);
      timer = undefined;
    };
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const started = performance.now();
            const refuse = (error: GatewayError): void => {
              stop();
              end(call, metadata, error, method.path, started, options);
            };
            timer = setTimeout(() => {
              timer = undefined;
              refuse(requestBodyTimeout(options.timeoutMs, streaming));
            }, options.timeoutMs);
            timer.unref();
            const stream = http2StreamOf(call);
            // A unary or server-streaming request is one message: only its prefix is looked at.
            if (stream !== undefined) unwatch = watchMessageSizes(stream, cap.maxBytes, !streaming, (size, compressed) => refuse(cap.refusal(method.path, size, compressed)));
            pass(metadata);
          },
          // A request stream's next message gets the bound again, from now.
          onReceiveMessage: (message, pass) => {
            if (streaming) timer?.refresh();
            pass(message);
          },
          // The request is whole: grpc-js now runs the handler (unary, server-streaming), or the client is done sending.
          onReceiveHalfClose: (pass) => {
            halfClosed = true;
            stop();
            pass();
          },
          // Whatever ended the call (the client went away, a status grpc-js sent itself).
          onCancel: stop,
        }),
      // Any status (a refused key, a message grpc-js could not decode, the handler's…) ends the wait.
      // One sent before the request ended (a refused key: grpc-js never reads the request)
      // also resets the stream, or a client that never ends it would keep its slot.
      sendStatus: (status, next) => {
        stop();
        const stream = halfClosed ? undefined : http2StreamOf(call);
        const open = stream !== undefined && !stream.closed && !stream.destroyed;
        const answered = stream?.headersSent === true;
        next(status);
        if (open) closeAfterStatus(stream, answered, options.timeoutMs);
      },
    });
  };
}

/** The error a call whose request did not arrive in time ends with. */
export function requestBodyTimeout(timeoutMs: number, streaming = false): GatewayError {
  const since = streaming ? "the call's metadata or of its previous message" : "the call's metadata";
  return new GatewayError({
    code: Code.DEADLINE_EXCEEDED,
    reason: Reason.REQUEST_BODY_TIMEOUT,
    message: `the request message did not arrive whole within ${timeoutMs / 1000} s of ${since} (REQUEST_BODY_TIMEOUT_S)`,
    metadata: { setting: "REQUEST_BODY_TIMEOUT_S", timeoutMs: String(timeoutMs) },
  });
}

/** Refuses the call with `error` (logged and counted), then resets its HTTP/2 stream so grpc-js lets go of it. */
function end(call: ServerInterceptingCallInterface, metadata: Metadata, error: GatewayError, path: string, started: number, options: RequestBodyTimeoutOptions): void {
  const stream = http2StreamOf(call);
  if (stream !== undefined && (stream.closed || stream.destroyed)) return; // gone already: nothing to refuse
  const keyName = keyNameOf(metadata);
  const answered = stream?.headersSent === true; // a request stream's handler has answered already
  refuseCall(call, metadata, error, path.split("/")[2], started, options, keyName === undefined ? {} : { keyName });
  if (stream !== undefined) closeAfterStatus(stream, answered, options.timeoutMs);
}

/**
 * Resets `stream` (NO_ERROR) once the status just sent on it has left, so grpc-js and
 * node:http2 let go of a call whose client has not ended its request.
 * @param answered whether response headers had gone out before the status (it then travels as trailers)
 */
function closeAfterStatus(stream: ServerHttp2Stream, answered: boolean, timeoutMs: number): void {
  if (!answered) {
    // After the trailers-only reply (close with NO_ERROR waits for the writable side to finish).
    stream.close(http2.NGHTTP2_NO_ERROR);
    return;
  }
  // The status goes out as trailers once the answers before it have left: grpc-js calls
  // sendTrailers on 'wantTrailers' (its listener, added by refuseCall, runs before this
  // one), and Node hands them to nghttp2 on the next setImmediate, so the reset is
  // scheduled after that one. A client that does not read its answers never lets them
  // leave: it gets the reset without a status (CANCEL) one bound later.
  const cancel = setTimeout(() => stream.close(http2.NGHTTP2_CANCEL), timeoutMs);
  cancel.unref();
  stream.once("wantTrailers", () => {
    clearTimeout(cancel);
    setImmediate(() => stream.close(http2.NGHTTP2_NO_ERROR));
  });
  stream.once("close", () => clearTimeout(cancel));
}

/**
 * The HTTP/2 stream of grpc-js' own call (BaseServerInterceptingCall keeps it in its
 * private `stream` field: grpc-js has no public way to it). If a grpc-js release moves it,
 * this finds nothing: the status is still sent and the call ended, but the partial buffer
 * is held until the client ends the stream, and the RST_STREAM test in
 * test/hardening/grpc-stalled-request.e2e.test.ts fails.
 */
function http2StreamOf(call: ServerInterceptingCallInterface): ServerHttp2Stream | undefined {
  const stream: unknown = (call as unknown as { readonly stream?: unknown }).stream;
  return stream instanceof Duplex && "rstCode" in stream && typeof (stream as Partial<ServerHttp2Stream>).close === "function" ? (stream as ServerHttp2Stream) : undefined;
}
