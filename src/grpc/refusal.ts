/**
 * How an interceptor refuses a call the handler never saw: one trailers-only reply with
 * the status and the request id, logged, traced and counted like any other call. Shared
 * by the auth check (auth-interceptor.ts) and the request-arrival bound
 * (request-body-timeout.ts).
 */
import type { Metadata, ServerInterceptingCallInterface } from "@grpc/grpc-js";
import type { CallReporter } from "../core/call-log.js";
import type { GatewayError } from "../core/errors.js";
import type { CallStats } from "../core/provider.js";
import { requestIdFrom } from "../core/request-id.js";
import { headerValue, PASS_THROUGH, type Tracer } from "../core/tracing.js";
import { toGrpcError } from "./status.js";

export interface RefusalOptions {
  /** Refused calls are logged and counted like any other. */
  readonly reporter: CallReporter;
  /** ...and traced like any other (a refused caller is what an operator looks for). */
  readonly tracer?: Tracer | undefined;
}

/**
 * Sends `error` as the call's status and reports the call.
 * @param method the RPC name (CreateChatCompletion…)
 * @param started performance.now() when the call began
 * @param stats what is known of the call (the key's name, once authenticated)
 */
export function refuseCall(
  call: ServerInterceptingCallInterface,
  metadata: Metadata,
  error: GatewayError,
  method: string | undefined,
  started: number,
  options: RefusalOptions,
  stats: CallStats = {},
): void {
  const requestId = requestIdFrom(metadata.get("x-request-id")[0]);
  const traceparent = headerValue(metadata.get("traceparent")[0]);
  const tracestate = traceparent === undefined ? undefined : headerValue(metadata.get("tracestate")[0]);
  const trace = (options.tracer ?? PASS_THROUGH).startCall({ transport: "grpc", method: method ?? "", requestId, traceparent, tracestate });
  // One trailers-only reply: the request id rides with the status.
  const status = toGrpcError(error, requestId);
  status.metadata.set("x-request-id", requestId);
  call.sendStatus(status);
  options.reporter.report({ transport: "grpc", method, requestId, trace }, {}, stats, started, error);
}
