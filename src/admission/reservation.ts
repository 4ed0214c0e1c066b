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
import type { CallOutcome, Reservation, Skipped } from "../core/admission.js";
import { GatewayError } from "../core/errors.js";
import type { CallContext } from "../core/provider.js";
import type { UpstreamCandidate } from "../core/upstreams.js";
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
  /** The upstream's headers as reports on the organisation's buckets of `target`'s key and model (seqs: this call's, by bucket id). */
  reports(target: UpstreamCandidate, headers: Readonly<Record<string, string>>, seqs: ReadonlyMap<string, number>): SyncOp[];
  /**
   * Queues reports, then adjustments (the difference between reservation and charge), for
   * the next batch to the store; `done` once they are there. `target`: whose organisation
   * queue may try again once they are in.
   */
  queue(target: UpstreamCandidate | undefined, syncs: readonly SyncOp[], ops: readonly BucketOp[], done?: () => void): void;
  /** Reserves `target`'s organisation buckets for the call (a move): what it now holds, or the refusal. */
  reserveOrg(key: string, target: UpstreamCandidate, reserve: Reserve, ctx: CallContext): Promise<readonly Held[] | GatewayError>;
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
    /** The candidate whose organisation buckets `held` includes (organisation limits on); undefined when none. */
    public upstream: UpstreamCandidate | undefined,
    private readonly reserve: Reserve,
    private held: readonly Held[],
    private readonly pricing: ModelPricing | undefined,
    /** Learn the organisation's buckets from this call's response (ORG_LIMITS on); then moves go through move(). */
    private readonly learns: boolean,
    readonly skipped: readonly Skipped[] = [],
  ) {}

  get tracksUpstream(): boolean {
    return this.learns;
  }

  /**
   * The current candidate's attempt failed: its organisation holds go back whole (the
   * upstream refused the request, so it used nothing; its headers, e.g. a 429's
   * `remaining: 0`, are reported first), and `next`'s are taken.
   */
  async move(next: UpstreamCandidate): Promise<GatewayError | undefined> {
    const from = this.upstream;
    const orgHeld = this.held.filter((h) => h.org !== undefined);
    const headers = this.ctx.stats.upstreamRateLimits;
    const syncs = from !== undefined && headers !== undefined ? this.settler.reports(from, headers, this.seqs()) : [];
    const releases = orgHeld.map((h) => ({ bucket: h.op.bucket, amount: h.op.amount }));
    if (syncs.length > 0 || releases.length > 0) this.settler.queue(from, syncs, releases);
    const callers = this.held.filter((h) => h.org === undefined);
    this.held = callers;
    this.upstream = undefined;
    const taken = await this.settler.reserveOrg(this.key, next, this.reserve, this.ctx);
    if (taken instanceof GatewayError) return taken;
    this.held = [...callers, ...taken];
    this.upstream = next;
    return undefined;
  }

  delivered(chunk: ChatCompletionChunk): void {
    (this.tally ??= new CompletionTally()).add(chunk);
    // The headers came with the response's start: learn from them now, not at the stream's end.
    const target = this.upstream;
    if (this.learns && !this.learned && target !== undefined && this.ctx.stats.upstreamRateLimits !== undefined) {
      this.learned = true;
      this.settler.queue(target, this.settler.reports(target, this.ctx.stats.upstreamRateLimits, this.seqs()), []);
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
    const target = this.upstream;
    const headers = this.learns && !this.learned && target !== undefined ? outcome.upstreamRateLimits : undefined;
    this.learned = true;
    // The upstream's report first: it predates this call's release, which then applies on top.
    const syncs = headers === undefined ? [] : this.settler.reports(target!, headers, this.seqs());
    // Counted once the store has it (gateway_quota_settlements_total: what tests wait for).
    this.settler.queue(target, syncs, ops, () => this.settler.settled(this.key, this.reserve.tokens, charge.tokens));
  }

  private seqs(): Map<string, number> {
    const out = new Map<string, number>();
    for (const h of this.held) if (h.seq !== undefined) out.set(h.op.bucket.id, h.seq);
    return out;
  }
}
