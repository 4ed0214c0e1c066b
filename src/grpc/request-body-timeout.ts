/**
 * The request of a unary or server-streaming call must arrive whole (its one message and
 * the end of its stream) within REQUEST_BODY_TIMEOUT_S of its metadata: the bound the HTTP
 * shim puts on a body, on the gRPC port. Without it, a caller (with a valid key: others are
 * refused on their metadata, auth-interceptor.ts) that sends a message's length prefix and
 * part of it, then stalls without a deadline, has grpc-js buffer up to MAX_REQUEST_BYTES
 * and hold the HTTP/2 stream (one of MAX_CONCURRENT_STREAMS) for as long as the
 * connection lives. The bound ends at the half-close, not at the message: grpc-js runs a
 * unary or server-streaming handler only then, so a whole message without it is held just
 * the same. It does not apply to what follows (the handler's time, a response stream),
 * nor to client-streaming or bidi methods (reflection), which have no "whole request".
 *
 * Past the bound the call ends DEADLINE_EXCEEDED, reason REQUEST_BODY_TIMEOUT: a deadline
 * (the gateway's, on the request's arrival) passed before the call could start. The same
 * code the HTTP shim's 408 maps to, so both transports count it alike; not CANCELLED,
 * which says the caller went away (DESIGN.md's table), nor UNAVAILABLE, which clients
 * retry: sending the same request the same slow way again would fail the same way.
 *
 * Tearing down: the status goes out trailers-only (nothing was sent yet), and grpc-js
 * stops reading, but it sends no RST_STREAM when the client has not half-closed, so the
 * HTTP/2 stream stays half-open, and with it grpc-js' decoder and the partial message it
 * holds, until the client ends it. So the stream is then closed with RST_STREAM(NO_ERROR),
 * which RFC 9113 §8.1 provides for this case (a complete response before the request
 * ended; clients must not discard the response) and gRPC servers are expected to send
 * (grpc-java#2162). That closes grpc-js' call and frees the partial buffer.
 *
 * Cost: one `setTimeout` per call, cleared at the half-close. Node keeps all timers of one
 * duration in one list behind one native timer, so arming and clearing are O(1) list
 * operations (the "coarse timer wheel" is built in), and the timer is unref'd so it never
 * holds the process up. A refused call (bad key) clears it in the same tick.
 */
import type { ServerHttp2Stream } from "node:http2";
import { constants as http2 } from "node:http2";
import { Duplex } from "node:stream";
import { ServerInterceptingCall, type Metadata, type ServerInterceptingCallInterface, type ServerInterceptor } from "@grpc/grpc-js";
import { Code, GatewayError, Reason } from "../core/errors.js";
import { keyNameOf } from "./auth-interceptor.js";
import { refuseCall, type RefusalOptions } from "./refusal.js";

export interface RequestBodyTimeoutOptions extends RefusalOptions {
  /** REQUEST_BODY_TIMEOUT_S in ms. */
  readonly timeoutMs: number;
}

/**
 * Must be the first interceptor in the server's list: grpc-js hands the first one its own
 * call, which holds the HTTP/2 stream this closes past the bound.
 */
export function requestBodyTimeoutInterceptor(options: RequestBodyTimeoutOptions): ServerInterceptor {
  return (method, call) => {
    if (method.requestStream) return new ServerInterceptingCall(call);
    let timer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      if (timer === undefined) return;
      clearTimeout(timer);
      timer = undefined;
    };
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            const started = performance.now();
            timer = setTimeout(() => {
              timer = undefined;
              expire(call, metadata, method.path, started, options);
            }, options.timeoutMs);
            timer.unref();
            pass(metadata);
          },
          // The request is whole: grpc-js now runs the handler.
          onReceiveHalfClose: (pass) => {
            stop();
            pass();
          },
          // Whatever ended the call (the client went away, a status grpc-js sent itself).
          onCancel: stop,
        }),
      // Any status (a refused key, a message grpc-js could not decode…) ends the wait.
      sendStatus: (status, next) => {
        stop();
        next(status);
      },
    });
  };
}

/** The error a call whose request did not arrive in time ends with. */
export function requestBodyTimeout(timeoutMs: number): GatewayError {
  return new GatewayError({
    code: Code.DEADLINE_EXCEEDED,
    reason: Reason.REQUEST_BODY_TIMEOUT,
    message: `the request message did not arrive whole within ${timeoutMs / 1000} s of the call's metadata (REQUEST_BODY_TIMEOUT_S)`,
    metadata: { setting: "REQUEST_BODY_TIMEOUT_S", timeoutMs: String(timeoutMs) },
  });
}

function expire(call: ServerInterceptingCallInterface, metadata: Metadata, path: string, started: number, options: RequestBodyTimeoutOptions): void {
  const stream = http2StreamOf(call);
  if (stream !== undefined && (stream.closed || stream.destroyed)) return; // gone already: nothing to refuse
  const keyName = keyNameOf(metadata);
  refuseCall(call, metadata, requestBodyTimeout(options.timeoutMs), path.split("/")[2], started, options, keyName === undefined ? {} : { keyName });
  // After the trailers-only reply (close with NO_ERROR waits for the writable side to finish).
  stream?.close(http2.NGHTTP2_NO_ERROR);
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
