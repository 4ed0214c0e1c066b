/**
 * Buckets in this process's memory: the default, for one replica with nothing to
 * install. The same arithmetic and the same answers as the Redis scripts (tested by one
 * suite against both). A bucket's state is dropped once it would be full again, as Redis
 * expires it, so memory holds only buckets in use.
 */
import { expiryMs, refilled, waitFor } from "./bucket.js";
import type { BucketOp, LimitStore, ReserveResult, SyncOp } from "./limit-store.js";

interface State {
  level: number;
  /** When `level` was measured (epoch ms, never moved backwards). */
  at: number;
  /** Shared buckets: the learned capacity and rate. */
  capacity: number;
  ratePerMs: number;
  /** Running total of reservations (shared buckets' sync). */
  seq: number;
  /** Dropped at this time (it is full by then). */
  expiresAt: number;
}

/** Sweep expired states after this many writes (bounded memory without a timer). */
const SWEEP_EVERY = 1024;

export class MemoryStore implements LimitStore {
  readonly kind = "memory";
  private readonly states = new Map<string, State>();
  private writes = 0;

  async reserve(ops: readonly BucketOp[], now: number): Promise<ReserveResult> {
    return this.reserveNow(ops, now);
  }

  /** reserve(), synchronously. */
  reserveNow(ops: readonly BucketOp[], now: number): ReserveResult {
    const n = ops.length;
    const levels = new Array<number>(n);
    const capacities = new Array<number>(n);
    let refusedAt = -1;
    let wait = 0;
    for (let i = 0; i < n; i++) {
      const { bucket, amount } = ops[i]!;
      const s = this.live(bucket.id, now);
      const capacity = bucket.shared && s !== undefined ? s.capacity : bucket.capacity;
      const rate = bucket.shared && s !== undefined ? s.ratePerMs : bucket.ratePerMs;
      const level = s === undefined ? capacity : refilled(s.level, s.at, now, capacity, rate);
      levels[i] = level;
      capacities[i] = capacity;
      const w = waitFor(amount, level, capacity, rate);
      if (w > wait) {
        wait = w;
        refusedAt = i;
      }
    }
    if (refusedAt !== -1) return { ok: false, index: refusedAt, waitMs: wait, levels, capacities };
    const seqs = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const { bucket, amount } = ops[i]!;
      const prior = this.live(bucket.id, now);
      const rate = bucket.shared && prior !== undefined ? prior.ratePerMs : bucket.ratePerMs;
      const level = levels[i]! - amount;
      levels[i] = level;
      seqs[i] = (prior?.seq ?? 0) + amount;
      this.write(bucket.id, prior, level, Math.max(now, prior?.at ?? now), capacities[i]!, rate, seqs[i]!, now + expiryMs(level, capacities[i]!, rate));
    }
    return { ok: true, levels, capacities, seqs };
  }

  async adjust(ops: readonly BucketOp[], now: number): Promise<void> {
    this.adjustNow(ops, now);
  }

  /** adjust(), synchronously. */
  adjustNow(ops: readonly BucketOp[], now: number): void {
    for (const { bucket, amount } of ops) {
      const s = this.live(bucket.id, now);
      if (s === undefined && amount >= 0) continue; // already full
      const capacity = bucket.shared && s !== undefined ? s.capacity : bucket.capacity;
      const rate = bucket.shared && s !== undefined ? s.ratePerMs : bucket.ratePerMs;
      const before = s === undefined ? capacity : refilled(s.level, s.at, now, capacity, rate);
      const level = Math.min(capacity, before + amount);
      this.write(bucket.id, s, level, Math.max(now, s?.at ?? now), capacity, rate, s?.seq ?? 0, now + expiryMs(level, capacity, rate));
    }
  }

  async sync(reports: readonly SyncOp[], now: number): Promise<void> {
    for (const { bucket, remaining, seqAtAdmission } of reports) {
      const s = this.live(bucket.id, now);
      const seq = s?.seq ?? 0;
      const since = seqAtAdmission !== undefined && seq > seqAtAdmission ? seq - seqAtAdmission : 0;
      const current = s === undefined ? bucket.capacity : refilled(s.level, s.at, now, bucket.capacity, bucket.ratePerMs);
      const level = Math.min(current, remaining - since);
      this.write(bucket.id, s, level, Math.max(now, s?.at ?? now), bucket.capacity, bucket.ratePerMs, seq, now + expiryMs(level, bucket.capacity, bucket.ratePerMs));
    }
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    this.states.clear();
  }

  /** Buckets with state (tests: memory stays bounded). */
  get size(): number {
    return this.states.size;
  }

  private live(id: string, now: number): State | undefined {
    const s = this.states.get(id);
    if (s !== undefined && now >= s.expiresAt) {
      this.states.delete(id);
      return undefined;
    }
    return s;
  }

  /**
   * Stores a bucket's new state: into its live State object when it has one (`live`, from
   * this.live(id)), so a call allocates nothing here that outlives it (a new object per
   * write lived until the next, long enough to reach V8's old generation at load).
   */
  private write(id: string, live: State | undefined, level: number, at: number, capacity: number, ratePerMs: number, seq: number, expiresAt: number): void {
    if (live !== undefined) {
      live.level = level;
      live.at = at;
      live.capacity = capacity;
      live.ratePerMs = ratePerMs;
      live.seq = seq;
      live.expiresAt = expiresAt;
    } else {
      this.states.set(id, { level, at, capacity, ratePerMs, seq, expiresAt });
    }
    if (++this.writes % SWEEP_EVERY === 0) {
      const now = at;
      for (const [key, s] of this.states) if (now >= s.expiresAt) this.states.delete(key);
    }
  }
}
