/**
 * The core's Tracer (src/core/tracing.ts) on the official OpenTelemetry SDK, exporting
 * over OTLP. src/gateway.ts imports this file (dynamically) only when tracing is
 * configured, so a gateway without OTEL_* variables never loads any of it.
 *
 * Configuration is the SDK's own, from the environment, as for any OpenTelemetry service:
 * the exporter reads OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT / _HEADERS / _TIMEOUT /
 * _COMPRESSION, the tracer provider OTEL_TRACES_SAMPLER[_ARG] and the span limits, the
 * batch processor OTEL_BSP_*, the resource OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
 *
 * Spans are passed explicitly (the call's span is the attempts' parent), never through
 * a context manager: no AsyncLocalStorage on the hot path.
 */
import {
  defaultTextMapGetter,
  defaultTextMapSetter,
  diag,
  DiagLogLevel,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type Tracer as OtelTracer,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { FinishReason, type ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { OtlpProtocol } from "../config.js";
import type { CallRecord } from "../core/call-log.js";
import type { GatewayError } from "../core/errors.js";
import type { CallStats } from "../core/provider.js";
import type { AttemptTrace, CallStart, CallTrace, Tracer, UpstreamTarget } from "../core/tracing.js";
import type { Logger } from "../log.js";
import { finishReasons } from "../wire/enums.js";
import { A, CEREBRAS, FIRST_TOKEN_EVENT, serviceOf } from "./attributes.js";

export interface OtelTracerOptions {
  readonly protocol: OtlpProtocol;
  /** Replaces the OTLP exporter (benchmarks measure the spans without the network). */
  readonly exporter?: SpanExporter | undefined;
  /** Where the SDK's own warnings go (a failed export, a bad variable). */
  readonly logger: Logger;
}

/** The default service.name when OTEL_SERVICE_NAME does not set one. */
export const DEFAULT_SERVICE_NAME = "cerebras-grpc-gateway";

export async function createOtelTracer(options: OtelTracerOptions): Promise<Tracer> {
  forwardDiagnostics(options.logger);
  const exporter = options.exporter ?? (await exporterFor(options.protocol));
  // Later resources win: the SDK's own attributes, then ours, then the environment's.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": DEFAULT_SERVICE_NAME }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
  return new OtelGatewayTracer(provider.getTracer(DEFAULT_SERVICE_NAME), () => boundedShutdown(provider.shutdown(), options.logger));
}

/** The last export may wait on an unreachable collector (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by default): shutdown waits this long at most. */
const SHUTDOWN_FLUSH_MS = 5000;

async function boundedShutdown(flush: Promise<void>, logger: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), SHUTDOWN_FLUSH_MS);
    timer.unref();
  });
  const outcome = await Promise.race([flush.then(() => "flushed" as const, () => "failed" as const), gaveUp]);
  clearTimeout(timer);
  if (outcome !== "flushed") logger.warn({ outcome }, "OpenTelemetry: the last spans were not exported before shutdown");
}

/** Only the exporter asked for is loaded. */
async function exporterFor(protocol: OtlpProtocol): Promise<SpanExporter> {
  switch (protocol) {
    case "http/protobuf":
      return new (await import("@opentelemetry/exporter-trace-otlp-proto")).OTLPTraceExporter();
    case "http/json":
      return new (await import("@opentelemetry/exporter-trace-otlp-http")).OTLPTraceExporter();
    case "grpc":
      return new (await import("@opentelemetry/exporter-trace-otlp-grpc")).OTLPTraceExporter();
  }
}

