/**
 * What every replica must agree on about each upstream key: the models whose quota it has
 * spent (a 429 said until when), whether Cerebras refused it (401/402/403), and whether
 * its connections fail (backoff). It lives in a KeyStateStore: this process's memory
 * (memory-key-state.ts, the default) or Redis (redis-key-state.ts, REDIS_URL), where a
 * change made by one replica reaches the others at once (pub/sub).
 *
 * The state only changes on failures (and on the first success after one), never on the
 * path of a call that goes well: replicas read their local copy, kept in step by the store.
 * Times are epoch ms from the caller's clock (injected in tests), as in the limit store.
 */

/** One key's shared state. A key with no state is CLEAN. */
export interface KeyState {
  /** model → epoch ms until which the key's quota for that model is spent. */
  readonly cooldowns: ReadonlyMap<string, number>;
  /** Refused by Cerebras: the status (401, 402, 403) and since when. Undefined: in rotation. */
  readonly revoked: { readonly status: number; readonly at: number } | undefined;
  /** Connection failures in a row (0 after a success). */
  readonly failures: number;
  /** Until then, the key is tried only when no other can serve (epoch ms; 0: none). */
  readonly backoffUntil: number;
}

export const CLEAN: KeyState = Object.freeze({ cooldowns: new Map<string, number>(), revoked: undefined, failures: 0, backoffUntil: 0 });

export type KeyChange =
  /** A quota 429 for `model`: spent until `until` (a later cooldown never shortens an earlier one). */
  | { readonly kind: "cooldown"; readonly model: string; readonly until: number }
  /** Cerebras refused the key: out of rotation (a no-op when it already is). */
  | { readonly kind: "revoke"; readonly status: number }
  /** The key works again (a probe or a call succeeded): back in rotation, failures forgotten. */
  | { readonly kind: "restore" }
  /** A connection to its endpoint failed: the backoff doubles. */
  | { readonly kind: "connection-failed" }
  /** A call on it succeeded after connection failures: the backoff is over. */
  | { readonly kind: "connected" };

export interface Applied {
  readonly state: KeyState;
  /** Whether the change did anything (false: e.g. the key was revoked already, by this replica or another). */
  readonly changed: boolean;
}

export interface KeyStateStore {
  readonly kind: "memory" | "redis";
  /**
   * Applies `change` to `key`'s shared state, atomically; undefined when the store cannot
   * be reached (the caller keeps its own view then). Never rejects.
   */
  apply(key: string, change: KeyChange, now: number): Promise<Applied | undefined>;
  /** `key`'s state as the store holds it (CLEAN when none); undefined when unreachable. */
  read(key: string, now: number): Promise<KeyState | undefined>;
  /**
   * Told about every change to one of `keys`, made by this replica or another, and (Redis)
   * the state of each of them whenever the connection is made again.
   */
  watch(keys: readonly string[], listener: (key: string, state: KeyState) => void): void;
  close(): Promise<void>;
}

/** Connection backoff: 1 s, doubling per failure in a row, at most 30 s. */
export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_MAX_MS = 30_000;
/** Cooldowns kept per key at most (a key serves a handful of models). */
export const MAX_COOLDOWNS = 64;
/** Connection failures are forgotten this long after their backoff ended (a later failure starts at 1 s again). */
export const FORGET_FAILURES_MS = 60_000;

export function backoffMs(failures: number): number {
  return Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1));
}

/**
 * The change applied to a state, as both stores (and the pool's local copy) do it:
 * spent cooldowns are dropped on the way.
 */
export function applyChange(state: KeyState, change: KeyChange, now: number): Applied {
  let cooldowns = state.cooldowns;
  let changed = false;
  const live = new Map<string, number>();
  for (const [model, until] of cooldowns) if (until > now) live.set(model, until);
  if (live.size !== cooldowns.size) cooldowns = live;
  let { revoked, failures, backoffUntil } = state;
  if (failures > 0 && backoffUntil + FORGET_FAILURES_MS <= now) {
    failures = 0;
    backoffUntil = 0;
  }
  switch (change.kind) {
    case "cooldown": {
      const prior = cooldowns.get(change.model) ?? 0;
      if (change.until > prior && change.until > now) {
        const next = new Map(cooldowns);
        next.set(change.model, change.until);
        if (next.size > MAX_COOLDOWNS) next.delete(earliest(next));
        cooldowns = next;
        changed = true;
      }
      break;
    }
    case "revoke":
      if (revoked === undefined) {
        revoked = { status: change.status, at: now };
        changed = true;
      }
      break;
    case "restore":
      changed = revoked !== undefined || failures > 0;
      revoked = undefined;
      failures = 0;
      backoffUntil = 0;
      break;
    case "connection-failed":
      failures += 1;
      backoffUntil = now + backoffMs(failures);
      changed = true;
      break;
    case "connected":
      changed = failures > 0;
      failures = 0;
      backoffUntil = 0;
      break;
  }
  return { state: { cooldowns, revoked, failures, backoffUntil }, changed };
}

function earliest(cooldowns: ReadonlyMap<string, number>): string {
  let model = "";
  let at = Infinity;
  for (const [m, until] of cooldowns) {
    if (until < at) {
      at = until;
      model = m;
    }
  }
  return model;
}

/** Whether the state says anything (a CLEAN-equivalent state needs no storage). */
export function isClean(state: KeyState, now: number): boolean {
  if (state.revoked !== undefined || state.failures > 0 || state.backoffUntil > now) return false;
  for (const until of state.cooldowns.values()) if (until > now) return false;
  return true;
}
