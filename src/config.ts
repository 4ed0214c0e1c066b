/**
 * Configuration from the environment, validated once at start-up. A bad environment
 * fails with one message listing every bad variable (never echoing secret values).
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import type { QuotaConfig } from "./admission/config.js";
import { CallerLimitTable, parseOrgLimits, type CallerLimitsInput } from "./admission/limits.js";
import { KeyRing, keysFromFile, keysFromList, sha256, type KeyEntry } from "./auth/key-ring.js";
import type { ModelPricing } from "../gen/aigateway/v1/models.js";
import { LOG_LEVELS } from "./log.js";
import { isRedisUrl, parseRedisTarget, REDIS_URL_RULE, type RedisTarget } from "./redis/client.js";
import { parseFallbacks, upstreamKeysFrom, type UpstreamsConfig } from "./upstreams/config.js";

/** Empty strings count as unset, so `FOO=` in an .env file means "use the default". */
const unsetIfEmpty = (v: unknown): unknown => (v === "" ? undefined : v);
const port = z.coerce.number().int("must be an integer").min(0, "must be 0-65535").max(65535, "must be 0-65535");
const positiveInt = z.coerce.number().int("must be an integer").positive("must be positive");

/** OTLP transports the gateway can export traces over (OTEL_EXPORTER_OTLP_PROTOCOL). */
export const OTLP_PROTOCOLS = ["http/protobuf", "http/json", "grpc"] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

