/**
 * The attribute names on the gateway's spans: OpenTelemetry semantic conventions where
 * one exists (GenAI, RPC, HTTP, server, error), `gateway.*` for the gateway's own. Written
 * out rather than imported from @opentelemetry/semantic-conventions/incubating, whose
 * unstable names that package advises against importing.
 */
export const A = {
  // GenAI (gen_ai.*): on attempt spans, and on the call span of a chat completion.
  OPERATION: "gen_ai.operation.name",
  SYSTEM: "gen_ai.system",
  PROVIDER: "gen_ai.provider.name",
  REQUEST_MODEL: "gen_ai.request.model",
  REQUEST_STREAM: "gen_ai.request.stream",
  REQUEST_MAX_TOKENS: "gen_ai.request.max_tokens",
  REQUEST_TEMPERATURE: "gen_ai.request.temperature",
  REQUEST_TOP_P: "gen_ai.request.top_p",
  REQUEST_SEED: "gen_ai.request.seed",
  REQUEST_FREQUENCY_PENALTY: "gen_ai.request.frequency_penalty",
  REQUEST_PRESENCE_PENALTY: "gen_ai.request.presence_penalty",
  RESPONSE_ID: "gen_ai.response.id",
  RESPONSE_MODEL: "gen_ai.response.model",
  FINISH_REASONS: "gen_ai.response.finish_reasons",
  TIME_TO_FIRST_CHUNK: "gen_ai.response.time_to_first_chunk",
  INPUT_TOKENS: "gen_ai.usage.input_tokens",
  OUTPUT_TOKENS: "gen_ai.usage.output_tokens",
  CACHED_TOKENS: "gen_ai.usage.cache_read.input_tokens",
  REASONING_TOKENS: "gen_ai.usage.reasoning.output_tokens",
  // RPC, HTTP, server, error.
  RPC_SYSTEM: "rpc.system",
  RPC_SERVICE: "rpc.service",
  RPC_METHOD: "rpc.method",
  GRPC_STATUS: "rpc.grpc.status_code",
  HTTP_METHOD: "http.request.method",
  HTTP_STATUS: "http.response.status_code",
  SERVER_ADDRESS: "server.address",
  SERVER_PORT: "server.port",
  /** The ErrorInfo reason (UPSTREAM_TIMEOUT…): low-cardinality, as error.type wants. */
  ERROR_TYPE: "error.type",
  // The gateway's own.
  REQUEST_ID: "gateway.request_id",
  TRANSPORT: "gateway.transport",
  /** The gRPC status code's name (OK, UNAVAILABLE…), on both transports. */
  STATUS: "gateway.status_code",
  /** The caller's gateway key's name (never the key). */
  CALLER_KEY: "gateway.caller_key",
  ATTEMPTS: "gateway.attempts",
  /** 1 for the first upstream attempt of a call. */
  ATTEMPT: "gateway.attempt",
  /** The upstream key's name (never the key): on each attempt span, and on the call span for its last attempt. */
  UPSTREAM_KEY: "gateway.upstream_key",
  UPSTREAM_REQUEST_ID: "gateway.upstream_request_id",
  COST_USD: "gateway.cost_usd",
} as const;

export const CEREBRAS = "cerebras";

/** The event on a call's span at the moment its first chunk (unary: its whole answer) arrived. */
export const FIRST_TOKEN_EVENT = "gen_ai.first_token";

/** The proto service an RPC name belongs to (the call span is named `service/method`). */
export function serviceOf(method: string): string {
  return method === "ListModels" || method === "GetModel" ? "aigateway.v1.ModelService" : "aigateway.v1.ChatService";
}
