/**
 * What the /dashboard page shows, as one JSON snapshot: cumulative figures read from the
 * gateway's own Prometheus registry (the same series /metrics exports, fed by the
 * CallReporter: no second bookkeeping) and the model catalog. The page turns two
 * snapshots into rates (calls/s, error rate, tokens/s) itself.
 */
import type { Registry } from "prom-client";
import type { CatalogSnapshot } from "../core/catalog.js";

export interface ModelFigures {
  readonly model: string;
  readonly calls: number;
  readonly errors: number;
  /** gateway_time_to_first_token_seconds: sum (s) and count. */
  readonly ttftSum: number;
  readonly ttftCount: number;
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** cerebras_completion_time_seconds: sum (s), for Cerebras' own tokens/s. */
  readonly completionTimeSum: number;
  readonly costUsd: number;
}

export interface KeyFigures {
  readonly key: string;
  readonly calls: number;
  readonly errors: number;
  readonly costUsd: number;
}

export interface CatalogFigures {
  readonly loaded: boolean;
  readonly stale: boolean;
  /** Epoch ms of the last good load; 0: never. */
  readonly fetchedAt: number;
  readonly models: ReadonlyArray<{
    readonly id: string;
    readonly contextLength?: number | undefined;
    readonly maxCompletionTokens?: number | undefined;
    readonly deprecated: boolean;
    /** USD per million tokens, when the catalog knows them. */
    readonly promptPerMillion?: number | undefined;
    readonly completionPerMillion?: number | undefined;
  }>;
}

export interface DashboardSnapshot {
  /** Epoch ms when the snapshot was taken. */
  readonly at: number;
  /** Calls counted so far, and those that did not end OK. */
  readonly calls: number;
  readonly errors: number;
  readonly byCode: ReadonlyArray<{ readonly code: string; readonly calls: number }>;
  readonly byModel: readonly ModelFigures[];
  readonly byKey: readonly KeyFigures[];
  readonly inFlightCalls: number;
  readonly inFlightStreams: number;
  readonly catalog: CatalogFigures;
}

/** What GET /dashboard/data serves. */
export interface DashboardSource {
  snapshot(): Promise<DashboardSnapshot>;
}

/** One metric as prom-client's getMetricsAsJSON() gives it. */
interface MetricJson {
  readonly name: string;
  readonly values: ReadonlyArray<{ readonly labels: Readonly<Record<string, string | number>>; readonly value: number; readonly metricName?: string }>;
}

/** Per-call counters (gateway_requests_total…) and the catalog, summed the way the page shows them. */
export class MetricsDashboard implements DashboardSource {
  constructor(
    private readonly registry: Registry,
    private readonly catalog: () => CatalogSnapshot & { readonly loaded: boolean },
  ) {}

  async snapshot(): Promise<DashboardSnapshot> {
    const metrics = (await this.registry.getMetricsAsJSON()) as unknown as MetricJson[];
    const byName = new Map(metrics.map((m) => [m.name, m]));
    const models = new Table<MutableModel>((model) => ({ model, calls: 0, errors: 0, ttftSum: 0, ttftCount: 0, promptTokens: 0, completionTokens: 0, completionTimeSum: 0, costUsd: 0 }));
    const keys = new Table<MutableKey>((key) => ({ key, calls: 0, errors: 0, costUsd: 0 }));
    const codes = new Map<string, number>();
    let calls = 0;
    let errors = 0;

    for (const v of byName.get("gateway_requests_total")?.values ?? []) {
      const failed = v.labels["code"] !== "OK";
      const code = String(v.labels["code"]);
      calls += v.value;
      if (failed) errors += v.value;
      codes.set(code, (codes.get(code) ?? 0) + v.value);
      const m = models.at(String(v.labels["model"]));
      const k = keys.at(String(v.labels["key"]));
      m.calls += v.value;
      k.calls += v.value;
      if (failed) {
        m.errors += v.value;
        k.errors += v.value;
      }
    }
    for (const v of byName.get("gateway_time_to_first_token_seconds")?.values ?? []) {
      const m = models.at(String(v.labels["model"]));
      if (v.metricName?.endsWith("_sum")) m.ttftSum += v.value;
      else if (v.metricName?.endsWith("_count")) m.ttftCount += v.value;
    }
    for (const v of byName.get("gateway_tokens_total")?.values ?? []) {
      const m = models.at(String(v.labels["model"]));
      if (v.labels["kind"] === "prompt") m.promptTokens += v.value;
      else if (v.labels["kind"] === "completion") m.completionTokens += v.value;
    }
    for (const v of byName.get("cerebras_completion_time_seconds")?.values ?? []) {
      if (v.metricName?.endsWith("_sum")) models.at(String(v.labels["model"])).completionTimeSum += v.value;
    }
    for (const v of byName.get("gateway_cost_usd_total")?.values ?? []) {
      models.at(String(v.labels["model"])).costUsd += v.value;
      keys.at(String(v.labels["key"])).costUsd += v.value;
    }

    return {
      at: Date.now(),
      calls,
      errors,
      byCode: [...codes].map(([code, n]) => ({ code, calls: n })),
      byModel: models.rows(),
      byKey: keys.rows(),
      inFlightCalls: gauge(byName.get("gateway_in_flight_calls")),
      inFlightStreams: gauge(byName.get("gateway_in_flight_streams")),
      catalog: this.catalogFigures(),
    };
  }

  private catalogFigures(): CatalogFigures {
    const c = this.catalog();
    return {
      loaded: c.loaded,
      stale: c.stale,
      fetchedAt: c.fetchedAt,
      models: c.models.map((m) => ({
        id: m.id,
        contextLength: m.contextLength,
        maxCompletionTokens: m.maxCompletionTokens,
        deprecated: m.deprecated,
        promptPerMillion: m.pricing?.prompt === undefined ? undefined : m.pricing.prompt * 1e6,
        completionPerMillion: m.pricing?.completion === undefined ? undefined : m.pricing.completion * 1e6,
      })),
    };
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type MutableModel = Mutable<ModelFigures>;
type MutableKey = Mutable<KeyFigures>;

/** Rows by a label value, made on first use. */
class Table<T> {
  private readonly byId = new Map<string, T>();

  constructor(private readonly make: (id: string) => T) {}

  at(id: string): T {
    let row = this.byId.get(id);
    if (row === undefined) {
      row = this.make(id);
      this.byId.set(id, row);
    }
    return row;
  }

  rows(): T[] {
    return [...this.byId.values()];
  }
}

function gauge(metric: MetricJson | undefined): number {
  return metric?.values[0]?.value ?? 0;
}
