/**
 * The limit store behind a breaker: a store that fails or times out (QUOTA_REDIS_TIMEOUT_MS)
 * is marked down, and until it answers again nothing waits on it: reservations fail at
 * once with StoreDown (QUOTA_FAIL_MODE decides what the call makes of that: through
 * unchecked, or UNAVAILABLE), settlements are dropped. A probe (a ping every
 * PROBE_INTERVAL_MS, and at once when the connection is back) marks it up again: it
 * recovers by itself. Each change of state logs one line and is counted.
 *
 * Also where store round trips are timed (gateway_limit_store_duration_seconds).
 */
import type { Logger } from "../log.js";
import type { FailMode } from "./config.js";
import type { AdmissionObserver, StoreOp } from "./events.js";
import type { AdmissionStore, BucketOp, LimitStore, ReserveResult, SyncOp } from "./limit-store.js";
import { MemoryStore } from "./memory-store.js";

/** A reservation could not be checked: the store is down. */
export class StoreDown extends Error {
  override readonly name = "StoreDown";
}

const PROBE_INTERVAL_MS = 500;

export class GuardedStore implements AdmissionStore {
  private isUp = true;
  private probe: NodeJS.Timeout | undefined;
  private probing = false;
  private closed = false;

  /** The store, when it answers synchronously (the memory store: it cannot fail or be slow). */
  private readonly syncStore: MemoryStore | undefined;

  constructor(
    readonly store: LimitStore,
    private readonly mode: FailMode,
    private readonly logger: Logger,
    private readonly observer: AdmissionObserver,
  ) {
    this.syncStore = store instanceof MemoryStore ? store : undefined;
  }

  get up(): boolean {
    return this.isUp;
  }

  /** Throws StoreDown when the store is (or just went) down. */
  async reserve(ops: readonly BucketOp[], now: number): Promise<ReserveResult> {
    if (!this.isUp) throw new StoreDown("the limit store is down");
    return this.timed("reserve", () => this.store.reserve(ops, now), true);
  }

  /**
   * reserve() at once for a store that answers synchronously (the memory store), while
   * up; undefined otherwise (then reserve() says what is wrong).
   */
  reserveNow(ops: readonly BucketOp[], now: number): ReserveResult | undefined {
    const sync = this.syncStore;
    if (sync === undefined || !this.isUp) return undefined;
    const started = performance.now();
    const result = sync.reserveNow(ops, now);
    this.tookNow("reserve", started);
    return result;
  }

  /** adjust() at once, as reserveNow: true when done (or nothing to do). */
  adjustNow(ops: readonly BucketOp[], now: number): boolean {
    const sync = this.syncStore;
    if (sync === undefined || !this.isUp) return false;
    if (ops.length === 0) return true;
    const started = performance.now();
    sync.adjustNow(ops, now);
    this.tookNow("adjust", started);
    return true;
  }

  /** Never throws: a settlement that cannot reach the store is dropped (the bucket refills anyway). */
  async adjust(ops: readonly BucketOp[], now: number): Promise<void> {
    if (!this.isUp || ops.length === 0) return;
    await this.timed("adjust", () => this.store.adjust(ops, now), false);
  }

  async sync(reports: readonly SyncOp[], now: number): Promise<void> {
    if (!this.isUp || reports.length === 0) return;
    await this.timed("sync", () => this.store.sync(reports, now), false);
  }

  /** The store's connection came back (true) or dropped (false): probe now, or go down now. */
  connection(up: boolean): void {
    if (this.closed) return;
    if (up) void this.check();
    else this.down(new Error("the connection to the limit store closed"));
  }

  /** Starts down (the store was not reachable at start-up): one line, and probing. */
  startDown(): void {
    this.down(new Error("not reachable at start-up"));
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.probe);
    await this.store.close();
  }

  private async timed<T>(op: StoreOp, run: () => Promise<T>, rethrow: boolean): Promise<T> {
    const started = performance.now();
    try {
      const result = await run();
      this.observer.storeOp(op, (performance.now() - started) / 1000, false);
      return result;
    } catch (err) {
      this.observer.storeOp(op, (performance.now() - started) / 1000, true);
      this.down(err);
      if (rethrow) throw new StoreDown(`the limit store failed: ${message(err)}`);
      return undefined as T; // adjust/sync: dropped
    }
  }

  /** A synchronous operation's time (timed inline by its caller, not through a closure: every limited call runs two). */
  private tookNow(op: StoreOp, started: number): void {
    this.observer.storeOp(op, (performance.now() - started) / 1000, false);
  }

  private down(err: unknown): void {
    if (!this.isUp || this.closed) return;
    this.isUp = false;
    this.observer.storeState(false);
    this.logger.warn(
      { store: this.store.kind, failMode: this.mode, err: message(err) },
      this.mode === "open" ? "limit store unreachable: calls go through unchecked until it is back (QUOTA_FAIL_MODE=open)" : "limit store unreachable: calls are refused with UNAVAILABLE until it is back (QUOTA_FAIL_MODE=closed)",
    );
    this.probe = setInterval(() => void this.check(), PROBE_INTERVAL_MS);
    this.probe.unref();
  }

  private async check(): Promise<void> {
    if (this.isUp || this.probing || this.closed) return;
    this.probing = true;
    try {
      await this.store.ping();
      if (this.closed || this.isUp) return;
      this.isUp = true;
      clearInterval(this.probe);
      this.probe = undefined;
      this.observer.storeState(true);
      this.logger.info({ store: this.store.kind }, "limit store reachable again: limits are enforced");
    } catch {
      // still down; the next probe tries again
    } finally {
      this.probing = false;
    }
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
