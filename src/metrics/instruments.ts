/**
 * Every metric the gateway exports: name, help, labels and buckets, in one place (the
 * README's Metrics table mirrors this file). `gateway_` metrics describe the gateway's
 * own work, `cerebras_` ones the upstream as the gateway saw it. Units are in the names
 * (seconds, usd, tokens), counters end in `_total`.
 */
import { Gauge, type Registry } from "prom-client";
import { COMPLETION_TIME_BUCKETS, DURATION_BUCKETS, OVERHEAD_BUCKETS, PROMPT_TIME_BUCKETS, QUEUE_TIME_BUCKETS, TTFT_BUCKETS } from "./buckets.js";
// Updated once or more per call: our cheap counters and histograms (metric-series.ts), not prom-client's.
import { Counter, Histogram } from "./metric-series.js";

export type Instruments = ReturnType<typeof createInstruments>;

/**
 * @param inFlight calls holding an in-flight slot, read at scrape time
 */
export function createInstruments(registry: Registry, inFlight: () => number) {
  const registers = [registry];
  return {
    requests: new Counter({
      name: "gateway_requests_total",
      help: "Calls finished, by transport (grpc, http), method (RPC name; unrouted for unknown HTTP paths), gRPC status code name, model and gateway key name (anonymous without auth).",
      labelNames: ["transport", "method", "code", "model", "key"] as const,
      registers,
    }),
    duration: new Histogram({
      name: "gateway_request_duration_seconds",
      help: "Call duration, from the request's arrival to the last byte or status sent.",
      labelNames: ["transport", "method", "code", "model"] as const,
      buckets: DURATION_BUCKETS,
      registers,
    }),
    ttft: new Histogram({
      name: "gateway_time_to_first_token_seconds",
      help: "From the call's start to the first chunk from the upstream (unary calls: to the whole answer).",
      labelNames: ["transport", "method", "model"] as const,
      buckets: TTFT_BUCKETS,
      registers,
    }),
    overhead: new Histogram({
      name: "gateway_overhead_seconds",
      help: "Time the gateway added to a call that reached the upstream: call duration minus the time spent waiting on the upstream.",
      labelNames: ["transport", "method"] as const,
      buckets: OVERHEAD_BUCKETS,
      registers,
    }),
    tokens: new Counter({
      name: "gateway_tokens_total",
      help: "Tokens as reported by the upstream's usage, by kind: prompt, completion, cached (part of prompt), reasoning (part of completion).",
      labelNames: ["model", "kind"] as const,
      registers,
    }),
    cost: new Counter({
      name: "gateway_cost_usd_total",
      help: "Cost of the calls in USD, from usage and the catalog's prices (calls whose price is unknown are not counted).",
      labelNames: ["model", "key"] as const,
      registers,
    }),
    inFlightCalls: new Gauge({
      name: "gateway_in_flight_calls",
      help: "Calls in progress on both transports (those holding a MAX_IN_FLIGHT slot).",
      registers,
      collect(this: Gauge) {
        this.set(inFlight());
      },
    }),
    inFlightStreams: new Gauge({
      name: "gateway_in_flight_streams",
      help: "Streamed chat completions in progress (from the upstream request until the call ends).",
      registers,
    }),
    attempts: new Counter({
      name: "cerebras_upstream_attempts_total",
      help: "Chat-completion requests sent to Cerebras, retries included.",
      labelNames: ["model"] as const,
      registers,
    }),
    retries: new Counter({
      name: "cerebras_upstream_retries_total",
      help: "Upstream retries, by the reason (ErrorInfo reason) of the attempt that failed.",
      labelNames: ["reason"] as const,
      registers,
    }),
    upstreamErrors: new Counter({
      name: "cerebras_upstream_errors_total",
      help: "Failed upstream attempts, retried or not, by ErrorInfo reason (UPSTREAM_*, MODEL_NOT_FOUND).",
      labelNames: ["reason"] as const,
      registers,
    }),
    queueTime: new Histogram({
      name: "cerebras_queue_time_seconds",
      help: "Cerebras time_info.queue_time: time the request waited in Cerebras' queue.",
      labelNames: ["model"] as const,
      buckets: QUEUE_TIME_BUCKETS,
      registers,
    }),
    promptTime: new Histogram({
      name: "cerebras_prompt_time_seconds",
      help: "Cerebras time_info.prompt_time: time Cerebras spent processing the prompt.",
      labelNames: ["model"] as const,
      buckets: PROMPT_TIME_BUCKETS,
      registers,
    }),
    completionTime: new Histogram({
      name: "cerebras_completion_time_seconds",
      help: "Cerebras time_info.completion_time: time Cerebras spent generating the completion.",
      labelNames: ["model"] as const,
      buckets: COMPLETION_TIME_BUCKETS,
      registers,
    }),
  };
}
