/**
 * Counters and histograms for the per-call metrics, cheap to update: prom-client's own
 * hash the label object and validate its names on every inc/observe (its `labels(...)`
 * children too), several times per call. Here a label combination is resolved once to a
 * series object (nested Maps, one per label position) that the caller keeps, and an
 * update is a few additions: no hashing, no validation, no allocation.
 *
 * They still render through prom-client: each registers with a prom-client Registry and
 * answers what the Registry reads (name, help, type, aggregator, get(), getForPromString(),
 * reset()) in the shape prom-client's own Counter and Histogram give, so /metrics, the
 * JSON view and Registry.merge see no difference.
 */
import { validateMetricName, type Aggregator, type Metric, type Registry } from "prom-client";

/** A series' labels as the exposition writes them, in labelNames order. */
export type Labels = Readonly<Record<string, string>>;

/** One value for each label name, in order. */
export type LabelValues<L extends readonly string[]> = { -readonly [K in keyof L]: string };

/** What the Registry reads of a sample (prom-client's MetricValue, plus its sample name and shared labels). */
export interface Sample {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
  /** A histogram's `_bucket`/`_sum`/`_count`; the metric's name when absent. */
  readonly metricName?: string;
  /** Labels the Registry appends after `labels`, formatted once per object (it caches them in a WeakMap). */
  readonly sharedLabels?: Labels;
}

/** A metric as the Registry renders it (prom-client's MetricObjectWithValues). */
export interface MetricData {
  readonly name: string;
  readonly help: string;
  readonly type: "counter" | "histogram";
  readonly values: Sample[];
  readonly aggregator: Aggregator;
}

export interface MetricConfig<L extends readonly string[]> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: L;
  readonly registers: readonly Registry[];
}

export interface HistogramConfig<L extends readonly string[]> extends MetricConfig<L> {
  /** Upper bounds, ascending; `+Inf` is implied. */
  readonly buckets: readonly number[];
}

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Label values → series, one Map level per label position; series are made on first use. */
abstract class LabelledMetric<L extends readonly string[], S extends Series> {
  readonly name: string;
  readonly help: string;
  readonly aggregator: Aggregator = "sum";
  readonly labelNames: L;
  /** Series updated since the last reset, in the order they were first updated (prom-client's order). */
  protected readonly shown: S[] = [];
  private readonly root = new Map<string, unknown>();

  constructor(config: MetricConfig<L>) {
    if (!validateMetricName(config.name)) throw new Error(`invalid metric name ${config.name}`);
    // Label-less metrics stay prom-client's: nothing to hash, and they are exported at 0
    // before their first update, which series made on first use are not.
    if (config.labelNames.length === 0) throw new Error(`${config.name}: no labels; use prom-client's metric`);
    for (const label of config.labelNames) if (!LABEL_NAME.test(label)) throw new Error(`${config.name}: invalid label name ${label}`);
    if (new Set(config.labelNames).size !== config.labelNames.length) throw new Error(`${config.name}: a label name twice`);
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames;
  }

  /**
   * The series for these label values, made (but not exported until it is updated) the
   * first time they are asked for. Resolve it once and keep it: this walks the Maps.
   */
  series(...values: LabelValues<L>): S {
    const names = this.labelNames;
    if (values.length !== names.length) throw new Error(`${this.name}: ${values.length} label values for ${names.length} labels`);
    let level = this.root;
    for (let i = 0; i < values.length - 1; i++) level = nextLevel(level, values[i]!);
    const last = values[values.length - 1]!;
    let series = level.get(last) as S | undefined;
    if (series === undefined) {
      series = this.create(labelsOf(names, values), this.shown);
      level.set(last, series);
    }
    return series;
  }

  /** Zeroes every series and hides it until its next update; series callers hold stay valid. */
  reset(): void {
    for (const s of this.shown) s.clear();
    this.shown.length = 0;
  }

  protected abstract create(labels: Labels, shown: S[]): S;

  /** Registers with each registry (as prom-client's metrics do, from `registers`). */
  protected registerWith(registers: readonly Registry[]): void {
    // The Registry is typed for prom-client's own classes, but reads only name, type,
    // get/getForPromString and reset (registry.js), all of which this class has.
    for (const r of registers) r.registerMetric(this as unknown as Metric);
  }
}

function nextLevel(level: Map<string, unknown>, key: string): Map<string, unknown> {
  let next = level.get(key) as Map<string, unknown> | undefined;
  if (next === undefined) {
    next = new Map();
    level.set(key, next);
  }
  return next;
}

function labelsOf(names: readonly string[], values: readonly string[]): Labels {
  const labels: Record<string, string> = {};
  for (let i = 0; i < names.length; i++) labels[names[i]!] = values[i]!;
  return Object.freeze(labels);
}