const EnvSchema = z.object({
  CEREBRAS_API_KEY: z.string().optional(),
  CEREBRAS_BASE_URL: z
    .url({ protocol: /^https?$/, error: "must be an http(s) URL" })
    .default("https://api.cerebras.ai"),
  REQUEST_TIMEOUT_S: z.coerce.number("must be a number").positive("must be positive").max(86_400, "must be at most 86400").default(300),
  GRPC_HOST: z.string().default("127.0.0.1"),
  GRPC_PORT: port.default(50051),
  HTTP_ENABLED: z.stringbool({ error: "must be true or false" }).default(true),
  HTTP_HOST: z.string().default("127.0.0.1"),
  /** Unset: 8080, or 0 (any free port) when GRPC_PORT is 0, so ephemeral gateways never take a fixed port. */
  HTTP_PORT: port.optional(),
  /** Prometheus /metrics (on the HTTP shim's port, or METRICS_PORT when the shim is off). */
  METRICS_ENABLED: z.stringbool({ error: "must be true or false" }).default(true),
  /** Unset: 9464, or 0 when GRPC_PORT is 0 (as HTTP_PORT). Only used when HTTP_ENABLED=false. */
  METRICS_PORT: port.optional(),
  DEFAULT_MODEL: z.string().min(1).default("gpt-oss-120b"),
  LOG_LEVEL: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` }).default("info"),
  NODE_ENV: z.string().optional(),
  UPSTREAM_CONNECTIONS: positiveInt.default(128),
  MAX_MESSAGES: positiveInt.default(2048),
  SHUTDOWN_GRACE_S: z.coerce.number("must be a number").min(0, "must be at least 0").default(10),
  SHUTDOWN_DELAY_S: z.coerce.number("must be a number").min(0, "must be at least 0").max(300, "must be at most 300").default(0),
  UPSTREAM_MAX_RETRIES: z.coerce.number().int("must be an integer").min(0, "must be at least 0").max(10, "must be at most 10").default(2),
  FIRST_TOKEN_TIMEOUT_S: z.coerce.number("must be a number").positive("must be positive").default(60),
  STREAM_IDLE_TIMEOUT_S: z.coerce.number("must be a number").positive("must be positive").default(30),
  MAX_IN_FLIGHT: positiveInt.default(1024),
  MAX_REQUEST_BYTES: positiveInt.default(16 * 1024 * 1024),
  MAX_CONCURRENT_STREAMS: positiveInt.default(256),
  CATALOG_TTL_S: z.coerce.number("must be a number").positive("must be positive").default(300),
  MODEL_ALIASES: z.string().default("").transform((v, ctx) => parseAliases(v, ctx)),
  ALLOW_UNLISTED_MODELS: z.stringbool({ error: "must be true or false" }).default(false),
  PRICING_OVERRIDES: z.string().default("").transform((v, ctx) => parsePricing(v, ctx)),
  GATEWAY_API_KEYS: z.string().optional(),
  GATEWAY_KEYS_FILE: z.string().optional(),
  GATEWAY_AUTH: z.enum(["keys", "none"], { error: "must be keys or none" }).optional(),
  TLS_CERT_FILE: z.string().optional(),
  TLS_KEY_FILE: z.string().optional(),
  TLS_CLIENT_CA_FILE: z.string().optional(),
  READYZ_REQUIRE_UPSTREAM: z.stringbool({ error: "must be true or false" }).default(false),
  FAKE_UPSTREAM_TOKEN_DELAY_MS: z.coerce.number("must be a number").min(0, "must be at least 0").default(15),
  // Fleet: connections that rebalance over replicas, and keepalive through L4 balancers.
  /** gRPC connections get a GOAWAY after this long (grpc-js adds ±10% jitter); 0: never. */
  GRPC_MAX_CONNECTION_AGE_S: z.coerce.number("must be a number").min(0, "must be at least 0").max(86_400, "must be at most 86400").default(300),
  /** After that GOAWAY, how long calls on the old connection may go on. Unset: REQUEST_TIMEOUT_S + 5 s. */
  GRPC_MAX_CONNECTION_AGE_GRACE_S: z.coerce.number("must be a number").min(0, "must be at least 0").max(86_400, "must be at most 86400").optional(),
  GRPC_KEEPALIVE_TIME_S: z.coerce.number("must be a number").min(1, "must be at least 1").max(7200, "must be at most 7200").default(60),
  GRPC_KEEPALIVE_TIMEOUT_S: z.coerce.number("must be a number").min(1, "must be at least 1").max(600, "must be at most 600").default(20),
  /** Idle HTTP keep-alive connections are closed after this long: longer than a balancer's own idle timeout (AWS ALB: 60 s). */
  HTTP_KEEPALIVE_TIMEOUT_S: z.coerce.number("must be a number").min(1, "must be at least 1").max(3600, "must be at most 3600").default(65),
  // Tracing (issue 19): OpenTelemetry's standard variables. These decide whether traces
  // are exported and how; the SDK itself reads the rest (OTEL_SERVICE_NAME,
  // OTEL_EXPORTER_OTLP_HEADERS, OTEL_BSP_*, OTEL_TRACES_SAMPLER…) from the environment.
  OTEL_SDK_DISABLED: z.stringbool({ error: "must be true or false" }).default(false),
  OTEL_TRACES_EXPORTER: z.enum(["otlp", "none"], { error: "must be otlp or none (the gateway exports traces over OTLP only)" }).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  OTEL_EXPORTER_OTLP_PROTOCOL: z.enum(OTLP_PROTOCOLS, { error: `must be one of ${OTLP_PROTOCOLS.join(", ")}` }).optional(),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: z.enum(OTLP_PROTOCOLS, { error: `must be one of ${OTLP_PROTOCOLS.join(", ")}` }).optional(),
  // Hardening (issue 13): /metrics lists key names and per-key cost, so it can be protected.
  /** Scrapes must send `authorization: Bearer <METRICS_KEY>`. */
  METRICS_KEY: z.string().min(16, "must be at least 16 characters").optional(),
  /** Set: /metrics is served only on its own listener, METRICS_HOST:METRICS_PORT (e.g. 127.0.0.1), not on the shim. */
  METRICS_HOST: z.string().optional(),
  /** HTTP: longest a request may take to arrive whole (headers and body); 408 after. */
  REQUEST_BODY_TIMEOUT_S: z.coerce.number("must be a number").positive("must be positive").max(3600, "must be at most 3600").default(10),
  // Contract (issue 17): OpenAI fields Cerebras cannot honour (top_k, verbosity…) are a 400; true drops them instead.
  DROP_UNSUPPORTED_FIELDS: z.stringbool({ error: "must be true or false" }).default(false),
  // Quotas and organisation limits (issue 14; caller limits themselves are in GATEWAY_KEYS_FILE).
  /** A redis:// or rediss:// URL; with REDIS_CLUSTER, one or more seed nodes' URLs, comma-separated (checked by parseRedisTarget). */
  REDIS_URL: z.string().refine((v) => v.split(",").every(isRedisUrl), REDIS_URL_RULE).optional(),
  REDIS_CLUSTER: z.stringbool({ error: "must be true or false" }).default(false),
  QUOTA_FAIL_MODE: z.enum(["open", "closed"], { error: "must be open or closed" }).default("open"),
  QUOTA_REDIS_TIMEOUT_MS: positiveInt.max(10_000, "must be at most 10000").default(250),
  QUOTA_REDIS_PREFIX: z.string().regex(/^[\w.:-]{1,64}$/, "must be 1-64 of letters, digits, _ . : -").default("aigw"),
  QUOTA_DEFAULT_COMPLETION_TOKENS: positiveInt.default(16_384),
  QUOTA_LEASE_CALLS: z.coerce.number().int("must be an integer").min(0, "must be at least 0").max(1000, "must be at most 1000").default(0),
  QUOTA_LEASE_IDLE_MS: positiveInt.max(60_000, "must be at most 60000").default(1000),
  ORG_LIMITS: z.string().optional(),
  ORG_QUEUE_MAX_WAIT_MS: z.coerce.number().int("must be an integer").min(0, "must be at least 0").max(60_000, "must be at most 60000").default(1000),
  // Upstream keys and model fallbacks (issue 15): several Cerebras keys, failover, fallback chains.
  /** `name=csk-…,name2=csk-…` (GATEWAY_API_KEYS' rule), on CEREBRAS_BASE_URL. */
  CEREBRAS_API_KEYS: z.string().optional(),
  /** JSON or YAML: per key name, api_key | api_key_env | api_key_file, base_url, weight, models. */
  CEREBRAS_KEYS_FILE: z.string().optional(),
  /** `a>b>c` chains (comma-separated) or JSON {"a": ["b", "c"]}. */
  MODEL_FALLBACKS: z.string().optional(),
  UPSTREAM_QUOTA_MAX_WAIT_MS: z.coerce.number().int("must be an integer").min(0, "must be at least 0").max(60_000, "must be at most 60000").default(1000),
  UPSTREAM_KEY_PROBE_S: z.coerce.number("must be a number").min(0.05, "must be at least 0.05").max(3600, "must be at most 3600").default(60),
  // Streams (issue 18): plain text deltas that reach the gateway together go out as one chunk
  // (opt-in: chat.proto promises one chunk per upstream chunk until the contract says otherwise).
  STREAM_MERGE_DELTAS: z.stringbool({ error: "must be true or false" }).default(false),
});

const Env = z.preprocess(
  (env) => Object.fromEntries(Object.entries(env as Record<string, unknown>).map(([k, v]) => [k, unsetIfEmpty(v)])),
  EnvSchema,
);

export type Env = z.infer<typeof EnvSchema>;

/** Every variable the gateway reads (the deploy files are checked against it). */
export const ENV_NAMES: readonly string[] = Object.keys(EnvSchema.shape);

export interface Config {
  /** undefined: no key, so the embedded fake upstream is used. */
  readonly cerebrasApiKey: string | undefined;
  readonly cerebrasBaseUrl: string;
  readonly requestTimeoutMs: number;
  readonly grpcHost: string;
  readonly grpcPort: number;
  /** The OpenAI-compatible HTTP shim (HTTP_ENABLED); off: no HTTP listener. */
  readonly httpEnabled: boolean;
  readonly httpHost: string;
  /** 0: any free port. */
  readonly httpPort: number;
  /** Prometheus metrics (METRICS_ENABLED); off: no /metrics anywhere. */
  readonly metricsEnabled: boolean;
  /** The standalone /metrics listener's port (HTTP_HOST) when the shim is off; 0: any free port. */
  readonly metricsPort: number;
  readonly defaultModel: string;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly production: boolean;
  readonly upstreamConnections: number;
  readonly maxMessages: number;
  readonly shutdownGraceMs: number;
  /** On shutdown, how long probes say "not ready" while calls are still served. */
  readonly shutdownDelayMs: number;
  readonly fakeTokenDelayMs: number;
  /** Upstream retries after the first attempt. */
  readonly upstreamMaxRetries: number;
  readonly firstTokenTimeoutMs: number;
  readonly streamIdleTimeoutMs: number;
  /** Plain text deltas of one upstream read go to the caller as one chunk (STREAM_MERGE_DELTAS). */
  readonly streamMergeDeltas: boolean;
  /** Calls in progress, server-wide, beyond which new ones get RESOURCE_EXHAUSTED. */
  readonly maxInFlight: number;
  /** HTTP/2 streams per gRPC connection. */
  readonly maxConcurrentStreams: number;
  /** Largest request accepted (gRPC message or HTTP body). */
  readonly maxRequestBytes: number;
  readonly catalogTtlMs: number;
  /** alias → model id. */
  readonly modelAliases: ReadonlyMap<string, string>;
  /** Skip the unknown-model check (dedicated endpoint ids the catalog does not list). */
  readonly allowUnlistedModels: boolean;
  /** model id → USD per token, replacing the catalog's prices. */
  readonly pricingOverrides: ReadonlyMap<string, ModelPricing>;
  /** The gateway's own API keys; undefined: callers are not authenticated. */
  readonly keys: KeyRing | undefined;
  /** TLS for both listeners; undefined: plaintext. */
  readonly tls: TlsFiles | undefined;
  /** /readyz also waits for the upstream to have answered (the model catalog loaded). */
  readonly readyzRequiresUpstream: boolean;
  /** Fleet: gRPC connection age and keepalive. */
  readonly grpcConnections: GrpcConnectionPolicy;
  /** Fleet: how long an idle HTTP keep-alive connection is kept. */
  readonly httpKeepAliveTimeoutMs: number;
  /** Export traces over OTLP (src/tracing); undefined: tracing is off and nothing of OpenTelemetry is loaded. */
  readonly tracing: TracingConfig | undefined;
  /** METRICS_KEY as a one-key ring: scrapes must present it; undefined: /metrics is public. */
  readonly metricsKey: KeyRing | undefined;
  /** METRICS_HOST: /metrics on its own listener there (not on the shim); undefined: on the shim, or HTTP_HOST when the shim is off. */
  readonly metricsHost: string | undefined;
  /** Longest a request may take to arrive whole (REQUEST_BODY_TIMEOUT_S): HTTP 408 after, gRPC DEADLINE_EXCEEDED REQUEST_BODY_TIMEOUT. */
  readonly requestBodyTimeoutMs: number;
  /** DROP_UNSUPPORTED_FIELDS: the shim drops (and logs) OpenAI fields Cerebras cannot honour instead of answering 400. */
  readonly dropUnsupportedFields: boolean;
  /** Caller quotas and organisation limits, and where their counters live. */
  readonly quotas: QuotaConfig;
  /** Upstream keys (CEREBRAS_API_KEY, CEREBRAS_API_KEYS, CEREBRAS_KEYS_FILE), fallbacks and the 429-wait policy. */
  readonly upstreams: UpstreamsConfig;
}

/** How the gRPC server treats connections so that they spread over replicas and survive L4 balancers. */
export interface GrpcConnectionPolicy {
  /** GOAWAY after this long (±10% jitter, grpc-js); undefined: never. */
  readonly maxAgeMs: number | undefined;
  /** Calls on a connection past its age may go on this long after the GOAWAY. */
  readonly maxAgeGraceMs: number;
  /** Server pings every connection this often, and drops it when a ping goes unanswered for keepaliveTimeoutMs. */
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
}

export interface TracingConfig {
  /** OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf (the spec's default). */
  readonly protocol: OtlpProtocol;
}

/** PEM contents read at start-up. */
export interface TlsFiles {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Set: clients must present a certificate signed by this CA (mTLS). */
  readonly clientCa: Buffer | undefined;
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
  const problems: string[] = [];
  const upstreams = loadUpstreams(e, env, problems);
  if (production && upstreams.keys.length === 0) {
    problems.push("CEREBRAS_API_KEY: is required when NODE_ENV=production (or CEREBRAS_API_KEYS / CEREBRAS_KEYS_FILE; without a key the gateway would answer from its fake upstream)");
  }
  const limits: KeyLimits = { defaults: undefined, perKey: new Map() };
  const keys = loadKeys(e, production, problems, limits, upstreams);
  const tls = loadTls(e, problems);
  const quotas = loadQuotas(e, limits, problems);
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  return {
    keys,
    tls,
    metricsKey: e.METRICS_KEY === undefined ? undefined : new KeyRing([{ name: "metrics", sha256: sha256(e.METRICS_KEY) }]),
    metricsHost: e.METRICS_HOST,
    requestBodyTimeoutMs: e.REQUEST_BODY_TIMEOUT_S * 1000,
    dropUnsupportedFields: e.DROP_UNSUPPORTED_FIELDS,
    quotas,
    upstreams,
    readyzRequiresUpstream: e.READYZ_REQUIRE_UPSTREAM,
    cerebrasApiKey: e.CEREBRAS_API_KEY,
    cerebrasBaseUrl: e.CEREBRAS_BASE_URL,
    requestTimeoutMs: e.REQUEST_TIMEOUT_S * 1000,
    grpcHost: e.GRPC_HOST,
    grpcPort: e.GRPC_PORT,
    httpEnabled: e.HTTP_ENABLED,
    httpHost: e.HTTP_HOST,
    httpPort: e.HTTP_PORT ?? (e.GRPC_PORT === 0 ? 0 : 8080),
    metricsEnabled: e.METRICS_ENABLED,
    metricsPort: e.METRICS_PORT ?? (e.GRPC_PORT === 0 ? 0 : 9464),
    defaultModel: e.DEFAULT_MODEL,
    logLevel: e.LOG_LEVEL,
    production,
    upstreamConnections: e.UPSTREAM_CONNECTIONS,
    maxMessages: e.MAX_MESSAGES,
    shutdownGraceMs: e.SHUTDOWN_GRACE_S * 1000,
    shutdownDelayMs: e.SHUTDOWN_DELAY_S * 1000,
    fakeTokenDelayMs: e.FAKE_UPSTREAM_TOKEN_DELAY_MS,
    upstreamMaxRetries: e.UPSTREAM_MAX_RETRIES,
    firstTokenTimeoutMs: e.FIRST_TOKEN_TIMEOUT_S * 1000,
    streamIdleTimeoutMs: e.STREAM_IDLE_TIMEOUT_S * 1000,
    streamMergeDeltas: e.STREAM_MERGE_DELTAS,
    maxInFlight: e.MAX_IN_FLIGHT,
    maxConcurrentStreams: e.MAX_CONCURRENT_STREAMS,
    maxRequestBytes: e.MAX_REQUEST_BYTES,
    catalogTtlMs: e.CATALOG_TTL_S * 1000,
    modelAliases: e.MODEL_ALIASES,
    allowUnlistedModels: e.ALLOW_UNLISTED_MODELS,
    pricingOverrides: e.PRICING_OVERRIDES,
    grpcConnections: {
      maxAgeMs: e.GRPC_MAX_CONNECTION_AGE_S === 0 ? undefined : e.GRPC_MAX_CONNECTION_AGE_S * 1000,
      // No call outlives REQUEST_TIMEOUT_S, so by default none is cut by its connection's age.
      maxAgeGraceMs: (e.GRPC_MAX_CONNECTION_AGE_GRACE_S ?? e.REQUEST_TIMEOUT_S + 5) * 1000,
      keepaliveTimeMs: e.GRPC_KEEPALIVE_TIME_S * 1000,
      keepaliveTimeoutMs: e.GRPC_KEEPALIVE_TIMEOUT_S * 1000,
    },
    httpKeepAliveTimeoutMs: e.HTTP_KEEPALIVE_TIMEOUT_S * 1000,
    tracing: tracingFrom(e),
  };
}

/**
 * Tracing is on when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER=otlp asks for the default
 * one; OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true turn it off whatever else is
 * set. OTEL_SERVICE_NAME alone does not turn it on: it names the service, it says nowhere
 * to send spans.
 */
function tracingFrom(e: Env): TracingConfig | undefined {
  if (e.OTEL_SDK_DISABLED || e.OTEL_TRACES_EXPORTER === "none") return undefined;
  const wanted = e.OTEL_TRACES_EXPORTER === "otlp" || e.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined || e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined;
  if (!wanted) return undefined;
  return { protocol: e.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? e.OTEL_EXPORTER_OTLP_PROTOCOL ?? "http/protobuf" };
}

/**
 * Caller authentication: keys from GATEWAY_API_KEYS and GATEWAY_KEYS_FILE. None: open
 * outside production; in production only with an explicit GATEWAY_AUTH=none.
 */
function loadKeys(e: Env, production: boolean, problems: string[], limits: KeyLimits, upstreams: UpstreamsConfig): KeyRing | undefined {
  const entries: KeyEntry[] = [];
  const add = (what: string, r: { entries: KeyEntry[]; problems: string[] }): void => {
    entries.push(...r.entries);
    problems.push(...r.problems.map((p) => `${what}: ${p}`));
  };
  if (e.GATEWAY_API_KEYS !== undefined) add("GATEWAY_API_KEYS", keysFromList(e.GATEWAY_API_KEYS));
  if (e.GATEWAY_KEYS_FILE !== undefined) {
    const file = keysFromFile(e.GATEWAY_KEYS_FILE);
    add("GATEWAY_KEYS_FILE", file);
    limits.defaults = file.defaults;
  }
  collectLimits(entries, limits, problems);
  const ring = new KeyRing(entries);
  if (e.GATEWAY_AUTH === "none") {
    if (entries.length > 0) problems.push("GATEWAY_AUTH: is none, but gateway keys are configured; remove one or the other");
    return undefined;
  }
  if (entries.length === 0) {
    if (e.GATEWAY_AUTH === "keys" || production) {
      problems.push("GATEWAY_API_KEYS or GATEWAY_KEYS_FILE: at least one key is required" + (production ? " when NODE_ENV=production (or set GATEWAY_AUTH=none to run without caller authentication)" : " with GATEWAY_AUTH=keys"));
    }
    return undefined;
  }
  for (const k of upstreams.keys) {
    if (!ring.contains(k.apiKey)) continue;
    problems.push(
      k.name === "default" && e.CEREBRAS_API_KEY !== undefined
        ? "GATEWAY_API_KEYS: must not contain the upstream CEREBRAS_API_KEY (callers never get the upstream key)"
        : `GATEWAY_API_KEYS / GATEWAY_KEYS_FILE: must not contain the upstream key "${k.name}" (callers never get an upstream key)`,
    );
  }
  return ring;
}

/** Upstream keys and fallbacks (issue 15). `env` is the raw environment: api_key_env names are looked up in it. */
function loadUpstreams(e: Env, env: Record<string, string | undefined>, problems: string[]): UpstreamsConfig {
  const keys = upstreamKeysFrom(e, env);
  problems.push(...keys.problems);
  const fallbacks = parseFallbacks(e.MODEL_FALLBACKS);
  problems.push(...fallbacks.problems.map((p) => `MODEL_FALLBACKS: ${p}`));
  return {
    keys: keys.keys,
    fallbacks: fallbacks.table,
    quotaMaxWaitMs: e.UPSTREAM_QUOTA_MAX_WAIT_MS,
    probeIntervalMs: e.UPSTREAM_KEY_PROBE_S * 1000,
  };
}

/** Caller limits from the keys file, by key name (quotas). */
interface KeyLimits {
  defaults: CallerLimitsInput | undefined;
  readonly perKey: Map<string, CallerLimitsInput>;
}

/** Limits and metrics go by key name, so a name used twice would be two keys sharing one quota. */
function collectLimits(entries: readonly KeyEntry[], limits: KeyLimits, problems: string[]): void {
  const seen = new Set<string>();
  for (const entry of entries) {
    if (seen.has(entry.name)) problems.push(`GATEWAY_API_KEYS / GATEWAY_KEYS_FILE: the key name "${entry.name}" is used twice (names must be unique: limits and metrics are per name)`);
    seen.add(entry.name);
    if (entry.limits !== undefined) limits.perKey.set(entry.name, entry.limits);
  }
}

/** Quotas (issue 14): caller limits from the keys file, ORG_LIMITS, and where the counters live. */
function loadQuotas(e: Env, limits: KeyLimits, problems: string[]): QuotaConfig {
  const org = parseOrgLimits(e.ORG_LIMITS);
  problems.push(...org.problems.map((p) => `ORG_LIMITS: ${p}`));
  let redis: RedisTarget | undefined;
  if (e.REDIS_URL !== undefined) {
    const parsed = parseRedisTarget(e.REDIS_URL, e.REDIS_CLUSTER);
    if ("problem" in parsed) problems.push(parsed.problem);
    else redis = parsed.target;
  } else if (e.REDIS_CLUSTER) {
    problems.push("REDIS_CLUSTER: is true, but REDIS_URL (the cluster's seed nodes) is not set");
  }
  return {
    callers: new CallerLimitTable(limits.defaults, limits.perKey),
    org: org.config,
    redis,
    failMode: e.QUOTA_FAIL_MODE,
    redisTimeoutMs: e.QUOTA_REDIS_TIMEOUT_MS,
    redisPrefix: e.QUOTA_REDIS_PREFIX,
    defaultCompletionTokens: e.QUOTA_DEFAULT_COMPLETION_TOKENS,
    leaseCalls: e.QUOTA_LEASE_CALLS,
    leaseIdleMs: e.QUOTA_LEASE_IDLE_MS,
    orgQueueMaxWaitMs: e.ORG_QUEUE_MAX_WAIT_MS,
  };
}

function loadTls(e: Env, problems: string[]): TlsFiles | undefined {
  const { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, TLS_CLIENT_CA_FILE: caFile } = e;
  if (certFile === undefined && keyFile === undefined) {
    if (caFile !== undefined) problems.push("TLS_CLIENT_CA_FILE: needs TLS_CERT_FILE and TLS_KEY_FILE");
    return undefined;
  }
  if (certFile === undefined || keyFile === undefined) {
    problems.push(`${certFile === undefined ? "TLS_CERT_FILE" : "TLS_KEY_FILE"}: is required with ${certFile === undefined ? "TLS_KEY_FILE" : "TLS_CERT_FILE"}`);
    return undefined;
  }
  const read = (name: string, path: string): Buffer | undefined => {
    try {
      return readFileSync(path);
    } catch (err) {
      problems.push(`${name}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
      return undefined;
    }
  };
  const cert = read("TLS_CERT_FILE", certFile);
  const key = read("TLS_KEY_FILE", keyFile);
  const clientCa = caFile === undefined ? undefined : read("TLS_CLIENT_CA_FILE", caFile);
  if (cert === undefined || key === undefined || (caFile !== undefined && clientCa === undefined)) return undefined;
  return { cert, key, clientCa };
}

