/**
 * The caller's standing against its own limits, in headers named like Cerebras' own
 * (`x-ratelimit-limit-requests-minute`, `x-ratelimit-remaining-tokens-day`,
 * `x-ratelimit-reset-tokens-minute`…); the USD budget is `usd-day`. `remaining` is what
 * is left after this call's reservation (rounded down; never below 0), `reset` the
 * seconds until the bucket is full again (a float, as Cerebras sends it). Sent with every
 * admitted call's reply and with a refusal, on both transports.
 */
import { replyHeadersOf, type CallContext } from "../core/provider.js";
import { responseHeaderName } from "../core/response-headers.js";
import { msToFull } from "./bucket.js";
import type { Limit } from "./limits.js";

interface Names {
  readonly limit: string;
  readonly remaining: string;
  readonly reset: string;
  /** The limit's value, as a header value. */
  readonly value: string;
}

const names = new Map<Limit, Names>();

function namesOf(limit: Limit): Names {
  let n = names.get(limit);
  if (n === undefined) {
    const suffix = `${limit.resource}-${limit.window}`;
    // Checked once here, so every call sets them unchecked (ResponseHeaders.setLegal).
    n = {
      limit: responseHeaderName(`x-ratelimit-limit-${suffix}`),
      remaining: responseHeaderName(`x-ratelimit-remaining-${suffix}`),
      reset: responseHeaderName(`x-ratelimit-reset-${suffix}`),
      value: String(limit.limit),
    };
    // Limits are few and live as long as the configuration: a bounded cache.
    if (names.size < 1024) names.set(limit, n);
  }
  return n;
}

/** Sets the three headers of one limit: names checked in namesOf, values made of digits and a point. */
export function setLimitHeaders(ctx: CallContext, limit: Limit, level: number, capacity: number, ratePerMs: number): void {
  const n = namesOf(limit);
  const headers = replyHeadersOf(ctx);
  headers.setLegal(n.limit, n.value);
  headers.setLegal(n.remaining, remaining(limit, level));
  headers.setLegal(n.reset, (msToFull(level, capacity, ratePerMs) / 1000).toFixed(2));
}

function remaining(limit: Limit, level: number): string {
  if (level <= 0) return "0";
  if (limit.resource === "usd") return usd(level);
  // A hair of slack for float refill arithmetic (5/60000 × 12000 is 0.99999…).
  return String(Math.floor(level + 1e-9));
}

/** Dollars rounded down to a millionth of a cent, never in exponent notation. */
export function usd(amount: number): string {
  const text = (Math.floor(amount * 1e8 + 1e-6) / 1e8).toFixed(8);
  return text.replace(/\.?0+$/, "") || "0";
}
