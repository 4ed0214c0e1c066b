/**
 * Every failure the HTTP shim reports, in one envelope: OpenAI's
 * `{"error":{"message","type","param","code"}}` (sent flat, as Cerebras does, on the
 * /cerebras routes: respond.ts) with an HTTP status derived from the gateway's error
 * code (the same table the gRPC side uses, DESIGN.md).
 *
 *   INVALID_ARGUMENT 400 · UNAUTHENTICATED 401 · PERMISSION_DENIED 403 · NOT_FOUND 404 ·
 *   RESOURCE_EXHAUSTED 429 · UNAVAILABLE 503 when the upstream is short of capacity
 *   (429 queue_exceeded, or it answered 503) or this gateway is shutting down, else 502
 *   (the upstream failed) ·
 *   DEADLINE_EXCEEDED 504 · CANCELLED 499 (logged only: nobody is left to read it) ·
 *   anything else 500.
 *
 * `code`: for the caller's own problems (400, 404, 429) Cerebras' code when it gave one
 * (`context_length_exceeded`, `model_not_found`, `token_quota_exceeded`: what code written
 * against Cerebras or OpenAI already checks); otherwise the gateway's ErrorInfo reason in
 * lower case (`invalid_request`, `upstream_server_error`, `upstream_auth_failed`,
 * `deadline_exceeded`…), so an upstream `wrong_api_key` about the gateway's own key never
 * reads as the caller's. `param` is the first bad field's dotted path, as the caller's JSON
 * names it (the shim restates the core's proto paths: request-from-json.ts).
 */
import { Code, GatewayError, MAX_VIOLATIONS, Reason } from "../core/errors.js";

export interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** A failure as the shim renders it. */
export interface HttpFailure {
  readonly status: number;
  readonly envelope: ErrorEnvelope;
  readonly headers: Readonly<Record<string, string>>;
  /** For the log line: the gRPC-equivalent code, the reason, and the error itself. */
  readonly code: Code;
  readonly reason: string;
  readonly error: Error;
}

/**
 * A failure of the HTTP exchange itself (route, method, body), found before the core is
 * called. Core failures are GatewayErrors; these never reach the gRPC side.
 */
export class HttpError extends Error {
  override readonly name = "HttpError";

  private constructor(
    readonly status: number,
    /** The envelope's `code`, and in upper case the log line's reason. */
    readonly errorCode: string,
    /** The closest gRPC code, for the log line. */
    readonly code: Code,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }

  static routeNotFound(method: string, path: string): HttpError {
    return new HttpError(404, "route_not_found", Code.NOT_FOUND, `no route for ${method} ${path}; the gateway serves POST /v1/chat/completions, GET /v1/models and GET /v1/models/{id} (also under /cerebras)`);
  }

  static methodNotAllowed(method: string, path: string, allowed: readonly string[]): HttpError {
    return new HttpError(405, "method_not_allowed", Code.INVALID_ARGUMENT, `${method} is not allowed on ${path}; use ${allowed.join(" or ")}`, { allow: allowed.join(", ") });
  }

  /** `connection: close`: the rest of the body is not read, so the socket cannot be reused. */
  static bodyTooLarge(limit: number): HttpError {
    return new HttpError(413, "request_too_large", Code.RESOURCE_EXHAUSTED, `the request body exceeds the gateway's limit of ${limit} bytes (MAX_REQUEST_BYTES)`, { connection: "close" });
  }

  /** `connection: close`: the rest of the body is not waited for. */
  static bodyTimeout(ms: number): HttpError {
    return new HttpError(408, "request_timeout", Code.DEADLINE_EXCEEDED, `the request body did not arrive whole within ${ms / 1000} s (REQUEST_BODY_TIMEOUT_S)`, { connection: "close" });
  }

  static unsupportedEncoding(encoding: string): HttpError {
    return new HttpError(415, "unsupported_content_encoding", Code.INVALID_ARGUMENT, `content-encoding "${encoding}" is not supported; send the JSON body uncompressed`);
  }

  static invalidJson(message: string): HttpError {
    return new HttpError(400, "invalid_json", Code.INVALID_ARGUMENT, message);
  }

  static metricsKeyRequired(): HttpError {
    return new HttpError(401, "metrics_key_required", Code.UNAUTHENTICATED, "this /metrics needs authorization: Bearer <METRICS_KEY>", {
      "www-authenticate": 'Bearer realm="cerebras-gateway-metrics"',
    });
  }
}

