/**
 * Where the buckets live: this process's memory (memory-store.ts, the default) or Redis
 * (redis-store.ts, REDIS_URL), shared by every replica. Both do the same arithmetic
 * (bucket.ts) and pass the same test suite (test/admission/limit-store.test.ts).
 *
 * Each operation is atomic over all the buckets it names: a reservation checks every
 * bucket a call touches (the caller's and the organisation's) and takes from all of them
 * or from none; in Redis it is one script, one round trip.
 */
import type { BucketSpec } from "./bucket.js";

/** An amount to take from (reserve) or give back to (adjust) one bucket. */
export interface BucketOp {
  readonly bucket: BucketSpec;
  readonly amount: number;
}

export interface Admitted {
  readonly ok: true;
  /** Each bucket's level after the reservation, in the order asked. */
  readonly levels: readonly number[];
  /** Each bucket's capacity as the store used it (a shared bucket's learned one). */
  readonly capacities: readonly number[];
  /** Each bucket's running total of reservations after this one (shared buckets: see sync()). */
  readonly seqs: readonly number[];
}

export interface Refused {
  readonly ok: false;
  /** The bucket that keeps the call out longest (never-fits first), by position. */
  readonly index: number;
  /** Until every bucket has room; Infinity: the cost exceeds a bucket's whole capacity. */
  readonly waitMs: number;
  /** Each bucket's level now (nothing was taken). */
  readonly levels: readonly number[];
  readonly capacities: readonly number[];
}

export type ReserveResult = Admitted | Refused;

/** The upstream reported `remaining` for a shared bucket (whose capacity and rate are `bucket`'s); see sync(). */
export interface SyncOp {
  readonly bucket: BucketSpec;
  readonly remaining: number;
  /** The reporting call's running total at its own reservation; undefined: it was not admitted against this bucket. */
  readonly seqAtAdmission: number | undefined;
}

export interface LimitStore {
  readonly kind: "memory" | "redis";
  /** Takes each op's amount from its bucket if every one fits; otherwise takes nothing. */
  reserve(ops: readonly BucketOp[], now: number): Promise<ReserveResult>;
  /**
   * Gives back (amount > 0: a reservation larger than the use) or takes more (amount < 0:
   * a use larger than the reservation; the level may go below 0, which later calls wait
   * out). Never past capacity.
   */
  adjust(ops: readonly BucketOp[], now: number): Promise<void>;
  /**
   * Lowers shared buckets to the upstream's reports: level := min(level, remaining less
   * the reservations the fleet made after the reporting call's own, its `seqAtAdmission`,
   * which had not reached the upstream yet). A report never raises a level: calls
   * admitted before the reporting one may reach the upstream after it (replicas do not
   * send in admission order), so a report can miss them; capacity comes back by refill
   * and releases. Without a seq (the call was not admitted against the bucket) the
   * report counts as it is.
   */
  sync(reports: readonly SyncOp[], now: number): Promise<void>;
  /** A cheap round trip, to learn whether the store is back (fail-mode recovery). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * What the admission calls: the store behind its breaker (fail-mode.ts), or leases in
 * front of that (lease-store.ts). reserve() throws StoreDown while the store is down;
 * adjust() and sync() never throw (a settlement that cannot be stored is dropped).
 */
export interface AdmissionStore {
  /** Whether the store answers (false: reserve() throws StoreDown at once). */
  readonly up: boolean;
  reserve(ops: readonly BucketOp[], now: number): Promise<ReserveResult>;
  adjust(ops: readonly BucketOp[], now: number): Promise<void>;
  sync(reports: readonly SyncOp[], now: number): Promise<void>;
  /**
   * reserve() answered at once, when the store can (the in-memory store, up): no promise
   * and no turn of the event loop on the call's path. undefined: call reserve().
   */
  reserveNow?(ops: readonly BucketOp[], now: number): ReserveResult | undefined;
  /** adjust() done at once, when the store can (as reserveNow); false: call adjust(). */
  adjustNow?(ops: readonly BucketOp[], now: number): boolean;
  close(): Promise<void>;
}