/** The SDK reports export failures through `diag`, silent by default: into the gateway's log, as warnings. */
function forwardDiagnostics(logger: Logger): void {
  const warn = (message: string, ...args: unknown[]): void => logger.warn({ otel: args.length > 0 ? args.map(String) : undefined }, `OpenTelemetry: ${message}`);
  const ignore = (): void => {};
  diag.setLogger({ error: warn, warn, info: ignore, debug: ignore, verbose: ignore }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
}

const propagator = new W3CTraceContextPropagator();

class OtelGatewayTracer implements Tracer {
  constructor(
    private readonly tracer: OtelTracer,
    readonly shutdown: () => Promise<void>,
  ) {}

  startCall(start: CallStart): CallTrace {
    const parent =
      start.traceparent === undefined
        ? ROOT_CONTEXT
        : propagator.extract(ROOT_CONTEXT, { traceparent: start.traceparent, tracestate: start.tracestate }, defaultTextMapGetter);
    const service = serviceOf(start.method);
    const attributes: Attributes = {
      [A.REQUEST_ID]: start.requestId,
      [A.TRANSPORT]: start.transport,
      [A.RPC_SERVICE]: service,
      [A.RPC_METHOD]: start.method,
    };
    if (start.transport === "grpc") attributes[A.RPC_SYSTEM] = "grpc";
    const span = this.tracer.startSpan(`${service}/${start.method}`, { kind: SpanKind.SERVER, attributes }, parent);
    return new OtelCallTrace(this.tracer, span, start.transport);
  }
}

class OtelCallTrace implements CallTrace {
  constructor(
    private readonly tracer: OtelTracer,
    private readonly span: Span,
    private readonly transport: "grpc" | "http",
  ) {}

  startAttempt(request: ChatCompletionRequest, attempt: number, stream: boolean, upstream: UpstreamTarget): AttemptTrace {
    const attributes: Attributes = {
      [A.OPERATION]: "chat",
      [A.SYSTEM]: CEREBRAS,
      [A.PROVIDER]: CEREBRAS,
      [A.REQUEST_MODEL]: request.model,
      [A.REQUEST_STREAM]: stream,
      [A.ATTEMPT]: attempt,
      [A.SERVER_ADDRESS]: upstream.host,
      [A.SERVER_PORT]: upstream.port,
      [A.HTTP_METHOD]: "POST",
    };
    if (upstream.keyName !== undefined) attributes[A.UPSTREAM_KEY] = upstream.keyName;
    const maxTokens = request.maxCompletionTokens ?? request.maxTokens;
    if (maxTokens !== undefined) attributes[A.REQUEST_MAX_TOKENS] = maxTokens;
    if (request.temperature !== undefined) attributes[A.REQUEST_TEMPERATURE] = request.temperature;
    if (request.topP !== undefined) attributes[A.REQUEST_TOP_P] = request.topP;
    if (request.seed !== undefined) attributes[A.REQUEST_SEED] = request.seed;
    if (request.frequencyPenalty !== undefined) attributes[A.REQUEST_FREQUENCY_PENALTY] = request.frequencyPenalty;
    if (request.presencePenalty !== undefined) attributes[A.REQUEST_PRESENCE_PENALTY] = request.presencePenalty;
    const span = this.tracer.startSpan(`chat ${request.model}`, { kind: SpanKind.CLIENT, attributes }, trace.setSpan(ROOT_CONTEXT, this.span));
    const carrier: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, defaultTextMapSetter);
    const headers: string[] = [];
    for (const name of ["traceparent", "tracestate"]) if (carrier[name] !== undefined) headers.push(name, carrier[name]);
    return new OtelAttemptTrace(span, headers);
  }

  end(record: CallRecord): void {
    const span = this.span;
    if (!span.isRecording()) {
      span.end();
      return;
    }
    if (record.method !== undefined) {
      // The HTTP shim learns that a call streams only once it read the body.
      span.updateName(`${serviceOf(record.method)}/${record.method}`);
      span.setAttribute(A.RPC_METHOD, record.method);
    }
    const s = record.stats;
    const attributes: Attributes = { [A.STATUS]: record.code };
    if (this.transport === "grpc") attributes[A.GRPC_STATUS] = record.error?.code ?? 0;
    if (s.model !== undefined && record.method !== undefined && record.method.endsWith("ChatCompletion")) {
      attributes[A.OPERATION] = "chat";
      attributes[A.SYSTEM] = CEREBRAS;
      attributes[A.PROVIDER] = CEREBRAS;
      attributes[A.REQUEST_MODEL] = s.model;
    }
    if (s.keyName !== undefined) attributes[A.CALLER_KEY] = s.keyName;
    if (s.attempts !== undefined) attributes[A.ATTEMPTS] = s.attempts;
    if (s.upstreamKey !== undefined) attributes[A.UPSTREAM_KEY] = s.upstreamKey;
    if (s.upstreamRequestId !== undefined) attributes[A.UPSTREAM_REQUEST_ID] = s.upstreamRequestId;
    if (s.responseId !== undefined) attributes[A.RESPONSE_ID] = s.responseId;
    if (s.responseModel !== undefined) attributes[A.RESPONSE_MODEL] = s.responseModel;
    if (s.finishReasons !== undefined) attributes[A.FINISH_REASONS] = s.finishReasons.map(finishReasonName);
    if (s.promptTokens !== undefined) attributes[A.INPUT_TOKENS] = s.promptTokens;
    if (s.completionTokens !== undefined) attributes[A.OUTPUT_TOKENS] = s.completionTokens;
    if (s.cachedTokens !== undefined) attributes[A.CACHED_TOKENS] = s.cachedTokens;
    if (s.reasoningTokens !== undefined) attributes[A.REASONING_TOKENS] = s.reasoningTokens;
    if (s.costUsd !== undefined) attributes[A.COST_USD] = s.costUsd;
    if (s.firstChunkAt !== undefined) {
      const ttftS = Math.max(0, s.firstChunkAt - record.startedAt) / 1000;
      attributes[A.TIME_TO_FIRST_CHUNK] = ttftS;
      span.addEvent(FIRST_TOKEN_EVENT, { [A.TIME_TO_FIRST_CHUNK]: ttftS }, performance.timeOrigin + s.firstChunkAt);
    }
    span.setAttributes(attributes);
    if (record.error !== undefined) {
      span.setAttribute(A.ERROR_TYPE, record.error.reason);
      span.setStatus({ code: SpanStatusCode.ERROR, message: `${record.code}: ${record.error.message}` });
    }
    span.end();
  }
}

class OtelAttemptTrace implements AttemptTrace {
  constructor(
    private readonly span: Span,
    readonly headers: readonly string[],
  ) {}

  end(error: GatewayError | undefined, stats: CallStats): void {
    const span = this.span;
    if (span.isRecording()) {
      // A failed attempt's status is in its error (none: no response arrived); a good one's in the stats.
      const status = error === undefined ? stats.upstreamStatus : Number(error.metadata["upstreamStatus"] ?? Number.NaN);
      if (status !== undefined && Number.isFinite(status)) span.setAttribute(A.HTTP_STATUS, status);
      const upstreamId = error === undefined ? stats.upstreamRequestId : error.metadata["upstreamRequestId"];
      if (upstreamId !== undefined) span.setAttribute(A.UPSTREAM_REQUEST_ID, upstreamId);
      if (error !== undefined) {
        span.setAttribute(A.ERROR_TYPE, error.reason);
        span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      }
    }
    span.end();
  }
}

/**
 * A finish reason as the HTTP shim's JSON spells it: the OpenAI name, or for one the
 * contract does not know the upstream's own string (the core keeps it in its place;
 * "other" if it was not sent); "unknown" for a choice without one.
 */
function finishReasonName(r: FinishReason | string): string {
  if (typeof r === "string") return r;
  if (r === FinishReason.FINISH_REASON_OTHER) return "other";
  return finishReasons.toWire(r) ?? "unknown";
}
