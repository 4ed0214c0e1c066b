/**
 * The key pool: the core's UpstreamRouter over the configured upstream keys.
 *
 * Per call it ranks the candidates (upstreams.ts): the keys that may serve the requested
 * model (their `models`), then those of each fallback model (MODEL_FALLBACKS), each key
 * with its standing from the shared key state (key-state.ts): ready keys first, by
 * headroom for this call — the tightest of the key's buckets for the model, as its own
 * responses' `x-ratelimit-*` headers reported them and refilled since, less this
 * replica's reservations in flight — and among keys within HEADROOM_TIE of the best,
 * by smooth weighted round-robin (their `weight`s share the calls). Then the keys
 * cooling down from a quota (soonest first), in connection backoff, and refused: tried
 * only when nothing ready could serve, so no key is ever left out of a call that would
 * otherwise fail (and one key behaves as before the pool).
 *
 * From each attempt it learns: the headers (headroom), a quota 429 (that model cools
 * down until the reset the upstream gave, DEFAULT_COOLDOWN_MS when it gave none), a
 * refusal of the key (401/402/403: out of rotation, one error line fleet-wide, until a
 * probe of GET /v1/models every UPSTREAM_KEY_PROBE_S or a call on it succeeds), a
 * connection failure (backoff, doubling). Changes go to the KeyStateStore, so every
 * replica sees them; the pool reads its local copy and never waits on the store.
 */
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { Model } from "../../gen/aigateway/v1/models.js";
import { completionBudget } from "../admission/charges.js";
import { estimatePromptTokens } from "../admission/estimator.js";
import { WINDOW_MS } from "../admission/limits.js";
import { parseRateLimitHeaders } from "../admission/rate-limit-headers.js";
import { CallScope } from "../core/call-scope.js";
import { Reason, type GatewayError } from "../core/errors.js";
import type { CallContext } from "../core/provider.js";
import type { Standing, UpstreamCandidate, UpstreamRoute, UpstreamRouter } from "../core/upstreams.js";
import type { Logger } from "../log.js";
import type { UpstreamKey } from "./config.js";
import { NO_UPSTREAM_OBSERVER, type UpstreamObserver } from "./events.js";
import { applyChange, CLEAN, type KeyChange, type KeyState, type KeyStateStore } from "./key-state.js";

/** A quota 429 that says nothing of its reset cools the model down this long. */
export const DEFAULT_COOLDOWN_MS = 10_000;
/** Keys whose headroom is within this fraction of the best one's count as equally full: their weights share the calls. */
export const HEADROOM_TIE = 0.05;
/** Models tracked per key (headroom, headers for the gauges); beyond it a model is ranked as full. */
const MAX_MODELS = 64;
/** Routes of a one-key pool, cached per model (they are all alike). */
const MAX_CACHED_ROUTES = 256;
/** A probe that gets no answer in this long has failed. */
const PROBE_TIMEOUT_MS = 10_000;

export type Probe = (key: string, ctx: CallContext) => Promise<"accepted" | "refused" | "failed">;

export interface KeyPoolOptions {
  /** At least one. */
  readonly keys: readonly UpstreamKey[];
  readonly fallbacks: ReadonlyMap<string, readonly string[]>;
  readonly store: KeyStateStore;
  readonly logger: Logger;
  readonly observer?: UpstreamObserver | undefined;
  /** Completion tokens a call without max_completion_tokens is counted for (QUOTA_DEFAULT_COMPLETION_TOKENS). */
  readonly defaultCompletionTokens: number;
  /** Asks Cerebras whether a refused key is accepted again; undefined: keys come back only by a successful call. */
  readonly probe?: Probe | undefined;
  readonly probeIntervalMs: number;
  /** Epoch ms (tests inject one). */
  readonly clock?: () => number;
}

/** One bucket of a key's organisation for a model, as its last response reported it. */
interface Bucket {
  level: number;
  at: number;
  capacity: number;
  ratePerMs: number;
  readonly counts: "requests" | "tokens";
}

/** What the pool knows about one key and one model. */
interface ModelView {
  readonly buckets: Map<string, Bucket>;
  inflightTokens: number;
  inflightRequests: number;
  /** Smooth weighted round-robin's running weight. */
  current: number;
  /** The last response's x-ratelimit-* headers (the gauges read them at scrape time). */
  lastHeaders: Readonly<Record<string, string>> | undefined;
}

class Entry {
  state: KeyState = CLEAN;
  readonly views = new Map<string, ModelView>();
  probing = false;

