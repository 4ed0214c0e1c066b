/**
 * Cerebras' rate-limit headers, read generically: the family
 * `x-ratelimit-(limit|remaining|reset)-<resource>-<window>` (CEREBRAS_API.md §5.3
 * documents six of them; a third party reports per-minute request ones too, and an
 * uncached-token bucket exists since 2026-07), with `reset` in seconds as a float
 * (`11.38`), not a timestamp. Anything else, or a value that is not a finite number ≥ 0,
 * is ignored.
 */
import type { Window } from "./limits.js";

/** What the upstream said about one of its buckets. */
export interface RateLimitReport {
  /** `tokens_per_minute`, `requests_per_day`, `tokens_uncached_per_minute`… */
  readonly name: string;
  /** What a call takes from it: one request, or its tokens. */
  readonly counts: "requests" | "tokens";
  readonly window: Window;
  readonly limit: number | undefined;
  readonly remaining: number | undefined;
  /** Seconds until the bucket is full again. */
  readonly resetSeconds: number | undefined;
}

const FAMILY = /^x-ratelimit-(limit|remaining|reset)-([a-z][a-z_-]*?)-(second|minute|hour|day)$/;

export function parseRateLimitHeaders(headers: Readonly<Record<string, string>>): RateLimitReport[] {
  const byName = new Map<string, { counts: "requests" | "tokens"; window: Window; limit?: number; remaining?: number; resetSeconds?: number }>();
  for (const header in headers) {
    const m = FAMILY.exec(header);
    if (m === null) continue;
    const [, field, resource, window] = m as unknown as [string, "limit" | "remaining" | "reset", string, Window];
    const counts = resource.includes("token") ? "tokens" : resource.includes("request") ? "requests" : undefined;
    if (counts === undefined) continue;
    const value = Number(headers[header]);
    if (headers[header]!.trim() === "" || !Number.isFinite(value) || value < 0) continue;
    const name = `${resource.replace(/-/g, "_")}_per_${window}`;
    let report = byName.get(name);
    if (report === undefined) byName.set(name, (report = { counts, window }));
    if (field === "limit") report.limit = value;
    else if (field === "remaining") report.remaining = value;
    else report.resetSeconds = value;
  }
  return [...byName].map(([name, r]) => ({ name, counts: r.counts, window: r.window, limit: r.limit, remaining: r.remaining, resetSeconds: r.resetSeconds }));
}
