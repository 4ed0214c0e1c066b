/**
 * The grpc-js service config for calling a fleet of gateways: client-side load balancing
 * over every address the target resolves to, and grpc-js' own retry of UNAVAILABLE.
 *
 * What grpc-js retries: a call that failed UNAVAILABLE before any response header
 * arrived, i.e. before a gateway's handler answered (a refused connection, a replica that
 * went away between the pick and the send, a connection closed under a call). A gateway's
 * own UNAVAILABLE (an upstream failure, GATEWAY_SHUTTING_DOWN) comes after the response
 * headers, so grpc-js never repeats it; that is what GatewayClient's `retry` is for.
 */
import { ChatServiceService } from "../../gen/aigateway/v1/chat.js";
import { ModelServiceService } from "../../gen/aigateway/v1/models.js";

export type LoadBalancingPolicy = "round_robin" | "pick_first";

export interface LoadBalancingOptions {
  /**
   * `round_robin` (default): a connection to every address, each call to the next ready
   * one. `pick_first`: one connection, to the first address that answers.
   */
  readonly policy?: LoadBalancingPolicy;
  /** Attempts in all for grpc-js' retry of UNAVAILABLE (see above): 1 (off) to 5. Default 3. */
  readonly maxAttempts?: number;
}

/** The gRPC service config JSON (https://github.com/grpc/grpc/blob/master/doc/service_config.md). */
export interface ServiceConfig {
  readonly loadBalancingConfig: ReadonlyArray<Readonly<Record<string, Record<string, never>>>>;
  readonly methodConfig: ReadonlyArray<{
    readonly name: ReadonlyArray<{ readonly service: string }>;
    readonly retryPolicy: {
      readonly maxAttempts: number;
      readonly initialBackoff: string;
      readonly maxBackoff: string;
      readonly backoffMultiplier: number;
      readonly retryableStatusCodes: readonly string[];
    };
  }>;
}

/** The services GatewayClient calls, named as the generated stubs name them. */
const SERVICES = [ChatServiceService, ModelServiceService].map((s) => Object.values(s)[0]!.path.split("/")[1]!);

/** grpc-js refuses more attempts than this (DEFAULT_MAX_ATTEMPTS_LIMIT). */
const MAX_ATTEMPTS_LIMIT = 5;

export function fleetServiceConfig(options: LoadBalancingOptions = {}): ServiceConfig {
  const policy = options.policy ?? "round_robin";
  if (policy !== "round_robin" && policy !== "pick_first") throw new TypeError(`GatewayClient: loadBalancing.policy must be round_robin or pick_first (got ${String(policy)})`);
  const maxAttempts = options.maxAttempts ?? 3;
  if (!(Number.isInteger(maxAttempts) && maxAttempts >= 1 && maxAttempts <= MAX_ATTEMPTS_LIMIT)) {
    throw new TypeError(`GatewayClient: loadBalancing.maxAttempts must be an integer from 1 to ${MAX_ATTEMPTS_LIMIT} (got ${maxAttempts})`);
  }
  return {
    loadBalancingConfig: [{ [policy]: {} }],
    methodConfig:
      maxAttempts === 1
        ? []
        : [
            {
              name: SERVICES.map((service) => ({ service })),
              retryPolicy: { maxAttempts, initialBackoff: "0.05s", maxBackoff: "1s", backoffMultiplier: 2, retryableStatusCodes: ["UNAVAILABLE"] },
            },
          ],
  };
}