/** What every series does: note its first update (so it is exported) and go back to zero. */
abstract class Series {
  private visible = false;

  constructor(
    readonly labels: Labels,
    private readonly shown: Series[],
  ) {}

  /** Call before every update: cheap once the series is visible. */
  protected show(): void {
    if (this.visible) return;
    this.visible = true;
    this.shown.push(this);
  }

  clear(): void {
    this.visible = false;
  }
}

export class CounterSeries extends Series {
  value = 0;

  inc(): void {
    this.show();
    this.value++;
  }

  /**
   * Adds `n`. Counters only go up, and an odd upstream figure must not fail a call: anything
   * but a finite n >= 0 (undefined, NaN, negative, Infinity) adds 0, the series still exported.
   */
  add(n: number | undefined): void {
    this.show();
    // NaN and undefined fail both comparisons.
    this.value += n !== undefined && n >= 0 && n < Infinity ? n : 0;
  }

  override clear(): void {
    super.clear();
    this.value = 0;
  }
}

export class Counter<L extends readonly string[]> extends LabelledMetric<L, CounterSeries> {
  readonly type = "counter";

  constructor(config: MetricConfig<L>) {
    super(config);
    this.registerWith(config.registers);
  }

  protected create(labels: Labels, shown: CounterSeries[]): CounterSeries {
    return new CounterSeries(labels, shown);
  }

  get(): Promise<MetricData> {
    const values: Sample[] = this.shown.map((s) => ({ value: s.value, labels: s.labels }));
    // prom-client's Counter key order, so the JSON view is the same text.
    return Promise.resolve({ help: this.help, name: this.name, type: this.type, values, aggregator: this.aggregator });
  }
}

export class HistogramSeries extends Series {
  /** Observations per bucket, not cumulative; the last slot is above every bound (`+Inf` only). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    labels: Labels,
    shown: Series[],
    private readonly bounds: Float64Array,
  ) {
    super(labels, shown);
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** Counts `v` in the first bucket whose bound is >= v; a value that is not a finite number is not observed (as prom-client refuses it). */
  observe(v: number): void {
    if (!Number.isFinite(v)) return;
    this.show();
    // Linear: at most 16 bounds, and most values fall in the first few.
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  override clear(): void {
    super.clear();
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

export class Histogram<L extends readonly string[]> extends LabelledMetric<L, HistogramSeries> {
  readonly type = "histogram";
  private readonly bounds: Float64Array;
  /** One `le` label object per bound, shared by every scrape's samples. */
  private readonly le: readonly Readonly<{ le: number | "+Inf" }>[];

  constructor(config: HistogramConfig<L>) {
    super(config);
    if (config.labelNames.includes("le")) throw new Error(`${config.name}: le is a reserved label name`);
    const b = config.buckets;
    for (let i = 0; i < b.length; i++) {
      if (!Number.isFinite(b[i]) || (i > 0 && b[i]! <= b[i - 1]!)) throw new Error(`${config.name}: buckets must be finite and ascending`);
    }
    this.bounds = Float64Array.from(b);
    this.le = [...b, "+Inf" as const].map((le) => Object.freeze({ le }));
    this.registerWith(config.registers);
  }

  protected create(labels: Labels, shown: HistogramSeries[]): HistogramSeries {
    return new HistogramSeries(labels, shown, this.bounds);
  }

  /** What the text exposition reads: each series' labels shared by its samples, as prom-client's Histogram gives them. */
  getForPromString(): Promise<MetricData> {
    const values: Sample[] = [];
    for (const s of this.shown) this.samples(s, values);
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator });
  }

  /** The JSON view: the series' labels merged into each sample's (`le` first, as prom-client's). */
  async get(): Promise<MetricData> {
    const data = await this.getForPromString();
    const values = data.values.map(({ sharedLabels, labels, ...rest }): Sample => ({ ...rest, labels: { ...labels, ...sharedLabels } }));
    return { ...data, values };
  }

  /** A series' samples: cumulative `_bucket`s up to `+Inf` (= `_count`), then `_sum` and `_count`. */
  private samples(s: HistogramSeries, out: Sample[]): void {
    const bucket = `${this.name}_bucket`;
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += s.counts[i]!;
      out.push({ labels: this.le[i]!, sharedLabels: s.labels, value: cumulative, metricName: bucket });
    }
    out.push({ labels: this.le[this.bounds.length]!, sharedLabels: s.labels, value: s.count, metricName: bucket });
    out.push({ labels: NO_LABELS, sharedLabels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
    out.push({ labels: NO_LABELS, sharedLabels: s.labels, value: s.count, metricName: `${this.name}_count` });
  }
}

const NO_LABELS: Labels = Object.freeze({});
