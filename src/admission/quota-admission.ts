/**
 * The Admission the core calls when anything is limited: the caller's own quota (its
 * key's limits) and the organisation's limits of the model (org-limits.ts), checked and
 * reserved together in one atomic store operation (one Redis round trip), so a call is
 * either admitted against all of them or against none.
 *
 * Refused by the caller's quota: refused at once (the caller's own budget; waiting is
 * its choice). Refused by the organisation's: the next candidate (another upstream key,
 * each an organisation of its own, or a fallback model) is tried; when none has room,
 * the call waits in the first candidate's fair queue (fair-queue.ts) while the wait fits
 * ORG_QUEUE_MAX_WAIT_MS and the caller's deadline, else it is refused. Either way nothing
 * was reserved and nothing is sent upstream.
 *
 * With only caller limits on the in-memory store (one replica, the default), or from a
 * replica's leases (lease-store.ts), admission and settlement run synchronously
 * (AdmissionStore.reserveNow, adjustNow): admit() returns the reservation itself, as the
 * no-op admission does, and a settlement is applied where it is issued. Each promise,
 * turn and batch they skip showed in the profile of a limited call (bench/README.md,
 * "Admission").
 */
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { Model, ModelPricing } from "../../gen/aigateway/v1/models.js";
import { UNLIMITED, type Admission, type Reservation, type Skipped } from "../core/admission.js";
import type { GatewayError } from "../core/errors.js";
import type { CallContext } from "../core/provider.js";
import { DEFAULT_UPSTREAM_KEY, type UpstreamCandidate } from "../core/upstreams.js";
import type { BucketSpec, Clock } from "./bucket.js";
import { setLimitHeaders } from "./caller-headers.js";
import { reserveFor, type Amounts, type Reserve } from "./charges.js";
import type { FailMode } from "./config.js";
import type { AdmissionObserver } from "./events.js";
import { FairQueue, REAL_TIMERS, type Timers, type Turn } from "./fair-queue.js";
import { StoreDown } from "./fail-mode.js";
import type { Admitted, AdmissionStore, BucketOp, Refused, ReserveResult, SyncOp } from "./limit-store.js";
import { WINDOW_MS, type CallerLimitTable, type Limit } from "./limits.js";
import type { OrgBucket, OrgLimitTracker } from "./org-limits.js";
import { callerRefusal, orgRefusal, storeUnavailable } from "./refusals.js";
import { QuotaReservation, type Held, type Settler } from "./reservation.js";
import { SettlementBatch } from "./settlement-batch.js";

/** The caller's name when auth is off. */
export const ANONYMOUS = "anonymous";

/** A wait must leave the call this much of its deadline to be worth it. */
const DEADLINE_MARGIN_MS = 50;

export interface QuotaAdmissionOptions {
  readonly callers: CallerLimitTable;
  /** Undefined: organisation limits are off (ORG_LIMITS unset). Its siblings (forUpstream) track the other keys. */
  readonly org: OrgLimitTracker | undefined;
  /** The guarded store, or leases in front of it (lease-store.ts). */
  readonly store: AdmissionStore;
  readonly failMode: FailMode;
  /** The catalog's prices for a model id (PRICING_OVERRIDES included). */
  readonly pricing: (model: string) => ModelPricing | undefined;
  readonly defaultCompletionTokens: number;
  readonly orgQueueMaxWaitMs: number;
  readonly observer: AdmissionObserver;
  readonly clock?: Clock;
  readonly timers?: Timers;
}

/** One bucket the call is admitted against, and what it takes from it. */
interface Planned {
  readonly op: BucketOp;
  readonly counts: keyof Amounts;
  readonly caller: Limit | undefined;
  readonly org: OrgBucket | undefined;
}

export class QuotaAdmission implements Admission, Settler {
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly queues = new Map<string, FairQueue>();
  private readonly pending = new Set<Promise<void>>();
  /** Settlements of the current turn, sent together after it. */
  private batch: SettlementBatch | undefined;
  private readonly bucketsByKey = new Map<string, readonly BucketSpec[]>();

  constructor(private readonly o: QuotaAdmissionOptions) {
    this.clock = o.clock ?? Date.now;
    this.timers = o.timers ?? { ...REAL_TIMERS, now: this.clock };
  }

