/** Small numeric helpers for the bench: percentiles, number formatting, integer options. */

/** Nearest-rank percentile of an ascending-sorted array (p in 0..100); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly mean: number;
}

export function summarise(values: readonly number[]): Summary {
  const s = Array.from(Float64Array.from(values).sort());
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), mean: s.length === 0 ? Number.NaN : sum / s.length };
}

export function median(values: readonly number[]): number {
  return percentile(Array.from(Float64Array.from(values).sort()), 50);
}

/** A number for a table cell: significant digits that suit its size. */
export function fmt(v: number | undefined, digits?: number): string {
  if (v === undefined || Number.isNaN(v)) return "–";
  if (!Number.isFinite(v)) return v > 0 ? "∞" : "-∞";
  if (digits !== undefined) return v.toFixed(digits);
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString("en-US");
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toFixed(3);
}

export function signed(v: number | undefined, digits?: number): string {
  if (v === undefined || Number.isNaN(v)) return "–";
  const s = fmt(v, digits);
  return v > 0 ? `+${s}` : s;
}

/** An integer option (`--name N`) in [min, max], or `fallback` when it was not given. */
export function bounded(arg: string | undefined, fallback: number, min: number, max: number): number {
  const n = arg === undefined ? fallback : Number(arg);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`expected an integer in [${min}, ${max}], got ${arg}`);
  return n;
}
