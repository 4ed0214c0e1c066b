/**
 * Composition: config → provider → core → servers. main.ts runs it as a process;
 * tests and benchmarks run it in-process, so they exercise the same wiring.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { createAdmission } from "./admission/create-admission.js";
import type { Config } from "./config.js";
import type { Admission } from "./core/admission.js";
import { ModelCatalog } from "./core/catalog.js";
import { CallReporter } from "./core/call-log.js";
import { ChatService } from "./core/chat-service.js";
import { GatewayError } from "./core/errors.js";
import { InFlightLimit } from "./core/in-flight.js";
import { asListenError } from "./listen-error.js";
import { startFakeUpstream, type FakeUpstream } from "./fake-upstream/server.js";
import { startGrpcServer, type GrpcServer } from "./grpc/server.js";
import type { Readiness } from "./http/routes.js";
import { startHttpServer, type HttpServer } from "./http/server.js";
import { redactUrl, type Logger } from "./log.js";
import { GatewayMetrics } from "./metrics/gateway-metrics.js";
import { startMetricsServer, type MetricsServer } from "./metrics/server.js";
import { CerebrasProvider } from "./providers/cerebras/provider.js";
import { DEFAULT_RETRY_POLICY } from "./core/failover.js";
import { MetricsDashboard } from "./dashboard/source.js";
import type { Tracer } from "./core/tracing.js";
import { DEFAULT_KEY_NAME, type UpstreamKey } from "./upstreams/config.js";
import type { KeyStateStore } from "./upstreams/key-state.js";
import { MemoryKeyStateStore } from "./upstreams/memory-key-state.js";
import { KeyPool } from "./upstreams/pool.js";
import { RedisKeyStateStore } from "./upstreams/redis-key-state.js";

export interface Gateway {
  readonly grpcPort: number;
  /** The OpenAI-compatible HTTP shim's port; undefined when HTTP_ENABLED=false. */
  readonly httpPort: number | undefined;
  /** Where GET /metrics is served: the HTTP shim's port, else METRICS_PORT's listener; undefined when METRICS_ENABLED=false. */
  readonly metricsPort: number | undefined;
  /** Set when no CEREBRAS_API_KEY was configured and the embedded fake answers. */
  readonly fakeUpstream: FakeUpstream | undefined;
  /** Settles when the first model-catalog load has (it may have failed: see ListModels). */
  readonly catalogSettled: Promise<void>;
  /** Caller quotas and organisation limits (idle(): every settlement so far has reached the store). */
  readonly admission: Admission;
  /** The upstream keys: their standing, cooldowns and headroom (tests; metrics read it too). */
  readonly upstreams: KeyPool;
  /** Graceful stop: refuse new calls, give in-flight ones `graceMs`, then cancel them. */
  close(graceMs?: number): Promise<void>;
}

/** The key the gateway and its embedded fake share; it never leaves the process. */
const FAKE_KEY = "fake-upstream-key";

export async function startGateway(config: Config, logger: Logger): Promise<Gateway> {
  // What has started, newest last: undone in reverse if a later step fails (e.g. EADDRINUSE).
  const undo: Array<() => unknown> = [];
  const unwind = async (): Promise<void> => {
    for (const step of undo.reverse()) await step();
  };
  try {
    return await assemble(config, logger, undo);
  } catch (err) {
    await unwind();
    throw err;
  }
}

