/**
 * GatewayClient: the gateway's ChatService and ModelService as promises and async
 * iterables, on the generated grpc-js stubs (one shared channel). Every call has a
 * deadline, honours an AbortSignal, carries an x-request-id (and the bearer key when
 * set) and fails with one typed GatewayError whose google.rpc details are decoded.
 */
import type { ChannelOptions } from "@grpc/grpc-js";
import { ChatCompletionRequest, ChatServiceClient, type ChatCompletion, type ChatCompletionChunk, type DeepPartial } from "../../gen/aigateway/v1/chat.js";
import { ModelServiceClient, type ListModelsResponse, type Model } from "../../gen/aigateway/v1/models.js";
import { chooseRequestId, planCall, type CallPlan, type ClientDefaults } from "./call-plan.js";
import { channelCredentials } from "./credentials.js";
import { DEFAULT_DEADLINE_MS, DEFAULT_TARGET, type GatewayCallOptions, type GatewayClientOptions } from "./options.js";
import { ResponseStream } from "./response-stream.js";
import { retryPolicy, withRetries, type RetryPolicy } from "./retry.js";
import { withSchemaText } from "./schema-text.js";
import { fleetServiceConfig } from "./service-config.js";
import { unaryAttempt, type UnaryInvoker } from "./unary-call.js";

/** A streamed chat completion: iterate it for chunks; `requestId` is known up front. */
export type ChatCompletionStream = ResponseStream<ChatCompletionChunk>;

/** A request as a full message or any part of one (unset fields take their proto defaults). */
export type ChatCompletionInput = ChatCompletionRequest | DeepPartial<ChatCompletionRequest>;

/** The client's channel defaults (see GatewayClientOptions.channelOptions). */
const KEEPALIVE: ChannelOptions = { "grpc.keepalive_time_ms": 30_000, "grpc.keepalive_timeout_ms": 10_000 };

function channelOptionsFor(options: GatewayClientOptions): ChannelOptions {
  const lb = options.loadBalancing;
  const serviceConfig = lb === undefined || lb === false ? {} : { "grpc.service_config": JSON.stringify(fleetServiceConfig(lb === true ? {} : lb)) };
  return { ...KEEPALIVE, ...serviceConfig, ...options.channelOptions };
}

export class GatewayClient {
  /** The gRPC target this client calls. */
  readonly target: string;
  private readonly chat: ChatServiceClient;
  private readonly models: ModelServiceClient;
  private readonly defaults: ClientDefaults;
  private readonly retry: RetryPolicy | undefined;

  constructor(options: GatewayClientOptions = {}) {
    this.target = options.target ?? DEFAULT_TARGET;
    const defaultDeadlineMs = options.defaultDeadlineMs ?? DEFAULT_DEADLINE_MS;
    if (!(defaultDeadlineMs > 0)) throw new TypeError(`GatewayClient: defaultDeadlineMs must be > 0 (got ${defaultDeadlineMs})`);
    this.defaults = { apiKey: options.apiKey, defaultDeadlineMs };
    this.retry = retryPolicy(options.retry);
    const creds = channelCredentials(options);
    this.chat = new ChatServiceClient(this.target, creds, channelOptionsFor(options));
    this.models = new ModelServiceClient(this.target, creds, { channelOverride: this.chat.getChannel() });
  }

  /** One complete answer. Rejects with a GatewayError. */
  createChatCompletion(request: ChatCompletionInput, options: GatewayCallOptions = {}): Promise<ChatCompletion> {
    const message = withSchemaText(ChatCompletionRequest.fromPartial(request));
    return this.unary<ChatCompletion>(options, (md, o, cb) => this.chat.createChatCompletion(message, md, o, cb));
  }

  /**
   * The answer as chunks, as they arrive. The call starts when iteration starts and is
   * cancelled when the loop is left early or `options.signal` aborts. Iteration throws
   * a GatewayError when the call fails, after every chunk received before the failure.
   */
  streamChatCompletion(request: ChatCompletionInput, options: GatewayCallOptions = {}): ChatCompletionStream {
    const message = withSchemaText(ChatCompletionRequest.fromPartial(request));
    const requestId = chooseRequestId(options);
    return new ResponseStream<ChatCompletionChunk>(
      requestId,
      (signal) => planCall(this.defaults, { ...options, signal }, requestId),
      (md, o) => this.chat.streamChatCompletion(message, md, o),
      this.retry,
      options.signal,
    );
  }

  /** The models the gateway can route to. */
  async listModels(options: GatewayCallOptions = {}): Promise<Model[]> {
    const res = await this.unary<ListModelsResponse>(options, (md, o, cb) => this.models.listModels({}, md, o, cb));
    return res.models;
  }

  /** One model; rejects with NOT_FOUND when the upstream does not know it. */
  getModel(id: string, options: GatewayCallOptions = {}): Promise<Model> {
    return this.unary<Model>(options, (md, o, cb) => this.models.getModel({ id }, md, o, cb));
  }

  /** Closes the channel (both stubs share it). Calls in flight fail with CANCELLED/UNAVAILABLE. */
  close(): void {
    this.chat.close();
  }

  private unary<Res>(options: GatewayCallOptions, invoke: UnaryInvoker<Res>): Promise<Res> {
    let plan: CallPlan;
    try {
      plan = planCall(this.defaults, options);
    } catch (err) {
      return Promise.reject(err);
    }
    return withRetries(this.retry, plan.deadline, plan.signal, plan.requestId, () => unaryAttempt(plan, invoke));
  }
}
