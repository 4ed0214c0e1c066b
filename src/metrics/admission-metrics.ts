/**
 * Metrics of the admission (caller quotas, organisation limits, the limit store), fed by
 * its AdmissionObserver hooks. Labels are bounded: `key` is a configured key name or
 * `anonymous`; `limit` a limit name (`tokens_per_minute`…), `org:<name>` or
 * `store_unavailable`; `op` and `result`, `state` and `outcome` small fixed sets.
 * Series per key are resolved once and kept (a Map lookup per update).
 */
import { Counter as PromCounter, Gauge, type Registry } from "prom-client";
import type { AdmissionObserver, StoreOp } from "../admission/events.js";
import { OVERHEAD_BUCKETS } from "./buckets.js";
import { Counter, Histogram, type CounterSeries } from "./metric-series.js";

/** Waits in the organisation's queue: a few ms to ORG_QUEUE_MAX_WAIT_MS (at most a minute). */
const QUEUE_WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export function createAdmissionMetrics(registry: Registry): AdmissionObserver {
  const registers = [registry];
  const admissions = new Counter({
    name: "gateway_quota_admissions_total",
    help: "Calls admitted against their limits (caller quotas and organisation limits), by gateway key name.",
    labelNames: ["key"] as const,
    registers,
  });
  const refusals = new Counter({
    name: "gateway_quota_refusals_total",
    help: "Calls refused before any upstream request, by key and by the limit that refused them (a caller limit name, org:<name> for the organisation's, store_unavailable with QUOTA_FAIL_MODE=closed).",
    labelNames: ["key", "limit"] as const,
    registers,
  });
  const unchecked = new Counter({
    name: "gateway_quota_unchecked_total",
    help: "Calls let through without checking their limits because the limit store was down (QUOTA_FAIL_MODE=open).",
    labelNames: ["key"] as const,
    registers,
  });
  const reserved = new Counter({
    name: "gateway_quota_reserved_tokens_total",
    help: "Tokens reserved at admission (estimated prompt + the completion's maximum), by key.",
    labelNames: ["key"] as const,
    registers,
  });
  const charged = new Counter({
    name: "gateway_quota_charged_tokens_total",
    help: "Tokens charged at settlement (the upstream's usage, or the estimate for calls that ended without it), by key.",
    labelNames: ["key"] as const,
    registers,
  });
  const settlements = new Counter({
    name: "gateway_quota_settlements_total",
    help: "Admitted calls settled: their reservation replaced in the store by what they used (dropped while the store is down), by key.",
    labelNames: ["key"] as const,
    registers,
  });
  const queueWait = new Histogram({
    name: "gateway_org_queue_wait_seconds",
    help: "Time calls waited for the organisation's capacity, by outcome (admitted, refused).",
    labelNames: ["outcome"] as const,
    buckets: QUEUE_WAIT_BUCKETS,
    registers,
  });
  const storeDuration = new Histogram({
    name: "gateway_limit_store_duration_seconds",
    help: "Limit store operations (Redis round trips, or the in-memory store's work), by op (reserve, adjust, sync) and result (ok, error).",
    labelNames: ["op", "result"] as const,
    buckets: OVERHEAD_BUCKETS,
    registers,
  });
  const transitions = new Counter({
    name: "gateway_limit_store_state_changes_total",
    help: "Times the limit store became unreachable (state=down) or reachable again (state=up).",
    labelNames: ["state"] as const,
    registers,
  });
  const leased = new PromCounter({
    name: "gateway_quota_lease_admissions_total",
    help: "Calls admitted from this replica's leases of their caller's buckets, with no Redis round trip (QUOTA_LEASE_CALLS).",
    registers,
  });
  const up = new Gauge({ name: "gateway_limit_store_up", help: "1 while the limit store answers, 0 while it is unreachable (see QUOTA_FAIL_MODE).", registers });

  const byKey = <T>(make: (key: string) => T): ((key: string) => T) => {
    const cache = new Map<string, T>();
    return (key) => {
      let s = cache.get(key);
      if (s === undefined) cache.set(key, (s = make(key)));
      return s;
    };
  };
  const perKey = byKey((key) => ({
    admitted: admissions.series(key),
    unchecked: unchecked.series(key),
    reserved: reserved.series(key),
    charged: charged.series(key),
    settled: settlements.series(key),
    refused: new Map<string, CounterSeries>(),
  }));
  // By outcome, then by op: every admission and settlement reports, so no key is built per call.
  const storeSeries = { ok: new Map<StoreOp, ReturnType<typeof storeDuration.series>>(), error: new Map<StoreOp, ReturnType<typeof storeDuration.series>>() };
  let stateKnown = false;

  return {
    admitted: (key) => perKey(key).admitted.inc(),
    refused: (key, limit) => {
      const k = perKey(key);
      let s = k.refused.get(limit);
      if (s === undefined) k.refused.set(limit, (s = refusals.series(key, limit)));
      s.inc();
    },
    unchecked: (key) => perKey(key).unchecked.inc(),
    queued: (_key, ms, admitted) => queueWait.series(admitted ? "admitted" : "refused").observe(ms / 1000),
    settled: (key, r, c) => {
      const k = perKey(key);
      k.settled.inc();
      k.reserved.add(r);
      k.charged.add(c);
    },
    storeOp: (op: StoreOp, seconds, failed) => {
      const outcome = failed ? "error" : "ok";
      const byOp = storeSeries[outcome];
      let s = byOp.get(op);
      if (s === undefined) byOp.set(op, (s = storeDuration.series(op, outcome)));
      s.observe(seconds);
    },
    storeState: (isUp) => {
      up.set(isUp ? 1 : 0);
      // The first report is the starting state, not a change.
      if (stateKnown) transitions.series(isUp ? "up" : "down").inc();
      stateKnown = true;
    },
    leaseAdmitted: () => leased.inc(),
  };
}
