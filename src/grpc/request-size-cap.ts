/**
 * A small cap on the request messages of the services anyone may call without a key
 * (health and reflection, auth-interceptor.ts' OPEN_SERVICES), checked on each message's
 * 5-byte gRPC prefix, before grpc-js buffers a byte of it.
 *
 * Why: grpc-js has one receive limit per server (MAX_REQUEST_BYTES, 16 MiB by default,
 * sized for chat requests), and its decoder buffers a message up to that size as it
 * arrives. So without a key, anyone could have the gateway hold up to 16 MiB per stream
 * (until REQUEST_BODY_TIMEOUT_S), × MAX_CONCURRENT_STREAMS per connection. Their real
 * requests are tiny: a service name, a host and a symbol or file name (reflection.ts
 * answers in full only those whose host and name are at most 1024 characters: at most
 * 6 KiB in UTF-8 with their tags, under the cap).
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
 * half-open.) The cap is on the size as sent: a compressed message's inflated size is
 * grpc-js' to check (against MAX_REQUEST_BYTES, at once, not held over time).
 */
import type { ServerHttp2Stream } from "node:http2";
import { Code, GatewayError, Reason } from "../core/errors.js";
import { OPEN_SERVICES } from "./auth-interceptor.js";

/** Largest request message of an open service (health, reflection), in bytes. */
export const OPEN_SERVICE_MAX_REQUEST_BYTES = 8 * 1024;

/** The cap on `path`'s request messages, or undefined (grpc-js' own, MAX_REQUEST_BYTES). */
export function requestSizeCap(path: string): number | undefined {
  return OPEN_SERVICES.has(path.split("/")[1] ?? "") ? OPEN_SERVICE_MAX_REQUEST_BYTES : undefined;
}

/** The refusal of a message announced over the cap. */
export function requestTooLarge(path: string, sizeBytes: number, maxBytes: number): GatewayError {
  const service = path.split("/")[1] ?? "";
  return new GatewayError({
    code: Code.INVALID_ARGUMENT,
    reason: Reason.INVALID_REQUEST,
    message: `invalid request: the message is ${sizeBytes} bytes; ${service} requests are at most ${maxBytes} bytes (open to callers without a key, so kept small)`,
    metadata: { maxBytes: String(maxBytes), sizeBytes: String(sizeBytes) },
  });
}

/**
 * Calls `tooLarge` with the announced size of the first message on `stream` over
 * `maxBytes`, before grpc-js reads any of its bytes, and stops watching. Returns a
 * function that stops watching.
 */
export function watchMessageSizes(stream: ServerHttp2Stream, maxBytes: number, tooLarge: (sizeBytes: number) => void): () => void {
  /** Bytes of the current prefix seen (0 to 4: the flag, then the length's bytes). */
  let prefixSeen = 0;
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
      if (prefixSeen > 0) size = size * 256 + byte; // bytes 1-4: the length, big-endian (byte 0: the compressed flag)
      if (++prefixSeen < 5) continue;
      if (size > maxBytes) {
        stop();
        tooLarge(size);
        return;
      }
      remaining = size;
      prefixSeen = 0;
      size = 0;
    }
  };
  const stop = (): void => {
    stream.off("data", onData);
  };
  stream.prependListener("data", onData);
  return stop;
}
