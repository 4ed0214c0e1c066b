/**
 * Buckets in Redis (REDIS_URL), shared by every replica: the same arithmetic as
 * memory-store.ts, run by one Lua script (redis-scripts.ts).
 *
 * Keys: `{<prefix>}:c:<caller key>` and `{<prefix>}:o:<upstream>:<model>`, a hash each
 * holding that caller's (or model's) buckets (redis-scripts.ts). One hash tag for every key, because a reservation
 * touches the caller's buckets and the organisation's buckets of the model in one script,
 * and on Redis Cluster a script may only touch keys of one slot. The trade-off: one shard
 * carries all limit traffic; caller keys could be spread by a tag per key only if
 * organisation admission became a second round trip.
 *
 * Batches: the operations asked for in one event-loop turn (the reservations of every
 * call that arrived in it, and the turn's settlements) go to Redis together, as one
 * script run (setImmediate: after the turn's I/O callbacks). A reservation that finds no
 * batch in flight goes at once, with whatever is queued: Redis is idle, so there is no
 * run to wait for, and its round trip overlaps the rest of the turn instead of following
 * it (≈ 15-30 µs a lone call, measured in the gateway); the calls of a burst behind it
 * batch as before. Settlements (adjust, sync) wait for the next
 * reservation's batch, or SETTLE_WAIT_MS at most: nobody waits for them (the reply was
 * sent), and at low concurrency a settlement otherwise costs its own script run and
 * round trip, which Redis runs just as the next call's reservation arrives. Each operation still runs exactly as if alone, in the
 * order asked, and a reservation still costs its call one round trip; what the batch
 * saves is per command: the client's work (ioredis builds, writes and parses one command
 * instead of dozens), a syscall each way, and Redis' own work per script run and per
 * hash read and written, which under load is most of it. The batch names each bucket
 * once (redis-scripts.ts), so its arguments do not grow with the calls it carries.
 *
 * The client never queues and never hangs: no offline queue (a command while
 * disconnected fails at once), a short command timeout (a batch waits at most one turn
 * before it is sent, then the timeout), no resending of unanswered commands after a
 * reconnect (a late reservation would hold capacity nobody settles; token buckets refill
 * whatever leaks anyway), reconnects with bounded backoff. Failures are rejections of
 * every operation of the batch; fail-mode.ts decides what a call makes of them.
 */
import { Redis } from "ioredis";
import { connectRedis, isClusterNode, loadScript, type RedisClient, type RedisTarget } from "../redis/client.js";
import type { BucketSpec } from "./bucket.js";
import type { BucketOp, LimitStore, ReserveResult, SyncOp } from "./limit-store.js";
import { APPLY } from "./redis-scripts.js";

export interface RedisStoreOptions {
  /** A node (redis:// or rediss://, credentials allowed in the URL; never logged) or a cluster's seeds (redis/client.ts). */
  readonly target: RedisTarget;
  /** `{prefix}` is the hash tag of every key. */
  readonly prefix: string;
  /** Longest wait for one command's reply, ms. */
  readonly commandTimeoutMs: number;
  /** Told when the connection is lost or made (fail-mode.ts turns this into state). */
  readonly onConnection?: (up: boolean) => void;
  /** Told (on each connect) when a single-node target turns out to be a Redis Cluster node (redis/client.ts' isClusterNode). */
  readonly onClusterNode?: () => void;
}

/** Reconnect backoff: 50 ms doubling to 1 s, for ever (the store must come back by itself). */
const MAX_BACKOFF_MS = 1000;

/**
 * A batch's size at most, in numbers each way (a longer queue goes as several commands,
 * in order): bounds how long one script run holds Redis, and stays well inside the
 * 8,000 values Lua's struct.unpack and unpack can put on its stack.
 */
export const MAX_BATCH_NUMBERS = 4000;

/**
 * How long a settlement may wait for a reservation to ride with, ms: the delay before
 * other replicas see a refund (or extra use, or an upstream report) grows by this much
 * at most, and only when no call arrives meanwhile.
 */
export const SETTLE_WAIT_MS = 2;

