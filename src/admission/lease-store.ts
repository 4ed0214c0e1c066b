/**
 * Leases (QUOTA_LEASE_CALLS > 0, with REDIS_URL): each replica takes a few calls' worth of
 * a caller's buckets from Redis ahead of need and admits that caller's next calls from it
 * in memory, so most calls cost no round trip. Exact admission (the default) waits for
 * one Redis round trip per call; on loopback that alone is more than the 0.15 ms a call
 * may add (bench/admission.ts prints it as "the Redis floor").
 *
 * What it keeps and what it gives up:
 * - Never more than the limit: a lease is capacity taken from the shared bucket in Redis,
 *   atomically, like a reservation; calls admitted from it were counted there already.
 * - A replica takes a lease only while the bucket holds at least LEASE_HEADROOM times the
 *   lease after taking it. A key near its limit (or with a small limit: fewer than
 *   LEASE_HEADROOM × QUOTA_LEASE_CALLS calls' worth) is admitted call by call in Redis,
 *   exactly as without leases.
 * - What a lease holds is capacity the other replicas cannot use until it is spent or
 *   given back: a replica may be refused while another holds unused leases, by at most
 *   (replicas − 1) × QUOTA_LEASE_CALLS calls' worth per bucket (× LEASE_MAX_SCALE where
 *   leases grew: see below), and only once the bucket
 *   is under LEASE_HEADROOM times a lease. A lease unused for QUOTA_LEASE_IDLE_MS goes
 *   back, and so does what is left of one that cannot cover a call (in the same script
 *   run as that call's exact reservation, before it).
 * - The `x-ratelimit-remaining-*` a locally admitted call reports is the bucket's level in
 *   Redis as of this replica's last round trip for it (refilled since), plus what the lease
 *   still holds: other replicas' use since then is not in it.
 * - Only calls limited by their caller's own buckets alone use leases. A call that also
 *   counts against the organisation's buckets (ORG_LIMITS) is reserved in Redis whole,
 *   as before: those buckets are shared by every caller and follow the upstream's reports.
 * - Settlement refunds of a leased bucket go back into the lease (up to a full lease; the
 *   rest to Redis), so a steady caller costs Redis one script run per lease, not per call.
 * - With the store down, leases are dropped and every call gets the fail mode
 *   (QUOTA_FAIL_MODE), as without leases: a closed gateway refuses at once.
 *
 * Leases are taken in the background: when a call goes to Redis, and whenever a lease
 * falls under half of a full one, one more reservation (the top-up) rides in the same
 * batch or the next; no call waits for it. A full lease is QUOTA_LEASE_CALLS calls' worth
 * times its scale: 1 at first, doubled (up to LEASE_MAX_SCALE) for each top-up that calls
 * found their lease spent before it came back, that is, when the key has more calls
 * in flight on this replica than its lease covers; back to 1 once the lease is swept for
 * idling. So a replica holds at most LEASE_MAX_SCALE × QUOTA_LEASE_CALLS calls' worth per
 * bucket, and only with the LEASE_HEADROOM above. A call its leases cover is
 * admitted synchronously (reserveNow), and a settlement they absorb whole is applied at
 * once (adjustNow): no promise, turn or batch on its path.
 */
import { refilled, type BucketSpec, type Clock } from "./bucket.js";
import type { AdmissionStore, Admitted, BucketOp, ReserveResult, SyncOp } from "./limit-store.js";

/** A lease is taken only while the bucket keeps this many times the lease after it. */
export const LEASE_HEADROOM = 10;

/** How far a lease grows past QUOTA_LEASE_CALLS calls' worth when calls outrun its top-ups. */
export const LEASE_MAX_SCALE = 16;

export interface LeaseOptions {
  /** Calls' worth one lease holds: QUOTA_LEASE_CALLS (≥ 1). */
  readonly calls: number;
  /** A lease unused this long goes back, ms: QUOTA_LEASE_IDLE_MS. */
  readonly idleMs: number;
  readonly clock: Clock;
  /** Told of each call admitted from a lease (a metric). */
  readonly onLocal?: () => void;
}

/** This replica's hold on one caller bucket. */
interface Lease {
  readonly bucket: BucketSpec;
  /** Capacity taken from Redis and not yet given to a call. */
  held: number;
  /** A full lease: QUOTA_LEASE_CALLS × scale of the last call's amount. */
  full: number;
  /** 1, doubled up to LEASE_MAX_SCALE each time calls outran the top-up (see the top of the file). */
  scale: number;
  /** Calls outran the top-up in flight (the scale grew for it already). */
  outran: boolean;
  /** The bucket's level in Redis (leases excluded) at `at`, from the last reply about it. */
  level: number;
  at: number;
  /** When a call last took from it. */
  used: number;
}

