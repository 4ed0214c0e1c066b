/**
 * Answering a scrape: the Prometheus text format (version 0.0.4) with its content type.
 * Shared by the HTTP shim's GET /metrics and the standalone METRICS_PORT server.
 */
import type { ServerResponse } from "node:http";
import type { KeyRing } from "../auth/key-ring.js";

/** What /metrics serves (a GatewayMetrics). */
export interface MetricsSource {
  /** The exposition format's content type. */
  readonly contentType: string;
  /** Collects (gauges read at scrape time) and renders every metric. */
  metrics(): Promise<string>;
}

/** Writes the scrape response; rejects (nothing written) if collecting failed. */
export async function sendMetrics(res: ServerResponse, source: MetricsSource): Promise<void> {
  const body = await source.metrics();
  if (res.destroyed || res.headersSent) return; // the scraper gave up while we collected
  res.writeHead(200, { "content-type": source.contentType, "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
  res.end(body);
}

/** Whether a scrape may proceed: always without METRICS_KEY, else only with it (compared in constant time). */
export function scrapeAllowed(key: KeyRing | undefined, authorization: string | undefined): boolean {
  if (key === undefined) return true;
  try {
    key.authenticate(authorization);
    return true;
  } catch {
    return false;
  }
}
