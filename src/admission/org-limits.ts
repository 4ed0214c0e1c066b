/**
 * The organisation's limits per model, as the gateway knows them: learned from the
 * `x-ratelimit-*` headers of Cerebras' responses (rate-limit-headers.ts), and configured
 * (ORG_LIMITS) for buckets the headers do not report. Headers win over configuration
 * for a bucket they report.
 *
 * State is keyed by upstream + model: each upstream key (CEREBRAS_API_KEY's is `default`)
 * is an organisation of its own, with its own tracker (forUpstream). The levels live in the LimitStore
 * (shared buckets, so every replica admits against the same figures); this tracker only
 * knows which buckets exist and their capacity, and a replica learns them from its own
 * first response for a model (or from the configuration).
 */
import { DEFAULT_UPSTREAM_KEY } from "../core/upstreams.js";
import type { BucketSpec } from "./bucket.js";
import { WINDOW_MS, type Limit, type OrgLimitConfig, type Window } from "./limits.js";
import { parseRateLimitHeaders } from "./rate-limit-headers.js";

/** CEREBRAS_API_KEY's organisation. */
export const DEFAULT_UPSTREAM = DEFAULT_UPSTREAM_KEY;

/** Upstream keys tracked at most (the pool's own bound). */
const MAX_UPSTREAMS = 64;

export interface OrgBucket {
  /** `tokens_per_minute`… */
  readonly name: string;
  readonly counts: "requests" | "tokens";
  readonly window: Window;
  readonly spec: BucketSpec;
}

/** An upstream report to apply to a bucket's level. */
export interface OrgReport {
  readonly bucket: OrgBucket;
  readonly remaining: number;
}

/** Models whose buckets are learned from headers at most (a caller cannot mint model ids to grow this). */
const MAX_LEARNED_MODELS = 64;

export class OrgLimitTracker {
  /** model → bucket name → learned bucket. */
  private readonly learned = new Map<string, Map<string, OrgBucket>>();
  private readonly cache = new Map<string, readonly OrgBucket[]>();
  /** The other upstream keys' trackers, made on first use (shared by every sibling). */
  private readonly siblings: Map<string, OrgLimitTracker>;

  constructor(
    private readonly config: OrgLimitConfig,
    readonly upstream: string = DEFAULT_UPSTREAM,
    siblings?: Map<string, OrgLimitTracker>,
  ) {
    this.siblings = siblings ?? new Map([[upstream, this]]);
  }

  /** The tracker of another upstream key's organisation: the same configuration, its own learned buckets. */
  forUpstream(upstream: string): OrgLimitTracker | undefined {
    let t = this.siblings.get(upstream);
    if (t === undefined && this.siblings.size < MAX_UPSTREAMS) this.siblings.set(upstream, (t = new OrgLimitTracker(this.config, upstream, this.siblings)));
    return t;
  }

  /** The buckets a call to `model` is admitted against (empty until learned or configured). */
  bucketsFor(model: string): readonly OrgBucket[] {
    let buckets = this.cache.get(model);
    if (buckets === undefined) {
      buckets = this.build(model);
      if (this.cache.size < MAX_LEARNED_MODELS * 2) this.cache.set(model, buckets);
    }
    return buckets;
  }

  /**
   * Learns from a response's rate-limit headers (names as Cerebras sent them); returns
   * the reports to apply to the buckets' levels.
   */
  learn(model: string, headers: Readonly<Record<string, string>>): OrgReport[] {
    const out: OrgReport[] = [];
    for (const r of parseRateLimitHeaders(headers)) {
      let bucket = this.learned.get(model)?.get(r.name);
      if (r.limit !== undefined && r.limit > 0 && bucket?.spec.capacity !== r.limit) {
        bucket = this.remember(model, r.name, r.counts, r.window, r.limit);
      }
      bucket ??= this.bucketsFor(model).find((b) => b.name === r.name);
      if (bucket !== undefined && r.remaining !== undefined) out.push({ bucket, remaining: r.remaining });
    }
    return out;
  }

  private remember(model: string, name: string, counts: "requests" | "tokens", window: Window, limit: number): OrgBucket | undefined {
    let buckets = this.learned.get(model);
    if (buckets === undefined) {
      if (this.learned.size >= MAX_LEARNED_MODELS) return undefined;
      this.learned.set(model, (buckets = new Map()));
    }
    const bucket = this.bucket(model, name, counts, window, limit);
    buckets.set(name, bucket);
    this.cache.delete(model);
    return bucket;
  }

  private build(model: string): readonly OrgBucket[] {
    const learned = this.learned.get(model);
    const out: OrgBucket[] = learned === undefined ? [] : [...learned.values()];
    const configured: readonly Limit[] = this.config.configured.get(model) ?? this.config.configured.get("*") ?? [];
    for (const limit of configured) {
      if (learned?.has(limit.name) === true) continue;
      out.push(this.bucket(model, limit.name, limit.resource === "tokens" ? "tokens" : "requests", limit.window, limit.limit));
    }
    return out;
  }

  private bucket(model: string, name: string, counts: "requests" | "tokens", window: Window, limit: number): OrgBucket {
    return {
      name,
      counts,
      window,
      spec: { id: `o:${encodeURIComponent(this.upstream)}:${encodeURIComponent(model)}:${name}`, capacity: limit, ratePerMs: limit / WINDOW_MS[window], shared: true },
    };
  }
}