/** The command defineCommand adds (its Buffer variant: the reply is binary): ioredis types it as an unknown member, so it is declared here. */
interface Scripted {
  aigwApplyBuffer(numKeys: number, ...keysAndArgs: (string | Buffer)[]): Promise<Buffer>;
}

/** The script's operation kinds (redis-scripts.ts). */
const RESERVE = 1;
const ADJUST = 2;
const SYNC = 3;

type Pending =
  | { readonly kind: typeof RESERVE; readonly ops: readonly BucketOp[]; readonly now: number; readonly resolve: (r: ReserveResult) => void; readonly reject: (err: unknown) => void }
  | { readonly kind: typeof ADJUST; readonly ops: readonly BucketOp[]; readonly now: number; readonly resolve: () => void; readonly reject: (err: unknown) => void }
  | { readonly kind: typeof SYNC; readonly ops: readonly SyncOp[]; readonly now: number; readonly resolve: () => void; readonly reject: (err: unknown) => void };

/** Where a bucket lives, worked out once per spec object. */
interface Place {
  /** Its hash: the prefix and the id up to its last `:`. */
  readonly key: string;
  /** Its field in the hash: the name after the id's last `:` (its value: redis-scripts.ts). */
  readonly field: string;
}

export class RedisStore implements LimitStore {
  readonly kind = "redis";
  private readonly redis: RedisClient;
  private readonly scripted: Scripted;
  private readonly keyPrefix: string;
  private readonly places = new WeakMap<BucketSpec, Place>();
  private queue: Pending[] = [];
  /** The queue's size in numbers (see size()). */
  private queued = 0;
  private scheduled = false;
  /** Batches sent and not answered yet: with none, a reservation goes at once (enqueue). */
  private inFlight = 0;
  /** Only settlements are queued: sent when a reservation's batch goes, or when this fires. */
  private settleTimer: NodeJS.Timeout | undefined;
  private readonly flushNow = (): void => this.flush();

