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
  headers.setLegal(n.reset, toFixed2(msToFull(level, capacity, ratePerMs) / 1000));
}

function remaining(limit: Limit, level: number): string {
  if (level <= 0) return "0";
  if (limit.resource === "usd") return usd(level);
  // A hair of slack for float refill arithmetic (5/60000 × 12000 is 0.99999…).
  return integerText(Math.floor(level + 1e-9));
}

// Every reply renders four to five of each of these, so they take V8's fast paths; the
// output is String's and toFixed's to the character (test/admission/caller-headers.test.ts).

/**
 * `String(n)` for an integer `n` ≥ 0. Past 2^31 V8 formats a number with its shortest
 * round-trip algorithm (≈ 0.2-0.4 µs); below it, as an integer (≈ 0.05 µs): so a
 * large count is written as two halves below 10^9.
 */
export function integerText(n: number): string {
  if (n < 2147483648 || !(n < 9007199254740992)) return String(n);
  let high = Math.floor(n / 1e9);
  let low = n - high * 1e9; // exact: both are integers below 2^53
  // n / 1e9 is rounded, and may land on the next integer.
  if (low < 0) {
    high--;
    low += 1e9;
  }
  return `${high}${String(low).padStart(9, "0")}`;
}

/**
 * `x.toFixed(2)` for x ≥ 0 (≈ 0.15 µs in V8; this, ≈ 0.02). `x * 100` is within 2^-22 of
 * the exact product below 2^31, so rounding it to an integer gives toFixed's digits
 * unless it is that close to a half, where toFixed itself decides.
 */
export function toFixed2(x: number): string {
  const y = x * 100;
  if (!(y >= 0 && y < 2147483648)) return x.toFixed(2);
  const fraction = y - Math.floor(y);
  if (fraction > 0.499999 && fraction < 0.500001) return x.toFixed(2);
  const n = Math.round(y);
  const whole = Math.floor(n / 100);
  const cents = n - whole * 100;
  return `${whole}.${cents < 10 ? "0" : ""}${cents}`;
}

/** Dollars rounded down to a millionth of a cent, never in exponent notation. */
export function usd(amount: number): string {
  const text = (Math.floor(amount * 1e8 + 1e-6) / 1e8).toFixed(8);
  return text.replace(/\.?0+$/, "") || "0";
}