  constructor(readonly key: UpstreamKey) {}

  serves(model: string): boolean {
    return this.key.models === undefined || this.key.models.has(model);
  }

  view(model: string): ModelView | undefined {
    let v = this.views.get(model);
    if (v === undefined && this.views.size < MAX_MODELS) this.views.set(model, (v = { buckets: new Map(), inflightTokens: 0, inflightRequests: 0, current: 0, lastHeaders: undefined }));
    return v;
  }

  standing(model: string, now: number): Standing {
    const s = this.state;
    if (s.revoked !== undefined) return "revoked";
    const until = s.cooldowns.get(model);
    if (until !== undefined && until > now) return "cooling";
    if (s.backoffUntil > now) return "backoff";
    return "ready";
  }
}

const TIER: Readonly<Record<Standing, number>> = { ready: 0, cooling: 1, backoff: 2, revoked: 3 };

/** A key's standing and where it goes in its tier. */
interface Ranked {
  readonly entry: Entry;
  readonly candidate: UpstreamCandidate;
  /** Within the tier and model: higher first. */
  readonly score: number;
}

/** How one key stands, for the metrics (read at scrape time). */
export interface KeyReport {
  readonly key: string;
  readonly inRotation: boolean;
  /** model → seconds left of its quota cooldown. */
  readonly cooldowns: ReadonlyMap<string, number>;
  /** model → bucket name (`tokens_per_minute`…) → remaining, as the key's last response for the model reported it. */
  readonly remaining: ReadonlyMap<string, ReadonlyMap<string, number>>;
}

