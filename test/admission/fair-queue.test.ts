/**
 * The organisation's wait queue on its own, with injected time: lanes per caller key
 * taking turns, one try at a time, a turn that fails going back to the head of its lane,
 * an aborted call leaving its lane, and wake() letting everyone try before their time.
 */
import { describe, expect, it } from "vitest";
import { FairQueue, type Timers, type Turn, type WaitSignal } from "../../src/admission/fair-queue.js";

class Time implements Timers {
  t = 0;
  private timers: { at: number; fn: () => void }[] = [];
  now = (): number => this.t;
  after = (ms: number, fn: () => void): (() => void) => {
    const timer = { at: this.t + ms, fn };
    this.timers.push(timer);
    return () => (this.timers = this.timers.filter((x) => x !== timer));
  };
  advance(ms: number): void {
    this.t += ms;
    for (const timer of this.timers.filter((x) => x.at <= this.t)) {
      this.timers = this.timers.filter((x) => x !== timer);
      timer.fn();
    }
  }
}

/** An abort that the test fires. */
class Signal implements WaitSignal {
  private listeners: { abort(reason: Error): void }[] = [];
  onAbort(l: { abort(reason: Error): void }): void {
    this.listeners.push(l);
  }
  offAbort(l: { abort(reason: Error): void }): void {
    this.listeners = this.listeners.filter((x) => x !== l);
  }
  abort(): void {
    for (const l of this.listeners.splice(0)) l.abort(new Error("cancelled"));
  }
  get listening(): number {
    return this.listeners.length;
  }
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

describe("the organisation's fair queue", () => {
  it("gives turns round-robin between keys, one at a time, oldest first within a key", async () => {
    const time = new Time();
    const q = new FairQueue(time);
    const order: string[] = [];
    const enter = (key: string, n: number): Promise<void> =>
      q.enter(key, 0, new Signal()).then((turn) => {
        order.push(`${key}${n}`);
        turn.done();
      });
    // Nothing is due before the clock starts: all wait.
    time.t = -1;
    const all = [enter("a", 1), enter("a", 2), enter("a", 3), enter("b", 1), enter("c", 1), enter("b", 2)];
    time.t = 0;
    time.advance(0);
    await Promise.all(all);
    expect(order).toEqual(["a1", "b1", "c1", "a2", "b2", "a3"]);
  });

  it("holds everyone while one tries, and puts a failed try back at the head of its lane until its new time", async () => {
    const time = new Time();
    const q = new FairQueue(time);
    const s = new Signal();
    let first: Turn | undefined;
    void q.enter("a", 0, s).then((t) => (first = t));
    let second = false;
    void q.enter("b", 0, new Signal()).then((t) => {
      second = true;
      t.done();
    });
    await flush();
    expect(first).toBeDefined();
    expect(second).toBe(false); // a tries; b waits for the turn to end
    const again = first!.again(100);
    await flush();
    expect(second).toBe(true); // b was due: its turn came
    let retried = false;
    void again.then((t) => {
      retried = true;
      t.done();
    });
    time.advance(99);
    await flush();
    expect(retried).toBe(false);
    time.advance(1);
    await flush();
    expect(retried).toBe(true);
    expect(q.active).toBe(false);
  });

  it("lets an aborted call leave its lane (rejecting its wait) without holding up the others", async () => {
    const time = new Time();
    const q = new FairQueue(time);
    const leaving = new Signal();
    const gone = q.enter("a", 50, leaving).then(
      () => "turn",
      (err: Error) => err.message,
    );
    const stays = q.enter("b", 50, new Signal()).then((t) => {
      t.done();
      return "turn";
    });
    expect(q.waiting).toBe(2);
    leaving.abort();
    expect(await gone).toBe("cancelled");
    expect(q.waiting).toBe(1);
    expect(leaving.listening).toBe(0);
    time.advance(50);
    expect(await stays).toBe("turn");
  });

  it("wake() makes every lane's head due now: capacity came back before the refill said", async () => {
    const time = new Time();
    const q = new FairQueue(time);
    let served = 0;
    for (const key of ["a", "b"]) {
      void q.enter(key, 60_000, new Signal()).then((t) => {
        served++;
        t.done();
      });
    }
    await flush();
    expect(served).toBe(0);
    q.wake();
    await flush();
    await flush();
    expect(served).toBe(2);
  });
});