  admit(request: ChatCompletionRequest, model: Model | undefined, ctx: CallContext, candidates: readonly UpstreamCandidate[] = [defaultCandidate(request.model)]): Reservation | Promise<Reservation> {
    const key = ctx.stats.keyName ?? ANONYMOUS;
    const callerLimits = this.o.callers.limitsFor(key);
    const learns = this.o.org !== undefined;
    if (callerLimits.length === 0 && !learns) return UNLIMITED;

    const pricing = this.o.pricing(request.model);
    const reserve = reserveFor(request, model, pricing, this.o.defaultCompletionTokens);
    const callers = this.callerPlan(key, reserve, callerLimits);
    const first = candidates[0];
    const firstOrg = first === undefined ? [] : this.orgPlan(first, reserve);
    if (callers.length === 0 && firstOrg.length === 0) {
      // Only a USD limit, and the model has no known price: nothing applies.
      if (!learns) return UNLIMITED;
      // No limits known for this model yet: admitted, and its response teaches us them.
      this.o.observer.admitted(key);
      return new QuotaReservation(this, ctx, key, first, reserve, [], pricing, learns);
    }
    // A request larger than a whole caller limit can never fit: say so without asking the store.
    for (const p of callers) {
      if (p.op.amount > p.op.bucket.capacity) throw this.refuse(key, first, reserve, callers, p, p.op.bucket.capacity, Infinity, ctx);
    }
    if (!learns) {
      // A store that can answer at once (memory, a lease that covers the call): no promise and no turn on the call's path.
      const now = this.o.store.reserveNow?.(opsOf(callers), this.clock());
      if (now !== undefined) return this.callerOnly(key, reserve, callers, now, pricing, ctx);
    }
    return this.reserve(key, reserve, callers, learns ? candidates : [], pricing, learns, ctx);
  }

  /** Calls waiting in the organisation queues now (not counting those trying). */
  get queued(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.waiting;
    return n;
  }

  idle(): Promise<void> {
    return Promise.all([...this.pending]).then(() => undefined);
  }

  async close(): Promise<void> {
    await this.idle();
    await this.o.store.close();
  }

  // Settler: what reservations call back into.

  reports(target: UpstreamCandidate, headers: Readonly<Record<string, string>>, seqs: ReadonlyMap<string, number>): SyncOp[] {
    const org = this.tracker(target.key);
    if (org === undefined) return [];
    return org.learn(target.model, headers).map((r) => ({ bucket: r.bucket.spec, remaining: r.remaining, seqAtAdmission: seqs.get(r.bucket.spec.id) }));
  }

  queue(target: UpstreamCandidate | undefined, syncs: readonly SyncOp[], ops: readonly BucketOp[], done?: () => void): void {
    // Only caller buckets, on a store that adjusts at once (memory, a lease): nothing to batch or to wake.
    if (target === undefined && syncs.length === 0 && this.o.store.adjustNow?.(ops, this.clock()) === true) {
      done?.();
      return;
    }
    let batch = this.batch;
    if (batch === undefined) {
      const b = (batch = this.batch = new SettlementBatch());
      // After the current I/O: the reply is written first, and the turn's other settlements join.
      const p = new Promise<void>((resolve) => setImmediate(resolve))
        .then(() => this.flush(b))
        .catch(() => undefined) // the guarded store never throws here; a bug must not leak a rejection
        .finally(() => this.pending.delete(p));
      this.pending.add(p);
    }
    batch.add(target === undefined ? "" : queueId(target), syncs, ops, done);
  }

  async reserveOrg(key: string, target: UpstreamCandidate, reserve: Reserve, ctx: CallContext): Promise<readonly Held[] | GatewayError> {
    const plan = this.orgPlan(target, reserve);
    if (plan.length === 0) return [];
    let result;
    try {
      result = await this.o.store.reserve(opsOf(plan), this.clock());
    } catch (err) {
      if (!(err instanceof StoreDown)) throw err;
      // The call was admitted already: it goes on unchecked for this key rather than fail now.
      return [];
    }
    if (result.ok) return plan.map((p, i) => ({ op: p.op, counts: p.counts, seq: result.seqs[i], org: p.org }));
    const p = plan[result.index]!;
    return this.refuse(key, target, reserve, plan, p, result.capacities[result.index]!, result.waitMs, ctx, result);
  }

  /** Sends a batch: its reports, then its adjustments (issued together: one connection keeps the order). */
  private async flush(batch: SettlementBatch): Promise<void> {
    if (this.batch === batch) this.batch = undefined;
    const now = this.clock();
    await Promise.all([this.o.store.sync(batch.syncOps(), now), this.o.store.adjust(batch.adjustOps(), now)]);
    batch.finished();
    // Capacity given back to (or reported for) the organisation's buckets: whoever waits may try now.
    for (const id of batch.refunded) this.queues.get(id)?.wake();
  }

  settled(key: string, reservedTokens: number, chargedTokens: number): void {
    this.o.observer.settled(key, reservedTokens, chargedTokens);
  }

  // Admission.

