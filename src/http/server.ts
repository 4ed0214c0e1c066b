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
import type { InFlightLimit } from "../core/in-flight.js";
import { requestIdFrom } from "../core/request-id.js";
import type { Logger } from "../log.js";
import type { MetricsSource } from "../metrics/exposition.js";
import { reportHttpCall, type HttpCall } from "./call.js";
import { listen } from "./listen.js";
import { failureFrom, HttpError, type HttpFailure } from "./errors.js";
import { sendFailure, setCallHeaders } from "./respond.js";
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
  /** Server-wide cap on calls in progress, shared with the gRPC server. */
  readonly limit: InFlightLimit;
  /** Gateway keys callers must present; undefined: no caller authentication. */
  readonly keys: KeyRing | undefined;
  /** Serve HTTPS (and require client certificates when a client CA is set). */
  readonly tls: TlsFiles | undefined;
  /** What /readyz answers. */
  readonly readiness: () => Readiness;
  /** Served at GET /metrics (public); undefined: metrics are off. */
  readonly metrics?: MetricsSource | undefined;
}

export interface HttpServer {
  readonly port: number;
  /** Refuse new calls (503), give in-flight ones `graceMs`, then close every connection. */
  close(graceMs: number): Promise<void>;
}

export async function startHttpServer(chat: ChatService, options: HttpServerOptions): Promise<HttpServer> {
  const deps: RouteDeps = { chat, maxRequestBytes: options.maxRequestBytes, readiness: options.readiness, metrics: options.metrics };
  let closing = false;

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      // handle() renders and logs its own failures; reaching here is a bug.
      options.logger.error({ err, transport: "http" }, "unhandled error in the HTTP shim");
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  };
  const tls = options.tls;
  const server =
    tls === undefined
      ? createServer({ noDelay: true }, onRequest)
      : createHttpsServer(
          { noDelay: true, cert: tls.cert, key: tls.key, ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}) },
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
      reportHttpCall(options.reporter, { method, httpMethod, path, requestId, ignored: call?.ignored ?? [], stats: call?.scope.stats ?? {} }, status, started, failure, routine);
    };
    // While shutting down, a kept-alive connection is closed as soon as its call is over.
    res.once("close", () => {
      if (closing) server.closeIdleConnections();
    });

    const match = matchRoute(httpMethod, path);
    if (closing || match.kind !== "route") {
      const error = closing
        ? HttpError.shuttingDown()
        : match.kind === "wrong-method"
          ? HttpError.methodNotAllowed(httpMethod, path, match.allowed)
          : HttpError.routeNotFound(httpMethod, path);
      const failure = failureFrom(error);
      req.resume(); // the body is not wanted: read and drop it
      sendFailure(res, failure);
      log(undefined, undefined, failure);
      return;
    }

    const { route, params } = match;
    const scope = new CallScope(Infinity, options.ceilingMs, requestId);
    // 'close' before the response finished: the client went away. Abort the upstream now.
    res.once("close", () => (res.writableFinished ? scope.dispose() : scope.cancel()));
    const call: HttpCall = { req, res, scope, params, method: route.name, ignored: [] };
    const limited = route.public !== true;
    let acquired = false;
    try {
      // Public routes (probes, metrics) need no key; the rest need one when keys are configured.
      if (limited && options.keys !== undefined) scope.stats.keyName = options.keys.authenticate(req.headers.authorization);
      if (limited) {
        options.limit.acquire();
        acquired = true;
      }
      await route.handler(call, deps);
      log(call.method, call, undefined, route.public === true);
    } catch (err) {
      const failure = failureFrom(err);
      if (!res.headersSent) {
        if (!req.complete) req.resume(); // refused before (or while) reading the body: drop the rest
        setCallHeaders(res, scope);
        sendFailure(res, failure);
      } else if (!res.writableEnded) {
        res.destroy(); // a stream that could not say why it ended; cannot happen via streamChunks
      }
      log(call.method, call, failure);
    } finally {
      scope.dispose();
      if (acquired) options.limit.release();
    }
  }

  const port = await listen(server, options.port, options.host);

  return {
    port,
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        closing = true;
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
