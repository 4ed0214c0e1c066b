/**
 * The OpenAI-compatible HTTP/JSON shim: node:http, no framework. It calls the same core
 * (ChatService) as the gRPC server, with the same generated message types, and never the
 * gRPC server itself.
 *
 * Per call (the counterpart of grpc/handlers.ts): the request id (x-request-id, echoed),
 * a CallScope whose abort fires when the client closes the connection or the
 * REQUEST_TIMEOUT_S budget runs out, a slot of the in-flight limit both transports
 * share, error rendering, and one log line.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { KeyRing } from "../auth/key-ring.js";
import type { TlsFiles } from "../config.js";
import type { CallReporter } from "../core/call-log.js";
import { CallScope } from "../core/call-scope.js";
import type { ChatService } from "../core/chat-service.js";
import { GatewayError } from "../core/errors.js";
import type { InFlightLimit } from "../core/in-flight.js";
import { LiveCalls } from "../core/live-calls.js";
import { requestIdFrom } from "../core/request-id.js";
import { headerValue, PASS_THROUGH, type Tracer } from "../core/tracing.js";
import { FALLBACKS_HEADER, fallbacksAllowed } from "../core/upstreams.js";
import type { Logger } from "../log.js";
import type { MetricsSource } from "../metrics/exposition.js";
import { readJsonBody } from "./body.js";
import { reportHttpCall, type HttpCall } from "./call.js";
import { listen } from "./listen.js";
import { failureFrom, HttpError, type HttpFailure } from "./errors.js";
import { envelopeStyleFor, sendFailure, setCallHeaders } from "./respond.js";
import type { DashboardSource } from "../dashboard/source.js";
import { matchRoute, type Readiness, type RouteDeps } from "./routes.js";

export interface HttpServerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly logger: Logger;
  /** Each call's log line and metrics. */
  readonly reporter: CallReporter;
  /** REQUEST_TIMEOUT_S in ms: no call outlives it. */
  readonly ceilingMs: number;
  /** Largest request body accepted (MAX_REQUEST_BYTES); 413 beyond. */
  readonly maxRequestBytes: number;
  /** Longest a request may take to arrive whole, headers and body (REQUEST_BODY_TIMEOUT_S); 408 after. */
  readonly bodyTimeoutMs: number;
  /** Server-wide cap on calls in progress, shared with the gRPC server. */
  readonly limit: InFlightLimit;
  /** Gateway keys callers must present; undefined: no caller authentication. */
  readonly keys: KeyRing | undefined;
  /** Serve HTTPS (and require client certificates when a client CA is set). */
  readonly tls: TlsFiles | undefined;
  /** What /readyz answers. */
  readonly readiness: () => Readiness;
  /** Served at GET /metrics; undefined: metrics are off (or on their own listener). */
  readonly metrics?: MetricsSource | undefined;
  /** Idle keep-alive connections are closed after this long (HTTP_KEEPALIVE_TIMEOUT_S). */
  readonly keepAliveTimeoutMs?: number;
  /** What GET /dashboard shows; undefined: metrics are off, so there is no dashboard. */
  readonly dashboard?: DashboardSource | undefined;
  /** Starts each call's span; undefined: PASS_THROUGH (no span; the caller's trace context is forwarded upstream). */
  readonly tracer?: Tracer | undefined;
  /** METRICS_KEY: scrapes must present it; undefined: /metrics is public. */
  readonly metricsKey?: KeyRing | undefined;
  /** DROP_UNSUPPORTED_FIELDS: drop OpenAI fields Cerebras cannot honour instead of answering 400. */
  readonly dropUnsupportedFields?: boolean;
}

export interface HttpServer {
  readonly port: number;
  /**
   * Refuse new calls (503 GATEWAY_SHUTTING_DOWN), give in-flight ones `graceMs`; those
   * still running then end with the same error (a JSON 503, or a stream's last SSE event),
   * and FLUSH_MS later every connection left is closed.
   */
  close(graceMs: number): Promise<void>;
}

/** After the grace, how long the calls ended in-band get for their last bytes to leave before connections are closed. */
const FLUSH_MS = 1000;

