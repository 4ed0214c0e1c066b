/**
 * The caller's side of the gateway: GatewayClient, the shared GatewayError and the
 * helpers around it.
 */
export { GatewayClient, type ChatCompletionInput, type ChatCompletionStream } from "./gateway-client.js";
export { ResponseStream } from "./response-stream.js";
export { decodeStatusDetails, isServiceError, toGatewayError, type StatusDetails } from "./grpc-error.js";
export { DEFAULT_RETRY_POLICY, isRetryable, retryDelayMs, type RetryPolicy } from "./retry.js";
export { DEFAULT_DEADLINE_MS, DEFAULT_TARGET, type GatewayCallOptions, type GatewayClientOptions, type RetryOptions, type TlsOptions } from "./options.js";
export { textMessage } from "./messages.js";
export { fleetServiceConfig, type LoadBalancingOptions, type LoadBalancingPolicy, type ServiceConfig } from "./service-config.js";
