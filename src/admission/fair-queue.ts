/**
 * Calls waiting for the organisation's capacity on one model, fair between caller keys.
 *
 * When the organisation's bucket has no room, a call may wait for the refill instead of
 * being refused (within ORG_QUEUE_MAX_WAIT_MS and its own deadline). Waiting calls queue
 * in one lane per caller key, and the lanes take turns: each time capacity may have
 * freed up, the next lane in rotation whose head is due gets to try once, so a key with
 * a hundred calls waiting gets one try per turn, like a key with one. One try at a time:
 * a refill is offered to one caller, not to a thundering herd. A call arriving while
 * others wait joins the queue (its lane, due at once) rather than jumping it.
 *
 * The queue is this replica's; every replica's queue takes from the same shared buckets.
 */

/** Time and timers, injectable for tests. */
export interface Timers {
  now(): number;
  /** Calls `fn` after `ms`; returns a cancel function. */
  after(ms: number, fn: () => void): () => void;
}

export const REAL_TIMERS: Timers = {
  now: Date.now,
  after: (ms, fn) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
};

/** A waiting call's turn: it tries once, then says how that went. */
export interface Turn {
  /** Admitted, or refused for good: the turn passes on. */
  done(): void;
  /** Still no room: back to the head of its lane until `dueAt`; resolves with the next turn. */
  again(dueAt: number): Promise<Turn>;
}

/** Something that can cancel a wait (the call's abort). */
export interface WaitSignal {
  onAbort(listener: { abort(reason: Error): void }): void;
  offAbort(listener: { abort(reason: Error): void }): void;
}

interface Waiter {
  readonly key: string;
  dueAt: number;
  resolve: (turn: Turn) => void;
  reject: (err: Error) => void;
  readonly signal: WaitSignal;
  readonly listener: { abort(reason: Error): void };
}

export class FairQueue {
  /** key → its waiting calls, oldest first. */
  private readonly lanes = new Map<string, Waiter[]>();
  /** Keys in turn order; `next` is whose turn comes first. */
  private readonly order: string[] = [];
  private next = 0;
  /** The waiter trying now (one at a time). */
  private busy: Waiter | undefined;
  private cancelTimer: (() => void) | undefined;

  constructor(private readonly timers: Timers = REAL_TIMERS) {}

  /** Calls waiting (not counting the one trying now). */
  get waiting(): number {
    let n = 0;
    for (const lane of this.lanes.values()) n += lane.length;
    return n;
  }

  /** Whether anyone waits or tries: a new call then queues instead of trying first. */
  get active(): boolean {
    return this.busy !== undefined || this.waiting > 0;
  }

  /**
   * Capacity may be back before the waits said (a settlement gave some back, the upstream
   * reported more): every lane's head becomes due now, and they take their turns.
   */
  wake(): void {
    const now = this.timers.now();
    for (const lane of this.lanes.values()) if (lane[0] !== undefined && lane[0].dueAt > now) lane[0].dueAt = now;
    this.pump();
  }

  /** Queues a call of `key`, due at `dueAt`; resolves when it is its turn. Rejects when `signal` aborts. */
  enter(key: string, dueAt: number, signal: WaitSignal): Promise<Turn> {
    return new Promise<Turn>((resolve, reject) => {
      const waiter: Waiter = {
        key,
        dueAt,
        resolve,
        reject,
        signal,
        listener: { abort: (reason: Error) => this.leave(waiter, reason) },
      };
      this.lane(key).push(waiter);
      signal.onAbort(waiter.listener);
      this.pump();
    });
  }

  private lane(key: string): Waiter[] {
    let lane = this.lanes.get(key);
    if (lane === undefined) {
      this.lanes.set(key, (lane = []));
      this.order.push(key);
    }
    return lane;
  }

  /** An aborted waiter leaves its lane. */
  private leave(waiter: Waiter, reason: Error): void {
    const lane = this.lanes.get(waiter.key);
    const i = lane?.indexOf(waiter) ?? -1;
    if (lane === undefined || i === -1) return;
    lane.splice(i, 1);
    waiter.signal.offAbort(waiter.listener);
    this.dropIfEmpty(waiter.key);
    waiter.reject(reason);
    this.pump();
  }

  private dropIfEmpty(key: string): void {
    const lane = this.lanes.get(key);
    if (lane === undefined || lane.length > 0 || this.busy?.key === key) return;
    this.lanes.delete(key);
    const i = this.order.indexOf(key);
    this.order.splice(i, 1);
    if (i < this.next) this.next--;
    if (this.next >= this.order.length) this.next = 0;
  }

  /** Gives the turn to the next due waiter in rotation, or sleeps until the earliest is due. */
  private pump(): void {
    if (this.busy !== undefined) return;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    const now = this.timers.now();
    let earliest = Infinity;
    for (let k = 0; k < this.order.length; k++) {
      const i = (this.next + k) % this.order.length;
      const key = this.order[i]!;
      const head = this.lanes.get(key)![0];
      if (head === undefined) continue;
      if (head.dueAt <= now) {
        this.lanes.get(key)!.shift();
        head.signal.offAbort(head.listener);
        this.busy = head;
        this.next = (i + 1) % this.order.length;
        head.resolve(this.turn(head));
        return;
      }
      if (head.dueAt < earliest) earliest = head.dueAt;
    }
    if (earliest !== Infinity) this.cancelTimer = this.timers.after(earliest - now, () => this.pump());
  }

  private turn(waiter: Waiter): Turn {
    let used = false;
    const finish = (): void => {
      if (used) throw new Error("a queue turn was used twice");
      used = true;
      this.busy = undefined;
    };
    return {
      done: () => {
        finish();
        this.dropIfEmpty(waiter.key);
        this.pump();
      },
      again: (dueAt) => {
        finish();
        return new Promise<Turn>((resolve, reject) => {
          waiter.dueAt = dueAt;
          waiter.resolve = resolve;
          waiter.reject = reject;
          this.lane(waiter.key).unshift(waiter);
          waiter.signal.onAbort(waiter.listener);
          this.pump();
        });
      },
    };
  }
}
