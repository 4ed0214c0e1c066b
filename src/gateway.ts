/**
 * Composition: config → provider → core → servers. main.ts runs it as a process;
 * tests and benchmarks run it in-process, so they exercise the same wiring.
 */
import type { Config } from "./config.js";
import { ModelCatalog } from "./core/catalog.js";
import { ChatService } from "./core/chat-service.js";
import { GatewayError } from "./core/errors.js";
import { InFlightLimit } from "./core/in-flight.js";
import { startFakeUpstream, type FakeUpstream } from "./fake-upstream/server.js";
import { startGrpcServer } from "./grpc/server.js";
import { startHttpServer, type HttpServer } from "./http/server.js";
import type { Logger } from "./log.js";
import { CerebrasProvider } from "./providers/cerebras/provider.js";
import { DEFAULT_RETRY_POLICY } from "./providers/cerebras/retry.js";

export interface Gateway {
  readonly grpcPort: number;
  /** The OpenAI-compatible HTTP shim's port; undefined when HTTP_ENABLED=false. */
  readonly httpPort: number | undefined;
  /** Set when no CEREBRAS_API_KEY was configured and the embedded fake answers. */
  readonly fakeUpstream: FakeUpstream | undefined;
  /** Settles when the first model-catalog load has (it may have failed: see ListModels). */
  readonly catalogSettled: Promise<void>;
  /** Graceful stop: refuse new calls, give in-flight ones `graceMs`, then cancel them. */
  close(graceMs?: number): Promise<void>;
}

/** The key the gateway and its embedded fake share; it never leaves the process. */
const FAKE_KEY = "fake-upstream-key";

export async function startGateway(config: Config, logger: Logger): Promise<Gateway> {
  let fakeUpstream: FakeUpstream | undefined;
  let baseUrl = config.cerebrasBaseUrl;
  let apiKey = config.cerebrasApiKey;
  if (apiKey === undefined) {
    fakeUpstream = await startFakeUpstream({ apiKey: FAKE_KEY, tokenDelayMs: config.fakeTokenDelayMs });
    baseUrl = fakeUpstream.url;
    apiKey = FAKE_KEY;
    logger.warn(
      { fakeUpstream: fakeUpstream.url },
      "fake-upstream mode: CEREBRAS_API_KEY is not set, so answers come from the embedded deterministic fake Cerebras, not the real API",
    );
  }

  const provider = new CerebrasProvider({
    baseUrl,
    apiKey,
    connections: config.upstreamConnections,
    retry: { ...DEFAULT_RETRY_POLICY, maxRetries: config.upstreamMaxRetries },
    firstTokenTimeoutMs: config.firstTokenTimeoutMs,
    streamIdleTimeoutMs: config.streamIdleTimeoutMs,
    onRetry: (e) =>
      logger.warn({ requestId: e.requestId, attempt: e.attempt, delayMs: e.delayMs, reason: e.error.reason, error: e.error.message }, "retrying upstream"),
  });
  const catalog = new ModelCatalog((ctx) => provider.listModels(ctx), {
    ttlMs: config.catalogTtlMs,
    aliases: config.modelAliases,
    pricingOverrides: config.pricingOverrides,
    onRefreshError: (err) => logger.warn({ err: GatewayError.from(err).message }, "model catalog refresh failed; serving the last good catalog"),
  });
  const catalogSettled = catalog.start();
  const chat = new ChatService(provider, catalog, {
    defaultModel: config.defaultModel,
    maxMessages: config.maxMessages,
    allowUnlistedModels: config.allowUnlistedModels,
  });
  const limit = new InFlightLimit(config.maxInFlight);
  const grpc = await startGrpcServer(chat, {
    host: config.grpcHost,
    port: config.grpcPort,
    logger,
    ceilingMs: config.requestTimeoutMs,
    limit,
    maxRequestBytes: config.maxRequestBytes,
    maxConcurrentStreams: config.maxConcurrentStreams,
  });
  let http: HttpServer | undefined;
  if (config.httpEnabled) {
    const httpOptions = { host: config.httpHost, port: config.httpPort, logger, ceilingMs: config.requestTimeoutMs, maxRequestBytes: config.maxRequestBytes, limit };
    try {
      http = await startHttpServer(chat, httpOptions);
    } catch (err) {
      // e.g. EADDRINUSE: do not leave the gRPC server and the upstream pool running.
      await grpc.shutdown(0);
      catalog.stop();
      await provider.close();
      await fakeUpstream?.close();
      throw err;
    }
  }
  const httpAddress = http === undefined ? "off" : `${config.httpHost}:${http.port}`;
  logger.info({ grpc: `${config.grpcHost}:${grpc.port}`, http: httpAddress, upstream: fakeUpstream ? "fake" : baseUrl, defaultModel: config.defaultModel }, "listening");

  let closing: Promise<void> | undefined;
  return {
    grpcPort: grpc.port,
    httpPort: http?.port,
    fakeUpstream,
    catalogSettled,
    close: (graceMs = config.shutdownGraceMs) => {
      closing ??= (async () => {
        await Promise.all([grpc.shutdown(graceMs), http?.close(graceMs)]);
        catalog.stop();
        await provider.close();
        await fakeUpstream?.close();
      })();
      return closing;
    },
  };
}
