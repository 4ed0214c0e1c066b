/**
 * deploy/grafana/cerebras-gateway.json asks only for what the gateway exports: every
 * PromQL expression (panel targets and the template variables' label_values) is parsed
 * with the Prometheus project's own PromQL grammar (@prometheus-io/lezer-promql), and each
 * metric it selects and each label it matches or groups by must appear in a real scrape of
 * /metrics from a gateway that has served a little traffic (histograms through their
 * _bucket/_sum/_count samples).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { parser } from "@prometheus-io/lezer-promql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { tempFile } from "../helpers/config.js";
import { collect, create, rejection, startHarness, userRequest, type Harness } from "../helpers/harness.js";
import { scrape, type Exposition } from "../helpers/prometheus.js";

const DASHBOARD = new URL("../../deploy/grafana/cerebras-gateway.json", import.meta.url);
/** Labels Prometheus adds to every scraped series (target labels), not the gateway. */
const TARGET_LABELS = new Set(["instance", "job"]);
/** Grafana's variables that stand where PromQL wants a duration. */
const DURATION_VARIABLES = /\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}/g;

interface Query {
  readonly where: string;
  readonly expr: string;
}

interface Panel {
  readonly title?: string;
  readonly targets?: ReadonlyArray<{ readonly expr?: string; readonly refId?: string }>;
  readonly panels?: readonly Panel[];
}

/** Every query in the dashboard: panel targets (rows included) and query variables. */
function queries(): Query[] {
  const d = JSON.parse(readFileSync(DASHBOARD, "utf8")) as {
    panels: Panel[];
    templating: { list: Array<{ name: string; type: string; query?: string | { query?: string } }> };
  };
  const out: Query[] = [];
  const walk = (panels: readonly Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr !== undefined) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(d.panels);
  for (const v of d.templating.list) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : v.query?.query;
    if (q !== undefined) out.push({ where: `variable $${v.name}`, expr: q });
  }
  return out;
}

interface Named {
  /** Metric selectors: the sample name and the labels its matchers name. */
  readonly selectors: Array<{ readonly metric: string; readonly labels: string[] }>;
  /** Labels in by/without/on/ignoring clauses. */
  readonly grouping: string[];
  readonly errors: string[];
}

/** The metrics and labels a PromQL expression names, from its parse tree. */
function named(expr: string): Named {
  const result: Named = { selectors: [], grouping: [], errors: [] };
  const tree = parser.parse(expr);
  let selector: { metric: string; labels: string[] } | undefined;
  let inGrouping = 0;
  tree.iterate({
    enter(node) {
      const text = expr.slice(node.from, node.to);
      if (node.type.isError) result.errors.push(`syntax error at ${node.from}: "${expr.slice(Math.max(0, node.from - 10), node.to + 10)}"`);
      switch (node.name) {
        case "VectorSelector":
          selector = { metric: "", labels: [] };
          result.selectors.push(selector);
          break;
        case "Identifier":
          if (selector !== undefined && selector.metric === "") selector.metric = text;
          break;
        case "QuotedLabelName":
          result.errors.push(`quoted label name ${text}: write it plainly`);
          break;
        case "GroupingLabels":
          inGrouping++;
          break;
        case "LabelName":
          if (inGrouping > 0) result.grouping.push(text);
          else selector?.labels.push(text);
          break;
      }
    },
    leave(node) {
      if (node.name === "VectorSelector") selector = undefined;
      if (node.name === "GroupingLabels") inGrouping--;
    },
  });
  for (const s of result.selectors) if (s.metric === "") result.errors.push("a selector without a metric name");
  return result;
}

/** label_values(selector, label): Grafana's variable query, checked as a selector plus a label. */
function asPromQL(expr: string): { promql: string; extraLabel?: string } {
  const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(expr.trim());
  if (m !== null) return { promql: m[1]!, extraLabel: m[2]! };
  return { promql: expr.replace(DURATION_VARIABLES, "5m") };
}

/** Sample name → every label name seen on its samples. */
function exportedLabels(metrics: Exposition): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const family of metrics.families.values()) {
    for (const s of family.samples) {
      let labels = out.get(s.name);
      if (labels === undefined) out.set(s.name, (labels = new Set()));
      for (const l of Object.keys(s.labels)) labels.add(l);
    }
  }
  return out;
}

