/**
 * HTTP-shim tests: the standard harness (fake Cerebras + the real gateway) with the shim
 * on an ephemeral port, the official SDKs pointed at it, and a raw node:http client for
 * what SDKs cannot send (bad JSON, wrong methods, oversized or chunked bodies).
 */
import { request as httpRequest, type Agent, type IncomingHttpHeaders } from "node:http";
import Cerebras from "@cerebras/cerebras_cloud_sdk";
import OpenAI from "openai";
import { startHarness, type Harness, type HarnessOptions } from "./harness.js";

export interface HttpHarness extends Harness {
  readonly httpPort: number;
  /** http://127.0.0.1:<port> */
  readonly baseUrl: string;
  /** The openai client on the shim (baseURL …/v1), no retries. */
  readonly openai: OpenAI;
  /** The Cerebras client on the shim's /cerebras prefix, no retries, no TCP warming. */
  readonly cerebras: Cerebras;
}

/**
 * Upstream retries are off unless `env` turns them on: each injected fault then maps
 * exactly once, as in the gRPC error suite.
 */
export async function startHttpHarness(options: HarnessOptions = {}): Promise<HttpHarness> {
  const h = await startHarness({ ...options, env: { HTTP_PORT: "0", UPSTREAM_MAX_RETRIES: "0", ...options.env } });
  const httpPort = h.gateway.httpPort;
  if (httpPort === undefined) throw new Error("the HTTP shim is not running");
  const baseUrl = `http://127.0.0.1:${httpPort}`;
  return {
    ...h,
    httpPort,
    baseUrl,
    openai: new OpenAI({ apiKey: "sk-not-checked", baseURL: `${baseUrl}/v1`, maxRetries: 0, timeout: 10_000 }),
    cerebras: new Cerebras({ apiKey: "csk-not-checked", baseURL: `${baseUrl}/cerebras`, maxRetries: 0, timeout: 10_000, warmTCPConnection: false }),
  };
}

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

export interface RawRequest {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** A string is sent with content-length; an array of strings is sent chunked, piece by piece. */
  readonly body?: string | readonly string[];
  /** Default: a fresh connection, closed after the response. */
  readonly agent?: Agent;
}

/** One request (over a fresh connection unless an agent is given); resolves with the whole response. */
export function raw(port: number, r: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, method: r.method ?? "POST", path: r.path, headers: r.headers ?? {}, agent: r.agent ?? false }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (b: Buffer) => parts.push(b));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(parts).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (Array.isArray(r.body)) {
      for (const piece of r.body) req.write(piece);
      req.end();
    } else {
      req.end(r.body as string | undefined);
    }
  });
}

export const json = (body: unknown): Pick<RawRequest, "body" | "headers"> => ({
  body: JSON.stringify(body),
  headers: { "content-type": "application/json" },
});

/** The `data:` payloads of an SSE body, in order. */
export function sseData(text: string): string[] {
  return text
    .split("\n\n")
    .filter((e) => e.startsWith("data: "))
    .map((e) => e.slice("data: ".length));
}

/** A minimal chat request body. */
export function chatBody(text: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { model: "gpt-oss-120b", messages: [{ role: "user", content: text }], ...extra };
}
