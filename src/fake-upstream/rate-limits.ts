/**
 * The organisation's rate limits as the fake enforces them, per model, the way
 * CEREBRAS_API.md §5.3-5.4 describes Cerebras': token buckets that refill continuously;
 * a request reserves its estimated input plus max_completion_tokens (or the model's
 * maximum when unset) up front and gives back what it did not use when it ends; a
 * request that does not fit gets 429 request_quota_exceeded / token_quota_exceeded with
 * Cerebras' messages; every response carries the x-ratelimit-* headers of the model's
 * buckets (remaining after this request's reservation; reset = seconds until full).
 *
 * Written independently of the gateway's own admission code (src/admission), on purpose:
 * it is the stand-in the gateway's organisation limits are tested against.
 */

export interface FakeRateLimit {
  readonly resource: "requests" | "tokens";
  readonly window: "second" | "minute" | "hour" | "day";
  readonly limit: number;
}

/** model id → its limits. */
export type FakeRateLimits = Readonly<Record<string, readonly FakeRateLimit[]>>;

const WINDOW_SECONDS = { second: 1, minute: 60, hour: 3600, day: 86_400 } as const;

interface Bucket {
  readonly rule: FakeRateLimit;
  /** Units per second. */
  readonly rate: number;
  level: number;
  at: number;
}

export type Decision =
  | { readonly ok: true; readonly headers: Record<string, string>; readonly reservedTokens: number; readonly release: (usedTokens: number) => void }
  | { readonly ok: false; readonly headers: Record<string, string>; readonly code: "request_quota_exceeded" | "token_quota_exceeded"; readonly type: string; readonly message: string };

export class FakeLimiter {
  private readonly buckets = new Map<string, Bucket[]>();
  /** 429s sent for a limit. */
  rejected = 0;

  constructor(
    limits: FakeRateLimits,
    private readonly now: () => number = Date.now,
  ) {
    for (const [model, rules] of Object.entries(limits)) {
      this.buckets.set(
        model,
        rules.map((rule) => ({ rule, rate: rule.limit / WINDOW_SECONDS[rule.window], level: rule.limit, at: now() })),
      );
    }
  }

  limits(model: string): boolean {
    return this.buckets.has(model);
  }

  /** Reserves one request and `tokens` tokens from `model`'s buckets, or refuses with nothing taken. */
  reserve(model: string, tokens: number): Decision {
    const buckets = this.buckets.get(model) ?? [];
    const t = this.now();
    for (const b of buckets) this.refill(b, t);
    const short = buckets.find((b) => (b.rule.resource === "requests" ? 1 : tokens) > b.level);
    if (short !== undefined) {
      this.rejected++;
      const per = short.rule.window;
      return short.rule.resource === "requests"
        ? { ok: false, headers: headers(buckets), code: "request_quota_exceeded", type: "too_many_requests_error", message: `Requests per ${per} limit exceeded - too many requests sent.` }
        : { ok: false, headers: headers(buckets), code: "token_quota_exceeded", type: "too_many_tokens_error", message: `Tokens per ${per} limit exceeded - too many tokens processed.` };
    }
    for (const b of buckets) b.level -= b.rule.resource === "requests" ? 1 : tokens;
    let released = false;
    return {
      ok: true,
      headers: headers(buckets),
      reservedTokens: tokens,
      release: (used) => {
        if (released) return;
        released = true;
        const back = tokens - used;
        const now = this.now();
        for (const b of buckets) {
          if (b.rule.resource !== "tokens") continue;
          this.refill(b, now);
          b.level = Math.min(b.rule.limit, b.level + back);
        }
      },
    };
  }

  private refill(b: Bucket, t: number): void {
    if (t > b.at) b.level = Math.min(b.rule.limit, b.level + ((t - b.at) / 1000) * b.rate);
    b.at = Math.max(b.at, t);
  }
}

function headers(buckets: readonly Bucket[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const b of buckets) {
    const suffix = `${b.rule.resource}-${b.rule.window}`;
    out[`x-ratelimit-limit-${suffix}`] = String(b.rule.limit);
    out[`x-ratelimit-remaining-${suffix}`] = String(Math.max(0, Math.floor(b.level)));
    out[`x-ratelimit-reset-${suffix}`] = ((b.rule.limit - Math.max(0, b.level)) / b.rate).toFixed(2);
  }
  return out;
}
