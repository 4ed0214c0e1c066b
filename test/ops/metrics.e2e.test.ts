/**
 * Prometheus metrics (issue 6): known traffic over both transports (unary and streaming,
 * one upstream failure, one retried call, refusals before the upstream), then a real
 * scrape of /metrics, parsed, checked for exact counter values by label set, histogram
 * observation counts, tokens and cost equal to what the callers were told, in-flight
 * gauges, and the process metrics. Also: /metrics is public under auth, off with
 * METRICS_ENABLED=false, and on its own METRICS_PORT listener when the shim is off.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatCompletionRequest, type Usage } from "../../gen/aigateway/v1/chat.js";
import { loadConfig } from "../../src/config.js";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { collect, create, startHarness, stream, userRequest } from "../helpers/harness.js";
import { chatBody, json, raw, sseData, startHttpHarness, type HttpHarness } from "../helpers/http.js";
import { scrape, type Exposition, type Labels } from "../helpers/prometheus.js";

const MODEL = "gpt-oss-120b";
const anonymous = { key: "anonymous" };

/** What a caller was told about its usage, in the metrics' terms. */
interface Told {
  readonly prompt: number;
  readonly completion: number;
  readonly cached: number;
  readonly reasoning: number;
  readonly costUsd: number;
}

const fromProto = (u: Usage | undefined): Told => {
  if (u === undefined) throw new Error("no usage");
  return {
    prompt: u.promptTokens,
    completion: u.completionTokens,
    cached: u.promptTokensDetails?.cachedTokens ?? 0,
    reasoning: u.completionTokensDetails?.reasoningTokens ?? 0,
    costUsd: u.costUsd ?? NaN,
  };
};

interface JsonUsage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number };
  completion_tokens_details?: { reasoning_tokens?: number };
  cost_usd?: number;
}

const fromJson = (u: JsonUsage | undefined): Told => {
  if (u === undefined) throw new Error("no usage");
  return {
    prompt: u.prompt_tokens,
    completion: u.completion_tokens,
    cached: u.prompt_tokens_details?.cached_tokens ?? 0,
    reasoning: u.completion_tokens_details?.reasoning_tokens ?? 0,
    costUsd: u.cost_usd ?? NaN,
  };
};

async function rejected(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error("expected the call to fail");
}

const sortLabels = (xs: readonly Labels[]): string[] => xs.map((l) => JSON.stringify(Object.entries(l).sort())).sort();