describe("the Grafana dashboard", () => {
  let h: Harness;
  let exported: Map<string, Set<string>>;

  beforeAll(async () => {
    // Every caller gets a token limit and team-b one request a minute, so the quota panels
    // have admissions, settlements and a refusal to show.
    const teamB = { name: "team-b", sha256: createHash("sha256").update("grafana-test-key-b").digest("hex"), limits: { requests_per_minute: 1 } };
    const keysFile = await tempFile("keys.json", JSON.stringify({ defaults: { limits: { tokens_per_minute: 10_000_000 } }, keys: [teamB] }));
    h = await startHarness({
      env: {
        HTTP_PORT: "0",
        GATEWAY_API_KEYS: "team-a=grafana-test-key",
        GATEWAY_KEYS_FILE: keysFile,
        FAKE_UPSTREAM_TOKEN_DELAY_MS: "0",
        MODEL_FALLBACKS: "gpt-oss-120b>zai-glm-4.7",
      },
    });
    const md = new Metadata();
    md.set("authorization", "Bearer grafana-test-key");
    // A little of everything the dashboard shows: unary and streamed calls, a retried
    // upstream failure, a failed call, and a model listing.
    await create(h.chat, userRequest("hello"), {}, md);
    expect((await collect(h.chat.streamChatCompletion(userRequest("hello stream"), md))).error).toBeUndefined();
    h.fake.failNext(cerebrasErrors.serverError(503));
    await create(h.chat, userRequest("retried"), {}, md);
    h.fake.failNext(cerebrasErrors.modelNotFound());
    await rejection(create(h.chat, userRequest("fails"), {}, md));
    // The upstream key panels: a refused key (back at the next call), then a quota (a cooldown) served by the fallback.
    h.fake.failNext(cerebrasErrors.wrongApiKey());
    await rejection(create(h.chat, userRequest("refused"), {}, md));
    h.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(60));
    await create(h.chat, userRequest("falls back"), {}, md);
    // The quota panels: team-b's second call of the minute is refused before the upstream.
    const mdB = new Metadata();
    mdB.set("authorization", "Bearer grafana-test-key-b");
    await create(h.chat, userRequest("team b"), {}, mdB);
    expect(((await rejection(create(h.chat, userRequest("team b again"), {}, mdB))) as ServiceError).code).toBe(status.RESOURCE_EXHAUSTED);
    exported = exportedLabels((await scrape(h.gateway.httpPort!)).metrics);
  });

  afterAll(async () => h?.close());

  it("has queries to check", () => {
    expect(queries().length).toBeGreaterThan(20);
  });

  it.each(queries().map((q) => [q.where, q.expr] as const))("%s names only exported metrics and labels", (_where, expr) => {
    const { promql, extraLabel } = asPromQL(expr);
    const n = named(promql);
    expect(n.errors).toEqual([]);
    expect(n.selectors.length).toBeGreaterThan(0);
    const problems: string[] = [];
    const labelsOfExpression = new Set<string>(TARGET_LABELS);
    for (const s of n.selectors) {
      const labels = exported.get(s.metric);
      if (labels === undefined) {
        problems.push(`${s.metric} is not exported`);
        continue;
      }
      for (const l of labels) labelsOfExpression.add(l);
      for (const l of s.labels) if (!labels.has(l) && !TARGET_LABELS.has(l)) problems.push(`${s.metric} has no label ${l}`);
    }
    for (const l of [...n.grouping, ...(extraLabel === undefined ? [] : [extraLabel])]) {
      if (!labelsOfExpression.has(l)) problems.push(`no metric in the expression has the label ${l}`);
    }
    expect(problems).toEqual([]);
  });

  it("would catch a metric or label the gateway does not export", () => {
    const check = (expr: string): string[] => {
      const n = named(asPromQL(expr).promql);
      return [
        ...n.errors,
        ...n.selectors.flatMap((s) => (exported.has(s.metric) ? s.labels.filter((l) => !exported.get(s.metric)!.has(l)) : [s.metric])),
      ];
    };
    expect(check('sum(rate(gateway_requests_totl{code="OK"}[5m]))')).toEqual(["gateway_requests_totl"]);
    expect(check('sum(rate(gateway_requests_total{status="OK"}[5m]))')).toEqual(["status"]);
    expect(check("histogram_quantile(0.99, rate(gateway_overhead_seconds_bucket[5m])")).not.toEqual([]);
  });
});
