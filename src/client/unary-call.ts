/**
 * A grpc-js unary call as a promise that honours an AbortSignal: aborting cancels the
 * call on the wire (RST_STREAM), so the gateway aborts its upstream request.
 */
import type { CallOptions, ClientUnaryCall, Metadata, ServiceError } from "@grpc/grpc-js";
import { toGatewayError } from "./grpc-error.js";
import { cancelledError } from "./retry.js";
import type { CallPlan } from "./call-plan.js";

/** The shape of every generated unary method (metadata + options + callback overload). */
export type UnaryInvoker<Res> = (metadata: Metadata, options: Partial<CallOptions>, callback: (err: ServiceError | null, res?: Res) => void) => ClientUnaryCall;

/** One attempt. Rejects with a GatewayError. */
export function unaryAttempt<Res>(plan: CallPlan, invoke: UnaryInvoker<Res>): Promise<Res> {
  const { signal, requestId } = plan;
  if (signal?.aborted) return Promise.reject(cancelledError(signal.reason, requestId));
  return new Promise<Res>((resolve, reject) => {
    const onAbort = (): void => call.cancel();
    const call = invoke(plan.metadata(), plan.callOptions(), (err, res) => {
      signal?.removeEventListener("abort", onAbort);
      if (err) reject(signal?.aborted ? cancelledError(signal.reason, requestId) : toGatewayError(err, requestId));
      else if (res === undefined) reject(toGatewayError(new Error("empty response"), requestId));
      else resolve(res);
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