describe("after known traffic", () => {
  let h: HttpHarness;
  let m: Exposition;
  let contentType: string | undefined;
  const told: Told[] = [];

  beforeAll(async () => {
    h = await startHttpHarness({ env: { UPSTREAM_MAX_RETRIES: "1" } });

    // gRPC unary and streaming.
    told.push(fromProto((await create(h.chat, userRequest("grpc unary", { model: MODEL }))).usage));
    const grpcStream = await stream(h.chat, userRequest("grpc stream"));
    expect(grpcStream.error).toBeUndefined();
    told.push(fromProto(grpcStream.chunks.at(-1)!.usage));

    // HTTP unary and streaming (with usage, as OpenAI's stream_options asks).
    const httpUnary = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("http unary")) });
    expect(httpUnary.status).toBe(200);
    told.push(fromJson((JSON.parse(httpUnary.text) as { usage?: JsonUsage }).usage));
    const httpStream = await raw(h.httpPort, {
      path: "/v1/chat/completions",
      ...json(chatBody("http stream", { stream: true, stream_options: { include_usage: true } })),
    });
    const events = sseData(httpStream.text).filter((d) => d !== "[DONE]").map((d) => JSON.parse(d) as { usage?: JsonUsage | null });
    told.push(fromJson(events.findLast((e) => e.usage != null)?.usage ?? undefined));

    // One call retried after an upstream 500, then answered.
    h.fake.failNext(cerebrasErrors.serverError(500));
    told.push(fromProto((await create(h.chat, userRequest("retried"))).usage));

    // One upstream failure that is not retried (Cerebras refuses the request: 400).
    h.fake.failNext(cerebrasErrors.wrongApiFormat());
    expect((await rejected(create(h.chat, userRequest("refused upstream")))).code).toBe(status.INVALID_ARGUMENT);

    // Refused before the upstream: invalid request (no model resolved yet), two unknown models, an unknown HTTP path.
    expect((await rejected(create(h.chat, ChatCompletionRequest.fromPartial({})))).code).toBe(status.INVALID_ARGUMENT);
    expect((await rejected(create(h.chat, userRequest("?", { model: "no-such-model-1" })))).code).toBe(status.NOT_FOUND);
    expect((await rejected(create(h.chat, userRequest("?", { model: "no-such-model-2" })))).code).toBe(status.NOT_FOUND);
    expect((await raw(h.httpPort, { method: "GET", path: "/nope" })).status).toBe(404);

    const s = await scrape(h.httpPort);
    m = s.metrics;
    contentType = s.contentType;
  });
  afterAll(async () => {
    await h?.close();
  });

  it("serves the Prometheus text format", () => {
    expect(contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(m.families.get("gateway_requests_total")?.type).toBe("counter");
    expect(m.families.get("gateway_request_duration_seconds")?.type).toBe("histogram");
    expect(m.families.get("gateway_in_flight_calls")?.type).toBe("gauge");
  });

  it("gateway_requests_total: one series per transport/method/code/model/key, exact counts", () => {
    const expected: [Labels, number][] = [
      [{ transport: "grpc", method: "CreateChatCompletion", code: "OK", model: MODEL, ...anonymous }, 2],
      [{ transport: "grpc", method: "StreamChatCompletion", code: "OK", model: MODEL, ...anonymous }, 1],
      [{ transport: "http", method: "CreateChatCompletion", code: "OK", model: MODEL, ...anonymous }, 1],
      [{ transport: "http", method: "StreamChatCompletion", code: "OK", model: MODEL, ...anonymous }, 1],
      [{ transport: "grpc", method: "CreateChatCompletion", code: "INVALID_ARGUMENT", model: MODEL, ...anonymous }, 1],
      [{ transport: "grpc", method: "CreateChatCompletion", code: "INVALID_ARGUMENT", model: "none", ...anonymous }, 1],
      // Caller-made model names never become label values.
      [{ transport: "grpc", method: "CreateChatCompletion", code: "NOT_FOUND", model: "unlisted", ...anonymous }, 2],
      [{ transport: "http", method: "unrouted", code: "NOT_FOUND", model: "none", ...anonymous }, 1],
    ];
    expect(sortLabels(m.series("gateway_requests_total"))).toEqual(sortLabels(expected.map(([l]) => l)));
    for (const [labels, n] of expected) expect(m.value("gateway_requests_total", labels), JSON.stringify(labels)).toBe(n);
  });

  it("gateway_request_duration_seconds: one observation per call, by transport/method/code/model", () => {
    for (const labels of m.series("gateway_requests_total")) {
      const { key: _key, ...rest } = labels;
      expect(m.histogram("gateway_request_duration_seconds", rest).count, JSON.stringify(rest)).toBe(m.value("gateway_requests_total", labels));
    }
    expect(m.series("gateway_request_duration_seconds")).toHaveLength(8);
  });

  it("gateway_time_to_first_token_seconds: calls that got an answer; gateway_overhead_seconds: calls that reached the upstream", () => {
    const ttft: [Labels, number][] = [
      [{ transport: "grpc", method: "CreateChatCompletion", model: MODEL }, 2],
      [{ transport: "grpc", method: "StreamChatCompletion", model: MODEL }, 1],
      [{ transport: "http", method: "CreateChatCompletion", model: MODEL }, 1],
      [{ transport: "http", method: "StreamChatCompletion", model: MODEL }, 1],
    ];
    expect(sortLabels(m.series("gateway_time_to_first_token_seconds"))).toEqual(sortLabels(ttft.map(([l]) => l)));
    for (const [labels, n] of ttft) {
      const { count, sum } = m.histogram("gateway_time_to_first_token_seconds", labels);
      expect(count).toBe(n);
      expect(sum).toBeGreaterThan(0);
    }

    // The 400 refused upstream reached it too; the pre-flight refusals did not.
    const overhead: [Labels, number][] = [
      [{ transport: "grpc", method: "CreateChatCompletion" }, 3],
      [{ transport: "grpc", method: "StreamChatCompletion" }, 1],
      [{ transport: "http", method: "CreateChatCompletion" }, 1],
      [{ transport: "http", method: "StreamChatCompletion" }, 1],
    ];
    expect(sortLabels(m.series("gateway_overhead_seconds"))).toEqual(sortLabels(overhead.map(([l]) => l)));
    for (const [labels, n] of overhead) {
      const { count, sum } = m.histogram("gateway_overhead_seconds", labels);
      expect(count).toBe(n);
      // Overhead is a part of the calls' duration.
      expect(sum).toBeGreaterThanOrEqual(0);
      expect(sum).toBeLessThan(m.sum("gateway_request_duration_seconds_sum", labels));
    }
  });

  it("upstream attempts, retries and errors by reason", () => {
    // 6 calls reached the upstream; the retried one twice.
    expect(m.value("cerebras_upstream_attempts_total", { model: MODEL })).toBe(7);
    expect(h.fake.chatRequests()).toHaveLength(7);
    expect(m.series("cerebras_upstream_retries_total")).toEqual([{ reason: "UPSTREAM_SERVER_ERROR" }]);
    expect(m.value("cerebras_upstream_retries_total", { reason: "UPSTREAM_SERVER_ERROR" })).toBe(1);
    expect(sortLabels(m.series("cerebras_upstream_errors_total"))).toEqual(sortLabels([{ reason: "UPSTREAM_SERVER_ERROR" }, { reason: "UPSTREAM_INVALID_REQUEST" }]));
    expect(m.value("cerebras_upstream_errors_total", { reason: "UPSTREAM_SERVER_ERROR" })).toBe(1);
    expect(m.value("cerebras_upstream_errors_total", { reason: "UPSTREAM_INVALID_REQUEST" })).toBe(1);
  });

  it("tokens by kind and cost are what the callers were told, summed", () => {
    expect(told).toHaveLength(5);
    const total = (k: keyof Told): number => told.reduce((acc, t) => acc + t[k], 0);
    expect(total("prompt")).toBeGreaterThan(0);
    expect(total("reasoning")).toBeGreaterThan(0); // gpt-oss reasons, so the kind is exercised
    for (const kind of ["prompt", "completion", "cached", "reasoning"] as const) {
      expect(m.value("gateway_tokens_total", { model: MODEL, kind }), kind).toBe(total(kind));
    }
    expect(m.series("gateway_tokens_total")).toHaveLength(4);
    expect(total("costUsd")).toBeGreaterThan(0);
    expect(m.series("gateway_cost_usd_total")).toEqual([{ model: MODEL, ...anonymous }]);
    expect(m.value("gateway_cost_usd_total", { model: MODEL, ...anonymous })).toBeCloseTo(total("costUsd"), 12);
  });

  it("Cerebras time_info histograms by model: one observation per answered call", () => {
    for (const name of ["cerebras_queue_time_seconds", "cerebras_prompt_time_seconds", "cerebras_completion_time_seconds"]) {
      expect(m.series(name), name).toEqual([{ model: MODEL }]);
      expect(m.histogram(name, { model: MODEL }).count, name).toBe(5);
    }
    // The fake's fixed figures (src/fake-upstream/server.ts timeInfo), five times.
    expect(m.histogram("cerebras_queue_time_seconds", { model: MODEL }).sum).toBeCloseTo(5 * 0.000_213, 9);
    expect(m.histogram("cerebras_prompt_time_seconds", { model: MODEL }).sum).toBeCloseTo(5 * 0.001_724, 9);
  });

  it("in-flight gauges are back to 0", () => {
    expect(m.value("gateway_in_flight_calls")).toBe(0);
    expect(m.value("gateway_in_flight_streams")).toBe(0);
  });

  it("default process metrics are there", () => {
    for (const name of ["process_cpu_seconds_total", "process_resident_memory_bytes", "nodejs_heap_size_used_bytes", "nodejs_eventloop_lag_seconds", "nodejs_version_info"]) {
      expect(m.families.has(name), name).toBe(true);
    }
    expect(m.value("process_cpu_seconds_total")).toBeGreaterThan(0);
  });

  it("scrapes and probes are routine: not counted as requests (and logged at debug only)", async () => {
    await raw(h.httpPort, { method: "GET", path: "/healthz" });
    const again = (await scrape(h.httpPort)).metrics;
    expect(again.value("gateway_requests_total", { transport: "http", method: "Metrics", code: "OK", model: "none", ...anonymous })).toBeUndefined();
    expect(again.sum("gateway_requests_total")).toBe(m.sum("gateway_requests_total"));
  });
});

