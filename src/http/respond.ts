/**
 * Writing whole JSON responses (everything but event streams).
 */
import type { ServerResponse } from "node:http";
import type { CallContext } from "../core/provider.js";
import type { HttpFailure } from "./errors.js";

/**
 * The headers the call added for its caller (CallContext.replyHeaders: rate-limit
 * standing, …), set on the response before its head is written: replies and failures alike.
 */
export function setCallHeaders(res: ServerResponse, ctx: Pick<CallContext, "replyHeaders">): void {
  const extra = ctx.replyHeaders;
  if (extra === undefined || res.headersSent) return;
  const f = extra.flat;
  for (let i = 0; i < f.length; i += 2) res.setHeader(f[i]!, f[i + 1]!);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  if (res.destroyed || res.headersSent) return; // the client left, or a stream already answered
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/**
 * `envelope`: "openai" wraps the error (`{"error":{…}}`, what the OpenAI SDK reads);
 * "cerebras" sends it flat (`{"message","type","param","code"}`, what Cerebras itself
 * answers and its SDK reads as `err.error`: CEREBRAS_API.md, errors).
 */
export function sendFailure(res: ServerResponse, failure: HttpFailure, envelope: ErrorEnvelopeStyle = "openai"): void {
  sendJson(res, failure.status, envelope === "cerebras" ? failure.envelope.error : failure.envelope, failure.headers);
}

export type ErrorEnvelopeStyle = "openai" | "cerebras";

/** The routes under /cerebras answer as Cerebras does; everything else as OpenAI does. */
export function envelopeStyleFor(path: string): ErrorEnvelopeStyle {
  return path === "/cerebras" || path.startsWith("/cerebras/") ? "cerebras" : "openai";
}
