/**
 * One admitted call's hold on its buckets, until settled: then the charge (charges.ts)
 * replaces the reservation, and what the upstream said about the organisation's buckets
 * (its x-ratelimit-* headers) updates their shared levels. The store work runs after
 * the reply is sent, batched with the other settlements of the same event-loop turn
 * (settlement-batch.ts), never on the caller's critical path; the admission tracks it so
 * tests and shutdown can await it (Admission.idle()).
 */
import type { ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import type { ModelPricing } from "../../gen/aigateway/v1/models.js";
import type { CallOutcome, Reservation } from "../core/admission.js";
import type { CallContext } from "../core/provider.js";
import { chargeFor, type Amounts, type Reserve } from "./charges.js";
import { CompletionTally } from "./estimator.js";
import type { BucketOp, SyncOp } from "./limit-store.js";
import type { OrgBucket } from "./org-limits.js";

/** A bucket the call took from, and what it counts. */
export interface Held {
  readonly op: BucketOp;
  readonly counts: keyof Amounts;
  /** Organisation buckets: the running total after this call's reservation (for sync). */
  readonly seq: number | undefined;
  readonly org: OrgBucket | undefined;
}

/** What the reservation needs from the admission that made it. */
export interface Settler {
  /** The upstream's headers as reports on the organisation's buckets of `model` (seqs: this call's, by bucket id). */
  reports(model: string, headers: Readonly<Record<string, string>>, seqs: ReadonlyMap<string, number>): SyncOp[];
  /**
   * Queues reports, then adjustments (the difference between reservation and charge), for
   * the next batch to the store; `done` once they are there.
   */
  queue(model: string, syncs: readonly SyncOp[], ops: readonly BucketOp[], done?: () => void): void;
  settled(key: string, reservedTokens: number, chargedTokens: number): void;
}

export class QuotaReservation implements Reservation {
  readonly limited = true;
  private tally: CompletionTally | undefined;
  private learned = false;
  private done = false;

  constructor(
    private readonly settler: Settler,
    private readonly ctx: CallContext,
    private readonly key: string,
    private readonly model: string,
    private readonly reserve: Reserve,
    private readonly held: readonly Held[],
    private readonly pricing: ModelPricing | undefined,
    /** Learn the organisation's buckets from this call's response (ORG_LIMITS on). */
    private readonly learns: boolean,
  ) {}

  delivered(chunk: ChatCompletionChunk): void {
    (this.tally ??= new CompletionTally()).add(chunk);
    // The headers came with the response's start: learn from them now, not at the stream's end.
    if (this.learns && !this.learned && this.ctx.stats.upstreamRateLimits !== undefined) {
      this.learned = true;
      this.settler.queue(this.model, this.settler.reports(this.model, this.ctx.stats.upstreamRateLimits, this.seqs()), []);
    }
  }

  settle(outcome: CallOutcome): void {
    if (this.done) return;
    this.done = true;
    const charge = chargeFor(outcome, this.reserve, this.tally?.tokens ?? 0, this.pricing);
    const ops: BucketOp[] = [];
    for (const h of this.held) {
      const reserved = this.reserve[h.counts] ?? 0;
      const delta = reserved - (charge[h.counts] ?? 0);
      if (delta !== 0) ops.push({ bucket: h.op.bucket, amount: delta });
    }
    const headers = this.learns && !this.learned ? outcome.upstreamRateLimits : undefined;
    this.learned = true;
    // The upstream's report first: it predates this call's release, which then applies on top.
    const syncs = headers === undefined ? [] : this.settler.reports(this.model, headers, this.seqs());
    // Counted once the store has it (gateway_quota_settlements_total: what tests wait for).
    this.settler.queue(this.model, syncs, ops, () => this.settler.settled(this.key, this.reserve.tokens, charge.tokens));
  }

  private seqs(): Map<string, number> {
    const out = new Map<string, number>();
    for (const h of this.held) if (h.seq !== undefined) out.set(h.op.bucket.id, h.seq);
    return out;
  }
}