export class KeyPool implements UpstreamRouter {
  private readonly entries = new Map<string, Entry>();
  private readonly order: readonly Entry[];
  private readonly clock: () => number;
  private readonly observer: UpstreamObserver;
  /** More than one key: rankings need each call's size and each response's headers. */
  private readonly choosy: boolean;
  private readonly single: Entry | undefined;
  private readonly routes = new Map<string, UpstreamRoute>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: KeyPoolOptions) {
    if (o.keys.length === 0) throw new Error("the key pool needs at least one key");
    this.order = o.keys.map((k) => new Entry(k));
    for (const e of this.order) this.entries.set(e.key.name, e);
    this.clock = o.clock ?? Date.now;
    this.observer = o.observer ?? NO_UPSTREAM_OBSERVER;
    this.choosy = o.keys.length > 1;
    this.single = this.choosy || o.keys[0]!.models !== undefined ? undefined : this.order[0];
    o.store.watch(
      o.keys.map((k) => k.name),
      (name, state) => {
        const e = this.entries.get(name);
        if (e !== undefined) e.state = state;
      },
    );
    if (o.probe !== undefined) {
      this.timer = setInterval(() => this.probeRevoked(), o.probeIntervalMs);
      this.timer.unref();
    }
  }

  route(request: ChatCompletionRequest, model: Model | undefined, fallbacks: boolean): UpstreamRoute {
    const requested = request.model;
    const chain = fallbacks ? this.o.fallbacks.get(requested) : undefined;
    if (this.single !== undefined && chain === undefined) return this.singleRoute(requested);
    const now = this.clock();
    const tokens = this.choosy ? estimatePromptTokens(request) + completionBudget(request, model, this.o.defaultCompletionTokens).completionTokens : 0;
    const ranked: Ranked[] = [];
    const levels = chain === undefined ? 1 : chain.length + 1;
    for (let level = 0; level < levels; level++) {
      const m = level === 0 ? requested : chain![level - 1]!;
      const ready: Ranked[] = [];
      for (const entry of this.order) {
        if (!entry.serves(m)) continue;
        const standing = entry.standing(m, now);
        const candidate: UpstreamCandidate = { key: entry.key.name, model: m, fallback: level, requested, standing };
        if (standing === "ready") ready.push({ entry, candidate, score: this.headroom(entry, m, tokens, now) });
        else ranked.push({ entry, candidate, score: -waitingSince(entry.state, standing, m) });
      }
      ranked.push(...this.share(ready, m));
    }
    // Stable: within a tier and a model, the order share() and the scores gave.
    const indexed = ranked.map((r, i) => ({ r, i }));
    indexed.sort((a, b) => {
      const ca = a.r.candidate;
      const cb = b.r.candidate;
      return TIER[ca.standing] - TIER[cb.standing] || ca.fallback - cb.fallback || (ca.standing === "ready" ? a.i - b.i : b.r.score - a.r.score || a.i - b.i);
    });
    return { candidates: indexed.map((x) => x.r.candidate), tokens };
  }

  started(candidate: UpstreamCandidate, route: UpstreamRoute): void {
    if (!this.choosy) return;
    const v = this.entries.get(candidate.key)?.view(candidate.model);
    if (v === undefined) return;
    v.inflightTokens += route.tokens;
    v.inflightRequests += 1;
  }

  finished(candidate: UpstreamCandidate, route: UpstreamRoute, error: GatewayError | undefined, rateLimits: Readonly<Record<string, string>> | undefined): void {
    const e = this.entries.get(candidate.key);
    if (e === undefined) return;
    const v = e.view(candidate.model);
    if (v !== undefined) {
      if (this.choosy) {
        v.inflightTokens = Math.max(0, v.inflightTokens - route.tokens);
        v.inflightRequests = Math.max(0, v.inflightRequests - 1);
        if (rateLimits !== undefined) learn(v, rateLimits, this.clock());
      }
      if (rateLimits !== undefined) v.lastHeaders = rateLimits;
    }
    this.observer.attempted(candidate.key, candidate.model, error?.reason);
    if (error === undefined) {
      if (e.state.revoked !== undefined) this.change(e, { kind: "restore" });
      else if (e.state.failures > 0) this.change(e, { kind: "connected" });
      if (candidate.fallback > 0) this.observer.fellBack(candidate.requested, candidate.model);
      return;
    }
    switch (error.reason) {
      case Reason.UPSTREAM_QUOTA_EXCEEDED:
        this.change(e, { kind: "cooldown", model: candidate.model, until: this.clock() + (error.retryDelayMs ?? DEFAULT_COOLDOWN_MS) });
        break;
      case Reason.UPSTREAM_AUTH_FAILED:
        this.change(e, { kind: "revoke", status: Number(error.metadata["upstreamStatus"] ?? 401) });
        break;
      case Reason.UPSTREAM_CONNECTION_FAILED:
        // Only a connection that never got a response (a stream cut mid-way is final and got one).
        if (error.metadata["upstreamStatus"] === undefined) this.change(e, { kind: "connection-failed" });
        break;
      default:
        break;
    }
  }

  /** Every key's standing and last reported figures, for the metrics (scrape time). */
  report(): KeyReport[] {
    const now = this.clock();
    return this.order.map((e) => {
      const cooldowns = new Map<string, number>();
      for (const [model, until] of e.state.cooldowns) if (until > now) cooldowns.set(model, (until - now) / 1000);
      const remaining = new Map<string, Map<string, number>>();
      for (const [model, v] of e.views) {
        if (v.lastHeaders === undefined) continue;
        const byName = new Map<string, number>();
        for (const r of parseRateLimitHeaders(v.lastHeaders)) if (r.remaining !== undefined) byName.set(r.name, r.remaining);
        if (byName.size > 0) remaining.set(model, byName);
      }
      return { key: e.key.name, inRotation: e.state.revoked === undefined, cooldowns, remaining };
    });
  }

  /** Probes every revoked key now (the timer does it every UPSTREAM_KEY_PROBE_S); resolves when they are done. */
  async probeRevoked(): Promise<void> {
    const probe = this.o.probe;
    if (probe === undefined || this.closed) return;
    await Promise.all(
      this.order.map(async (e) => {
        if (e.state.revoked === undefined || e.probing) return;
        e.probing = true;
        const scope = new CallScope(Infinity, PROBE_TIMEOUT_MS, `probe-${e.key.name}`);
        try {
          if ((await probe(e.key.name, scope)) === "accepted" && !this.closed) this.change(e, { kind: "restore" });
        } finally {
          scope.dispose();
          e.probing = false;
        }
      }),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.o.store.close();
  }

  private singleRoute(model: string): UpstreamRoute {
    let route = this.routes.get(model);
    if (route !== undefined) return route;
    const e = this.single!;
    route = { candidates: [{ key: e.key.name, model, fallback: 0, requested: model, standing: "ready" }], tokens: 0 };
    if (this.routes.size < MAX_CACHED_ROUTES) this.routes.set(model, route);
    return route;
  }

  /**
   * The ready keys of one model in the order to try them: those within HEADROOM_TIE of the
   * best headroom first, the next call's pick by smooth weighted round-robin (nginx's:
   * each gains its weight, the pick pays the group's total), the rest by headroom.
   */
  private share(ready: Ranked[], model: string): Ranked[] {
    if (ready.length <= 1) return ready;
    let best = -Infinity;
    for (const r of ready) if (r.score > best) best = r.score;
    const tied = ready.filter((r) => r.score >= best - HEADROOM_TIE);
    const rest = ready.filter((r) => r.score < best - HEADROOM_TIE).sort((a, b) => b.score - a.score);
    if (tied.length === 1) return [tied[0]!, ...rest];
    let total = 0;
    let pick: { r: Ranked; v: ModelView } | undefined;
    const views = tied.map((r) => ({ r, v: r.entry.view(model) }));
    for (const { r, v } of views) {
      total += r.entry.key.weight;
      if (v === undefined) continue;
      v.current += r.entry.key.weight;
      if (pick === undefined || v.current > pick.v.current) pick = { r, v };
    }
    if (pick === undefined) return [...tied, ...rest];
    pick.v.current -= total;
    const chosen = pick.r;
    const others = views.filter((x) => x.r !== chosen).sort((a, b) => (b.v?.current ?? 0) - (a.v?.current ?? 0));
    return [pick.r, ...others.map((x) => x.r), ...rest];
  }

  /**
   * What is left of the key's tightest bucket for the model after this call and the ones
   * in flight, as a fraction of the bucket (1: full; below 0: it would not fit). Buckets
   * never reported count as full.
   */
  private headroom(e: Entry, model: string, tokens: number, now: number): number {
    const v = e.views.get(model);
    if (v === undefined || v.buckets.size === 0) return 1;
    let min = 1;
    for (const b of v.buckets.values()) {
      const level = Math.min(b.capacity, b.level + Math.max(0, now - b.at) * b.ratePerMs);
      const cost = b.counts === "tokens" ? tokens + v.inflightTokens : 1 + v.inflightRequests;
      const f = (level - cost) / b.capacity;
      if (f < min) min = f;
    }
    return min;
  }

  /** Applies a change to the local copy at once, then to the shared store; logs and counts what the store says changed. */
  private change(e: Entry, change: KeyChange): void {
    const now = this.clock();
    const local = applyChange(e.state, change, now);
    e.state = local.state;
    void this.o.store.apply(e.key.name, change, now).then((applied) => {
      if (applied !== undefined) e.state = applied.state;
      if (applied?.changed ?? local.changed) this.changed(e, change);
    });
  }

  private changed(e: Entry, change: KeyChange): void {
    const name = e.key.name;
    switch (change.kind) {
      case "cooldown":
        this.observer.cooled(name, change.model);
        break;
      case "revoke":
        this.observer.revoked(name);
        this.o.logger.error(
          { upstreamKey: name, upstreamStatus: change.status },
          "upstream key refused by Cerebras: out of rotation (the other keys serve; probed every UPSTREAM_KEY_PROBE_S to bring it back)",
        );
        break;
      case "restore":
        this.observer.restored(name);
        this.o.logger.info({ upstreamKey: name }, "upstream key accepted again: back in rotation");
        break;
      default:
        break;
    }
  }
}

