/**
 * The gateway's one error type. Every failure, whatever raised it, becomes a
 * GatewayError before it reaches a transport; each transport has one function that
 * renders it (gRPC status + google.rpc details, or an OpenAI-style JSON error).
 */

/** gRPC status codes (same numbers as google.rpc.Code). The core imports no transport. */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

/** The google.rpc.ErrorInfo domain of every error the gateway returns. */
export const ERROR_DOMAIN = "aigateway.internal";

/**
 * ErrorInfo.reason values. They are part of the public API: clients switch on them,
 * so a value never changes meaning and is never removed.
 */
export const Reason = {
  /** No gateway API key was presented (authorization: Bearer <key>). */
  API_KEY_MISSING: "API_KEY_MISSING",
  /** The presented gateway API key is not one of the gateway's. */
  API_KEY_INVALID: "API_KEY_INVALID",
  /** The request failed the gateway's validation; BadRequest names the fields. */
  INVALID_REQUEST: "INVALID_REQUEST",
  /** Cerebras rejected the request as invalid (400/422). */
  UPSTREAM_INVALID_REQUEST: "UPSTREAM_INVALID_REQUEST",
  /** Cerebras does not know the model (404). */
  MODEL_NOT_FOUND: "MODEL_NOT_FOUND",
  /**
   * The organisation's request or token quota is spent: Cerebras answered 429
   * *_quota_exceeded, or (ErrorInfo metadata `detectedBy: gateway`) the gateway's shared
   * tracking of that quota had no room for the request, so it was not sent.
   */
  UPSTREAM_QUOTA_EXCEEDED: "UPSTREAM_QUOTA_EXCEEDED",
  /**
   * The caller's own quota (the limits of its gateway key: requests, tokens or USD per
   * minute or day) has no room for the request; nothing was sent upstream. QuotaFailure
   * names the key and the limit; RetryInfo says when enough frees up, and is absent when
   * the request can never fit the limit (lower max_completion_tokens).
   */
  CALLER_QUOTA_EXCEEDED: "CALLER_QUOTA_EXCEEDED",
  /** The shared limit store (Redis) cannot be reached and QUOTA_FAIL_MODE=closed: retry soon. */
  QUOTA_STORE_UNAVAILABLE: "QUOTA_STORE_UNAVAILABLE",
  /** Cerebras is short of shared capacity (429 queue_exceeded): retry soon. */
  UPSTREAM_OVERLOADED: "UPSTREAM_OVERLOADED",
  /** Cerebras answered 5xx. */
  UPSTREAM_SERVER_ERROR: "UPSTREAM_SERVER_ERROR",
  /** Cerebras answered a status the gateway does not expect (e.g. 404 on a wrong base URL). */
  UPSTREAM_UNEXPECTED_STATUS: "UPSTREAM_UNEXPECTED_STATUS",
  /** Cerebras did not send the first token, or the next one, in time (408 counts too). */
  UPSTREAM_TIMEOUT: "UPSTREAM_TIMEOUT",
  /** Cerebras refused the gateway's own API key (401/402/403). */
  UPSTREAM_AUTH_FAILED: "UPSTREAM_AUTH_FAILED",
  /** The connection to Cerebras failed or was reset. */
  UPSTREAM_CONNECTION_FAILED: "UPSTREAM_CONNECTION_FAILED",
  /** Cerebras sent something the gateway cannot read. */
  UPSTREAM_BAD_RESPONSE: "UPSTREAM_BAD_RESPONSE",
  /** Cerebras reported an error in the middle of a stream. */
  UPSTREAM_STREAM_ERROR: "UPSTREAM_STREAM_ERROR",
  /** The upstream stream ended before a finish_reason. */
  UPSTREAM_STREAM_TRUNCATED: "UPSTREAM_STREAM_TRUNCATED",
  /** The call's time budget ran out. */
  DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
  /**
   * gRPC: the request (its one message and the end of its stream) did not arrive whole
   * within REQUEST_BODY_TIMEOUT_S of its metadata; the call ends DEADLINE_EXCEEDED. (The
   * HTTP shim's 408 `request_timeout` is the same bound.)
   */
  REQUEST_BODY_TIMEOUT: "REQUEST_BODY_TIMEOUT",
  /**
   * gRPC: a request message over MAX_REQUEST_BYTES (its size as sent, compressed or not,
   * announced by its length prefix), refused at the prefix before any of it is read; the
   * call ends RESOURCE_EXHAUSTED, metadata `setting`, `maxBytes`, `sizeBytes`. (The HTTP
   * shim's 413 `request_too_large` is the same limit on a body.)
   */
  REQUEST_TOO_LARGE: "REQUEST_TOO_LARGE",
  /** The caller went away. */
  CANCELLED: "CANCELLED",
  /** The gateway is at its in-flight call limit (MAX_IN_FLIGHT): retry later. */
  GATEWAY_OVERLOADED: "GATEWAY_OVERLOADED",
  /**
   * This replica is shutting down (SIGTERM): a call it could not finish within
   * SHUTDOWN_GRACE_S, or one that arrived after it stopped taking calls. Retry at once
   * on another replica.
   */
  GATEWAY_SHUTTING_DOWN: "GATEWAY_SHUTTING_DOWN",
  /** A bug in the gateway; the log has the cause under the correlation id. */
  INTERNAL: "INTERNAL",
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/**
 * Most field violations one refusal reports. Checks stop once they have found one more
 * (which says "there are more"), so neither the CPU spent on a refusal nor the size of
 * what it sends grows with the request.
 */
export const MAX_VIOLATIONS = 20;

/** Longest piece of caller-supplied text (a model id, a name, an id) echoed in an error. */
export const MAX_ECHO = 64;

/** `text` cut to `max` characters, saying how much was left out: what errors echo of caller input. */
export function clip(text: string, max = MAX_ECHO): string {
  if (text.length <= max) return text;
  // Never cut a surrogate pair in half (a lone surrogate is not valid UTF-8).
  const end = /[\uD800-\uDBFF]/.test(text.charAt(max - 1)) ? max - 1 : max;
  return `${text.slice(0, end)}…(${text.length - end} more characters)`;
}

/** One google.rpc.BadRequest.FieldViolation: a dotted proto path and why. */
export interface FieldViolation {
  readonly field: string;
  readonly description: string;
}

/** One google.rpc.QuotaFailure.Violation. */
export interface QuotaViolation {
  readonly subject: string;
  readonly description: string;
}

export interface GatewayErrorInit {
  readonly code: Code;
  readonly reason: Reason;
  readonly message: string;
  /** ErrorInfo metadata: lowerCamelCase keys, values safe to show a caller. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** RetryInfo.retry_delay, when the upstream said when to come back. */
  readonly retryDelayMs?: number;
  readonly fieldViolations?: readonly FieldViolation[];
  readonly quotaViolations?: readonly QuotaViolation[];
  /** Extra response headers the HTTP shim should pass on (e.g. rate-limit headers). */
  readonly headers?: Readonly<Record<string, string>>;
  /** fieldViolations are the first MAX_VIOLATIONS of more. */
  readonly moreViolations?: boolean;
  readonly cause?: unknown;
}

export class GatewayError extends Error {
  override readonly name: string = "GatewayError";
  private readonly init: GatewayErrorInit;
  readonly code: Code;
  readonly reason: Reason;
  readonly metadata: Readonly<Record<string, string>>;
  readonly retryDelayMs: number | undefined;
  readonly fieldViolations: readonly FieldViolation[];
  readonly quotaViolations: readonly QuotaViolation[];
  readonly headers: Readonly<Record<string, string>>;
  /** The checks stopped at MAX_VIOLATIONS: fieldViolations are the first ones, not all. */
  readonly moreViolations: boolean;

  constructor(init: GatewayErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.init = init;
    this.code = init.code;
    this.reason = init.reason;
    this.metadata = init.metadata ?? {};
    this.retryDelayMs = init.retryDelayMs;
    this.fieldViolations = init.fieldViolations ?? [];
    this.quotaViolations = init.quotaViolations ?? [];
    this.headers = init.headers ?? {};
    this.moreViolations = init.moreViolations ?? false;
  }

  /** A copy (same class) with more ErrorInfo metadata. */
  withMetadata(extra: Readonly<Record<string, string>>): GatewayError {
    const Ctor = this.constructor as new (init: GatewayErrorInit) => GatewayError;
    return new Ctor({ ...this.init, metadata: { ...this.metadata, ...extra } });
  }

  /** A copy (same class) with these details replaced: the attempt loop's summary of a call that failed on several upstreams. */
  withDetails(patch: Pick<GatewayErrorInit, "metadata" | "retryDelayMs" | "quotaViolations">): GatewayError {
    const Ctor = this.constructor as new (init: GatewayErrorInit) => GatewayError;
    return new Ctor({ ...this.init, ...patch });
  }

  /**
   * Normalises anything thrown into a GatewayError. Unknown errors become INTERNAL with
   * a generic message: their text may hold internals, so it is logged, never sent.
   */
  static from(reason: unknown): GatewayError {
    if (reason instanceof GatewayError) return reason;
    if (isAbortError(reason)) {
      return new GatewayError({ code: Code.CANCELLED, reason: Reason.CANCELLED, message: "the call was cancelled", cause: reason });
    }
    return new GatewayError({
      code: Code.INTERNAL,
      reason: Reason.INTERNAL,
      message: "internal error",
      cause: reason,
    });
  }

  /**
   * A refusal naming the bad fields. Past MAX_VIOLATIONS (checks pass one more to say
   * so), only the first ones are kept and the message says there are more.
   */
  static invalidArgument(violations: readonly FieldViolation[]): GatewayError {
    const moreViolations = violations.length > MAX_VIOLATIONS;
    const kept = moreViolations ? violations.slice(0, MAX_VIOLATIONS) : violations;
    const first = kept[0];
    const summary = first === undefined ? "invalid request" : `invalid request: ${first.field}: ${first.description}`;
    const more = moreViolations ? ` (and more: only the first ${MAX_VIOLATIONS} problems are reported)` : kept.length > 1 ? ` (and ${kept.length - 1} more)` : "";
    return new GatewayError({
      code: Code.INVALID_ARGUMENT,
      reason: Reason.INVALID_REQUEST,
      message: summary + more,
      fieldViolations: kept,
      moreViolations,
    });
  }

  static deadlineExceeded(message = "the call's deadline passed"): GatewayError {
    return new GatewayError({ code: Code.DEADLINE_EXCEEDED, reason: Reason.DEADLINE_EXCEEDED, message });
  }

  /**
   * UNAVAILABLE (so clients retry, elsewhere): how a call still running when the
   * shutdown grace runs out ends, in-band, on both transports. `connection: close` tells
   * an HTTP client not to reuse the connection.
   */
  static shuttingDown(): GatewayError {
    return new GatewayError({
      code: Code.UNAVAILABLE,
      reason: Reason.GATEWAY_SHUTTING_DOWN,
      message: "the gateway is shutting down; retry on another instance",
      headers: { connection: "close" },
    });
  }
}

/**
 * ProviderError is a GatewayError for a transient provider failure: upstream 5xx,
 * shared-capacity 429, connection failures, the gateway's own key refused, unreadable
 * replies, streams cut mid-way. It is always UNAVAILABLE: the caller may retry.
 */
export class ProviderError extends GatewayError {
  override readonly name = "ProviderError";
  constructor(init: Omit<GatewayErrorInit, "code">) {
    super({ ...init, code: Code.UNAVAILABLE });
  }
}

function isAbortError(e: unknown): boolean {
  return e instanceof Error && (e.name === "AbortError" || (e as { code?: unknown }).code === "ABORT_ERR");
}
