/**
 * Upstream key state in Redis (REDIS_URL), shared by every replica: one hash per key,
 * `{<prefix>}:k:<name>`, changed by one Lua script (the rules of key-state.ts
 * applyChange, atomically), which also publishes the key's name on
 * `{<prefix>}:upstream-keys` when it changed something. Every replica subscribes: on a
 * message it reads that key's hash into its local copy, so a cooldown or a revocation
 * one replica learns reaches the others within a round trip, and no call ever waits on
 * Redis (the pool reads its local copy). After a (re)connect every watched key is read
 * again, so a message lost while disconnected is caught up.
 *
 * Fields: `q:<model>` cooldown until (epoch ms); `r` revoked status, `ra` since when;
 * `f` connection failures in a row, `b` backoff until. The hash expires when its last
 * cooldown or backoff is a minute over (a revoked key's after 7 days), so a Redis holds
 * only keys with something to say.
 *
 * Like the limit store's client: no offline queue, a short command timeout, no resending
 * after a reconnect; a store that cannot be reached leaves each replica with its own view.
 */
import { connectRedis, type ConnectionOptions, type RedisClient, type RedisTarget } from "../redis/client.js";
import type { Logger } from "../log.js";
import { BACKOFF_BASE_MS, BACKOFF_MAX_MS, CLEAN, FORGET_FAILURES_MS, MAX_COOLDOWNS, type Applied, type KeyChange, type KeyState, type KeyStateStore } from "./key-state.js";

export interface RedisKeyStateOptions {
  /** A node or a cluster's seeds (redis/client.ts). */
  readonly target: RedisTarget;
  /** `{prefix}` is the hash tag of every key (QUOTA_REDIS_PREFIX, shared with the limit store). */
  readonly prefix: string;
  readonly commandTimeoutMs: number;
  readonly logger?: Logger;
}

/** ARGV: now, op, arg, until, channel, name, backoff base, backoff max, max cooldowns, forget-failures ms. */
const APPLY = `
local h = KEYS[1]
local now = tonumber(ARGV[1])
local op = ARGV[2]
local changed = 0
local function num(x) return string.format('%.17g', x) end
-- Spent cooldowns and long-forgotten failures go first, as applyChange does.
local all = redis.call('HGETALL', h)
local live = {}
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'q:' then
    if tonumber(all[i + 1]) <= now then redis.call('HDEL', h, all[i]) else live[#live + 1] = all[i] end
  end
end
local b = tonumber(redis.call('HGET', h, 'b') or '0')
if tonumber(redis.call('HGET', h, 'f') or '0') > 0 and b + tonumber(ARGV[10]) <= now then redis.call('HDEL', h, 'f', 'b') end
if op == 'cooldown' then
  local f = 'q:' .. ARGV[3]
  local u = tonumber(ARGV[4])
  local prior = tonumber(redis.call('HGET', h, f) or '0')
  if u > prior and u > now then
    if prior == 0 then live[#live + 1] = f end
    redis.call('HSET', h, f, num(u))
    changed = 1
    if #live > tonumber(ARGV[9]) then
      local first, at = nil, math.huge
      for _, k in ipairs(live) do
        local v = tonumber(redis.call('HGET', h, k))
        if v < at then first, at = k, v end
      end
      redis.call('HDEL', h, first)
    end
  end
elseif op == 'revoke' then
  if redis.call('HSETNX', h, 'r', ARGV[3]) == 1 then
    redis.call('HSET', h, 'ra', num(now))
    changed = 1
  end
elseif op == 'restore' then
  if redis.call('HEXISTS', h, 'r') == 1 or tonumber(redis.call('HGET', h, 'f') or '0') > 0 then changed = 1 end
  redis.call('HDEL', h, 'r', 'ra', 'f', 'b')
elseif op == 'connection-failed' then
  local f = redis.call('HINCRBY', h, 'f', 1)
  local ms = tonumber(ARGV[7]) * 2 ^ (f - 1)
  if ms > tonumber(ARGV[8]) then ms = tonumber(ARGV[8]) end
  redis.call('HSET', h, 'b', num(now + ms))
  changed = 1
elseif op == 'connected' then
  if tonumber(redis.call('HGET', h, 'f') or '0') > 0 then changed = 1 end
  redis.call('HDEL', h, 'f', 'b')
end
local out = redis.call('HGETALL', h)
if redis.call('HEXISTS', h, 'r') == 1 then
  redis.call('PEXPIRE', h, 604800000)
elseif #out > 0 then
  local last = now
  for i = 1, #out, 2 do
    local k = out[i]
    if string.sub(k, 1, 2) == 'q:' or k == 'b' then
      local v = tonumber(out[i + 1])
      if v > last then last = v end
    end
  end
  redis.call('PEXPIRE', h, math.ceil(last - now) + tonumber(ARGV[10]))
end
if changed == 1 then redis.call('PUBLISH', ARGV[5], ARGV[6]) end
return {changed, out}
`;

interface Scripted {
  /** numberOfKeys is fixed (1): the key first, then ARGV. */
  aigwKeyState(...keysAndArgs: (string | number)[]): Promise<[number, string[]]>;
}

type Listener = (key: string, state: KeyState) => void;

