/**
 * The settlements of one event-loop turn, merged and sent to the store together: one
 * sync and one adjust for however many calls ended in that turn (one round trip each,
 * pipelined), instead of a script per call. Under concurrency this halves the store's
 * work per call; a lone call still settles in its own batch, after its reply.
 *
 * Merging keeps the order's meaning: a sync sets a bucket's level outright, so the
 * adjustments queued for that bucket before it are moot and dropped, and those after it
 * add up on top; several syncs of one bucket keep the last.
 */
import type { BucketSpec } from "./bucket.js";
import type { BucketOp, SyncOp } from "./limit-store.js";

export class SettlementBatch {
  private readonly syncs = new Map<string, SyncOp>();
  private readonly adjusts = new Map<string, { bucket: BucketSpec; amount: number }>();
  private readonly done: (() => void)[] = [];
  /** Models whose shared buckets got capacity back (their waiting calls may try now). */
  readonly refunded = new Set<string>();

  add(model: string, syncs: readonly SyncOp[], ops: readonly BucketOp[], done: (() => void) | undefined): void {
    for (const s of syncs) {
      this.syncs.set(s.bucket.id, s);
      this.adjusts.delete(s.bucket.id);
    }
    if (syncs.length > 0) this.refunded.add(model);
    for (const op of ops) {
      if (op.amount === 0) continue;
      const prior = this.adjusts.get(op.bucket.id);
      if (prior === undefined) this.adjusts.set(op.bucket.id, { bucket: op.bucket, amount: op.amount });
      else prior.amount += op.amount;
      if (op.bucket.shared && op.amount > 0) this.refunded.add(model);
    }
    if (done !== undefined) this.done.push(done);
  }

  syncOps(): SyncOp[] {
    return [...this.syncs.values()];
  }

  adjustOps(): BucketOp[] {
    const out: BucketOp[] = [];
    for (const a of this.adjusts.values()) if (a.amount !== 0) out.push(a);
    return out;
  }

  /** Tells every settlement of the batch that it reached the store. */
  finished(): void {
    for (const d of this.done) d();
  }
}
