/**
 * A cap on every request message, checked on its 5-byte gRPC prefix, before grpc-js
 * buffers a byte of it: MAX_REQUEST_BYTES for the authenticated services (chat, models),
 * and a far smaller one (8 KiB) for the services anyone may call without a key (health
 * and reflection, auth-interceptor.ts' OPEN_SERVICES).
 *
 * Why: grpc-js has one receive limit per server (MAX_REQUEST_BYTES, 16 MiB by default,
 * sized for chat requests), and its decoder buffers a message up to that size as it
 * arrives. So without a key, anyone could have the gateway hold up to 16 MiB per stream
 * (until REQUEST_BODY_TIMEOUT_S), × MAX_CONCURRENT_STREAMS per connection. The open
 * services' real requests are tiny: a service name, a host and a symbol or file name
 * (reflection.ts answers in full only those whose host and name are at most 1024
 * characters: at most 6 KiB in UTF-8 with their tags, under the cap). Over
 * MAX_REQUEST_BYTES, grpc-js refuses a message on its own (its decoder's limit), but with
 * a bare RESOURCE_EXHAUSTED: no ErrorInfo, not logged or counted, the stream left
 * half-open. The cap here refuses it first, the gateway's way: RESOURCE_EXHAUSTED
 * REQUEST_TOO_LARGE, what the HTTP shim's 413 `request_too_large` says of a body.
 *
 * How: grpc-js offers no cap per method, and does not tell an interceptor that a message
 * has started arriving. Its call reads the HTTP/2 stream through a 'data' listener
 * (server-interceptors.js: `handleDataFrame` → `StreamDecoder.write`); this one is put
 * before it (`prependListener`), so it sees each chunk first and only follows the frame
 * boundaries: no copy, a few integer operations per message. Adding it does not start
 * the flow (grpc-js paused the stream; a prepended listener does not resume it). A
 * message announced over the cap is refused there, in the same tick: grpc-js, next on the
 * same chunk, finds the call cancelled and drops it. (Setting the private
 * `decoder.maxReadMessageLength` would be shorter, but grpc-js then answers on its own
 * RESOURCE_EXHAUSTED without ErrorInfo, not logged or counted, and leaves the stream
 * half-open.) grpc-js' own limit stays set to MAX_REQUEST_BYTES behind it.
 *
 * Cost: a unary or server-streaming request is one message, so on those calls (every chat
 * call) the watcher reads the first prefix only and leaves: one listener added and
 * removed and one call on the first chunk, whatever the message's size. A second message
 * on such a call is a protocol error grpc-js answers itself (and still caps at
 * MAX_REQUEST_BYTES, at its prefix). Request streams (reflection) are watched to the end.
 *
 * Compressed messages (grpc-encoding gzip or deflate): the cap is on the size as sent,
 * the only one known at the prefix. A message within it that inflates past
 * MAX_REQUEST_BYTES is grpc-js' to refuse: it counts as it inflates and stops at the
 * limit (server-interceptors.js' `decompressMessage`), so no more than that is held, and
 * at once, not over time, but its refusal is grpc-js' bare RESOURCE_EXHAUSTED ("Received
 * message that decompresses to a size larger than …", README's Errors).
 */
import type { ServerHttp2Stream } from "node:http2";
import { Code, GatewayError, Reason } from "../core/errors.js";
import { OPEN_SERVICES } from "./auth-interceptor.js";

/** Largest request message of an open service (health, reflection), in bytes. */
export const OPEN_SERVICE_MAX_REQUEST_BYTES = 8 * 1024;

/** The cap on one method's request messages, and what a message over it gets. */
export interface RequestSizeCap {
  readonly maxBytes: number;
  /** The refusal of a message of `path` announced at `sizeBytes` (over maxBytes), `compressed` or not. */
  readonly refusal: (path: string, sizeBytes: number, compressed: boolean) => GatewayError;
}

