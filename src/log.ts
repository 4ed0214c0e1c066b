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
