/**
 * Reading a request body: bounded in size (MAX_REQUEST_BYTES, 413 beyond, refused from
 * content-length before a byte is read when it says so) and in time (REQUEST_BODY_TIMEOUT_S,
 * 408 after: a sender that stops must not hold its connection and buffer for minutes),
 * uncompressed, and JSON.
 */
import type { IncomingMessage } from "node:http";
import { Code, GatewayError, Reason } from "../core/errors.js";
import { HttpError } from "./errors.js";

export interface JsonBody {
  readonly value: unknown;
  /** The text it was parsed from (the chat route takes JSON Schemas from it byte for byte). */
  readonly text: string;
}

export async function readJsonBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<JsonBody> {
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding.toLowerCase() !== "identity") throw HttpError.unsupportedEncoding(encoding);
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw HttpError.bodyTooLarge(limit);

  const text = (await readBody(req, limit, timeoutMs)).toString("utf8");
  if (text.trim() === "") throw HttpError.invalidJson("the request body is empty; send a JSON object");
  try {
    return { value: JSON.parse(text) as unknown, text };
  } catch (err) {
    throw HttpError.invalidJson(`the request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Listeners rather than `for await`: leaving an async iterator destroys the request,
 * and with it the socket the 413 must still be written to.
 */
function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      cleanup();
      reject(HttpError.bodyTimeout(timeoutMs)); // answered with `connection: close`; the rest is never read
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onGone);
      req.off("close", onGone);
    };
    const onData = (part: Buffer): void => {
      size += part.length;
      if (size <= limit) return void parts.push(part);
      cleanup();
      // Drop the rest unread; the 413 carries `connection: close`.
      req.resume();
      reject(HttpError.bodyTooLarge(limit));
    };
    const onEnd = (): void => {
      cleanup();
      resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
    };
    const onGone = (): void => {
      cleanup();
      reject(new GatewayError({ code: Code.CANCELLED, reason: Reason.CANCELLED, message: "the client closed the connection while sending the body" }));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onGone);
    req.on("close", onGone);
  });
}