  constructor(options: RedisStoreOptions) {
    this.keyPrefix = `{${options.prefix}}:`;
    this.redis = connectRedis(options.target, {
      commandTimeout: options.commandTimeoutMs,
      connectTimeout: Math.max(1000, options.commandTimeoutMs * 10),
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), MAX_BACKOFF_MS),
      connectionName: "aigw-limits",
    });
    // ioredis prints unhandled 'error' events to the console; connection state is reported instead.
    this.redis.on("error", () => {});
    this.redis.on("close", () => options.onConnection?.(false));
    this.redis.defineCommand("aigwApply", { lua: APPLY });
    // defineCommand adds the method at run time (see Scripted).
    this.scripted = this.redis as unknown as Scripted;
    // On every (re)connect, load the script first (on every master of a cluster): EVALSHA then
    // finds it, and the first call does not pay a NOSCRIPT round trip plus compiling the script on a fresh server.
    this.redis.on("ready", () => {
      this.loaded = loadScript(this.redis, APPLY).then(() => options.onConnection?.(true));
      if (options.onClusterNode !== undefined && this.redis instanceof Redis) void isClusterNode(this.redis).then((yes) => yes && options.onClusterNode?.());
    });
  }

  private loaded: Promise<void> | undefined;

  /** Resolves when connected and the script is loaded (or after `ms` regardless): start-up waits a little so the first calls find it. */
  ready(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      timer.unref();
      const connected = (): void => {
        void this.loaded!.then(() => {
          clearTimeout(timer);
          resolve(true);
        });
      };
      if (this.redis.status === "ready" && this.loaded !== undefined) connected();
      else this.redis.once("ready", () => setImmediate(connected));
    });
  }

  reserve(ops: readonly BucketOp[], now: number): Promise<ReserveResult> {
    return new Promise((resolve, reject) => this.enqueue({ kind: RESERVE, ops, now, resolve, reject }, true));
  }

  adjust(ops: readonly BucketOp[], now: number): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.enqueue({ kind: ADJUST, ops, now, resolve, reject }, false));
  }

  sync(reports: readonly SyncOp[], now: number): Promise<void> {
    if (reports.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.enqueue({ kind: SYNC, ops: reports, now, resolve, reject }, false));
  }

  /**
   * A read of a key in the limits' slot, not a PING: on a Redis Cluster a PING goes to any
   * node, and would find the store up while the one master that serves the limits is down.
   */
  async ping(): Promise<void> {
    await this.redis.exists(this.keyPrefix + "probe");
  }

  async close(): Promise<void> {
    // What is queued goes first; quit() waits for replies to what was sent; disconnect() if Redis is not there to answer.
    this.flush();
    if (this.redis.status === "ready") await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  /** `urgent`: a call waits for the answer (a reservation), so the batch goes now if Redis is idle, else after this turn. */
  private enqueue(p: Pending, urgent: boolean): void {
    // A non-finite number is a bug upstream of the store: refused alone, before it could spoil a batch.
    if (!finite(p)) {
      p.reject(new RangeError("the limit store was asked for a non-finite amount"));
      return;
    }
    this.queue.push(p);
    this.queued += size(p);
    if (this.scheduled) return;
    if (urgent && this.inFlight === 0) {
      this.flush();
    } else if (urgent || this.queued > MAX_BATCH_NUMBERS) {
      this.scheduled = true;
      setImmediate(this.flushNow);
    } else {
      this.settleTimer ??= setTimeout(this.flushNow, SETTLE_WAIT_MS);
    }
  }

  /** Sends what the turn queued: one command per MAX_BATCH_NUMBERS, in order. */
  private flush(): void {
    this.scheduled = false;
    if (this.settleTimer !== undefined) {
      clearTimeout(this.settleTimer);
      this.settleTimer = undefined;
    }
    if (this.queue.length === 0) return;
    const queue = this.queue;
    const queued = this.queued;
    this.queue = [];
    this.queued = 0;
    if (queued <= MAX_BATCH_NUMBERS) {
      this.send(queue);
      return;
    }
    let from = 0;
    let numbers = 0;
    for (let i = 0; i < queue.length; i++) {
      const n = size(queue[i]!);
      if (numbers + n > MAX_BATCH_NUMBERS && i > from) {
        this.send(queue.slice(from, i));
        from = i;
        numbers = 0;
      }
      numbers += n;
    }
    this.send(queue.slice(from));
  }

  private send(batch: readonly Pending[]): void {
    const { keys, names, numbers } = this.encode(batch);
    const fail = (err: unknown): void => {
      // Operations already answered keep their answer (a settled promise ignores this).
      for (const p of batch) p.reject(err);
    };
    this.inFlight++;
    this.scripted.aigwApplyBuffer(keys.length, ...keys, numbers, ...names).then(
      (reply) => {
        this.inFlight--;
        try {
          this.deliver(batch, reply);
        } catch (err) {
          fail(err); // a reply shorter than the batch: a script out of step with this code
        }
      },
      (err: unknown) => {
        this.inFlight--;
        fail(err);
      },
    );
  }

  /** The batch as the script's KEYS, its numbers (float64 LE) and the buckets' field names (redis-scripts.ts). */
  private encode(batch: readonly Pending[]): { keys: string[]; names: string[]; numbers: Buffer } {
    const keys: string[] = [];
    const keyIndex = new Map<string, number>();
    /** Per key (by index), its buckets (by index). */
    const bucketsOfKey: number[][] = [];
    const bucketIndex = new Map<string, number>();
    const places: Place[] = [];
    const shared: boolean[] = [];
    const keyOf: number[] = [];
    const specIndex = new Map<BucketSpec, number>();
    const ops: number[] = [];
    const specs: number[] = [];
    const specOf = (spec: BucketSpec): number => {
      let si = specIndex.get(spec);
      if (si !== undefined) return si;
      let b = bucketIndex.get(spec.id);
      if (b === undefined) {
        const place = this.placeOf(spec);
        let k = keyIndex.get(place.key);
        if (k === undefined) {
          keyIndex.set(place.key, (k = keys.length));
          keys.push(place.key);
          bucketsOfKey.push([]);
        }
        bucketIndex.set(spec.id, (b = places.length));
        places.push(place);
        shared.push(spec.shared);
        keyOf.push(k);
        bucketsOfKey[k]!.push(b);
      }
      specIndex.set(spec, (si = specIndex.size + 1));
      specs.push(b + 1, spec.capacity, spec.ratePerMs);
      return si;
    };
    for (const p of batch) {
      ops.push(p.kind, p.now, p.ops.length);
      if (p.kind === SYNC) for (const r of p.ops) ops.push(specOf(r.bucket), r.remaining, r.seqAtAdmission ?? -1);
      else for (const o of p.ops) ops.push(specOf(o.bucket), o.amount);
    }
    // The field names, one hash's side by side (ARGV[2] is the first), and where each run starts.
    const names: string[] = [];
    const ranges: number[] = [];
    const first = new Array<number>(places.length);
    for (const list of bucketsOfKey) {
      ranges.push(names.length + 2);
      for (const b of list) {
        first[b] = names.length + 2;
        names.push(places[b]!.field);
      }
      ranges.push(names.length + 1);
    }
    const numbers = Buffer.allocUnsafe((5 + ops.length + ranges.length + 3 * places.length + specs.length) * 8);
    let at = numbers.writeDoubleLE(batch.length, 0);
    at = numbers.writeDoubleLE(ops.length, at);
    at = numbers.writeDoubleLE(keys.length, at);
    at = numbers.writeDoubleLE(places.length, at);
    at = numbers.writeDoubleLE(specIndex.size, at);
    for (const x of ops) at = numbers.writeDoubleLE(x, at);
    for (const x of ranges) at = numbers.writeDoubleLE(x, at);
    for (let b = 0; b < places.length; b++) {
      at = numbers.writeDoubleLE(keyOf[b]! + 1, at);
      at = numbers.writeDoubleLE(shared[b]! ? 1 : 0, at);
      at = numbers.writeDoubleLE(first[b]!, at);
    }
    for (const x of specs) at = numbers.writeDoubleLE(x, at);
    return { keys, names, numbers };
  }

  private placeOf(spec: BucketSpec): Place {
    let place = this.places.get(spec);
    if (place === undefined) {
      const cut = spec.id.lastIndexOf(":");
      place = { key: this.keyPrefix + spec.id.slice(0, cut), field: spec.id.slice(cut + 1) };
      this.places.set(spec, place);
    }
    return place;
  }

  /** Hands each operation its part of the script's reply (only reservations have one). */
  private deliver(batch: readonly Pending[], reply: Buffer): void {
    let at = 0;
    const next = (): number => {
      const x = reply.readDoubleLE(at);
      at += 8;
      return x;
    };
    for (const p of batch) {
      if (p.kind !== RESERVE) {
        p.resolve();
        continue;
      }
      const n = p.ops.length;
      const levels = new Array<number>(n);
      const capacities = new Array<number>(n);
      if (next() === 1) {
        const seqs = new Array<number>(n);
        for (let i = 0; i < n; i++) {
          const { bucket, amount } = p.ops[i]!;
          levels[i] = next();
          if (bucket.shared) {
            capacities[i] = next();
            seqs[i] = next();
          } else {
            // A caller's bucket counts with its own capacity and keeps no running total.
            capacities[i] = bucket.capacity;
            seqs[i] = amount;
          }
        }
        p.resolve({ ok: true, levels, capacities, seqs });
        continue;
      }
      const index = next() - 1;
      const wait = next();
      for (let i = 0; i < n; i++) {
        levels[i] = next();
        capacities[i] = p.ops[i]!.bucket.shared ? next() : p.ops[i]!.bucket.capacity;
      }
      p.resolve({ ok: false, index, waitMs: wait < 0 ? Infinity : wait, levels, capacities });
    }
  }
}

/**
 * An operation's share of a batch, in numbers, at most: what it sends (3, then 2 or 3 per
 * bucket, and 8 more for a bucket and a hash new to the batch), which is more than its
 * reply takes; and a field name per bucket.
 */
function size(p: Pending): number {
  return 3 + 11 * p.ops.length;
}

/** Whether every number of the operation is finite (JSON has no NaN or Infinity). */
function finite(p: Pending): boolean {
  if (!Number.isFinite(p.now)) return false;
  if (p.kind === SYNC) {
    for (const r of p.ops) if (!Number.isFinite(r.remaining) || (r.seqAtAdmission !== undefined && !Number.isFinite(r.seqAtAdmission))) return false;
  } else {
    for (const o of p.ops) if (!Number.isFinite(o.amount)) return false;
  }
  return true;
}
