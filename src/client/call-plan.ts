/**
 * What one logical call is sent with, worked out once before its first attempt: the
 * request id, the request metadata (bearer key, x-request-id, the caller's own) and the
 * absolute deadline every attempt shares.
 */
import { Metadata, type CallOptions } from "@grpc/grpc-js";
import { requestIdFrom } from "../core/request-id.js";
import type { GatewayCallOptions } from "./options.js";

export interface ClientDefaults {
  readonly apiKey: string | undefined;
  readonly defaultDeadlineMs: number;
}

export interface CallPlan {
  readonly requestId: string;
  /** Epoch ms; Infinity when the call has no deadline. */
  readonly deadline: number;
  readonly signal: AbortSignal | undefined;
  /** A fresh copy of the request metadata, for one attempt. */
  metadata(): Metadata;
  /** grpc-js call options for one attempt. */
  callOptions(): Partial<CallOptions>;
}

/** The request id the call will carry: the caller's, if the gateway would accept it, else a new one (the gateway's own rule). */
export function chooseRequestId(options: GatewayCallOptions): string {
  const given = options.requestId ?? metadataValue(options.metadata, "x-request-id");
  return requestIdFrom(given);
}

/** @param requestId from chooseRequestId(), when the caller had to know it before the call started */
export function planCall(defaults: ClientDefaults, options: GatewayCallOptions, requestId = chooseRequestId(options)): CallPlan {
  const budget = options.deadlineMs ?? defaults.defaultDeadlineMs;
  if (!(budget > 0)) throw new TypeError(`GatewayClient: deadlineMs must be > 0 (got ${budget})`);
  const deadline = Date.now() + budget;

  const base = new Metadata();
  if (options.metadata instanceof Metadata) {
    base.merge(options.metadata);
  } else if (options.metadata !== undefined) {
    for (const [k, v] of Object.entries(options.metadata)) base.set(k, v);
  }
  base.set("x-request-id", requestId);
  if (defaults.apiKey !== undefined && base.get("authorization").length === 0) base.set("authorization", `Bearer ${defaults.apiKey}`);

  return {
    requestId,
    deadline,
    signal: options.signal,
    metadata: () => base.clone(),
    callOptions: () => ({ deadline }),
  };
}

function metadataValue(metadata: GatewayCallOptions["metadata"], key: string): string | undefined {
  if (metadata === undefined) return undefined;
  const value = metadata instanceof Metadata ? metadata.get(key)[0] : metadata[key];
  return typeof value === "string" ? value : undefined;
}