export class RedisKeyStateStore implements KeyStateStore {
  readonly kind = "redis";
  private readonly redis: RedisClient;
  private readonly sub: RedisClient;
  private readonly scripted: Scripted;
  private readonly keyPrefix: string;
  private readonly channel: string;
  private readonly listeners: { readonly keys: ReadonlySet<string>; readonly listener: Listener }[] = [];
  private readonly watched = new Set<string>();
  private reachable = true;
  private closed = false;

  constructor(private readonly o: RedisKeyStateOptions) {
    this.keyPrefix = `{${o.prefix}}:k:`;
    this.channel = `{${o.prefix}}:upstream-keys`;
    const options: ConnectionOptions = {
      commandTimeout: o.commandTimeoutMs,
      connectTimeout: Math.max(1000, o.commandTimeoutMs * 10),
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 5), 1000),
    };
    this.redis = connectRedis(o.target, { ...options, connectionName: "aigw-keys" });
    this.sub = connectRedis(o.target, { ...options, connectionName: "aigw-keys-sub", autoResubscribe: false, commandTimeout: undefined });
    // Connection state is reported as lines (below), not as ioredis' console output.
    this.redis.on("error", () => {});
    this.sub.on("error", () => {});
    this.redis.defineCommand("aigwKeyState", { numberOfKeys: 1, lua: APPLY });
    // defineCommand adds the method at run time.
    this.scripted = this.redis as unknown as Scripted;
    this.sub.on("ready", () => void this.resubscribe());
    this.sub.on("message", (channel: string, name: string) => {
      if (channel === this.channel && this.watched.has(name)) void this.refresh(name);
    });
  }

  /** Resolves when both connections are up (or after `ms` regardless). */
  ready(ms: number): Promise<boolean> {
    const up = (r: RedisClient): Promise<void> => (r.status === "ready" ? Promise.resolve() : new Promise((resolve) => r.once("ready", () => resolve())));
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      timer.unref();
      void Promise.all([up(this.redis), up(this.sub)]).then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  async apply(key: string, change: KeyChange, now: number): Promise<Applied | undefined> {
    const [arg, until] = change.kind === "cooldown" ? [change.model, change.until] : change.kind === "revoke" ? [String(change.status), 0] : ["", 0];
    try {
      const [changed, fields] = await this.scripted.aigwKeyState(
        this.keyPrefix + encodeURIComponent(key),
        now,
        change.kind,
        arg,
        until,
        this.channel,
        key,
        BACKOFF_BASE_MS,
        BACKOFF_MAX_MS,
        MAX_COOLDOWNS,
        FORGET_FAILURES_MS,
      );
      this.up();
      return { changed: Number(changed) === 1, state: parseState(fields, now) };
    } catch (err) {
      this.down(err);
      return undefined;
    }
  }

  async read(key: string, now: number): Promise<KeyState | undefined> {
    try {
      const fields = await this.redis.hgetall(this.keyPrefix + encodeURIComponent(key));
      this.up();
      return parseState(Object.entries(fields).flat(), now);
    } catch (err) {
      this.down(err);
      return undefined;
    }
  }

  watch(keys: readonly string[], listener: Listener): void {
    for (const k of keys) this.watched.add(k);
    this.listeners.push({ keys: new Set(keys), listener });
    if (this.sub.status === "ready") for (const k of keys) void this.refresh(k);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.length = 0;
    for (const r of [this.redis, this.sub]) {
      if (r.status === "ready") await r.quit().catch(() => r.disconnect());
      else r.disconnect();
    }
  }

  private async resubscribe(): Promise<void> {
    try {
      await this.sub.subscribe(this.channel);
    } catch (err) {
      this.down(err);
      return;
    }
    // Whatever changed while this replica was not listening.
    for (const k of this.watched) void this.refresh(k);
  }

  private async refresh(key: string): Promise<void> {
    const state = await this.read(key, Date.now());
    if (state === undefined || this.closed) return;
    for (const l of this.listeners) if (l.keys.has(key)) l.listener(key, state);
  }

  private up(): void {
    if (this.reachable) return;
    this.reachable = true;
    this.o.logger?.info({ store: "redis" }, "upstream key state store reachable again: replicas share cooldowns and revocations");
  }

  private down(err: unknown): void {
    if (!this.reachable || this.closed) return;
    this.reachable = false;
    this.o.logger?.warn({ store: "redis", err: err instanceof Error ? err.message : String(err) }, "upstream key state store unreachable: each replica keeps its own view of the upstream keys until it is back");
  }
}

/** A hash's fields (flat [field, value, …]) as a KeyState; spent cooldowns left out. */
function parseState(fields: readonly string[], now: number): KeyState {
  if (fields.length === 0) return CLEAN;
  const cooldowns = new Map<string, number>();
  let status: number | undefined;
  let at = 0;
  let failures = 0;
  let backoffUntil = 0;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!;
    const value = Number(fields[i + 1]);
    if (!Number.isFinite(value)) continue;
    if (name.startsWith("q:")) {
      if (value > now) cooldowns.set(name.slice(2), value);
    } else if (name === "r") status = value;
    else if (name === "ra") at = value;
    else if (name === "f") failures = value;
    else if (name === "b") backoffUntil = value;
  }
  return { cooldowns, revoked: status === undefined ? undefined : { status, at }, failures, backoffUntil };
}
