/**
 * gRPC over a bare node:http2 client, for what generated stubs cannot do: send half a
 * message and stop, send without ever reading, or measure the trailers exactly as they
 * came over the wire (the size C-core and Java clients hold against their 8 KiB limit).
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";
import { status } from "@grpc/grpc-js";
import { expect } from "vitest";
import { ErrorInfo } from "../../gen/google/rpc/error_details.js";
import { Status } from "../../gen/google/rpc/status.js";

/** A length-prefixed gRPC message (uncompressed). */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(message.length + 5);
  out.writeUInt8(0, 0);
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** A gRPC frame header announcing a message of `size` bytes (none of which are sent yet). */
export function announce(size: number): Buffer {
  const b = Buffer.alloc(5);
  b.writeUInt32BE(size, 1);
  return b;
}

/**
 * Writes `bytes` of filler to the stream, honouring backpressure; stops early if the
 * stream closes, or is reset by the server (node's client then emits 'aborted' and keeps
 * the unsent writes queued for ever: no 'drain', no 'close' until the session goes).
 * Resolves once what was written has left the client (flow control: the server consumed
 * all but a window).
 */
export async function sendFiller(stream: ClientHttp2Stream, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  for (let sent = 0; sent < bytes && !stream.destroyed && !stream.closed; sent += chunk.length) {
    if (!stream.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          stream.off("drain", done);
          stream.off("close", done);
          stream.off("aborted", done);
          resolve();
        };
        stream.on("drain", done);
        stream.on("close", done);
        stream.on("aborted", done);
      });
    }
  }
  if (!stream.destroyed && !stream.closed) await new Promise<void>((resolve) => stream.write(Buffer.alloc(0), () => resolve()));
}

/**
 * Destroys a session and resolves once it is closed (so the server has let go of its streams).
 * The destroy waits for the next turn of the event loop: on Node 20, destroying a client
 * session while it is still delivering the closes of several streams reset together (a
 * test failing right after one of them, in the await that follows its 'close') spins
 * forever, and takes the test worker with it.
 */
export function closeSession(s: ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => {
    s.once("close", () => resolve());
    setImmediate(() => s.destroy());
  });
}

/**
 * Opens an h2c session to host:port; `close()` it when done. Its session memory cap is
 * raised (Node's default is 10 MB, counting queued output), so a test can send big messages.
 */
export function session(address: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = connect(`http://${address}`, { maxSessionMemory: 256 });
    s.once("connect", () => {
      s.off("error", reject);
      resolve(s);
    });
    s.once("error", reject);
  });
}

/** Starts a call: the request headers of a gRPC call to `path`, nothing of the body yet. */
export function open(s: ClientHttp2Session, path: string, metadata: Record<string, string> = {}): ClientHttp2Stream {
  return s.request({
    [constants.HTTP2_HEADER_METHOD]: "POST",
    [constants.HTTP2_HEADER_PATH]: path,
    [constants.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
    te: "trailers",
    ...metadata,
  });
}

export interface RawReply {
  readonly headers: IncomingHttpHeaders;
  /** The trailers; for a trailers-only reply, the headers themselves. */
  readonly trailers: IncomingHttpHeaders;
  /** The bytes of the response body (gRPC frames). */
  readonly body: Buffer;
}

/** Reads a call to its end (trailers, or a trailers-only reply). Rejects if the stream fails. */
export function reply(stream: ClientHttp2Stream): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const parts: Buffer[] = [];
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (b: Buffer) => parts.push(b));
    stream.on("error", reject);
    stream.on("close", () => {
      if (trailers === undefined && headers["grpc-status"] === undefined) {
        reject(new Error(`stream closed without a status (rstCode ${stream.rstCode})`));
        return;
      }
      resolve({ headers, trailers: trailers ?? headers, body: Buffer.concat(parts) });
    });
  });
}

/** Resolves with the response headers as soon as they arrive (the body need not be over). */
export function responseHeaders(stream: ClientHttp2Stream): Promise<IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    stream.once("response", resolve);
    stream.once("error", reject);
    stream.once("close", () => reject(new Error(`stream closed before response headers (rstCode ${stream.rstCode})`)));
  });
}

/**
 * The size of a header list as HTTP/2 peers count it against their limit (RFC 9113 §6.5.2,
 * SETTINGS_MAX_HEADER_LIST_SIZE): name + value + 32 per field, pseudo-headers included.
 * Binary (-bin) values are counted as sent, base64.
 */
export function headerListSize(headers: IncomingHttpHeaders): number {
  let size = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [String(value)]) size += Buffer.byteLength(name) + Buffer.byteLength(v) + 32;
  }
  return size;
}

/** Code, message and ErrorInfo of a raw reply's status, checking AIP-193's shape on the way (one ErrorInfo, Status.code = grpc-status). */
export function refusal(r: RawReply): { code: number; message: string; errorInfo: ErrorInfo } {
  const code = Number(r.trailers["grpc-status"]);
  const details = Status.decode(Buffer.from(String(r.trailers["grpc-status-details-bin"]), "base64"));
  expect(details.code).toBe(code);
  expect(decodeURIComponent(String(r.trailers["grpc-message"]))).toBe(details.message);
  const infos = details.details.filter((d) => d.typeUrl === "type.googleapis.com/google.rpc.ErrorInfo");
  expect(infos).toHaveLength(1);
  return { code, message: details.message, errorInfo: ErrorInfo.decode(infos[0]!.value) };
}

/** Expects health's or reflection's refusal of a message announced at `sizeBytes`, over their 8 KiB cap (request-size-cap.ts). */
export function expectOpenServiceCapRefusal(r: RawReply, sizeBytes: number): void {
  const { code, message, errorInfo } = refusal(r);
  expect(code).toBe(status.INVALID_ARGUMENT);
  expect(errorInfo.reason).toBe("INVALID_REQUEST");
  expect(errorInfo.metadata).toMatchObject({ maxBytes: "8192", sizeBytes: String(sizeBytes) });
  expect(message).toContain("at most 8192 bytes");
}