/**
 * The caps of a server whose receive limit is `maxRequestBytes` (MAX_REQUEST_BYTES): `of`
 * gives a method's. The open services' is the smaller of 8 KiB and MAX_REQUEST_BYTES
 * (past MAX_REQUEST_BYTES, REQUEST_TOO_LARGE applies to them too).
 */
export function requestSizeCaps(maxRequestBytes: number): { of(path: string): RequestSizeCap } {
  const server: RequestSizeCap = { maxBytes: maxRequestBytes, refusal: (_path, size, compressed) => requestTooLarge(size, maxRequestBytes, compressed) };
  const open: RequestSizeCap = OPEN_SERVICE_MAX_REQUEST_BYTES < maxRequestBytes ? { maxBytes: OPEN_SERVICE_MAX_REQUEST_BYTES, refusal: (path, size) => openRequestTooLarge(path, size, OPEN_SERVICE_MAX_REQUEST_BYTES) } : server;
  return { of: (path) => (OPEN_SERVICES.has(serviceOf(path)) ? open : server) };
}

/** A message over MAX_REQUEST_BYTES: the HTTP shim's 413 `request_too_large`, for a gRPC message. */
export function requestTooLarge(sizeBytes: number, maxBytes: number, compressed = false): GatewayError {
  return new GatewayError({
    code: Code.RESOURCE_EXHAUSTED,
    reason: Reason.REQUEST_TOO_LARGE,
    message: `the request message is ${sizeBytes} bytes${compressed ? " (compressed, as sent)" : ""}, over the gateway's limit of ${maxBytes} bytes (MAX_REQUEST_BYTES)`,
    metadata: { setting: "MAX_REQUEST_BYTES", maxBytes: String(maxBytes), sizeBytes: String(sizeBytes) },
  });
}

/** A message to an open service over its 8 KiB cap. */
export function openRequestTooLarge(path: string, sizeBytes: number, maxBytes: number): GatewayError {
  return new GatewayError({
    code: Code.INVALID_ARGUMENT,
    reason: Reason.INVALID_REQUEST,
    message: `invalid request: the message is ${sizeBytes} bytes; ${serviceOf(path)} requests are at most ${maxBytes} bytes (open to callers without a key, so kept small)`,
    metadata: { maxBytes: String(maxBytes), sizeBytes: String(sizeBytes) },
  });
}

function serviceOf(path: string): string {
  return path.split("/")[1] ?? "";
}

/**
 * Calls `tooLarge` with the announced size of the first message on `stream` over
 * `maxBytes` (and whether it is compressed), before grpc-js reads any of its bytes, and
 * stops watching. With `firstOnly` (a request of one message), it stops after the first
 * prefix. Returns a function that stops watching.
 */
export function watchMessageSizes(stream: ServerHttp2Stream, maxBytes: number, firstOnly: boolean, tooLarge: (sizeBytes: number, compressed: boolean) => void): () => void {
  /** Bytes of the current prefix seen (0 to 4: the flag, then the length's bytes). */
  let prefixSeen = 0;
  let compressed = false;
  let size = 0;
  /** Bytes of the current message still to come (skipped, not looked at). */
  let remaining = 0;
  const onData = (chunk: Buffer): void => {
    for (let at = 0; at < chunk.length; ) {
      if (remaining > 0) {
        const n = Math.min(remaining, chunk.length - at);
        remaining -= n;
        at += n;
        continue;
      }
      const byte = chunk[at++]!;
      if (prefixSeen === 0) compressed = byte !== 0; // byte 0: the compressed flag
      else size = size * 256 + byte; // bytes 1-4: the length, big-endian
      if (++prefixSeen < 5) continue;
      if (size > maxBytes) {
        stop();
        tooLarge(size, compressed);
        return;
      }
      if (firstOnly) {
        stop();
        return;
      }
      remaining = size;
      prefixSeen = 0;
      size = 0;
    }
  };
  let watching = true;
  const stop = (): void => {
    if (!watching) return; // left after the first prefix, and stopped again at the half-close
    watching = false;
    stream.off("data", onData);
  };
  stream.prependListener("data", onData);
  return stop;
}