/** Anything thrown → what the client gets. Unknown errors become INTERNAL (cause logged, not sent). */
export function failureFrom(err: unknown): HttpFailure {
  if (err instanceof HttpError) {
    return {
      status: err.status,
      envelope: envelope(err.message, err.status, null, err.errorCode),
      headers: err.headers,
      code: err.code,
      reason: err.errorCode.toUpperCase(),
      error: err,
    };
  }
  const e = GatewayError.from(err);
  const status = httpStatus(e);
  const callersProblem = e.code === Code.INVALID_ARGUMENT || e.code === Code.NOT_FOUND || e.code === Code.RESOURCE_EXHAUSTED;
  const code = (callersProblem ? e.metadata["upstreamCode"] : undefined) ?? e.reason.toLowerCase();
  return {
    status,
    envelope: envelope(messageOf(e), status, e.fieldViolations[0]?.field ?? null, code),
    headers: headersOf(e),
    code: e.code,
    reason: e.reason,
    error: e,
  };
}

/** Most violations spelled out in one message. */
const MAX_LISTED = 10;

/**
 * The gRPC side lists every bad field in BadRequest details; the JSON envelope has only
 * the message, so a request with several bad fields gets them all there.
 */
function messageOf(e: GatewayError): string {
  const v = e.fieldViolations;
  if (e.reason !== Reason.INVALID_REQUEST || v.length < 2) return e.message;
  const listed = v.slice(0, MAX_LISTED).map((x) => `${x.field}: ${x.description}`).join("; ");
  const more = e.moreViolations ? ` (and more: checking stops after the first ${MAX_VIOLATIONS} problems)` : v.length > MAX_LISTED ? ` (and ${v.length - MAX_LISTED} more)` : "";
  return `invalid request: ${listed}${more}`;
}

export function httpStatus(e: GatewayError): number {
  switch (e.code) {
    case Code.INVALID_ARGUMENT:
    case Code.FAILED_PRECONDITION:
      return 400;
    case Code.UNAUTHENTICATED:
      return 401;
    case Code.PERMISSION_DENIED:
      return 403;
    case Code.NOT_FOUND:
      return 404;
    case Code.RESOURCE_EXHAUSTED:
      return 429;
    case Code.CANCELLED:
      return 499;
    case Code.DEADLINE_EXCEEDED:
      return 504;
    case Code.UNAVAILABLE:
      // 503: short of capacity (the upstream's, or the gateway's own limit store) or shutting down; 502: the upstream failed.
      return e.reason === Reason.UPSTREAM_OVERLOADED || e.reason === Reason.QUOTA_STORE_UNAVAILABLE || e.reason === Reason.GATEWAY_SHUTTING_DOWN || e.metadata["upstreamStatus"] === "503" ? 503 : 502;
    default:
      return 500;
  }
}

function envelope(message: string, status: number, param: string | null, code: string | null): ErrorEnvelope {
  return { error: { message, type: errorType(status), param, code } };
}

/** OpenAI-style error types, one per status. */
function errorType(status: number): string {
  switch (status) {
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    case 499:
      return "cancelled_error";
    case 502:
      return "upstream_error";
    case 503:
      return "service_unavailable_error";
    case 504:
      return "timeout_error";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

/**
 * The upstream's rate-limit headers (x-ratelimit-*, kept by the provider), plus
 * `retry-after` (whole seconds, rounded up, RFC 9110) and `retry-after-ms` (which the
 * OpenAI and Cerebras SDKs read first) when the gateway knows when to come back, and
 * `x-should-retry: false` when a retry by the client cannot help (shouldNotRetry).
 */
function headersOf(e: GatewayError): Record<string, string> {
  const out: Record<string, string> = { ...e.headers };
  if (e.retryDelayMs !== undefined) {
    const ms = Math.max(0, Math.round(e.retryDelayMs));
    out["retry-after"] = String(Math.ceil(ms / 1000));
    out["retry-after-ms"] = String(ms);
  }
  if (shouldNotRetry(e)) out["x-should-retry"] = "false";
  return out;
}

/** A quota resetting later than this is not worth an SDK's retry: the openai and Cerebras SDKs sleep whatever retry-after says, uncapped. */
const LONGEST_CLIENT_WAIT_MS = 60_000;

/**
 * When the openai and Cerebras SDKs (which honour `x-should-retry` over everything else,
 * and by default retry 429 and 5xx twice) should not retry on top of the gateway: it
 * already retried the upstream or moved between its keys (`attempts` in ErrorInfo), every
 * upstream key was refused, or a 429 resets too late (a daily quota, unknown) for a retry
 * to land in time. A 429 that resets within a minute is left to them: their retry waits
 * for the reset (retry-after-ms), so it is one more attempt at the right time.
 */
export function shouldNotRetry(e: GatewayError): boolean {
  if (e.reason === Reason.UPSTREAM_AUTH_FAILED) return true;
  if (e.code === Code.RESOURCE_EXHAUSTED) return e.retryDelayMs === undefined || e.retryDelayMs > LONGEST_CLIENT_WAIT_MS;
  return e.code === Code.UNAVAILABLE && e.reason.startsWith("UPSTREAM_") && e.metadata["attempts"] !== undefined;
}