async function assemble(config: Config, logger: Logger, undo: Array<() => unknown>): Promise<Gateway> {
  let fakeUpstream: FakeUpstream | undefined;
  let keys: readonly UpstreamKey[] = config.upstreams.keys;
  if (keys.length === 0) {
    const fake = await startFakeUpstream({ apiKey: FAKE_KEY, tokenDelayMs: config.fakeTokenDelayMs });
    undo.push(() => fake.close());
    fakeUpstream = fake;
    keys = [{ name: DEFAULT_KEY_NAME, apiKey: FAKE_KEY, baseUrl: fake.url, weight: 1, models: undefined }];
    logger.warn(
      { fakeUpstream: fake.url },
      "fake-upstream mode: CEREBRAS_API_KEY is not set, so answers come from the embedded deterministic fake Cerebras, not the real API",
    );
  }

  const metrics = config.metricsEnabled ? new GatewayMetrics(logger) : undefined;
  // Tracing: the OpenTelemetry SDK is imported only when configured (nothing loaded, nothing spent otherwise).
  let tracer: Tracer | undefined;
  if (config.tracing !== undefined) {
    const { createOtelTracer } = await import("./tracing/otel.js");
    const started = await createOtelTracer({ protocol: config.tracing.protocol, logger });
    undo.push(() => started.shutdown());
    tracer = started;
  }
  const provider = new CerebrasProvider({
    keys: keys.map((k) => ({ name: k.name, apiKey: k.apiKey, baseUrl: k.baseUrl })),
    connections: config.upstreamConnections,
    firstTokenTimeoutMs: config.firstTokenTimeoutMs,
    streamIdleTimeoutMs: config.streamIdleTimeoutMs,
    mergeDeltas: config.streamMergeDeltas,
  });
  undo.push(() => provider.close());
  // The upstream keys' standing (cooldowns, revocations, backoff): shared through Redis when the limits are.
  let keyStore: KeyStateStore;
  if (config.quotas.redis !== undefined) {
    const redis = new RedisKeyStateStore({ target: config.quotas.redis, prefix: config.quotas.redisPrefix, commandTimeoutMs: config.quotas.redisTimeoutMs, logger });
    await redis.ready(2000);
    keyStore = redis;
  } else {
    keyStore = new MemoryKeyStateStore();
  }
  // Fallback chains name models as callers do: aliases resolve as for requests.
  const resolve = (id: string): string => config.modelAliases.get(id) ?? id;
  const fallbacks = new Map([...config.upstreams.fallbacks].map(([m, chain]) => [resolve(m), chain.map(resolve)] as const));
  let pool: KeyPool | undefined;
  const upstreams = new KeyPool({
    keys,
    fallbacks,
    store: keyStore,
    logger,
    observer: metrics?.upstreamObserver(() => pool?.report() ?? []),
    defaultCompletionTokens: config.quotas.defaultCompletionTokens,
    probe: (key, ctx) => provider.probe(key, ctx),
    probeIntervalMs: config.upstreams.probeIntervalMs,
  });
  pool = upstreams;
  undo.push(() => upstreams.close());
  const catalog = new ModelCatalog((ctx) => provider.listModels(ctx), {
    ttlMs: config.catalogTtlMs,
    aliases: config.modelAliases,
    pricingOverrides: config.pricingOverrides,
    onRefreshError: (err) => logger.warn({ err: GatewayError.from(err).message }, "model catalog refresh failed; serving the last good catalog"),
  });
  const catalogSettled = catalog.start();
  undo.push(() => catalog.stop());
  const { admission, store: limitStore } = await createAdmission({
    config: config.quotas,
    pricing: (id) => catalog.pricing(id),
    logger,
    observer: metrics?.admissionObserver(),
  });
  undo.push(() => admission.close());
  // Metrics count streams in progress around the provider (once per stream, never per chunk).
  const chat = new ChatService(
    metrics?.countStreams(provider) ?? provider,
    catalog,
    {
      defaultModel: config.defaultModel,
      maxMessages: config.maxMessages,
      allowUnlistedModels: config.allowUnlistedModels,
      retry: { ...DEFAULT_RETRY_POLICY, maxRetries: config.upstreamMaxRetries, quotaMaxWaitMs: config.upstreams.quotaMaxWaitMs },
      onRetry: (e) => {
        metrics?.upstreamRetried(e.error.reason);
        logger.warn(
          {
            requestId: e.requestId,
            attempt: e.attempt,
            delayMs: e.delayMs,
            reason: e.error.reason,
            error: e.error.message,
            upstreamKey: e.upstreamKey,
            model: e.model,
            ...(e.next === undefined ? {} : { nextUpstreamKey: e.next.key, nextModel: e.next.model }),
          },
          "retrying upstream",
        );
      },
    },
    admission,
    upstreams,
  );
  const limit = new InFlightLimit(config.maxInFlight);
  const reporter = new CallReporter(logger);
  metrics?.observe(reporter, { inFlight: () => limit.inFlight, listed: (id) => catalog.get(id) !== undefined });

  let closing: Promise<void> | undefined;
  const grpc: GrpcServer = await startGrpcServer(chat, {
    host: config.grpcHost,
    port: config.grpcPort,
    reporter,
    ceilingMs: config.requestTimeoutMs,
    limit,
    maxRequestBytes: config.maxRequestBytes,
    requestBodyTimeoutMs: config.requestBodyTimeoutMs,
    maxConcurrentStreams: config.maxConcurrentStreams,
    keys: config.keys,
    tls: config.tls,
    connections: config.grpcConnections,
    tracer,
  }).catch(asListenError("GRPC_PORT", config.grpcHost, config.grpcPort));
  undo.push(() => grpc.shutdown(0));

  let http: HttpServer | undefined;
  if (config.httpEnabled) {
    http = await startHttpServer(chat, {
      host: config.httpHost,
      port: config.httpPort,
      logger,
      reporter,
      ceilingMs: config.requestTimeoutMs,
      maxRequestBytes: config.maxRequestBytes,
      bodyTimeoutMs: config.requestBodyTimeoutMs,
      limit,
      // METRICS_HOST: /metrics has its own listener, and the shim does not serve it.
      metrics: config.metricsHost === undefined ? metrics : undefined,
      metricsKey: config.metricsKey,
      dashboard: metrics === undefined ? undefined : new MetricsDashboard(metrics.registry, () => ({ ...catalog.snapshot(), loaded: catalog.loaded })),
      tracer,
      keys: config.keys,
      tls: config.tls,
      keepAliveTimeoutMs: config.httpKeepAliveTimeoutMs,
      dropUnsupportedFields: config.dropUnsupportedFields,
      readiness: (): Readiness =>
        closing !== undefined
          ? { ready: false, reason: "shutting down" }
          : config.readyzRequiresUpstream && !catalog.loaded
            ? { ready: false, reason: "the upstream has not answered yet (model catalog not loaded)" }
            : { ready: true },
    }).catch(asListenError("HTTP_PORT", config.httpHost, config.httpPort));
    const started = http;
    undo.push(() => started.close(0));
  }
  // With the shim off (or METRICS_HOST set), /metrics gets its own small listener (METRICS_PORT).
  let metricsServer: MetricsServer | undefined;
  const metricsHost = config.metricsHost ?? config.httpHost;
  if (metrics !== undefined && (http === undefined || config.metricsHost !== undefined)) {
    metricsServer = await startMetricsServer(metrics, { host: metricsHost, port: config.metricsPort, logger, key: config.metricsKey }).catch(
      asListenError("METRICS_PORT", metricsHost, config.metricsPort),
    );
  }

  const metricsPort = metrics === undefined ? undefined : (metricsServer?.port ?? http?.port);
  if (config.keys === undefined) {
    logger.warn(
      config.production ? "caller authentication is off (GATEWAY_AUTH=none)" : "caller authentication is off: set GATEWAY_API_KEYS or GATEWAY_KEYS_FILE (required in production)",
    );
  }
  logger.info(
    {
      grpc: `${config.grpcHost}:${grpc.port}`,
      http: http === undefined ? "off" : `${config.httpHost}:${http.port}`,
      metrics: metricsPort === undefined ? "off" : `${metricsServer ? metricsHost : config.httpHost}:${metricsPort}/metrics`,
      auth: config.keys ? `${config.keys.size} keys` : "off",
      tls: config.tls ? (config.tls.clientCa ? "mTLS" : "TLS") : "off",
      tracing: config.tracing === undefined ? "off" : `OTLP ${config.tracing.protocol}`,
      limits: limitStore,
      upstream: fakeUpstream ? "fake" : redactUrl(keys[0]!.baseUrl),
      upstreamKeys: keys.map((k) => k.name),
      ...(fallbacks.size > 0 ? { fallbacks: Object.fromEntries(fallbacks) } : {}),
      defaultModel: config.defaultModel,
    },
    "listening",
  );

  return {
    grpcPort: grpc.port,
    httpPort: http?.port,
    metricsPort,
    fakeUpstream,
    catalogSettled,
    admission,
    upstreams,
    close: (graceMs = config.shutdownGraceMs) => {
      closing ??= (async () => {
        // First tell probes (gRPC health, /readyz) while still serving, so load balancers
        // stop sending before the listeners close.
        grpc.notServing();
        if (config.shutdownDelayMs > 0) await sleep(config.shutdownDelayMs);
        await Promise.all([grpc.shutdown(graceMs), http?.close(graceMs)]);
        await metricsServer?.close(); // last, so the drain can be scraped
        catalog.stop();
        await admission.close(); // after the calls: their settlements reach the store first
        await upstreams.close();
        await provider.close();
        await fakeUpstream?.close();
        await tracer?.shutdown(); // last: exports the spans of the calls that just ended
      })();
      return closing;
    },
  };
}