export class LeasedStore implements AdmissionStore {
  private readonly leases = new Map<string, Lease>();
  /** Bucket sets (joined ids) with a top-up in flight: one at a time each. */
  private readonly toppingUp = new Set<string>();
  /** Top-ups on their way (idle() waits for them). */
  private readonly inflight = new Set<Promise<void>>();
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly inner: AdmissionStore,
    private readonly o: LeaseOptions,
  ) {}

  get up(): boolean {
    return this.inner.up;
  }

  reserve(ops: readonly BucketOp[], now: number): Promise<ReserveResult> {
    const local = this.reserveNow(ops, now);
    if (local !== undefined) return Promise.resolve(local);
    if (!this.inner.up) {
      this.leases.clear();
      return this.inner.reserve(ops, now);
    }
    if (!callerOnly(ops)) return this.inner.reserve(ops, now);
    // Not covered: what the leases of these buckets still hold goes back first (the same
    // script run, ahead of the reservation), and the call is reserved exactly.
    const leases = this.leasesOf(ops);
    // Spent before its top-up came back: more calls in flight than a lease covers. Once per top-up, not per call that missed it.
    if (this.toppingUp.has(groupOf(ops))) {
      for (const lease of leases) {
        if (lease.outran) continue;
        lease.outran = true;
        lease.scale = Math.min(lease.scale * 2, LEASE_MAX_SCALE);
      }
    }
    this.giveBack(leases, now);
    const reply = this.inner.reserve(ops, now);
    return reply.then((r) => {
      if (r.ok) {
        this.learn(ops, r, now);
        this.topUp(ops, now);
      }
      return r;
    });
  }

  /**
   * A call the leases cover, admitted at once (no promise: QuotaAdmission then answers
   * synchronously, as on the memory store); undefined when they do not, or the call is
   * not one leases serve, or the store is down: reserve() then does what it does.
   */
  reserveNow(ops: readonly BucketOp[], now: number): ReserveResult | undefined {
    if (!this.inner.up || !callerOnly(ops)) return undefined;
    const local = this.takeLocal(ops, now);
    if (local === undefined) return undefined;
    this.o.onLocal?.();
    this.topUp(ops, now);
    return local;
  }

  /**
   * A settlement the leases absorb whole (each refund fits in its lease, each shortfall
   * comes out of it), applied at once: true. False when any part must go to Redis; then
   * nothing was applied, and adjust() does it all.
   */
  adjustNow(ops: readonly BucketOp[], _now: number): boolean {
    for (const op of ops) {
      const lease = this.leases.get(op.bucket.id);
      if (lease === undefined || lease.held === 0 || leaseShare(lease, op.amount) !== op.amount) return false;
    }
    for (const op of ops) this.leases.get(op.bucket.id)!.held += op.amount;
    return true;
  }

  adjust(ops: readonly BucketOp[], now: number): Promise<void> {
    const rest: BucketOp[] = [];
    for (const op of ops) {
      const lease = this.leases.get(op.bucket.id);
      if (lease === undefined || lease.held === 0) {
        rest.push(op);
        continue;
      }
      const into = leaseShare(lease, op.amount);
      lease.held += into;
      if (op.amount !== into) rest.push({ bucket: op.bucket, amount: op.amount - into });
    }
    return rest.length === 0 ? Promise.resolve() : this.inner.adjust(rest, now);
  }

  sync(reports: readonly SyncOp[], now: number): Promise<void> {
    return this.inner.sync(reports, now);
  }

  /** Gives back every lease unused for QUOTA_LEASE_IDLE_MS at `now` (the sweeper's tick; tests call it with their clock). */
  sweep(now: number): void {
    const idle: Lease[] = [];
    for (const lease of this.leases.values()) if (now - lease.used >= this.o.idleMs) idle.push(lease);
    this.giveBack(idle, now);
    for (const lease of idle) this.leases.delete(lease.bucket.id);
    if (this.leases.size === 0) this.stopSweeper();
  }

  /** What this replica's leases hold now, by bucket id (tests, metrics). */
  held(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [id, lease] of this.leases) if (lease.held > 0) out.set(id, lease.held);
    return out;
  }

  async close(): Promise<void> {
    this.stopSweeper();
    await this.idle();
    // Queued before the store closes: its close sends what is queued first.
    this.giveBack(this.leases.values(), this.o.clock());
    this.leases.clear();
    await this.inner.close();
  }

  /** Admits from the leases when each of the call's buckets holds enough; undefined otherwise (nothing taken). */
  private takeLocal(ops: readonly BucketOp[], now: number): Admitted | undefined {
    const n = ops.length;
    for (let i = 0; i < n; i++) {
      const op = ops[i]!;
      const lease = this.leases.get(op.bucket.id);
      if (lease === undefined || lease.held < op.amount) return undefined;
    }
    const levels = new Array<number>(n);
    const capacities = new Array<number>(n);
    const seqs = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const { bucket, amount } = ops[i]!;
      const lease = this.leases.get(bucket.id)!;
      lease.held -= amount;
      lease.used = now;
      const level = refilled(lease.level, lease.at, now, bucket.capacity, bucket.ratePerMs) + lease.held;
      levels[i] = level > bucket.capacity ? bucket.capacity : level;
      capacities[i] = bucket.capacity;
      // As the stores answer for a caller bucket: no running total (limit-store.ts).
      seqs[i] = amount;
    }
    return { ok: true, levels, capacities, seqs };
  }

  /** Puts back into Redis what `leases` hold, in one adjustment (queued: it goes with the next batch); they hold nothing after. */
  private giveBack(leases: Iterable<Lease>, now: number): void {
    const back: BucketOp[] = [];
    for (const lease of leases) {
      if (lease.held <= 0) continue;
      back.push({ bucket: lease.bucket, amount: lease.held });
      lease.held = 0;
    }
    if (back.length > 0) void this.inner.adjust(back, now);
  }

  /** The leases this replica has of `ops`' buckets. */
  private leasesOf(ops: readonly BucketOp[]): Lease[] {
    const out: Lease[] = [];
    for (const op of ops) {
      const lease = this.leases.get(op.bucket.id);
      if (lease !== undefined) out.push(lease);
    }
    return out;
  }

  /** Remembers the buckets' levels from a reply (leases excluded: Redis' own figure). */
  private learn(ops: readonly BucketOp[], r: Admitted, now: number): void {
    for (let i = 0; i < ops.length; i++) {
      const { bucket } = ops[i]!;
      const lease = this.leases.get(bucket.id);
      if (lease === undefined) this.leases.set(bucket.id, { bucket, held: 0, full: 0, scale: 1, outran: false, level: r.levels[i]!, at: now, used: now });
      else {
        lease.level = r.levels[i]!;
        lease.at = now;
      }
    }
    this.startSweeper();
  }

  /**
   * Tops up to a full lease those of `ops`' buckets whose lease is under half, if each
   * keeps LEASE_HEADROOM times its grant after it; one reservation for all of them (all
   * or none), in the background. (A bucket whose refunds keep its lease full, as a token
   * bucket's do when calls use less than they reserve, is left out: its grant would only
   * push the next refunds past a full lease and back to Redis.)
   */
  private topUp(ops: readonly BucketOp[], now: number): void {
    let grants: BucketOp[] | undefined;
    for (const op of ops) {
      const lease = this.leases.get(op.bucket.id);
      if (lease === undefined) return;
      const full = op.amount * this.o.calls * lease.scale;
      lease.full = full;
      if (lease.held * 2 >= full) continue;
      const grant = full - lease.held;
      const level = refilled(lease.level, lease.at, now, op.bucket.capacity, op.bucket.ratePerMs);
      if (level - grant < LEASE_HEADROOM * grant) return;
      (grants ??= []).push({ bucket: op.bucket, amount: grant });
    }
    if (grants === undefined) return;
    const group = groupOf(ops);
    if (this.toppingUp.has(group)) return;
    this.toppingUp.add(group);
    const p: Promise<void> = this.inner.reserve(grants, now).then(
      (r) => {
        this.toppingUp.delete(group);
        if (!r.ok || !this.inner.up) return; // near the limit after all (other replicas): no lease
        for (let i = 0; i < grants.length; i++) {
          const { bucket, amount } = grants[i]!;
          const lease = this.leases.get(bucket.id);
          if (lease === undefined) {
            // Swept meanwhile: the grant goes straight back.
            void this.inner.adjust([{ bucket, amount }], this.o.clock());
            continue;
          }
          lease.held += amount;
          lease.level = r.levels[i]!;
          lease.at = now;
          lease.outran = false;
        }
      },
      () => void this.toppingUp.delete(group), // the store is down: the fail mode has it; no lease
    );
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** Resolves once the top-ups asked for so far have their answer (tests). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  private startSweeper(): void {
    if (this.sweeper !== undefined) return;
    this.sweeper = setInterval(() => this.sweep(this.o.clock()), Math.max(1, Math.ceil(this.o.idleMs / 2)));
    this.sweeper.unref();
  }

  private stopSweeper(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

/** What of an adjustment of `amount` a lease takes: a refund fills it up to a full one; a shortfall comes out of it while it lasts. */
function leaseShare(lease: Lease, amount: number): number {
  return amount > 0 ? Math.min(amount, Math.max(0, lease.full - lease.held)) : Math.max(amount, -lease.held);
}

/** Whether every bucket of the call is a caller's own (none shared by the organisation). */
function callerOnly(ops: readonly BucketOp[]): boolean {
  if (ops.length === 0) return false;
  for (const op of ops) if (op.bucket.shared) return false;
  return true;
}

function groupOf(ops: readonly BucketOp[]): string {
  let s = "";
  for (const op of ops) s += op.bucket.id + "\u0000";
  return s;
}
