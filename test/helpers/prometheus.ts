/**
 * Scraping /metrics in tests: a real HTTP GET, and a parser for the Prometheus text
 * exposition format (version 0.0.4) that rejects anything malformed (a sample before its
 * `# TYPE`, a bad escape, a value that is not a number), so the tests check the format
 * as well as the figures.
 */
import { raw } from "./http.js";

export interface Sample {
  /** The sample's own name (`x_bucket`, `x_count`… for a histogram `x`). */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  readonly help: string;
  readonly samples: Sample[];
}

export type Labels = Readonly<Record<string, string>>;

const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class Exposition {
  constructor(readonly families: ReadonlyMap<string, Family>) {}

  /** Every sample called `name` (a family's or a histogram's `_bucket`/`_sum`/`_count`). */
  samples(name: string): Sample[] {
    const out: Sample[] = [];
    for (const f of this.families.values()) for (const s of f.samples) if (s.name === name) out.push(s);
    return out;
  }

  /** The value of the one sample called `name` whose labels are exactly `labels`; undefined if there is none. */
  value(name: string, labels: Labels = {}): number | undefined {
    const hits = this.samples(name).filter((s) => sameLabels(s.labels, labels));
    if (hits.length > 1) throw new Error(`${name}${JSON.stringify(labels)} matches ${hits.length} samples`);
    return hits[0]?.value;
  }

  /** The sum over samples called `name` whose labels include `labels`. */
  sum(name: string, labels: Labels = {}): number {
    return this.samples(name)
      .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
      .reduce((acc, s) => acc + s.value, 0);
  }

  /**
   * A histogram's series with exactly `labels`: its observation count and sum. Checks the
   * buckets on the way: cumulative, and `le="+Inf"` equal to `_count`. Count 0 when the
   * series does not exist.
   */
  histogram(name: string, labels: Labels = {}): { count: number; sum: number } {
    const family = this.families.get(name);
    if (family?.type !== "histogram") throw new Error(`${name} is not a histogram`);
    const count = this.value(`${name}_count`, labels);
    if (count === undefined) return { count: 0, sum: 0 };
    const buckets = family.samples
      .filter((s) => s.name === `${name}_bucket` && sameLabels(withoutLe(s.labels), labels))
      .map((s) => ({ le: parseValue(s.labels["le"] ?? "missing"), value: s.value }))
      .sort((a, b) => a.le - b.le);
    for (let i = 1; i < buckets.length; i++) {
      if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${name}${JSON.stringify(labels)}: buckets are not cumulative`);
    }
    const inf = buckets.at(-1);
    if (inf?.le !== Infinity || inf.value !== count) throw new Error(`${name}${JSON.stringify(labels)}: le="+Inf" is not _count`);
    return { count, sum: this.value(`${name}_sum`, labels) ?? NaN };
  }

  /** The label sets of a family's series (a histogram's without `le`, once each). */
  series(name: string): Labels[] {
    const family = this.families.get(name);
    if (family === undefined) return [];
    const own = family.type === "histogram" ? `${name}_count` : name;
    return family.samples.filter((s) => s.name === own).map((s) => s.labels);
  }
}

export interface Scrape {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly metrics: Exposition;
}

/** GET http://127.0.0.1:<port>/metrics over a fresh connection, parsed. Throws unless 200. */
export async function scrape(port: number): Promise<Scrape> {
  const res = await raw(port, { method: "GET", path: "/metrics" });
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${res.text.slice(0, 200)}`);
  return { status: res.status, contentType: res.headers["content-type"], metrics: parseExposition(res.text) };
}

export function parseExposition(text: string): Exposition {
  const families = new Map<string, Family>();
  const help = new Map<string, string>();
  const lines = text.split("\n");
  if (lines.at(-1) !== "") throw new Error("the exposition does not end with a newline");
  for (const [i, line] of lines.entries()) {
    const where = `line ${i + 1}`;
    if (line === "") continue;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      if (m === null) continue; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, "HELP" | "TYPE", string, string];
      if (!NAME.test(name)) throw new Error(`${where}: bad metric name ${name}`);
      if (kind === "HELP") {
        help.set(name, unescapeHelp(rest, where));
      } else {
        if (!TYPES.has(rest)) throw new Error(`${where}: bad type ${rest}`);
        if (families.has(name)) throw new Error(`${where}: ${name} declared twice`);
        families.set(name, { name, type: rest as Family["type"], help: help.get(name) ?? "", samples: [] });
      }
      continue;
    }
    const sample = parseSample(line, where);
    const family = familyOf(families, sample.name);
    if (family === undefined) throw new Error(`${where}: ${sample.name} has no # TYPE before it`);
    family.samples.push(sample);
  }
  for (const f of families.values()) {
    const h = help.get(f.name);
    if (h === undefined || h === "") throw new Error(`${f.name} has no # HELP`);
    (f as { help: string }).help = h;
  }
  return new Exposition(families);
}

