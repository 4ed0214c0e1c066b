/**
 * Upstream key state in this process's memory: the default, for one replica. The same
 * rules as the Redis store (key-state.ts applyChange), tested by one suite against both.
 */
import { applyChange, CLEAN, isClean, type Applied, type KeyChange, type KeyState, type KeyStateStore } from "./key-state.js";

type Listener = (key: string, state: KeyState) => void;

export class MemoryKeyStateStore implements KeyStateStore {
  readonly kind = "memory";
  private readonly states = new Map<string, KeyState>();
  private readonly listeners: { readonly keys: ReadonlySet<string>; readonly listener: Listener }[] = [];

  async apply(key: string, change: KeyChange, now: number): Promise<Applied> {
    const applied = applyChange(this.states.get(key) ?? CLEAN, change, now);
    if (isClean(applied.state, now)) this.states.delete(key);
    else this.states.set(key, applied.state);
    if (applied.changed) for (const l of this.listeners) if (l.keys.has(key)) l.listener(key, applied.state);
    return applied;
  }

  async read(key: string, now: number): Promise<KeyState> {
    const state = this.states.get(key);
    if (state === undefined) return CLEAN;
    // Spent cooldowns are not part of the state (the Redis store leaves them out too).
    let spent = false;
    for (const until of state.cooldowns.values()) if (until <= now) spent = true;
    if (!spent) return state;
    return { ...state, cooldowns: new Map([...state.cooldowns].filter(([, until]) => until > now)) };
  }

  watch(keys: readonly string[], listener: Listener): void {
    this.listeners.push({ keys: new Set(keys), listener });
  }

  async close(): Promise<void> {
    this.listeners.length = 0;
  }
}