/** Since when a key that is not ready has waited, to put the soonest back first (cooling: its end; backoff: its end; revoked: since when). */
function waitingSince(state: KeyState, standing: Standing, model: string): number {
  if (standing === "cooling") return state.cooldowns.get(model) ?? 0;
  if (standing === "backoff") return state.backoffUntil;
  return state.revoked?.at ?? 0;
}

/**
 * A response's rate-limit headers into the key's buckets for the model. The refill runs
 * so the bucket is full at the reset the upstream gave (continuous, as Cerebras says its
 * buckets refill); without a reset, at the window's rate.
 */
function learn(v: ModelView, headers: Readonly<Record<string, string>>, now: number): void {
  for (const r of parseRateLimitHeaders(headers)) {
    if (r.limit === undefined || r.limit <= 0 || r.remaining === undefined) continue;
    const b = v.buckets.get(r.name);
    const missing = Math.max(0, r.limit - r.remaining);
    const ratePerMs = r.resetSeconds !== undefined && r.resetSeconds > 0 && missing > 0 ? missing / (r.resetSeconds * 1000) : r.limit / WINDOW_MS[r.window];
    if (b === undefined) v.buckets.set(r.name, { level: r.remaining, at: now, capacity: r.limit, ratePerMs, counts: r.counts });
    else {
      b.level = r.remaining;
      b.at = now;
      b.capacity = r.limit;
      b.ratePerMs = ratePerMs;
    }
  }
}
