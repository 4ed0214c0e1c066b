/**
 * The errors the admission refuses calls with (DESIGN.md's error table):
 *
 * - the caller's own quota: RESOURCE_EXHAUSTED, CALLER_QUOTA_EXCEEDED, QuotaFailure on
 *   `key:<name>` naming the limit, RetryInfo when enough frees up — none when the request
 *   can never fit (it asks for more than the whole limit: waiting cannot help);
 * - the organisation's quota, as the gateway tracks it: RESOURCE_EXHAUSTED,
 *   UPSTREAM_QUOTA_EXCEEDED (what Cerebras' own 429 maps to) with `detectedBy: gateway`,
 *   QuotaFailure on `org:<upstream>:<model>`, RetryInfo likewise;
 * - the limit store unreachable with QUOTA_FAIL_MODE=closed: UNAVAILABLE,
 *   QUOTA_STORE_UNAVAILABLE, RetryInfo 1 s.
 *
 * Amounts in messages are whole tokens or dollars; key and model names are not secrets.
 */
import { Code, GatewayError, Reason } from "../core/errors.js";
import { usd } from "./caller-headers.js";
import type { Reserve } from "./charges.js";
import type { Limit, Resource } from "./limits.js";

/** How long a caller is told to wait when the store is down. */
const STORE_RETRY_MS = 1000;

function amount(resource: Resource | "requests" | "tokens", n: number): string {
  if (resource === "usd") return `$${usd(Math.max(0, n))}`;
  const whole = Math.max(0, Math.floor(n + 1e-9));
  return `${whole} ${resource === "requests" ? (whole === 1 ? "request" : "requests") : whole === 1 ? "token" : "tokens"}`;
}

function retryIn(waitMs: number): string {
  return waitMs < 1000 ? `${Math.ceil(waitMs)} ms` : `${(waitMs / 1000).toFixed(1)} s`;
}

/** What to change so a request fits a limit it can never fit. */
function advice(resource: Resource | "tokens" | "requests", reserve: Reserve, capacity: number): string {
  const completion = `it reserves ${reserve.promptTokens} prompt tokens (estimated) + ${reserve.completionTokens} completion tokens (${reserve.completionFrom})`;
  if (resource === "tokens") {
    const fits = Math.floor(capacity) - reserve.promptTokens;
    return fits > 0 ? `${completion}: set max_completion_tokens to at most ${fits}` : `${completion}: the prompt alone is larger than the limit`;
  }
  if (resource === "usd") return `${completion}, $${usd(reserve.usd ?? 0)} at the model's prices: set a lower max_completion_tokens`;
  return completion;
}

export function callerRefusal(key: string, limit: Limit, cost: number, level: number, waitMs: number, reserve: Reserve): GatewayError {
  const never = waitMs === Infinity;
  const metadata: Record<string, string> = {
    key,
    limit: limit.name,
    limitValue: String(limit.limit),
    requested: String(limit.resource === "usd" ? usd(cost) : Math.ceil(cost)),
    remaining: limit.resource === "usd" ? usd(Math.max(0, level)) : String(Math.max(0, Math.floor(level + 1e-9))),
  };
  const what = `key "${key}" has a ${limit.name} limit of ${amount(limit.resource, limit.limit)}`;
  const message = never
    ? `${what}, and this request needs ${amount(limit.resource, cost)}, so it can never fit: ${advice(limit.resource, reserve, limit.limit)}`
    : `${what}: this request needs ${amount(limit.resource, cost)} and ${amount(limit.resource, level)} ${limit.resource === "requests" ? "are" : "is"} left; enough frees up in ${retryIn(waitMs)}`;
  return new GatewayError({
    code: Code.RESOURCE_EXHAUSTED,
    reason: Reason.CALLER_QUOTA_EXCEEDED,
    message,
    metadata,
    quotaViolations: [{ subject: `key:${key}`, description: `${limit.name} (${limit.limit}) exceeded${never ? ": the request is larger than the whole limit" : ""}` }],
    ...(never ? {} : { retryDelayMs: Math.ceil(waitMs) }),
  });
}

export interface OrgRefused {
  readonly upstream: string;
  readonly model: string;
  /** `tokens_per_minute`… */
  readonly name: string;
  readonly counts: "requests" | "tokens";
  readonly window: string;
  readonly cost: number;
  readonly level: number;
  readonly capacity: number;
  readonly waitMs: number;
}

export function orgRefusal(r: OrgRefused, reserve: Reserve): GatewayError {
  const never = r.waitMs === Infinity;
  const what = `the organisation's ${r.name} quota for ${r.model} (${amount(r.counts, r.capacity)}, shared by every caller)`;
  const message = never
    ? `${what} can never fit this request (${amount(r.counts, r.cost)}): ${advice(r.counts, reserve, r.capacity)}`
    : `${what} has ${amount(r.counts, r.level)} left and this request needs ${amount(r.counts, r.cost)}; not sent to Cerebras; enough frees up in ${retryIn(r.waitMs)}`;
  return new GatewayError({
    code: Code.RESOURCE_EXHAUSTED,
    reason: Reason.UPSTREAM_QUOTA_EXCEEDED,
    message,
    metadata: { detectedBy: "gateway", upstream: r.upstream, model: r.model, limit: r.name, quotaWindow: r.window, limitValue: String(r.capacity), requested: String(Math.ceil(r.cost)) },
    quotaViolations: [{ subject: `org:${r.upstream}:${r.model}`, description: `${r.name} (${r.capacity}) exceeded` }],
    ...(never ? {} : { retryDelayMs: Math.ceil(r.waitMs) }),
  });
}

export function storeUnavailable(): GatewayError {
  return new GatewayError({
    code: Code.UNAVAILABLE,
    reason: Reason.QUOTA_STORE_UNAVAILABLE,
    message: "the gateway cannot check quotas right now (its limit store is unreachable) and is configured to refuse calls meanwhile (QUOTA_FAIL_MODE=closed)",
    retryDelayMs: STORE_RETRY_MS,
  });
}
