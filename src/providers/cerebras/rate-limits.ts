/**
 * Cerebras' own rate-limit headers (`x-ratelimit-limit-tokens-minute`, …, CEREBRAS_API.md
 * §5.3) on every response. The gateway keeps them for the organisation's limits
 * (CallStats.upstreamRateLimits, names as sent) and passes them to the caller renamed
 * `x-cerebras-ratelimit-*`, so they never collide with the gateway's own
 * `x-ratelimit-*` headers, which describe the caller's limits: on success, on both
 * transports, and on an upstream 429 too.
 */
import { setResponseHeader, type CallContext } from "../../core/provider.js";
import type { Headers } from "./exchange.js";

const UPSTREAM_PREFIX = "x-ratelimit-";
const CALLER_PREFIX = "x-cerebras-ratelimit-";

/** Upstream name → caller name, for the few names Cerebras sends (bounded: it is a cache, not a log). */
const renamed = new Map<string, string>();
const MAX_NAMES = 64;

/** `x-ratelimit-reset-tokens-minute` → `x-cerebras-ratelimit-reset-tokens-minute`. */
export function callerHeaderName(upstreamName: string): string {
  let name = renamed.get(upstreamName);
  if (name === undefined) {
    name = CALLER_PREFIX + upstreamName.slice(UPSTREAM_PREFIX.length);
    if (renamed.size < MAX_NAMES) renamed.set(upstreamName, name);
  }
  return name;
}

export function isRateLimitHeader(name: string): boolean {
  return name.startsWith(UPSTREAM_PREFIX);
}

/**
 * Notes the rate-limit headers of an upstream response (any status) on the call: kept
 * as sent for the organisation's limits, and added to the caller's reply headers under
 * their `x-cerebras-ratelimit-*` names. Runs when the response starts, before the first
 * chunk of a stream reaches the caller.
 */
export function noteRateLimits(ctx: CallContext, headers: Headers): void {
  let kept: Record<string, string> | undefined;
  for (const name in headers) {
    if (!isRateLimitHeader(name)) continue;
    const raw = headers[name];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (value === undefined) continue;
    (kept ??= {})[name] = value;
    setResponseHeader(ctx, callerHeaderName(name), value);
  }
  if (kept !== undefined) ctx.stats.upstreamRateLimits = kept;
}