describe("in-flight gauges", () => {
  it("count a held gRPC stream and a held HTTP stream while they run, and drop when they end", async () => {
    const h = await startHttpHarness();
    try {
      const grpcGate = h.fake.holdNext(1);
      const grpcCall = collect(h.chat.streamChatCompletion(userRequest("held grpc")));
      await grpcGate.reached;
      let m = (await scrape(h.httpPort)).metrics;
      expect(m.value("gateway_in_flight_calls")).toBe(1);
      expect(m.value("gateway_in_flight_streams")).toBe(1);

      const httpGate = h.fake.holdNext(1);
      const httpCall = raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("held http", { stream: true })) });
      httpCall.catch(() => undefined); // awaited below; if an assertion fails first, close() resets it
      await httpGate.reached;
      m = (await scrape(h.httpPort)).metrics;
      expect(m.value("gateway_in_flight_calls")).toBe(2);
      expect(m.value("gateway_in_flight_streams")).toBe(2);

      grpcGate.release();
      httpGate.release();
      expect((await grpcCall).error).toBeUndefined();
      expect((await httpCall).status).toBe(200);
      m = (await scrape(h.httpPort)).metrics;
      expect(m.value("gateway_in_flight_calls")).toBe(0);
      expect(m.value("gateway_in_flight_streams")).toBe(0);
      // The scrapes took no in-flight slot, were no stream, and are not counted as requests.
      expect(m.value("gateway_requests_total", { transport: "http", method: "Metrics", code: "OK", model: "none", ...anonymous })).toBeUndefined();
    } finally {
      await h.close();
    }
  });

  it("a stream cancelled by its caller is no longer in flight", async () => {
    const h = await startHttpHarness();
    try {
      const gate = h.fake.holdNext(1);
      const call = h.chat.streamChatCompletion(userRequest("cancelled"));
      const result = collect(call);
      await gate.reached;
      expect((await scrape(h.httpPort)).metrics.value("gateway_in_flight_streams")).toBe(1);
      call.cancel();
      expect((await result).error?.code).toBe(status.CANCELLED);
      // The gateway reports the call when it sees the cancellation; wait for the count, bounded.
      let m = (await scrape(h.httpPort)).metrics;
      for (let i = 0; i < 100 && m.value("gateway_requests_total", { transport: "grpc", method: "StreamChatCompletion", code: "CANCELLED", model: MODEL, ...anonymous }) !== 1; i++) {
        await new Promise((r) => setTimeout(r, 10));
        m = (await scrape(h.httpPort)).metrics;
      }
      expect(m.value("gateway_requests_total", { transport: "grpc", method: "StreamChatCompletion", code: "CANCELLED", model: MODEL, ...anonymous })).toBe(1);
      expect(m.value("gateway_in_flight_streams")).toBe(0);
      expect(m.value("gateway_in_flight_calls")).toBe(0);
      gate.release();
    } finally {
      await h.close();
    }
  });
});