  /** The caller's own buckets, and what the call takes from each. */
  private callerPlan(key: string, reserve: Reserve, callerLimits: readonly Limit[]): Planned[] {
    const out: Planned[] = [];
    const buckets = this.callerBuckets(key, callerLimits);
    for (let i = 0; i < callerLimits.length; i++) {
      const limit = callerLimits[i]!;
      const amount = reserve[limit.resource];
      if (amount === undefined) continue; // a USD limit, for a model without known prices
      out.push({ op: { bucket: buckets[i]!, amount }, counts: limit.resource, caller: limit, org: undefined });
    }
    return out;
  }

  /** `target`'s key's organisation buckets of its model (none known yet: empty). */
  private orgPlan(target: UpstreamCandidate, reserve: Reserve): Planned[] {
    const buckets = this.tracker(target.key)?.bucketsFor(target.model) ?? [];
    return buckets.map((b) => ({ op: { bucket: b.spec, amount: reserve[b.counts] }, counts: b.counts, caller: undefined, org: b }));
  }

  /** The organisation tracker of an upstream key (each key is an organisation of its own). */
  private tracker(upstream: string): OrgLimitTracker | undefined {
    const org = this.o.org;
    return org === undefined || org.upstream === upstream ? org : org.forUpstream(upstream);
  }

  /** A key's buckets, made once per key (keys are the configured ones and `anonymous`: bounded). */
  private callerBuckets(key: string, limits: readonly Limit[]): readonly BucketSpec[] {
    let buckets = this.bucketsByKey.get(key);
    if (buckets === undefined) {
      const id = encodeURIComponent(key);
      buckets = limits.map((l) => ({ id: `c:${id}:${l.name}`, capacity: l.limit, ratePerMs: l.limit / WINDOW_MS[l.window], shared: false }));
      this.bucketsByKey.set(key, buckets);
    }
    return buckets;
  }

  /**
   * Reserves the caller's buckets with the first candidate's organisation buckets that
   * have room (one store round trip when the first has); candidates passed over are
   * the reservation's `skipped`. When none has room, the call takes turns in the first
   * candidate's fair queue, or is refused with the refusal that frees up first.
   */
  private async reserve(key: string, reserve: Reserve, callers: readonly Planned[], candidates: readonly UpstreamCandidate[], pricing: ModelPricing | undefined, learns: boolean, ctx: CallContext): Promise<Reservation> {
    const started = this.clock();
    const head = candidates[0];
    const queueKey = head === undefined ? undefined : queueId(head);
    let turn: Turn | undefined;
    try {
      // Others are waiting for this capacity: take a turn rather than jump the queue.
      if (queueKey !== undefined && this.queues.get(queueKey)?.active === true && this.orgPlan(head!, reserve).length > 0) turn = await this.queueFor(queueKey).enter(key, started, ctx);
      for (;;) {
        const skipped: Skipped[] = [];
        let soonest: { waitMs: number; error: GatewayError } | undefined;
        // Without organisation limits there is one plan: the caller's buckets alone.
        const targets: readonly (UpstreamCandidate | undefined)[] = candidates.length === 0 ? [undefined] : candidates;
        for (const target of targets) {
          const org = target === undefined ? [] : this.orgPlan(target, reserve);
          const plan = org.length === 0 ? callers : [...callers, ...org];
          if (plan.length === 0) {
            this.o.observer.admitted(key);
            return new QuotaReservation(this, ctx, key, target, reserve, [], pricing, learns, skipped);
          }
          let result;
          try {
            result = await this.o.store.reserve(opsOf(plan), this.clock());
          } catch (err) {
            if (!(err instanceof StoreDown)) throw err;
            return this.storeDown(key);
          }
          if (ctx.abortReason !== undefined && !result.ok) throw ctx.abortReason;
          if (result.ok) {
            this.o.observer.admitted(key);
            if (turn !== undefined) this.o.observer.queued(key, this.clock() - started, true);
            return new QuotaReservation(this, ctx, key, target, reserve, hold(plan, result, ctx), pricing, learns, skipped);
          }
          const refused = plan[result.index]!;
          // The caller's own quota (whatever the key): refused now.
          if (refused.caller !== undefined) {
            if (turn !== undefined) this.o.observer.queued(key, this.clock() - started, false);
            throw this.refuse(key, target, reserve, plan, refused, result.capacities[result.index]!, result.waitMs, ctx, result);
          }
          const error = this.refuse(key, target, reserve, plan, refused, result.capacities[result.index]!, result.waitMs, ctx, result, false);
          skipped.push({ candidate: target!, error });
          if (soonest === undefined || result.waitMs < soonest.waitMs) soonest = { waitMs: result.waitMs, error };
        }
        // No candidate's organisation has room: wait for the first one's, or refuse.
        const now = this.clock();
        const wait = soonest!.waitMs;
        if (wait === Infinity || !this.mayWait(started, now, wait, ctx)) {
          if (turn !== undefined) this.o.observer.queued(key, now - started, false);
          this.o.observer.refused(key, `org:${soonest!.error.metadata["limit"] ?? "unknown"}`);
          throw soonest!.error;
        }
        const dueAt = now + wait;
        turn = turn === undefined ? await this.queueFor(queueKey!).enter(key, dueAt, ctx) : await turn.again(dueAt);
      }
    } finally {
      turn?.done();
      if (queueKey !== undefined) {
        const queue = this.queues.get(queueKey);
        if (queue !== undefined && !queue.active) this.queues.delete(queueKey);
      }
    }
  }

