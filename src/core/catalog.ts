/**
 * The model catalog: what the upstream offers, with limits, prices and capabilities,
 * refreshed in the background so no call waits for it. When a refresh fails the last
 * good catalog stays in service, marked stale; pre-flight checks that need an
 * up-to-date catalog (unknown model) only run while it is fresh.
 */
import type { Model, ModelPricing } from "../../gen/aigateway/v1/models.js";
import { CallScope } from "./call-scope.js";
import { GatewayError } from "./errors.js";
import type { CallContext } from "./provider.js";

export interface CatalogOptions {
  /** Refresh period. */
  readonly ttlMs: number;
  /** alias → model id, e.g. fast → gpt-oss-120b. */
  readonly aliases: ReadonlyMap<string, string>;
  /** model id → prices (USD per token) that replace the upstream's, e.g. negotiated rates. */
  readonly pricingOverrides: ReadonlyMap<string, ModelPricing>;
  /** Told about failed refreshes (a log line). */
  readonly onRefreshError?: (err: unknown) => void;
}

export interface CatalogSnapshot {
  readonly models: readonly Model[];
  /** The last refresh failed (or none succeeded yet). */
  readonly stale: boolean;
  /** Epoch ms of the last successful refresh; 0 if none. */
  readonly fetchedAt: number;
}

/** Loads the upstream's models; the catalog gives it a context with its own deadline. */
export type CatalogLoader = (ctx: CallContext) => Promise<Model[]>;

export class ModelCatalog {
  private byId = new Map<string, Model>();
  private models: readonly Model[] = [];
  private fetchedAt = 0;
  private lastRefreshFailed = true;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private failure: GatewayError | undefined;
  /** Stopped (shutdown, or a start-up being unwound): a load the stop aborted is not a refresh failure worth a log line. */
  private stopped = false;

  constructor(
    private readonly load: CatalogLoader,
    private readonly options: CatalogOptions,
  ) {}

  /**
   * Starts background refreshes, the first one now. Never blocks start-up: the returned
   * promise (the first load settling, loaded or not) is there for whoever wants to wait.
   */
  start(): Promise<void> {
    const first = this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.ttlMs);
    this.timer.unref();
    return first;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Fresh: loaded, and the last refresh succeeded within two periods. */
  get fresh(): boolean {
    return !this.lastRefreshFailed && Date.now() - this.fetchedAt < 2 * this.options.ttlMs;
  }

  get loaded(): boolean {
    return this.fetchedAt > 0;
  }

  /** Why the last refresh failed, if it did. */
  get lastError(): GatewayError | undefined {
    return this.lastRefreshFailed ? this.failure : undefined;
  }

  snapshot(): CatalogSnapshot {
    return { models: this.models, stale: !this.fresh, fetchedAt: this.fetchedAt };
  }

  /** An alias's model id, or the name itself. */
  resolve(name: string): string {
    return this.options.aliases.get(name) ?? name;
  }

  /** A model by id or alias. */
  get(name: string): Model | undefined {
    return this.byId.get(this.resolve(name));
  }

  /** Prices for a model id: the override if configured, else the catalog's; undefined if unknown. */
  pricing(id: string): ModelPricing | undefined {
    return this.options.pricingOverrides.get(id) ?? this.byId.get(id)?.pricing;
  }

  /**
   * Loads the catalog now. Concurrent callers share one load. Never rejects: a failure
   * keeps the last good catalog and marks it stale.
   */
  refresh(): Promise<void> {
    this.inFlight ??= this.loadOnce().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async loadOnce(): Promise<void> {
    const scope = new CallScope(Infinity, Math.min(this.options.ttlMs, 30_000), "catalog-refresh");
    try {
      this.install(await this.load(scope));
    } catch (err) {
      this.lastRefreshFailed = true;
      this.failure = GatewayError.from(err);
      if (!this.stopped) this.options.onRefreshError?.(err);
    } finally {
      scope.dispose();
    }
  }

  private install(models: Model[]): void {
    const aliasesOf = new Map<string, string[]>();
    for (const [alias, id] of this.options.aliases) aliasesOf.set(id, [...(aliasesOf.get(id) ?? []), alias]);
    const byId = new Map<string, Model>();
    const list = models.map((m) => {
      const override = this.options.pricingOverrides.get(m.id);
      const model: Model = { ...m, aliases: aliasesOf.get(m.id) ?? [], ...(override ? { pricing: override } : {}) };
      byId.set(model.id, model);
      return model;
    });
    this.byId = byId;
    this.models = list;
    this.fetchedAt = Date.now();
    this.lastRefreshFailed = false;
  }
}
