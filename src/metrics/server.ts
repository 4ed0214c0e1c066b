/**
 * /metrics on its own small node:http listener (METRICS_PORT), for when the HTTP shim,
 * which otherwise serves it, is off, or when METRICS_HOST asks for a listener of its own
 * (e.g. on 127.0.0.1 only). GET /metrics only; no TLS (scrapers on the same host or
 * network, as with every Prometheus exporter); METRICS_KEY, when set, is required.
 */
import { createServer } from "node:http";
import type { KeyRing } from "../auth/key-ring.js";
import { listen } from "../http/listen.js";
import type { Logger } from "../log.js";
import { scrapeAllowed, sendMetrics, type MetricsSource } from "./exposition.js";

export interface MetricsServerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly logger: Logger;
  /** METRICS_KEY: scrapes must present it (401 otherwise); undefined: public. */
  readonly key?: KeyRing | undefined;
}

export interface MetricsServer {
  readonly port: number;
  /** Stops listening and closes every connection (a scrape in progress is cut). */
  close(): Promise<void>;
}

export async function startMetricsServer(source: MetricsSource, options: MetricsServerOptions): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    req.resume(); // no request body is wanted
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found: this port serves GET /metrics\n");
    } else if (req.method !== "GET") {
      res.writeHead(405, { allow: "GET", "content-type": "text/plain; charset=utf-8" }).end(`${req.method ?? ""} is not allowed on /metrics; use GET\n`);
    } else if (!scrapeAllowed(options.key, req.headers.authorization)) {
      res.writeHead(401, { "www-authenticate": 'Bearer realm="cerebras-gateway-metrics"', "content-type": "text/plain; charset=utf-8" }).end("this /metrics needs authorization: Bearer <METRICS_KEY>\n");
    } else {
      sendMetrics(res, source).catch((err: unknown) => {
        options.logger.error({ err }, "collecting metrics failed");
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end("collecting metrics failed\n");
      });
    }
  });
  const port = await listen(server, options.port, options.host);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
