/**
 * The per-call counters and histograms (src/metrics/metric-series.ts): what they expose
 * through a prom-client Registry, read back with the strict test parser, and that it is
 * what prom-client's own Counter and Histogram expose for the same updates; and that the
 * gateway's recording, which resolves a call's series up front, exports only those it updated.
 */
import * as prom from "prom-client";
import { describe, expect, it } from "vitest";
import { CallReporter } from "../../src/core/call-log.js";
import { createLogger } from "../../src/log.js";
import { GatewayMetrics } from "../../src/metrics/gateway-metrics.js";
import { Counter, Histogram } from "../../src/metrics/metric-series.js";
import { parseExposition } from "../helpers/prometheus.js";

const BUCKETS = [0.01, 0.1, 1];

function histogram(registry = new prom.Registry()) {
  const h = new Histogram({ name: "t_seconds", help: "A test histogram.", labelNames: ["method", "model"] as const, buckets: BUCKETS, registers: [registry] });
  return { h, registry };
}

function counter(registry = new prom.Registry()) {
  const c = new Counter({ name: "t_total", help: "A test counter.", labelNames: ["model", "kind"] as const, registers: [registry] });
  return { c, registry };
}

async function scrape(registry: prom.Registry) {
  return parseExposition(await registry.metrics());
}

describe("Histogram", () => {
  it("exposes cumulative buckets, +Inf, _sum and _count per label combination", async () => {
    const { h, registry } = histogram();
    const a = h.series("Create", "m1");
    for (const v of [0.005, 0.01, 0.05, 0.5, 2, -1]) a.observe(v); // on a bound counts in it; negative in the first
    h.series("Stream", "m1").observe(0.2);
    h.series("Create", "m2").observe(5);

    const m = await scrape(registry);
    expect(m.families.get("t_seconds")).toMatchObject({ type: "histogram", help: "A test histogram." });
    const bucket = (labels: Record<string, string>, le: string) => m.value("t_seconds_bucket", { ...labels, le });
    const c1 = { method: "Create", model: "m1" };
    expect([bucket(c1, "0.01"), bucket(c1, "0.1"), bucket(c1, "1"), bucket(c1, "+Inf")]).toEqual([3, 4, 5, 6]);
    expect(m.histogram("t_seconds", c1)).toEqual({ count: 6, sum: 0.005 + 0.01 + 0.05 + 0.5 + 2 - 1 });
    const c2 = { method: "Stream", model: "m1" };
    expect([bucket(c2, "0.01"), bucket(c2, "0.1"), bucket(c2, "1"), bucket(c2, "+Inf")]).toEqual([0, 0, 1, 1]);
    expect(m.histogram("t_seconds", c2)).toEqual({ count: 1, sum: 0.2 });
    const c3 = { method: "Create", model: "m2" };
    expect([bucket(c3, "1"), bucket(c3, "+Inf")]).toEqual([0, 1]); // above every bound: +Inf only
    expect(m.histogram("t_seconds", c3)).toEqual({ count: 1, sum: 5 });
    expect(m.series("t_seconds")).toEqual([c1, c2, c3]);
  });

  it("does not observe NaN or ±Infinity, and does not export a series until it observes", async () => {
    const { h, registry } = histogram();
    const s = h.series("Create", "m");
    s.observe(Number.NaN);
    s.observe(Number.POSITIVE_INFINITY);
    s.observe(Number.NEGATIVE_INFINITY);
    expect((await scrape(registry)).series("t_seconds")).toEqual([]);
    s.observe(0.5);
    expect((await scrape(registry)).histogram("t_seconds", { method: "Create", model: "m" })).toEqual({ count: 1, sum: 0.5 });
  });

  it("refuses a bad configuration", () => {
    const make = (labelNames: readonly string[], buckets = BUCKETS, name = "h_seconds") => () =>
      new Histogram({ name, help: "H.", labelNames, buckets, registers: [new prom.Registry()] });
    expect(make(["le"])).toThrow(/reserved/);
    expect(make(["a"], [1, 0.5])).toThrow(/ascending/);
    expect(make(["a"], [1, Infinity])).toThrow(/finite/);
    expect(make(["a-b"])).toThrow(/label name/);
    expect(make(["a", "a"])).toThrow(/twice/);
    expect(make([])).toThrow(/no labels/);
    expect(make(["a"], BUCKETS, "bad name")).toThrow(/metric name/);
  });
});

describe("Counter", () => {
  it("counts per label combination; a bad figure (NaN, negative, Infinity, undefined) adds 0 but exports the series", async () => {
    const { c, registry } = counter();
    const prompt = c.series("m1", "prompt");
    prompt.inc();
    prompt.add(41);
    prompt.add(0.5);
    c.series("m1", "completion").add(7);
    for (const bad of [Number.NaN, -3, Number.POSITIVE_INFINITY, undefined]) c.series("m2", "prompt").add(bad);
    const m = await scrape(registry);
    expect(m.families.get("t_total")).toMatchObject({ type: "counter", help: "A test counter." });
    expect(m.value("t_total", { model: "m1", kind: "prompt" })).toBe(42.5);
    expect(m.value("t_total", { model: "m1", kind: "completion" })).toBe(7);
    expect(m.value("t_total", { model: "m2", kind: "prompt" })).toBe(0);
    expect(m.series("t_total")).toHaveLength(3);
  });

  it("resolves one series per label combination, and checks the number of values", () => {
    const { c } = counter();
    expect(c.series("m", "prompt")).toBe(c.series("m", "prompt"));
    expect(c.series("m", "prompt")).not.toBe(c.series("m", "completion"));
    expect(c.series("m", "prompt")).not.toBe(c.series("prompt", "m"));
    // Casts: the types already forbid this; the check is for callers that go around them.
    expect(() => (c.series as (...v: string[]) => unknown)("m")).toThrow(/1 label values for 2 labels/);
  });

  it("escapes label values as the text format requires", async () => {
    const { c, registry } = counter();
    c.series('q"uote', "back\\slash\nnewline").inc();
    expect((await scrape(registry)).value("t_total", { model: 'q"uote', kind: "back\\slash\nnewline" })).toBe(1);
  });
});