/** "fast=gpt-oss-120b, vision=gemma-4-31b" → alias → model id. */
function parseAliases(value: string, ctx: z.RefinementCtx): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of value.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [alias, id, extra] = pair.split("=").map((p) => p.trim());
    if (!alias || !id || extra !== undefined) ctx.addIssue({ code: "custom", message: `"${pair}" is not alias=model` });
    else out.set(alias, id);
  }
  return out;
}

const PerMillion = z.object({ prompt: z.number().nonnegative(), completion: z.number().nonnegative(), cached_prompt: z.number().nonnegative().optional() }).strict();

/**
 * JSON, USD per million tokens (as price lists are written):
 * {"gpt-oss-120b": {"prompt": 0.25, "completion": 0.69, "cached_prompt": 0.1}}
 */
function parsePricing(value: string, ctx: z.RefinementCtx): Map<string, ModelPricing> {
  const out = new Map<string, ModelPricing>();
  if (value.trim() === "") return out;
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    ctx.addIssue({ code: "custom", message: "must be JSON: {\"model\": {\"prompt\": 0.25, \"completion\": 0.69}} (USD per million tokens)" });
    return out;
  }
  const parsed = z.record(z.string(), PerMillion).safeParse(json);
  if (!parsed.success) {
    for (const i of parsed.error.issues) ctx.addIssue({ code: "custom", message: `${i.path.join(".")}: ${i.message}` });
    return out;
  }
  for (const [id, p] of Object.entries(parsed.data)) {
    const pricing: ModelPricing = { prompt: p.prompt / 1e6, completion: p.completion / 1e6 };
    if (p.cached_prompt !== undefined) pricing.cachedPrompt = p.cached_prompt / 1e6;
    out.set(id, pricing);
  }
  return out;
}

/** Only the variables the gateway reads, so unrelated environment never shows in errors. */
function pick(env: Record<string, string | undefined>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const key of Object.keys(EnvSchema.shape)) out[key] = env[key];
  return out;
}
