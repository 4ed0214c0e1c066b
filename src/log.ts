/**
 * Structured JSON logs (pino). Secrets never reach a log line: known secret-bearing
 * paths are redacted, and nothing logs request headers wholesale.
 */
import { pino, type Logger, type DestinationStream } from "pino";

export type { Logger };

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: "cerebras-grpc-gateway" },
    redact: {
      paths: ["apiKey", "*.apiKey", "authorization", "*.authorization", "headers.authorization", "config.CEREBRAS_API_KEY"],
      censor: "[redacted]",
    },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}

/**
 * A URL as it may be logged: user info (`user:pass@`) and the query string (tokens often
 * ride there) replaced by `[redacted]`, so a base URL with credentials is safe to print.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "[redacted: not a URL]";
  }
  const auth = u.username !== "" || u.password !== "" ? "[redacted]@" : "";
  const query = u.search !== "" ? "?[redacted]" : "";
  return `${u.protocol}//${auth}${u.host}${u.pathname}${query}`;
}
