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
import type { TlsFiles } from "../config.js";
import type { CallReporter } from "../core/call-log.js";
import { serverStreamHandler, unaryHandler } from "./handlers.js";
import { addReflection, DescriptorIndex } from "./reflection.js";
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
  /** HTTP/2 streams per connection. */
  readonly maxConcurrentStreams: number;
  /** Gateway keys callers must present; undefined: no caller authentication. Health and reflection are always open. */
  readonly keys: KeyRing | undefined;
  /** TLS (and mTLS with a client CA); undefined: plaintext. */
  readonly tls: TlsFiles | undefined;
}

export interface GrpcServer {
  readonly port: number;
  /** Health says NOT_SERVING (load balancers steer away); calls are still served. */
  notServing(): void;
  /** Health says NOT_SERVING, new calls are refused, in-flight ones get `graceMs` to finish. */
  shutdown(graceMs: number): Promise<void>;
}

const SERVICES = [ChatServiceService, ModelServiceService].map((s) => Object.values(s)[0]!.path.split("/")[1]!);

/**
 * Keepalive: the server pings idle connections every 60 s, inside the idle timeouts of
 * common load balancers (AWS NLB 350 s, GCP 600 s), so they are not silently dropped; it
 * accepts client pings as often as every 10 s, even without calls.
 */
function channelOptions(options: GrpcServerOptions): ChannelOptions {
  return {
    "grpc.max_receive_message_length": options.maxRequestBytes,
    "grpc.max_concurrent_streams": options.maxConcurrentStreams,
    "grpc.keepalive_time_ms": 60_000,
    "grpc.keepalive_timeout_ms": 20_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.min_ping_interval_without_data_ms": 10_000,
  };
}

function credentials(tls: TlsFiles | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  // With a client CA, a client without a certificate it signed is refused at the handshake.
  return ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], tls.clientCa !== undefined);
}

export async function startGrpcServer(chat: ChatService, options: GrpcServerOptions): Promise<GrpcServer> {
  const server = new Server(channelOptions(options));
  const h = { reporter: options.reporter, ceilingMs: options.ceilingMs, limit: options.limit, keys: options.keys };

  const chatImpl: ChatServiceServer = {
    createChatCompletion: unaryHandler("CreateChatCompletion", h, (req: ChatCompletionRequest, ctx) => chat.createChatCompletion(req, ctx)),
    streamChatCompletion: serverStreamHandler("StreamChatCompletion", h, (req: ChatCompletionRequest, ctx, sink) => chat.streamChatCompletion(req, ctx, sink)),
  };
  const modelImpl: ModelServiceServer = {
    listModels: unaryHandler("ListModels", h, (_req, ctx) => chat.listModels(ctx)),
    getModel: unaryHandler("GetModel", h, (req, ctx) => chat.getModel(req.id, ctx)),
  };
  // The same contract, with the generated fast encoders for the replies (serializers.ts).
  server.addService(withFastSerializers(ChatServiceService), chatImpl);
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
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        force.unref();
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
