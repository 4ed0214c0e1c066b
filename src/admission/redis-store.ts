/**
 * Buckets in Redis (REDIS_URL), shared by every replica: the same arithmetic as
 * memory-store.ts, run by Lua scripts (redis-scripts.ts), one round trip per operation.
 *
 * Keys: `{<prefix>}:c:<caller key>` and `{<prefix>}:o:<upstream>:<model>`, a hash each
 * holding that caller's (or model's) buckets (redis-scripts.ts). One hash tag for every key, because a reservation
 * touches the caller's buckets and the organisation's buckets of the model in one script,
 * and on Redis Cluster a script may only touch keys of one slot. The trade-off: one shard
 * carries all limit traffic (a few commands per call); caller keys could be spread by a
 * tag per key only if organisation admission became a second round trip.
 *
 * The client never queues and never hangs: no offline queue (a command while
 * disconnected fails at once), a short command timeout, no resending of unanswered
 * commands after a reconnect (a late reservation would hold capacity nobody settles;
 * token buckets refill whatever leaks anyway), reconnects with bounded backoff. Failures
 * are rejections; fail-mode.ts decides what a call makes of them.
 */
import { Redis } from "ioredis";
import type { BucketSpec } from "./bucket.js";
import type { BucketOp, LimitStore, ReserveResult, SyncOp } from "./limit-store.js";
import { ADJUST, RESERVE, SYNC } from "./redis-scripts.js";

export interface RedisStoreOptions {
  /** redis:// or rediss:// (credentials allowed in the URL; never logged). */
  readonly url: string;
  /** `{prefix}` is the hash tag of every key. */
  readonly prefix: string;
  /** Longest wait for one command's reply, ms. */
  readonly commandTimeoutMs: number;
  /** Told when the connection is lost or made (fail-mode.ts turns this into state). */
  readonly onConnection?: (up: boolean) => void;
}

/** Reconnect backoff: 50 ms doubling to 1 s, for ever (the store must come back by itself). */
const MAX_BACKOFF_MS = 1000;

/** The commands defineCommand adds: ioredis types them as unknown members, so they are declared here. */
interface Scripted {
  aigwReserve(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<(string | number)[]>;
  aigwAdjust(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  aigwSync(numKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
}

export class RedisStore implements LimitStore {
  readonly kind = "redis";
  private readonly redis: Redis;
  private readonly scripted: Scripted;
  private readonly keyPrefix: string;

  constructor(options: RedisStoreOptions) {
    this.keyPrefix = `{${options.prefix}}:`;
    this.redis = new Redis(options.url, {
      enableOfflineQueue: false,
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
    this.redis.defineCommand("aigwReserve", { lua: RESERVE });
    this.redis.defineCommand("aigwAdjust", { lua: ADJUST });
    this.redis.defineCommand("aigwSync", { lua: SYNC });
    // defineCommand adds the methods at run time (see Scripted).
    this.scripted = this.redis as unknown as Scripted;
    // On every (re)connect, load the scripts first: EVALSHA then finds them, and the first
    // call does not pay a NOSCRIPT round trip plus compiling the script on a fresh server.
    this.redis.on("ready", () => {
      this.loaded = this.loadScripts().then(() => options.onConnection?.(true));
    });
  }

  private loaded: Promise<void> | undefined;

  private async loadScripts(): Promise<void> {
    await Promise.all([RESERVE, ADJUST, SYNC].map((lua) => this.redis.script("LOAD", lua))).catch(() => undefined);
  }

  /** Resolves when connected and the scripts are loaded (or after `ms` regardless): start-up waits a little so the first calls find it. */
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

  async reserve(ops: readonly BucketOp[], now: number): Promise<ReserveResult> {
    const { keys, args } = this.keysAndArgs(ops.map((op) => [op.bucket, op.amount, op.bucket.shared ? 1 : 0]), now);
    const reply = await this.scripted.aigwReserve(keys.length, ...keys, ...args);
    const n = ops.length;
    const levels = new Array<number>(n);
    const capacities = new Array<number>(n);
    if (Number(reply[0]) === 1) {
      const seqs = new Array<number>(n);
      for (let i = 0; i < n; i++) {
        levels[i] = Number(reply[1 + i * 3]);
        capacities[i] = Number(reply[2 + i * 3]);
        seqs[i] = Number(reply[3 + i * 3]);
      }
      return { ok: true, levels, capacities, seqs };
    }
    for (let i = 0; i < n; i++) {
      levels[i] = Number(reply[3 + i * 2]);
      capacities[i] = Number(reply[4 + i * 2]);
    }
    const wait = Number(reply[2]);
    return { ok: false, index: Number(reply[1]) - 1, waitMs: wait < 0 ? Infinity : wait, levels, capacities };
  }

  async adjust(ops: readonly BucketOp[], now: number): Promise<void> {
    if (ops.length === 0) return;
    const { keys, args } = this.keysAndArgs(ops.map((op) => [op.bucket, op.amount, op.bucket.shared ? 1 : 0]), now);
    await this.scripted.aigwAdjust(keys.length, ...keys, ...args);
  }

  async sync(reports: readonly SyncOp[], now: number): Promise<void> {
    if (reports.length === 0) return;
    const { keys, args } = this.keysAndArgs(reports.map((r) => [r.bucket, r.remaining, r.seqAtAdmission ?? -1]), now);
    await this.scripted.aigwSync(keys.length, ...keys, ...args);
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    // quit() waits for replies to what was sent; disconnect() if Redis is not there to answer.
    if (this.redis.status === "ready") await this.redis.quit().catch(() => this.redis.disconnect());
    else this.redis.disconnect();
  }

  /**
   * The scripts' KEYS (one hash per caller key or model: a bucket id's part before its
   * last `:`) and ARGV (now, count, then per bucket: its hash's index, its name, amount,
   * capacity, rate, and a last argument: the shared flag, or SYNC's seq).
   */
  private keysAndArgs(items: readonly (readonly [BucketSpec, number, number])[], now: number): { keys: string[]; args: (string | number)[] } {
    const keys: string[] = [];
    const args: (string | number)[] = [now, items.length];
    for (const [bucket, amount, last] of items) {
      const cut = bucket.id.lastIndexOf(":");
      const key = this.keyPrefix + bucket.id.slice(0, cut);
      let k = keys.indexOf(key);
      if (k === -1) k = keys.push(key) - 1;
      args.push(k + 1, bucket.id.slice(cut + 1), amount, bucket.capacity, bucket.ratePerMs, last);
    }
    return { keys, args };
  }
}
