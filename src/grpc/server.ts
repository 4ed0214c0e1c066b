/**
 * The gRPC server: ChatService and ModelService over the core, plus grpc.health.v1 and
 * reflection so grpcurl and `buf curl` work without proto files.
 */
import { Server, ServerCredentials, type ChannelOptions } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { ChatServiceService, type ChatCompletionRequest, type ChatServiceServer } from "../../gen/aigateway/v1/chat.js";
import { ModelServiceService, type ModelServiceServer } from "../../gen/aigateway/v1/models.js";
import type { ChatService } from "../core/chat-service.js";
import type { InFlightLimit } from "../core/in-flight.js";
import type { KeyRing } from "../auth/key-ring.js";
import type { GrpcConnectionPolicy, TlsFiles } from "../config.js";
import type { CallReporter } from "../core/call-log.js";
import { GatewayError } from "../core/errors.js";
import { LiveCalls } from "../core/live-calls.js";
import type { Tracer } from "../core/tracing.js";
import { authInterceptor } from "./auth-interceptor.js";
import { requestBodyTimeoutInterceptor } from "./request-body-timeout.js";
import { serverStreamHandler, unaryHandler } from "./handlers.js";
import { addReflection, DescriptorIndex } from "./reflection.js";
import { withRequestChecks } from "./request-decoder.js";
import { withFastModelSerializers, withFastSerializers } from "./serializers.js";

export interface GrpcServerOptions {
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Each call's log line and metrics. */
  readonly reporter: CallReporter;
  /** REQUEST_TIMEOUT_S in ms: no call outlives it, whatever deadline its caller set. */
  readonly ceilingMs: number;
  /** Server-wide cap on calls in progress (shared with the HTTP shim). */
  readonly limit: InFlightLimit;
  /** Largest request message accepted. */
  readonly maxRequestBytes: number;
  /** REQUEST_BODY_TIMEOUT_S in ms: a unary or server-streaming call's request must arrive whole within it (request-body-timeout.ts). */
  readonly requestBodyTimeoutMs: number;
  /** HTTP/2 streams per connection. */
  readonly maxConcurrentStreams: number;
  /** Gateway keys callers must present; undefined: no caller authentication. Health and reflection are always open. */
  readonly keys: KeyRing | undefined;
  /** TLS (and mTLS with a client CA); undefined: plaintext. */
  readonly tls: TlsFiles | undefined;
  /** Max connection age and keepalive (see channelOptions); undefined: grpc-js' defaults (neither). */
  readonly connections?: GrpcConnectionPolicy;
  /** Starts each call's span (src/core/tracing.ts); undefined: tracing off (the caller's context is forwarded). */
  readonly tracer?: Tracer | undefined;
}

export interface GrpcServer {
  readonly port: number;
  /** Health says NOT_SERVING (load balancers steer away); calls are still served. */
  notServing(): void;
  /**
   * Health says NOT_SERVING, the listener closes and every connection gets a GOAWAY (new
   * calls go elsewhere); in-flight calls get `graceMs` to finish. Those still running
   * then end with UNAVAILABLE GATEWAY_SHUTTING_DOWN (their status is sent), and whatever
   * is left after FLUSH_MS more is cut.
   */
  shutdown(graceMs: number): Promise<void>;
}

/** After the grace, how long the calls ended in-band get for their statuses to leave before connections are cut. */
const FLUSH_MS = 1000;

const SERVICES = [ChatServiceService, ModelServiceService].map((s) => Object.values(s)[0]!.path.split("/")[1]!);

/**
 * Connections that rebalance: after `maxAgeMs` (±10% jitter, added by grpc-js so a fleet's
 * connections do not all reconnect at once) a connection gets a GOAWAY; its calls go on
 * for up to `maxAgeGraceMs`, and the client opens a new connection for new calls, which a
 * Service (or its own DNS re-resolution) may send to another replica, a new one included.
 *
 * Keepalive: the server pings every connection every `keepaliveTimeMs` (60 s by default),
 * inside the idle timeouts of common L4 balancers and NATs (Azure LB 240 s, AWS NLB 350 s,
 * GCP 600 s), so an idle connection is neither dropped silently by one nor kept forever to
 * a client that vanished. grpc-js servers do not police client pings (no too_many_pings),
 * so clients may ping as often as they like.
 */
