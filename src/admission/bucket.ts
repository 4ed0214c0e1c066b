/**
 * The window arithmetic: every limit is a token bucket, as Cerebras' own limiter is
 * ("the buckets refill continuously", CEREBRAS_API.md §5.4). A limit of L per window W is
 * a bucket of capacity L that refills at L/W per millisecond; a call takes its cost out
 * if the whole cost fits, else waits for (cost − level)/rate. A full bucket needs no
 * state, so stored buckets expire once they would be full again.
 *
 * Error bound: over any span T, a bucket lets through at most L + L·T/W (a full bucket,
 * then the refill): never more than L in a burst, at most 2L in any span of one window,
 * and L per window on average. A fixed window would allow the same 2L, but within a few
 * seconds around the window's edge.
 *
 * Time is an injected clock (epoch ms) so tests move it instead of sleeping; the memory
 * store and the Redis scripts do the same arithmetic (redis-scripts.ts mirrors this file).
 */

/** Epoch milliseconds now. */
export type Clock = () => number;

export const systemClock: Clock = Date.now;

/** A stored bucket lives this much longer than it takes to fill up (clock skew between replicas). */
export const EXPIRY_MARGIN_MS = 1000;

/** One bucket, as the stores see it. */
export interface BucketSpec {
  /** Unique within the gateway's keys, e.g. `c:billing:tokens_per_minute`; the store adds its prefix. */
  readonly id: string;
  readonly capacity: number;
  /** Refill per millisecond: capacity / window. */
  readonly ratePerMs: number;
  /**
   * An organisation bucket: its capacity and rate are learned from the upstream by any
   * replica and stored with it; the stored ones win over these (which are this replica's
   * own knowledge, used when the bucket has no state).
   */
  readonly shared: boolean;
}

/** The level at `now` of a bucket that held `level` at `at`, refilled (never past capacity; time never runs backwards). */
export function refilled(level: number, at: number, now: number, capacity: number, ratePerMs: number): number {
  const l = now > at ? level + (now - at) * ratePerMs : level;
  return l > capacity ? capacity : l;
}

/** How long until `cost` fits: 0 if it does now, Infinity if it never can (more than the whole capacity). */
export function waitFor(cost: number, level: number, capacity: number, ratePerMs: number): number {
  if (cost > capacity) return Infinity;
  return cost > level ? (cost - level) / ratePerMs : 0;
}

/** Milliseconds until the bucket is full again. */
export function msToFull(level: number, capacity: number, ratePerMs: number): number {
  return level >= capacity ? 0 : (capacity - level) / ratePerMs;
}

/** How long to keep a bucket's state: until it is full again, plus a margin. */
export function expiryMs(level: number, capacity: number, ratePerMs: number): number {
  return Math.ceil(msToFull(level, capacity, ratePerMs)) + EXPIRY_MARGIN_MS;
}