describe("exposure", () => {
  it("/metrics needs no gateway key when auth is on; the calls carry their key's name", async () => {
    const key = "metrics-test-key-0123456789";
    const h = await startHttpHarness({ env: { GATEWAY_API_KEYS: `team-a=${key}` } });
    try {
      expect((await raw(h.httpPort, { method: "GET", path: "/v1/models" })).status).toBe(401);
      const ok = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("keyed")), headers: { "content-type": "application/json", authorization: `Bearer ${key}` } });
      expect(ok.status).toBe(200);
      const cost = (JSON.parse(ok.text) as { usage: JsonUsage }).usage.cost_usd!;

      const m = (await scrape(h.httpPort)).metrics; // no authorization header
      expect(m.value("gateway_requests_total", { transport: "http", method: "CreateChatCompletion", code: "OK", model: MODEL, key: "team-a" })).toBe(1);
      expect(m.value("gateway_cost_usd_total", { model: MODEL, key: "team-a" })).toBeCloseTo(cost, 12);
      expect(m.value("gateway_requests_total", { transport: "http", method: "ListModels", code: "UNAUTHENTICATED", model: "none", ...anonymous })).toBe(1);
    } finally {
      await h.close();
    }
  });

  it("METRICS_ENABLED=false: no /metrics", async () => {
    const h = await startHttpHarness({ env: { METRICS_ENABLED: "false" } });
    try {
      expect(h.gateway.metricsPort).toBeUndefined();
      expect((await raw(h.httpPort, { method: "GET", path: "/metrics" })).status).toBe(404);
    } finally {
      await h.close();
    }
  });

  it("HTTP_ENABLED=false: /metrics on its own METRICS_PORT listener, closed with the gateway", async () => {
    const h = await startHarness({ env: { HTTP_ENABLED: "false" } });
    const port = h.gateway.metricsPort;
    try {
      expect(h.gateway.httpPort).toBeUndefined();
      expect(port).toBeGreaterThan(0);
      const told = fromProto((await create(h.chat, userRequest("standalone"))).usage);

      const s = await scrape(port!);
      expect(s.contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
      expect(s.metrics.value("gateway_requests_total", { transport: "grpc", method: "CreateChatCompletion", code: "OK", model: MODEL, ...anonymous })).toBe(1);
      expect(s.metrics.value("gateway_tokens_total", { model: MODEL, kind: "completion" })).toBe(told.completion);
      expect(s.metrics.histogram("cerebras_queue_time_seconds", { model: MODEL }).count).toBe(1);
      expect(s.metrics.families.has("process_cpu_seconds_total")).toBe(true);
      // Scrapes of this listener are not calls.
      expect(s.metrics.series("gateway_requests_total")).toHaveLength(1);

      expect((await raw(port!, { method: "GET", path: "/v1/models" })).status).toBe(404);
      const post = await raw(port!, { method: "POST", path: "/metrics" });
      expect(post.status).toBe(405);
      expect(post.headers["allow"]).toBe("GET");
    } finally {
      await h.close();
    }
    await expect(raw(port!, { method: "GET", path: "/metrics" })).rejects.toMatchObject({ code: "ECONNREFUSED" });
  });

  it("METRICS_PORT: default 9464, 0 with GRPC_PORT=0, and validated", () => {
    expect(loadConfig({}).metricsPort).toBe(9464);
    expect(loadConfig({ GRPC_PORT: "0" }).metricsPort).toBe(0);
    expect(loadConfig({ METRICS_PORT: "9100" }).metricsPort).toBe(9100);
    expect(loadConfig({}).metricsEnabled).toBe(true);
    expect(loadConfig({ METRICS_ENABLED: "false" }).metricsEnabled).toBe(false);
    expect(() => loadConfig({ METRICS_PORT: "70000" })).toThrow(/METRICS_PORT: must be 0-65535/);
    expect(() => loadConfig({ METRICS_ENABLED: "maybe" })).toThrow(/METRICS_ENABLED: must be true or false/);
  });
});