export async function startHttpServer(chat: ChatService, options: HttpServerOptions): Promise<HttpServer> {
  const deps: RouteDeps = { chat, readiness: options.readiness, metrics: options.metrics, metricsKey: options.metricsKey, dashboard: options.dashboard, authRequired: options.keys !== undefined, dropUnsupportedFields: options.dropUnsupportedFields === true };
  const tracer = options.tracer ?? PASS_THROUGH;
  let closing = false;
  const calls = new LiveCalls();

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      // handle() renders and logs its own failures; reaching here is a bug.
      options.logger.error({ err, transport: "http" }, "unhandled error in the HTTP shim");
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  };
  const tls = options.tls;
  const timeouts = serverTimeouts(options.bodyTimeoutMs);
  const server =
    tls === undefined
      ? createServer({ noDelay: true, ...timeouts }, onRequest)
      : createHttpsServer(
          { noDelay: true, ...timeouts, cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) },
          onRequest,
        );

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = requestIdFrom(req.headers["x-request-id"]);
    res.setHeader("x-request-id", requestId);
    const httpMethod = req.method ?? "";
    const path = (req.url ?? "/").split("?")[0]!;
    // Status 499 (nginx's "client closed request") when nothing could be sent.
    const log = (method: string | undefined, call: HttpCall | undefined, failure: HttpFailure | undefined, routine = false): void => {
      const status = failure?.status ?? (res.headersSent ? res.statusCode : 499);
      reportHttpCall(options.reporter, { method, httpMethod, path, requestId, ignored: call?.ignored ?? [], stats: call?.scope.stats ?? {}, trace: call?.scope.trace }, status, started, failure, routine);
    };
    // While shutting down, a kept-alive connection is closed as soon as its call is over.
    res.once("close", () => {
      if (closing) server.closeIdleConnections();
    });

    const match = matchRoute(httpMethod, path);
    if (closing || match.kind !== "route") {
      const error = closing
        ? GatewayError.shuttingDown()
        : match.kind === "wrong-method"
          ? HttpError.methodNotAllowed(httpMethod, path, match.allowed)
          : HttpError.routeNotFound(httpMethod, path);
      const failure = failureFrom(error);
      req.resume(); // the body is not wanted: read and drop it
      sendFailure(res, failure, envelopeStyleFor(path));
      log(undefined, undefined, failure);
      return;
    }

    const { route, params } = match;
    const scope = new CallScope(Infinity, options.ceilingMs, requestId);
    calls.add(scope);
    // 'close' before the response finished: the client went away. Abort the upstream now.
    res.once("close", () => (res.writableFinished ? scope.dispose() : scope.cancel()));
    const call: HttpCall = { req, res, scope, params, method: route.name, ignored: [], body: undefined, bodyText: undefined };
    // Monitoring routes (the dashboard) need a key as calls do, but are not calls: no slot, no span, logged as probes are.
    const limited = route.public !== true && route.monitoring !== true;
    const routine = route.public === true || route.monitoring === true;
    if (limited) {
      const traceparent = headerValue(req.headers["traceparent"]);
      const tracestate = traceparent === undefined ? undefined : headerValue(req.headers["tracestate"]);
      scope.trace = tracer.startCall({ transport: "http", method: route.name, requestId, traceparent, tracestate });
    }
    let acquired = false;
    try {
      // Public routes (probes, metrics) need no key; the rest need one when keys are configured.
      // Checked first: an unauthenticated body is never read.
      if (route.public !== true && options.keys !== undefined) scope.stats.keyName = options.keys.authenticate(req.headers.authorization);
      // The caller may refuse model fallbacks for this call (x-aigw-fallbacks: off).
      const fallbacks = req.headers[FALLBACKS_HEADER];
      if (fallbacks !== undefined) scope.fallbacks = fallbacksAllowed(headerValue(fallbacks) ?? "");
      // The body arrives whole before the call takes a slot: a slow sender holds only its own connection.
      if (route.body === true) ({ value: call.body, text: call.bodyText } = await readJsonBody(req, options.maxRequestBytes, options.bodyTimeoutMs));
      if (limited) {
        options.limit.acquire();
        acquired = true;
      }
      await route.handler(call, deps);
      log(call.method, call, undefined, routine);
    } catch (err) {
      const failure = failureFrom(err);
      if (!res.headersSent) {
        if (!req.complete) req.resume(); // refused before (or while) reading the body: drop the rest
        setCallHeaders(res, scope);
        sendFailure(res, failure, envelopeStyleFor(path));
      } else if (!res.writableEnded) {
        res.destroy(); // a stream that could not say why it ended; cannot happen via streamChunks
      }
      log(call.method, call, failure);
    } finally {
      scope.dispose();
      calls.delete(scope);
      if (acquired) options.limit.release();
    }
  }

  // Longer than a balancer's own idle timeout, so it never reuses a connection just closed here.
  if (options.keepAliveTimeoutMs !== undefined) server.keepAliveTimeout = options.keepAliveTimeoutMs;
  const port = await listen(server, options.port, options.host);

  return {
    port,
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        closing = true;
        let force: NodeJS.Timeout | undefined;
        const grace = setTimeout(() => {
          calls.endAll(GatewayError.shuttingDown());
          force = setTimeout(() => server.closeAllConnections(), FLUSH_MS);
          force.unref();
        }, graceMs);
        grace.unref();
        server.close(() => {
          clearTimeout(grace);
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

/**
 * node:http's own bounds on an unfinished request, tied to REQUEST_BODY_TIMEOUT_S (its
 * defaults let one live 300 s, checked every 30 s): headers must arrive within the bound,
 * the whole request shortly after it (readJsonBody answers 408 at the bound itself; this
 * is the backstop for what it does not read), and the checks run often enough to honour
 * short bounds. They apply to requests in progress only: how long an idle kept-alive
 * connection stays open is the keep-alive timeout's business (Node's 5 s here).
 */
function serverTimeouts(bodyTimeoutMs: number): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  return {
    headersTimeout: bodyTimeoutMs,
    requestTimeout: bodyTimeoutMs + 1000,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(bodyTimeoutMs / 4))),
  };
}
