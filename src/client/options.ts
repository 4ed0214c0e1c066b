/**
 * What a GatewayClient is configured with, and what each call may override.
 */
import type { ChannelCredentials, ChannelOptions, Metadata } from "@grpc/grpc-js";
import type { LoadBalancingOptions } from "./service-config.js";

/** Where the gateway listens when nothing else is said (the server's default GRPC_HOST:GRPC_PORT). */
export const DEFAULT_TARGET = "127.0.0.1:50051";

/**
 * Every call gets a deadline; this one unless the call sets its own. It matches the
 * server's default REQUEST_TIMEOUT_S, so a forgotten deadline never outlives the server's cap.
 */
export const DEFAULT_DEADLINE_MS = 300_000;

/** PEM material for TLS. Strings are PEM text, Buffers the bytes of a PEM file. */
export interface TlsOptions {
  /** Root certificates to trust; the system roots when unset. */
  readonly ca?: Buffer | string;
  /** Client certificate chain (mutual TLS); needs `key`. */
  readonly cert?: Buffer | string;
  /** Client private key (mutual TLS); needs `cert`. */
  readonly key?: Buffer | string;
}

/** Client-side retry of UNAVAILABLE. Off unless `retry` is set on the client. */
export interface RetryOptions {
  /** Attempts in all, the first included. Default 3. */
  readonly maxAttempts?: number;
  /** First backoff step when the error carries no RetryInfo; doubles per retry, full jitter. Default 100. */
  readonly initialBackoffMs?: number;
  /** Largest backoff step the client picks itself (a RetryInfo delay may be longer). Default 5000. */
  readonly maxBackoffMs?: number;
}

export interface GatewayClientOptions {
  /**
   * The gateway, as a gRPC target. Default 127.0.0.1:50051. `host:port`, or for several
   * replicas `dns:///name:port` (every address the name resolves to, e.g. a Kubernetes
   * headless Service, re-resolved when a connection closes) or
   * `ipv4:10.0.0.1:50051,10.0.0.2:50051` (a fixed list); use with `loadBalancing`.
   */
  readonly target?: string;
  /**
   * Spread calls over every address the target resolves to: `true` is
   * `{ policy: "round_robin", maxAttempts: 3 }`. Sets the channel's service config
   * (`grpc.service_config`; one given in `channelOptions` wins). Default: grpc-js'
   * pick_first (one connection), no channel retries.
   */
  readonly loadBalancing?: boolean | LoadBalancingOptions;
  /** `true`: TLS with the system roots; an object: TLS with these PEMs. Ignored when `credentials` is set. */
  readonly tls?: boolean | TlsOptions;
  /** Ready-made grpc-js channel credentials; win over `tls`. */
  readonly credentials?: ChannelCredentials;
  /**
   * Sent on every call as `authorization: Bearer <apiKey>`. Over a plaintext channel the
   * key travels in clear: use TLS beyond loopback.
   */
  readonly apiKey?: string;
  /** Deadline of calls that set none, in ms. Default 300 000; `Infinity` for none. */
  readonly defaultDeadlineMs?: number;
  /** Retry UNAVAILABLE (honouring RetryInfo, within the deadline). Off by default. */
  readonly retry?: boolean | RetryOptions;
  /**
   * Passed to the grpc-js channel (message sizes, ssl_target_name_override…), over the
   * client's own defaults: a keepalive ping every 30 s, answered within 10 s, so a call on
   * a replica that vanished without closing its connections fails fast instead of
   * waiting out its deadline.
   */
  readonly channelOptions?: ChannelOptions;
}

/** Per-call options. */
export interface GatewayCallOptions {
  /** Aborting cancels the call (the gateway aborts its upstream request); it fails with CANCELLED. */
  readonly signal?: AbortSignal;
  /** Time budget of this call in ms (retries included). Default: the client's `defaultDeadlineMs`. */
  readonly deadlineMs?: number;
  /** Extra request metadata. */
  readonly metadata?: Metadata | Readonly<Record<string, string>>;
  /**
   * The call's `x-request-id`. When unset (or not a plain id of at most 128 characters)
   * the client makes one up, so the id is known before the call starts.
   */
  readonly requestId?: string;
}
