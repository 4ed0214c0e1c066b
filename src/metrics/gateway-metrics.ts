/**
 * One gateway's Prometheus metrics: its own registry (never prom-client's global one,
 * so several gateways in one process, as in tests, keep their own counts), the process
 * metrics (shared: there is one process) merged in, and the hooks that feed it: the CallReporter (once per finished
 * call), the provider's retry hook, and the stream count around the provider. Gauges
 * that mirror state (calls in flight) are read at scrape time.
 */
import { Registry } from "prom-client";
import type { AdmissionObserver } from "../admission/events.js";
import type { CallReporter } from "../core/call-log.js";
import type { ChatProvider } from "../core/provider.js";
import type { Logger } from "../log.js";
import type { UpstreamObserver } from "../upstreams/events.js";
import type { KeyReport } from "../upstreams/pool.js";
import { createAdmissionMetrics } from "./admission-metrics.js";
import type { MetricsSource } from "./exposition.js";
import { createInstruments, type Instruments } from "./instruments.js";
import { createUpstreamMetrics } from "./upstream-metrics.js";
import { ModelLabels } from "./labels.js";
import { processMetrics } from "./process-metrics.js";
import { CallRecorder } from "./record-call.js";
import { StreamCount } from "./stream-count.js";

/** What the metrics read from the rest of the gateway. */
export interface MetricSources {
  /** Calls holding an in-flight slot now (InFlightLimit.inFlight), read at scrape time. */
  readonly inFlight: () => number;
  /** Whether the model catalog lists this model id (the `model` label stays bounded). */
  readonly listed: (id: string) => boolean;
}

export class GatewayMetrics implements MetricsSource {
  /** The gateway's metrics and the process metrics, as /metrics serves them. */
  readonly registry: Registry;
  private readonly m: Instruments;
  private readonly streams: StreamCount;
  private inFlight: () => number = () => 0;

  constructor(private readonly logger: Logger) {
    const own = new Registry();
    this.m = createInstruments(own, () => this.inFlight());
    this.registry = Registry.merge([own, processMetrics()]);
    this.streams = new StreamCount((n) => this.m.inFlightStreams.set(n));
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /** Counts every finished call `reporter` reports; reads in-flight calls and listed models from `sources`. */
  observe(reporter: CallReporter, sources: MetricSources): void {
    this.inFlight = sources.inFlight;
    const calls = new CallRecorder(this.m, new ModelLabels(sources.listed));
    reporter.observe((record) => {
      this.streams.ended(record);
      try {
        calls.record(record);
      } catch (err) {
        // A metrics bug must never fail the call it describes (or the observers after it).
        this.logger.error({ err, requestId: record.requestId }, "recording a call's metrics failed");
      }
    });
  }

  /**
   * The admission's hooks: quota admissions and refusals, reserved vs charged tokens, the
   * limit store (admission-metrics.ts). Registered on the served registry: Registry.merge
   * copied the metrics `own` had when it was made, not later ones.
   */
  admissionObserver(): AdmissionObserver {
    return createAdmissionMetrics(this.registry);
  }

  /**
   * The key pool's hooks and gauges: requests, errors, cooldowns and revocations per
   * upstream key, fallbacks, and (read from `report` at scrape time) what each key has
   * left. Registered on the served registry, like the admission's.
   */
  upstreamObserver(report: () => readonly KeyReport[]): UpstreamObserver {
    return createUpstreamMetrics(this.registry, report);
  }

  /** `provider` with its streams counted (gateway_in_flight_streams); chunks pass untouched. */
  countStreams(provider: ChatProvider): ChatProvider {
    return this.streams.wrap(provider);
  }

  /** The provider's onRetry hook: an upstream attempt failed with `reason` and will be retried. */
  upstreamRetried(reason: string): void {
    this.m.retries.series(reason).inc();
    this.m.upstreamErrors.series(reason).inc();
  }
}
