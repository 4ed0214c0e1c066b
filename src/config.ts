/**
 * Configuration from the environment, validated once at start-up. A bad environment
 * fails with one message listing every bad variable (never echoing secret values).
 */
import { z } from "zod";
import { LOG_LEVELS } from "./log.js";

/** Empty strings count as unset, so `FOO=` in an .env file means "use the default". */
const unsetIfEmpty = (v: unknown): unknown => (v === "" ? undefined : v);
const port = z.coerce.number().int("must be an integer").min(0, "must be 0-65535").max(65535, "must be 0-65535");
const positiveInt = z.coerce.number().int("must be an integer").positive("must be positive");

const EnvSchema = z.object({
  CEREBRAS_API_KEY: z.string().optional(),
  CEREBRAS_BASE_URL: z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
    .default("https://api.cerebras.ai"),
  REQUEST_TIMEOUT_S: z.coerce.number("must be a number").positive("must be positive").max(86_400, "must be at most 86400").default(300),
  GRPC_HOST: z.string().default("127.0.0.1"),
  GRPC_PORT: port.default(50051),
  DEFAULT_MODEL: z.string().min(1).default("gpt-oss-120b"),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` }).default("info"),
  NODE_ENV: z.string().optional(),
  UPSTREAM_CONNECTIONS: positiveInt.default(128),
  MAX_MESSAGES: positiveInt.default(2048),
  SHUTDOWN_GRACE_S: z.coerce.number("must be a number").min(0, "must be at least 0").default(10),
  UPSTREAM_MAX_RETRIES: z.coerce.number().int("must be an integer").min(0, "must be at least 0").max(10, "must be at most 10").default(2),
  FIRST_TOKEN_TIMEOUT_S: z.coerce.number("must be a number").positive("must be positive").default(60),
  STREAM_IDLE_TIMEOUT_S: z.coerce.number("must be a number").positive("must be positive").default(30),
  MAX_IN_FLIGHT: positiveInt.default(1024),
  MAX_REQUEST_BYTES: positiveInt.default(16 * 1024 * 1024),
  MAX_CONCURRENT_STREAMS: positiveInt.default(256),
  FAKE_UPSTREAM_TOKEN_DELAY_MS: z.coerce.number("must be a number").min(0, "must be at least 0").default(15),
});

const Env = z.preprocess(
  (env) => Object.fromEntries(Object.entries(env as Record<string, unknown>).map(([k, v]) => [k, unsetIfEmpty(v)])),
  EnvSchema,
);

export type Env = z.infer<typeof EnvSchema>;

export interface Config {
  /** undefined: no key, so the embedded fake upstream is used. */
  readonly cerebrasApiKey: string | undefined;
  readonly cerebrasBaseUrl: string;
  readonly requestTimeoutMs: number;
  readonly grpcHost: string;
  readonly grpcPort: number;
  readonly defaultModel: string;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly production: boolean;
  readonly upstreamConnections: number;
  readonly maxMessages: number;
  readonly shutdownGraceMs: number;
  readonly fakeTokenDelayMs: number;
  /** Upstream retries after the first attempt. */
  readonly upstreamMaxRetries: number;
  readonly firstTokenTimeoutMs: number;
  readonly streamIdleTimeoutMs: number;
  /** Calls in progress, server-wide, beyond which new ones get RESOURCE_EXHAUSTED. */
  readonly maxInFlight: number;
  /** HTTP/2 streams per gRPC connection. */
  readonly maxConcurrentStreams: number;
  /** Largest request accepted (gRPC message or HTTP body). */
  readonly maxRequestBytes: number;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const parsed = Env.safeParse(pick(env));
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === "production";
  if (production && e.CEREBRAS_API_KEY === undefined) {
    throw new ConfigError(
      "invalid configuration:\n  CEREBRAS_API_KEY: is required when NODE_ENV=production (without it the gateway would answer from its fake upstream)",
    );
  }
  return {
    cerebrasApiKey: e.CEREBRAS_API_KEY,
    cerebrasBaseUrl: e.CEREBRAS_BASE_URL,
    requestTimeoutMs: e.REQUEST_TIMEOUT_S * 1000,
    grpcHost: e.GRPC_HOST,
    grpcPort: e.GRPC_PORT,
    defaultModel: e.DEFAULT_MODEL,
    logLevel: e.LOG_LEVEL,
    production,
    upstreamConnections: e.UPSTREAM_CONNECTIONS,
    maxMessages: e.MAX_MESSAGES,
    shutdownGraceMs: e.SHUTDOWN_GRACE_S * 1000,
    fakeTokenDelayMs: e.FAKE_UPSTREAM_TOKEN_DELAY_MS,
    upstreamMaxRetries: e.UPSTREAM_MAX_RETRIES,
    firstTokenTimeoutMs: e.FIRST_TOKEN_TIMEOUT_S * 1000,
    streamIdleTimeoutMs: e.STREAM_IDLE_TIMEOUT_S * 1000,
    maxInFlight: e.MAX_IN_FLIGHT,
    maxConcurrentStreams: e.MAX_CONCURRENT_STREAMS,
    maxRequestBytes: e.MAX_REQUEST_BYTES,
  };
}

/** Only the variables the gateway reads, so unrelated environment never shows in errors. */
function pick(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const key of Object.keys(EnvSchema.shape)) out[key] = env[key];
  return out;
}