function familyOf(families: ReadonlyMap<string, Family>, sample: string): Family | undefined {
  const own = families.get(sample);
  if (own !== undefined) return own;
  const m = /^(.*)_(bucket|sum|count)$/.exec(sample);
  if (m === null) return undefined;
  const f = families.get(m[1]!);
  if (f === undefined) return undefined;
  if (f.type === "histogram" || (f.type === "summary" && m[2] !== "bucket")) return f;
  return undefined;
}

/** `name{a="x",b="y"} value [timestamp]` */
function parseSample(line: string, where: string): Sample {
  const nameEnd = line.search(/[{ ]/);
  if (nameEnd <= 0) throw new Error(`${where}: no value in ${JSON.stringify(line)}`);
  const name = line.slice(0, nameEnd);
  if (!NAME.test(name)) throw new Error(`${where}: bad metric name ${name}`);
  let i = nameEnd;
  const labels: Record<string, string> = {};
  if (line[i] === "{") {
    i++;
    while (line[i] !== "}") {
      const eq = line.indexOf("=", i);
      if (eq < 0) throw new Error(`${where}: unterminated labels`);
      const label = line.slice(i, eq);
      if (!LABEL_NAME.test(label)) throw new Error(`${where}: bad label name ${label}`);
      if (line[eq + 1] !== '"') throw new Error(`${where}: label ${label} is not quoted`);
      let j = eq + 2;
      let value = "";
      for (;;) {
        const c = line[j];
        if (c === undefined) throw new Error(`${where}: unterminated label value`);
        if (c === '"') break;
        if (c === "\\") {
          const e = line[j + 1];
          if (e === "\\" || e === '"') value += e;
          else if (e === "n") value += "\n";
          else throw new Error(`${where}: bad escape \\${e ?? ""}`);
          j += 2;
        } else {
          value += c;
          j++;
        }
      }
      if (label in labels) throw new Error(`${where}: label ${label} twice`);
      labels[label] = value;
      i = j + 1;
      if (line[i] === ",") i++;
      else if (line[i] !== "}") throw new Error(`${where}: expected , or } after label ${label}`);
    }
    i++;
  }
  const rest = line.slice(i).trim().split(" ");
  if (rest.length < 1 || rest.length > 2 || rest[0] === "") throw new Error(`${where}: bad value part in ${JSON.stringify(line)}`);
  if (rest[1] !== undefined && !/^-?\d+$/.test(rest[1])) throw new Error(`${where}: bad timestamp ${rest[1]}`);
  return { name, labels, value: parseValue(rest[0]!, where) };
}

function parseValue(text: string, where = "le"): number {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  // Case-insensitive, as Prometheus reads it (Go's ParseFloat): prom-client writes "Nan".
  if (text.toLowerCase() === "nan") return NaN;
  const n = Number(text);
  if (text.trim() === "" || Number.isNaN(n)) throw new Error(`${where}: ${JSON.stringify(text)} is not a number`);
  return n;
}

/** HELP text escapes: only `\\` and `\n` (label values also allow `\"`). */
function unescapeHelp(text: string, where: string): string {
  return text.replace(/\\(.)/g, (_, e: string) => {
    if (e === "\\") return "\\";
    if (e === "n") return "\n";
    throw new Error(`${where}: bad escape \\${e}`);
  });
}

function withoutLe(labels: Labels): Labels {
  const { le: _le, ...rest } = labels;
  return rest;
}

function sameLabels(a: Labels, b: Labels): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}
