/**
 * Cerebras failures → GatewayError, following the error table in DESIGN.md.
 * Keyed on the upstream `code`, not `type` (Cerebras changed `type` for token quotas).
 */
import { Code, GatewayError, ProviderError, Reason, type FieldViolation } from "../../core/errors.js";
import type { Headers } from "./exchange.js";
import { callerHeaderName, isRateLimitHeader } from "./rate-limits.js";

/** Longest upstream message text passed on to callers. */
const MAX_MESSAGE = 500;

/** `param` values Cerebras uses that are not request fields. */
const NOT_A_FIELD = new Set(["validation_error", "quota", "queue", "api_key"]);

/** "Requests per day limit exceeded" → "day". */
const QUOTA_WINDOW = /\bper (second|minute|hour|day)\b/i;


/** An upstream HTTP response that was not 200. */
export function errorFromResponse(status: number, headers: Headers, bodyText: string): GatewayError {
  const body = parseErrorBody(bodyText);
  const upstreamMessage = truncate(body.message ?? "") || `HTTP ${status}`;
  const metadata: Record<string, string> = { upstreamStatus: String(status) };
  if (body.type) metadata["upstreamType"] = body.type;
  if (body.code) metadata["upstreamCode"] = body.code;
  if (body.param) metadata["upstreamParam"] = body.param;
  const upstreamRequestId = header(headers, "x-request-id") ?? header(headers, "cf-ray");
  if (upstreamRequestId) metadata["upstreamRequestId"] = upstreamRequestId;
  const message = `Cerebras: ${upstreamMessage}`;
  const passOn = rateLimitHeaders(headers);

  if (status === 400 || status === 413 || status === 422) {
    const field = body.param && !NOT_A_FIELD.has(body.param) ? body.param : undefined;
    const violations: FieldViolation[] = field ? [{ field, description: upstreamMessage }] : body.violations;
    return new GatewayError({
      code: Code.INVALID_ARGUMENT,
      reason: Reason.UPSTREAM_INVALID_REQUEST,
      message,
      metadata,
      fieldViolations: violations,
    });
  }
  if (status === 404 && (body.code === "model_not_found" || body.param === "model")) {
    return new GatewayError({ code: Code.NOT_FOUND, reason: Reason.MODEL_NOT_FOUND, message, metadata });
  }
  if (status === 429) {
    const retryDelayMs = retryDelayFromHeaders(headers, body.code, upstreamMessage);
    if (body.code === "queue_exceeded") {
      return new ProviderError({ reason: Reason.UPSTREAM_OVERLOADED, message, metadata, headers: passOn, ...opt(retryDelayMs) });
    }
    const window = QUOTA_WINDOW.exec(upstreamMessage)?.[1]?.toLowerCase();
    if (window) metadata["quotaWindow"] = window;
    return new GatewayError({
      code: Code.RESOURCE_EXHAUSTED,
      reason: Reason.UPSTREAM_QUOTA_EXCEEDED,
      message,
      metadata,
      headers: passOn,
      quotaViolations: [{ subject: `cerebras:${body.code ?? "quota"}`, description: upstreamMessage }],
      ...opt(retryDelayMs),
    });
  }
  if (status === 401 || status === 402 || status === 403) {
    // The caller did nothing wrong: the gateway's own key or account is the problem.
    return new ProviderError({ reason: Reason.UPSTREAM_AUTH_FAILED, message, metadata });
  }
  const retryDelayMs = retryDelayFromHeaders(headers, body.code, upstreamMessage);
  if (status === 408) return new ProviderError({ reason: Reason.UPSTREAM_TIMEOUT, message, metadata, ...opt(retryDelayMs) });
  if (status >= 500) return new ProviderError({ reason: Reason.UPSTREAM_SERVER_ERROR, message, metadata, ...opt(retryDelayMs) });
  // Any other status (a 404 from a wrong base URL, 405, 409…) is the gateway's misconfiguration.
  return new ProviderError({ reason: Reason.UPSTREAM_UNEXPECTED_STATUS, message, metadata });
}