function channelOptions(options: GrpcServerOptions): ChannelOptions {
  const c = options.connections;
  return {
    "grpc.max_receive_message_length": options.maxRequestBytes,
    "grpc.max_concurrent_streams": options.maxConcurrentStreams,
    ...(c === undefined ? {} : { "grpc.keepalive_time_ms": c.keepaliveTimeMs, "grpc.keepalive_timeout_ms": c.keepaliveTimeoutMs }),
    ...(c?.maxAgeMs === undefined ? {} : { "grpc.max_connection_age_ms": c.maxAgeMs, "grpc.max_connection_age_grace_ms": c.maxAgeGraceMs }),
  };
}

function credentials(tls: TlsFiles | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  // With a client CA, a client without a certificate it signed is refused at the handshake.
  return ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== undefined);
}

export async function startGrpcServer(chat: ChatService, options: GrpcServerOptions): Promise<GrpcServer> {
  const refusals = { reporter: options.reporter, tracer: options.tracer };
  const interceptors = [
    // First: it needs grpc-js' own call, which only the first interceptor gets (request-body-timeout.ts).
    requestBodyTimeoutInterceptor({ ...refusals, timeoutMs: options.requestBodyTimeoutMs, maxRequestBytes: options.maxRequestBytes }),
    // With keys, calls are authenticated on their metadata, before their message is read (auth-interceptor.ts).
    ...(options.keys === undefined ? [] : [authInterceptor({ ...refusals, keys: options.keys })]),
  ];
  const server = new Server({ ...channelOptions(options), interceptors });
  const calls = new LiveCalls();
  const h = { reporter: options.reporter, ceilingMs: options.ceilingMs, limit: options.limit, keys: options.keys, calls, tracer: options.tracer };

  const chatImpl: ChatServiceServer = {
    createChatCompletion: unaryHandler("CreateChatCompletion", h, (req: ChatCompletionRequest, ctx) => chat.createChatCompletion(req, ctx)),
    streamChatCompletion: serverStreamHandler("StreamChatCompletion", h, (req: ChatCompletionRequest, ctx, sink) => chat.streamChatCompletion(req, ctx, sink)),
  };
  const modelImpl: ModelServiceServer = {
    listModels: unaryHandler("ListModels", h, (_req, ctx) => chat.listModels(ctx)),
    getModel: unaryHandler("GetModel", h, (req, ctx) => chat.getModel(req.id, ctx)),
  };
  // The same contract, with the generated fast encoders for the replies (serializers.ts) and
  // request decoders that refuse too-deep or malformed requests as INVALID_ARGUMENT (request-decoder.ts).
  server.addService(withRequestChecks(withFastSerializers(ChatServiceService)), chatImpl);
  server.addService(withFastModelSerializers(ModelServiceService), modelImpl);

  const health = new HealthImplementation({ "": "SERVING", ...Object.fromEntries(SERVICES.map((s) => [s, "SERVING" as const])) });
  health.addToServer(server);
  addReflection(server, DescriptorIndex.load());

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host}:${options.port}`, credentials(options.tls), (err, bound) => (err ? reject(err) : resolve(bound)));
  });

  const notServing = (): void => {
    health.setStatus("", "NOT_SERVING");
    for (const s of SERVICES) health.setStatus(s, "NOT_SERVING");
  };
  return {
    port,
    notServing,
    shutdown: (graceMs) =>
      new Promise<void>((resolve) => {
        notServing();
        let force: NodeJS.Timeout | undefined;
        const grace = setTimeout(() => {
          calls.endAll(GatewayError.shuttingDown());
          force = setTimeout(() => server.forceShutdown(), FLUSH_MS);
          force.unref();
        }, graceMs);
        grace.unref();
        // Closes the listener and sends every connection a GOAWAY; calls in flight go on.
        server.tryShutdown(() => {
          clearTimeout(grace);
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
