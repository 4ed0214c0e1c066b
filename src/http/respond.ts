/**
 * Writing whole JSON responses (everything but event streams).
 */
import type { ServerResponse } from "node:http";
import type { HttpFailure } from "./errors.js";

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  if (res.destroyed || res.headersSent) return; // the client left, or a stream already answered
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

export function sendFailure(res: ServerResponse, failure: HttpFailure): void {
  sendJson(res, failure.status, failure.envelope, failure.headers);
}