/** A failure of the connection itself (undici error codes, not messages). */
export function errorFromNetwork(err: unknown, afterFirstChunk: boolean): ProviderError {
  const code = errorCode(err) ?? "UNKNOWN";
  const stalled = code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT";
  const what = stalled || code === "UND_ERR_CONNECT_TIMEOUT" ? "timed out" : afterFirstChunk ? "was cut mid-stream" : "failed";
  return new ProviderError({
    reason: stalled ? Reason.UPSTREAM_TIMEOUT : Reason.UPSTREAM_CONNECTION_FAILED,
    message: `the connection to Cerebras ${what} (${code})`,
    metadata: { errorCode: code },
    cause: err,
  });
}

/**
 * Whether `err` is the network's: undici's errors (UND_ERR_*) and the socket's (ECONNRESET…)
 * carry a string code; a bug's TypeError does not.
 */
export function isNetworkError(err: unknown): boolean {
  return err instanceof Error && errorCode(err) !== undefined;
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

interface ParsedErrorBody {
  message: string | undefined;
  type: string | undefined;
  param: string | undefined;
  code: string | undefined;
  violations: FieldViolation[];
}

const EMPTY_BODY = (): ParsedErrorBody => ({ message: undefined, type: undefined, param: undefined, code: undefined, violations: [] });

/** Flat `{message,type,param,code}` first, then `{error:{…}}`, then FastAPI's `{detail:[…]}`. */
export function parseErrorBody(text: string): ParsedErrorBody {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return EMPTY_BODY();
  }
  if (typeof json !== "object" || json === null) return EMPTY_BODY();
  const o = json as Record<string, unknown>;
  const inner = typeof o["error"] === "object" && o["error"] !== null ? (o["error"] as Record<string, unknown>) : o;
  const out: ParsedErrorBody = {
    message: strOrUndefined(inner["message"]),
    type: strOrUndefined(inner["type"]),
    param: strOrUndefined(inner["param"]),
    code: strOrUndefined(inner["code"]),
    violations: [],
  };
  if (Array.isArray(o["detail"])) {
    for (const d of o["detail"]) {
      if (typeof d !== "object" || d === null) continue;
      const loc = (d as { loc?: unknown }).loc;
      const msg = (d as { msg?: unknown }).msg;
      const path = Array.isArray(loc) ? loc.filter((p) => p !== "body").join(".") : "";
      if (path && typeof msg === "string") out.violations.push({ field: path, description: truncate(msg) });
    }
    if (out.message === undefined && out.violations[0]) out.message = `${out.violations[0].field}: ${out.violations[0].description}`;
  }
  return out;
}

/**
 * When the upstream says to come back: `retry-after-ms`, `retry-after` (seconds or an
 * HTTP date), else the `x-ratelimit-reset-*` header matching the exhausted quota.
 */
export function retryDelayFromHeaders(headers: Headers, code?: string, message = ""): number | undefined {
  const ms = Number(header(headers, "retry-after-ms"));
  if (header(headers, "retry-after-ms") !== undefined && Number.isFinite(ms) && ms >= 0) return ms;
  const ra = header(headers, "retry-after");
  if (ra !== undefined) {
    const secs = Number(ra);
    if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
    const date = Date.parse(ra);
    if (Number.isFinite(date)) return Math.max(0, date - Date.now());
  }
  const daily = /\bday\b/i.test(message);
  const candidates =
    code === "token_quota_exceeded"
      ? [daily ? "x-ratelimit-reset-tokens-day" : "x-ratelimit-reset-tokens-minute"]
      : code === "request_quota_exceeded"
        ? [daily ? "x-ratelimit-reset-requests-day" : "x-ratelimit-reset-requests-minute", "x-ratelimit-reset-requests-day"]
        : [];
  for (const name of candidates) {
    const secs = Number(header(headers, name));
    if (header(headers, name) !== undefined && Number.isFinite(secs) && secs >= 0) return Math.ceil(secs * 1000);
  }
  return undefined;
}

/**
 * Headers worth passing on to HTTP callers with a 429: Cerebras' rate-limit headers under
 * their `x-cerebras-ratelimit-*` names (rate-limits.ts), and its retry-after.
 */
function rateLimitHeaders(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    const v = header(headers, name);
    if (v === undefined) continue;
    if (isRateLimitHeader(name)) out[callerHeaderName(name)] = v;
    else if (name === "retry-after") out[name] = v;
  }
  return out;
}

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function strOrUndefined(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

function truncate(s: string): string {
  return s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE)}…` : s;
}

function opt(retryDelayMs: number | undefined): { retryDelayMs?: number } {
  return retryDelayMs === undefined ? {} : { retryDelayMs };
}