  /** The store's answer for a call only its caller's buckets limit: its reservation, or its refusal (thrown). */
  private callerOnly(key: string, reserve: Reserve, plan: readonly Planned[], result: ReserveResult, pricing: ModelPricing | undefined, ctx: CallContext): Reservation {
    if (!result.ok) throw this.refuse(key, undefined, reserve, plan, plan[result.index]!, result.capacities[result.index]!, result.waitMs, ctx, result);
    this.o.observer.admitted(key);
    return new QuotaReservation(this, ctx, key, undefined, reserve, hold(plan, result, ctx), pricing, false);
  }

  /** Whether waiting `waitMs` more stays within ORG_QUEUE_MAX_WAIT_MS of the first try and before the deadline. */
  private mayWait(started: number, now: number, waitMs: number, ctx: CallContext): boolean {
    const until = now + waitMs;
    return until - started <= this.o.orgQueueMaxWaitMs && until + DEADLINE_MARGIN_MS < ctx.deadline;
  }

  private queueFor(model: string): FairQueue {
    let q = this.queues.get(model);
    if (q === undefined) this.queues.set(model, (q = new FairQueue(this.timers)));
    return q;
  }

  private storeDown(key: string): Reservation {
    if (this.o.failMode === "open") {
      this.o.observer.unchecked(key);
      return UNLIMITED;
    }
    this.o.observer.refused(key, "store_unavailable");
    throw storeUnavailable();
  }

  /**
   * The refusal for `p` (a caller limit, or `target`'s organisation bucket). `counted`:
   * whether it counts as the call's refusal now (an organisation refusal may be followed
   * by another candidate that has room, so it is counted only when the call is refused).
   */
  private refuse(key: string, target: UpstreamCandidate | undefined, reserve: Reserve, plan: readonly Planned[], p: Planned, capacity: number, waitMs: number, ctx: CallContext, result?: Refused, counted = true): GatewayError {
    const level = result?.levels[plan.indexOf(p)] ?? capacity;
    // The caller learns where it stands on every limit, refused or not.
    if (result !== undefined) {
      plan.forEach((q, i) => {
        if (q.caller !== undefined) setLimitHeaders(ctx, q.caller, result.levels[i]!, result.capacities[i]!, q.op.bucket.ratePerMs);
      });
    }
    if (p.caller !== undefined) {
      this.o.observer.refused(key, p.caller.name);
      return callerRefusal(key, p.caller, p.op.amount, level, waitMs, reserve);
    }
    const org = p.org!;
    if (counted) this.o.observer.refused(key, `org:${org.name}`);
    return orgRefusal({ upstream: target?.key ?? DEFAULT_UPSTREAM_KEY, model: target?.model ?? "", name: org.name, counts: org.counts, window: org.window, cost: p.op.amount, level, capacity, waitMs }, reserve);
  }
}

/**
 * What an admitted call holds (seqs for the organisation's buckets), after telling its
 * caller where it stands. Loops, not forEach/map: every limited call runs this, and a
 * closure made per call costs its allocation and a lazy-compile stub on each first call.
 */
function hold(plan: readonly Planned[], result: Admitted, ctx: CallContext): Held[] {
  const held = new Array<Held>(plan.length);
  for (let i = 0; i < plan.length; i++) {
    const p = plan[i]!;
    if (p.caller !== undefined) setLimitHeaders(ctx, p.caller, result.levels[i]!, result.capacities[i]!, p.op.bucket.ratePerMs);
    held[i] = { op: p.op, counts: p.counts, seq: p.org !== undefined ? result.seqs[i] : undefined, org: p.org };
  }
  return held;
}

/** The plan's bucket operations, in order. */
function opsOf(plan: readonly Planned[]): BucketOp[] {
  const ops = new Array<BucketOp>(plan.length);
  for (let i = 0; i < plan.length; i++) ops[i] = plan[i]!.op;
  return ops;
}

/** The candidate a call without a route goes to: the key `default`, the requested model. */
function defaultCandidate(model: string): UpstreamCandidate {
  return { key: DEFAULT_UPSTREAM_KEY, model, fallback: 0, requested: model, standing: "ready" };
}

/** A fair queue per upstream key and model: each key's organisation has its own capacity. */
function queueId(target: UpstreamCandidate): string {
  return `${target.key}\u0000${target.model}`;
}
