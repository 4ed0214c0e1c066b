/**
 * The package entry: `import { GatewayClient, GatewayError } from "cerebras-grpc-gateway"`.
 *
 * GatewayError is the class the server itself throws and renders (src/core/errors.ts):
 * server and client share one error type, its codes and its ErrorInfo reasons.
 */
export * from "./client/index.js";
export { Code, ERROR_DOMAIN, GatewayError, Reason, type FieldViolation, type QuotaViolation } from "./core/errors.js";

// The generated request/response types (ts-proto: each is an interface plus a value
// with encode/decode/fromPartial/fromJSON/toJSON), and the raw generated stubs.
export {
  AssistantMessage,
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionRequest,
  ChatServiceClient,
  Choice,
  ChunkChoice,
  CompletionTokensDetails,
  ContentPart,
  ContentParts,
  Delta,
  FinishReason,
  FunctionCall,
  FunctionCallDelta,
  FunctionDefinition,
  ImageUrl,
  JsonObjectFormat,
  JsonSchemaFormat,
  Logprobs,
  Message,
  Prediction,
  PromptTokensDetails,
  ReasoningEffort,
  ReasoningFormat,
  ResponseFormat,
  Role,
  ServiceTier,
  StreamOptions,
  TextFormat,
  TimeInfo,
  TokenLogprob,
  Tool,
  ToolCall,
  ToolCallDelta,
  ToolChoice,
  ToolChoiceMode,
  TopLogprob,
  Usage,
  type DeepPartial,
} from "../gen/aigateway/v1/chat.js";
export { GetModelRequest, ListModelsRequest, ListModelsResponse, Model, ModelCapabilities, ModelPricing, ModelServiceClient } from "../gen/aigateway/v1/models.js";
