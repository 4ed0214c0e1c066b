/**
 * Metrics per upstream key, fed by the key pool's UpstreamObserver hooks (counters, once
 * per attempt or state change) and read from the pool at scrape time (gauges: remaining
 * figures, cooldowns, rotation). Labels are bounded: `upstream_key` is a configured key
 * name (at most 64), `model` one of at most MAX_MODELS the keys served (then `other`),
 * `reason` an ErrorInfo reason, `limit` a bucket name from Cerebras' headers.
 */
import { Gauge, type Registry } from "prom-client";
import type { UpstreamObserver } from "../upstreams/events.js";
import type { KeyReport } from "../upstreams/pool.js";
import { Counter, type CounterSeries } from "./metric-series.js";

/** Distinct model labels at most (callers choose models: with ALLOW_UNLISTED_MODELS they could mint them). */
const MAX_MODELS = 64;
export const OTHER_MODEL = "other";

export function createUpstreamMetrics(registry: Registry, report: () => readonly KeyReport[]): UpstreamObserver {
  const registers = [registry];
  const requests = new Counter({
    name: "cerebras_upstream_key_requests_total",
    help: "Chat-completion requests sent to Cerebras with each upstream key (every attempt), by key name and model.",
    labelNames: ["upstream_key", "model"] as const,
    registers,
  });
  const errors = new Counter({
    name: "cerebras_upstream_key_errors_total",
    help: "Failed upstream attempts per upstream key, by ErrorInfo reason.",
    labelNames: ["upstream_key", "reason"] as const,
    registers,
  });
  const cooldowns = new Counter({
    name: "cerebras_upstream_key_cooldowns_total",
    help: "Quota cooldowns this replica started for an upstream key (a 429 for one of its models).",
    labelNames: ["upstream_key"] as const,
    registers,
  });
  const revocations = new Counter({
    name: "cerebras_upstream_key_revocations_total",
    help: "Times an upstream key was taken out of rotation because Cerebras refused it (401/402/403), counted by the replica that took it out.",
    labelNames: ["upstream_key"] as const,
    registers,
  });
  const fallbacks = new Counter({
    name: "gateway_model_fallbacks_total",
    help: "Calls answered by a fallback model (MODEL_FALLBACKS), by the model requested and the one that served.",
    labelNames: ["requested", "served"] as const,
    registers,
  });
  const models = new Set<string>();
  const model = (m: string): string => {
    if (models.has(m)) return m;
    if (models.size >= MAX_MODELS) return OTHER_MODEL;
    models.add(m);
    return m;
  };
  new Gauge({
    name: "cerebras_upstream_key_in_rotation",
    help: "1 while an upstream key is in rotation, 0 while it is out (Cerebras refused it; it is probed every UPSTREAM_KEY_PROBE_S).",
    labelNames: ["upstream_key"] as const,
    registers,
    collect(this: Gauge<"upstream_key">) {
      this.reset();
      for (const k of report()) this.set({ upstream_key: k.key }, k.inRotation ? 1 : 0);
    },
  });
  new Gauge({
    name: "cerebras_upstream_key_cooldown_seconds",
    help: "Seconds left of an upstream key's quota cooldown for a model (absent: not cooling down).",
    labelNames: ["upstream_key", "model"] as const,
    registers,
    collect(this: Gauge<"upstream_key" | "model">) {
      this.reset();
      for (const k of report()) for (const [m, s] of k.cooldowns) this.set({ upstream_key: k.key, model: model(m) }, s);
    },
  });
  new Gauge({
    name: "cerebras_upstream_key_remaining",
    help: "What an upstream key's organisation has left for a model, by limit (tokens_per_minute, requests_per_day…), as its last response's x-ratelimit-remaining-* headers said.",
    labelNames: ["upstream_key", "model", "limit"] as const,
    registers,
    collect(this: Gauge<"upstream_key" | "model" | "limit">) {
      this.reset();
      for (const k of report()) for (const [m, byLimit] of k.remaining) for (const [limit, n] of byLimit) this.set({ upstream_key: k.key, model: model(m), limit }, n);
    },
  });

  const cache = <T>(make: (key: string) => T): ((key: string) => T) => {
    const seen = new Map<string, T>();
    return (key) => {
      let s = seen.get(key);
      if (s === undefined) seen.set(key, (s = make(key)));
      return s;
    };
  };
  const perKey = cache((key) => ({
    requests: new Map<string, CounterSeries>(),
    errors: new Map<string, CounterSeries>(),
    cooldowns: cooldowns.series(key),
    revocations: revocations.series(key),
  }));
  const fallbackSeries = new Map<string, CounterSeries>();

  return {
    attempted: (key, m, reason) => {
      const k = perKey(key);
      const label = model(m);
      let r = k.requests.get(label);
      if (r === undefined) k.requests.set(label, (r = requests.series(key, label)));
      r.inc();
      if (reason === undefined) return;
      let e = k.errors.get(reason);
      if (e === undefined) k.errors.set(reason, (e = errors.series(key, reason)));
      e.inc();
    },
    cooled: (key) => perKey(key).cooldowns.inc(),
    revoked: (key) => perKey(key).revocations.inc(),
    restored: () => {},
    fellBack: (requested, served) => {
      const id = `${requested}\u0000${served}`;
      let s = fallbackSeries.get(id);
      if (s === undefined) fallbackSeries.set(id, (s = fallbacks.series(model(requested), model(served))));
      s.inc();
    },
  };
}