describe("with a prom-client Registry", () => {
  it("reset() zeroes and hides every series; the series callers hold keep counting", async () => {
    const { c, registry } = counter();
    const { h } = histogram(registry);
    const held = c.series("m", "prompt");
    const heldH = h.series("Create", "m");
    held.add(5);
    heldH.observe(0.5);
    c.series("m", "cached").inc();
    registry.resetMetrics();
    expect((await scrape(registry)).series("t_total")).toEqual([]);
    expect((await scrape(registry)).series("t_seconds")).toEqual([]);
    held.inc();
    heldH.observe(2);
    const m = await scrape(registry);
    expect(m.series("t_total")).toEqual([{ model: "m", kind: "prompt" }]);
    expect(m.value("t_total", { model: "m", kind: "prompt" })).toBe(1);
    expect(m.histogram("t_seconds", { method: "Create", model: "m" })).toEqual({ count: 1, sum: 2 });
    expect(m.value("t_seconds_bucket", { method: "Create", model: "m", le: "1" })).toBe(0);
  });

  it("survives Registry.merge, and a second metric of the same name is refused", async () => {
    const { c, registry } = counter();
    c.series("m", "prompt").add(3);
    const merged = prom.Registry.merge([registry, new prom.Registry()]);
    expect((await scrape(merged)).value("t_total", { model: "m", kind: "prompt" })).toBe(3);
    expect(() => counter(registry)).toThrow(/already been registered/);
  });

  it("renders the same text and JSON as prom-client's Counter and Histogram given the same updates", async () => {
    const ours = new prom.Registry();
    const theirs = new prom.Registry();
    const { c } = counter(ours);
    const { h } = histogram(ours);
    const pc = new prom.Counter({ name: "t_total", help: "A test counter.", labelNames: ["model", "kind"] as const, registers: [theirs] });
    const ph = new prom.Histogram({ name: "t_seconds", help: "A test histogram.", labelNames: ["method", "model"] as const, buckets: BUCKETS, registers: [theirs] });
    const models = ["m1", "m2", "m3"];
    const values = [0.001, 0.01, 0.07, 0.1, 0.9, 1, 3, 0.3333333];
    for (let i = 0; i < 60; i++) {
      const model = models[i % 3]!;
      const kind = i % 4 === 0 ? "prompt" : "completion";
      const method = i % 5 === 0 ? "Stream" : "Create";
      const v = values[i % values.length]!;
      c.series(model, kind).add(v * 100);
      pc.inc({ model, kind }, v * 100);
      h.series(method, model).observe(v);
      ph.observe({ method, model }, v);
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    const json = async (r: prom.Registry) => JSON.stringify(await r.getMetricsAsJSON(), (k, v: unknown) => (k === "exemplar" ? undefined : v));
    expect(await json(ours)).toBe(await json(theirs));
  });
});

describe("the gateway's per-call recording", () => {
  it("exports only the series a call updated, though it resolves them all on its first call", async () => {
    const metrics = new GatewayMetrics(createLogger("silent"));
    const reporter = new CallReporter(createLogger("silent"));
    metrics.observe(reporter, { inFlight: () => 0, listed: (m) => m === "m" });
    const id = { transport: "grpc", method: "CreateChatCompletion", requestId: "r" } as const;
    reporter.report(id, {}, { model: "m" }, performance.now(), undefined); // refused before the upstream: no figures
    let m = parseExposition(await metrics.metrics());
    expect(m.series("gateway_requests_total")).toEqual([{ transport: "grpc", method: "CreateChatCompletion", code: "OK", model: "m", key: "anonymous" }]);
    expect(m.histogram("gateway_request_duration_seconds", { transport: "grpc", method: "CreateChatCompletion", code: "OK", model: "m" }).count).toBe(1);
    const untouched = ["gateway_time_to_first_token_seconds", "gateway_overhead_seconds", "gateway_tokens_total", "gateway_cost_usd_total", "cerebras_upstream_attempts_total"];
    for (const name of [...untouched, "cerebras_queue_time_seconds", "cerebras_prompt_time_seconds", "cerebras_completion_time_seconds"]) {
      expect(m.series(name), name).toEqual([]);
    }

    const started = performance.now();
    reporter.report(id, {}, { model: "m", attempts: 1, upstreamMs: 0, firstChunkAt: started, promptTokens: 3, costUsd: 0.5, timeInfo: { queueTime: 0.001 } }, started, undefined);
    m = parseExposition(await metrics.metrics());
    expect(m.value("gateway_requests_total", { transport: "grpc", method: "CreateChatCompletion", code: "OK", model: "m", key: "anonymous" })).toBe(2);
    for (const name of untouched) expect(m.series(name), name).toHaveLength(name === "gateway_tokens_total" ? 4 : 1);
    expect(m.value("gateway_tokens_total", { model: "m", kind: "completion" })).toBe(0);
    expect(m.histogram("cerebras_queue_time_seconds", { model: "m" })).toEqual({ count: 1, sum: 0.001 });
    expect(m.series("cerebras_prompt_time_seconds")).toEqual([]);
  });
});
