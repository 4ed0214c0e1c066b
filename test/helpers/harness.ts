/**
 * End-to-end harness: a fake Cerebras on 127.0.0.1, the real gateway wired as main.ts
 * wires it (ephemeral port), and clients generated from gen/. Everything stops in close().
 */
import { credentials, Metadata, type CallOptions, type ChannelCredentials, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import type { DestinationStream } from "pino";
import {
  ChatCompletionRequest,
  ChatServiceClient,
  Role,
  type ChatCompletion,
  type ChatCompletionChunk,
} from "../../gen/aigateway/v1/chat.js";
import { ModelServiceClient } from "../../gen/aigateway/v1/models.js";
import { BadRequest, ErrorInfo, QuotaFailure, RetryInfo } from "../../gen/google/rpc/error_details.js";
import { Status } from "../../gen/google/rpc/status.js";
import { loadConfig } from "../../src/config.js";
import { startFakeUpstream, type FakeUpstream, type FakeUpstreamOptions } from "../../src/fake-upstream/server.js";
import { startGateway, type Gateway } from "../../src/gateway.js";
import { createLogger } from "../../src/log.js";

export const UPSTREAM_KEY = "csk-test-0123456789abcdef";

export interface Harness {
  readonly fake: FakeUpstream;
  readonly gateway: Gateway;
  readonly chat: ChatServiceClient;
  readonly models: ModelServiceClient;
  readonly address: string;
  close(): Promise<void>;
}

export interface HarnessOptions {
  readonly fake?: FakeUpstreamOptions;
  /** Extra environment for loadConfig (strings, as in a real environment). */
  readonly env?: Record<string, string>;
  /** Runs after the fake starts and before the gateway does (e.g. to queue faults for start-up). */
  readonly beforeGateway?: (fake: FakeUpstream) => void;
  /** Receives the gateway's log lines (level info) instead of discarding them. */
  readonly logSink?: DestinationStream;
  /** Channel credentials for the generated clients (TLS tests). */
  readonly clientCredentials?: ChannelCredentials;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const fake = await startFakeUpstream({ apiKey: UPSTREAM_KEY, ...options.fake });
  options.beforeGateway?.(fake);
  const config = loadConfig({
    CEREBRAS_API_KEY: UPSTREAM_KEY,
    CEREBRAS_BASE_URL: fake.url,
    GRPC_HOST: "127.0.0.1",
    GRPC_PORT: "0",
    LOG_LEVEL: "silent",
    SHUTDOWN_GRACE_S: "1",
    ...options.env,
  });
  const gateway = await startGateway(config, options.logSink ? createLogger("info", options.logSink) : createLogger("silent"));
  // Tests assert the catalog's checks, so they start once the first load settled.
  await gateway.catalogSettled;
  const address = `127.0.0.1:${gateway.grpcPort}`;
  const creds = options.clientCredentials ?? credentials.createInsecure();
  const chat = new ChatServiceClient(address, creds);
  const models = new ModelServiceClient(address, creds);
  return {
    fake,
    gateway,
    chat,
    models,
    address,
    close: async () => {
      chat.close();
      models.close();
      await gateway.close(500);
      await fake.close();
    },
  };
}

/** A request with one user message; `partial` overrides any field. */
export function userRequest(text: string, partial: Partial<ChatCompletionRequest> = {}): ChatCompletionRequest {
  return ChatCompletionRequest.fromPartial({
    messages: [{ role: Role.ROLE_USER, contentKind: { $case: "content", value: text } }],
    ...partial,
  });
}

export function deadlineIn(ms: number): CallOptions {
  return { deadline: Date.now() + ms };
}

/** Call metadata presenting gateway key `key` (`authorization: Bearer <key>`). */
export function withKey(key: string): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${key}`);
  return md;
}

/** Unary call as a promise; rejects with the ServiceError. */
export function create(client: ChatServiceClient, request: ChatCompletionRequest, options: CallOptions = {}, metadata = new Metadata()): Promise<ChatCompletion> {
  return new Promise((resolve, reject) => {
    client.createChatCompletion(request, metadata, options, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

export interface StreamResult {
  readonly chunks: ChatCompletionChunk[];
  /** Set when the stream ended with a non-OK status. */
  readonly error: ServiceError | undefined;
}

/** Reads a whole stream; never rejects, so tests can assert on chunks before an error. */
export function collect(call: ClientReadableStream<ChatCompletionChunk>): Promise<StreamResult> {
  const chunks: ChatCompletionChunk[] = [];
  return new Promise((resolve) => {
    call.on("data", (c: ChatCompletionChunk) => chunks.push(c));
    call.on("error", (error: ServiceError) => resolve({ chunks, error }));
    call.on("end", () => resolve({ chunks, error: undefined }));
  });
}

export function stream(client: ChatServiceClient, request: ChatCompletionRequest, options: CallOptions = {}): Promise<StreamResult> {
  return collect(client.streamChatCompletion(request, new Metadata(), options));
}

/** The google.rpc details of a failed call, decoded. */
export interface DecodedStatus {
  readonly code: number;
  readonly message: string;
  readonly errorInfo: ErrorInfo | undefined;
  readonly errorInfoCount: number;
  readonly retryInfo: RetryInfo | undefined;
  readonly badRequest: BadRequest | undefined;
  readonly quotaFailure: QuotaFailure | undefined;
}

export function decodeStatus(err: ServiceError): DecodedStatus {
  const raw = err.metadata.get("grpc-status-details-bin")[0];
  if (!(raw instanceof Buffer)) throw new Error(`no grpc-status-details-bin on ${err.code} ${err.details}`);
  const status = Status.decode(raw);
  const find = (type: string) => status.details.filter((d) => d.typeUrl === `type.googleapis.com/google.rpc.${type}`);
  const one = <T>(type: string, decode: (b: Uint8Array) => T): T | undefined => {
    const d = find(type)[0];
    return d === undefined ? undefined : decode(d.value);
  };
  return {
    code: status.code,
    message: status.message,
    errorInfo: one("ErrorInfo", (b) => ErrorInfo.decode(b)),
    errorInfoCount: find("ErrorInfo").length,
    retryInfo: one("RetryInfo", (b) => RetryInfo.decode(b)),
    badRequest: one("BadRequest", (b) => BadRequest.decode(b)),
    quotaFailure: one("QuotaFailure", (b) => QuotaFailure.decode(b)),
  };
}

export { until } from "./wait.js";

/** Joins the content deltas of a stream. */
export function streamedText(chunks: readonly ChatCompletionChunk[]): string {
  return chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("");
}

/** The error a promise rejects with; fails the test if it resolves. */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to fail");
}
