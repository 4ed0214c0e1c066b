/**
 * The metrics' pieces on their own: bounded model labels, odd upstream figures that must
 * not break a call, the stream count, and the test parser's strictness (the e2e suite
 * trusts it).
 */
import { describe, expect, it } from "vitest";
import { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { CallReporter, type CallIdentity } from "../../src/core/call-log.js";
import { CallScope } from "../../src/core/call-scope.js";
import type { CallStats, ChatProvider } from "../../src/core/provider.js";
import { createLogger } from "../../src/log.js";
import { GatewayMetrics } from "../../src/metrics/gateway-metrics.js";
import { parseExposition } from "../helpers/prometheus.js";

const id: CallIdentity = { transport: "grpc", method: "CreateChatCompletion", requestId: "r" };

function setup(listed: readonly string[] = []) {
  const metrics = new GatewayMetrics(createLogger("silent"));
  const reporter = new CallReporter(createLogger("silent"));
  metrics.observe(reporter, { inFlight: () => 0, listed: (m) => listed.includes(m) });
  const report = (stats: CallStats): void => reporter.report(id, {}, stats, performance.now(), undefined);
  const scrape = async () => parseExposition(await metrics.metrics());
  return { metrics, report, scrape };
}

describe("model labels", () => {
  it("catalog models by name; others only once the upstream accepted them, and at most 32; none without a model", async () => {
    const { report, scrape } = setup(["gpt-oss-120b"]);
    report({ model: "gpt-oss-120b" });
    report({ model: "made-up" }); // refused before the upstream
    report({});
    for (let i = 0; i < 40; i++) report({ model: `dedicated-${i}`, upstreamStatus: 200 });
    const m = await scrape();
    const models = new Set(m.series("gateway_requests_total").map((l) => l["model"]));
    expect(models.has("gpt-oss-120b")).toBe(true);
    expect(models.has("made-up")).toBe(false);
    expect(models.has("none")).toBe(true);
    expect([...models].filter((x) => x?.startsWith("dedicated-"))).toHaveLength(32);
    expect(m.sum("gateway_requests_total", { model: "unlisted" })).toBe(1 + 8);
  });
});

describe("odd upstream figures", () => {
  it("negative or non-finite tokens, cost and timings are not counted, and never fail the call", async () => {
    const { report, scrape } = setup(["m"]);
    expect(() =>
      report({ model: "m", promptTokens: -5, completionTokens: Number.NaN, costUsd: -1, attempts: 1, timeInfo: { queueTime: -1, promptTime: Number.POSITIVE_INFINITY } }),
    ).not.toThrow();
    const m = await scrape();
    expect(m.sum("gateway_tokens_total")).toBe(0);
    expect(m.value("gateway_cost_usd_total", { model: "m", key: "anonymous" })).toBe(0);
    expect(m.histogram("cerebras_queue_time_seconds", { model: "m" }).count).toBe(0);
    expect(m.value("gateway_requests_total", { transport: "grpc", method: "CreateChatCompletion", code: "OK", model: "m", key: "anonymous" })).toBe(1);
  });
});

describe("stream count", () => {
  it("counts a stream from the provider call to its call's end, once, and leaves other calls alone", async () => {
    const { metrics, report, scrape } = setup();
    const inner: ChatProvider = {
      createChatCompletion: () => Promise.reject(new Error("unused")),
      streamChatCompletion: () => Promise.resolve(),
      listModels: () => Promise.resolve([]),
      close: () => Promise.resolve(),
    };
    const provider = metrics.countStreams(inner);
    const ctx = new CallScope(Infinity, 60_000, "r");
    const stats = ctx.stats;
    const sink = (): void => {};
    await provider.streamChatCompletion(ChatCompletionRequest.fromPartial({}), ctx, sink);
    await provider.streamChatCompletion(ChatCompletionRequest.fromPartial({}), ctx, sink); // the same call asking twice still is one stream
    expect((await scrape()).value("gateway_in_flight_streams")).toBe(1);
    report({}); // another call ending
    expect((await scrape()).value("gateway_in_flight_streams")).toBe(1);
    report(stats);
    expect((await scrape()).value("gateway_in_flight_streams")).toBe(0);
    report(stats); // reported twice (a bug elsewhere) never goes negative
    expect((await scrape()).value("gateway_in_flight_streams")).toBe(0);
    ctx.dispose();
  });
});

describe("the test parser", () => {
  it("reads escaped label values, NaN and ±Inf", () => {
    const m = parseExposition(
      ['# HELP x_total An \\\\ odd\\nhelp.', "# TYPE x_total counter", 'x_total{a="q\\"uote",b="back\\\\slash",c="new\\nline"} 3', "# HELP g G.", "# TYPE g gauge", "g Nan", 'g{s="+"} +Inf', ""].join("\n"),
    );
    expect(m.value("x_total", { a: 'q"uote', b: "back\\slash", c: "new\nline" })).toBe(3);
    expect(m.families.get("x_total")!.help).toBe("An \\ odd\nhelp.");
    expect(m.value("g")).toBeNaN();
    expect(m.value("g", { s: "+" })).toBe(Infinity);
  });

  it("rejects malformed expositions", () => {
    expect(() => parseExposition("x 1\n")).toThrow(/no # TYPE/);
    expect(() => parseExposition('# HELP x X.\n# TYPE x gauge\nx{a="\\t"} 1\n')).toThrow(/bad escape/);
    expect(() => parseExposition("# HELP x X.\n# TYPE x gauge\nx one\n")).toThrow(/not a number/);
    expect(() => parseExposition("# HELP x X.\n# TYPE x gauge\nx 1")).toThrow(/newline/);
    expect(() => parseExposition("# TYPE x gauge\nx 1\n")).toThrow(/no # HELP/);
  });
});
