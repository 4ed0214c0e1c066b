/**
 * Builds the gateway's Admission from its configuration: NO_ADMISSION when nothing is
 * limited (no caller limit anywhere, ORG_LIMITS off: no store, no Redis connection, no
 * cost per call), else a QuotaAdmission over the memory store or, with REDIS_URL, the
 * Redis store, behind the fail-mode breaker.
 */
import type { ModelPricing } from "../../gen/aigateway/v1/models.js";
import { NO_ADMISSION, type Admission } from "../core/admission.js";
import type { Logger } from "../log.js";
import type { Clock } from "./bucket.js";
import type { QuotaConfig } from "./config.js";
import { NO_OBSERVER, type AdmissionObserver } from "./events.js";
import { GuardedStore } from "./fail-mode.js";
import { LeasedStore } from "./lease-store.js";
import type { AdmissionStore } from "./limit-store.js";
import { MemoryStore } from "./memory-store.js";
import { OrgLimitTracker } from "./org-limits.js";
import { QuotaAdmission } from "./quota-admission.js";
import { RedisStore } from "./redis-store.js";
import { CLUSTER_NODE_WITHOUT_CLUSTER_MODE, describeTarget } from "../redis/client.js";

export interface AdmissionDeps {
  readonly config: QuotaConfig;
  /** The catalog's prices for a model id. */
  readonly pricing: (model: string) => ModelPricing | undefined;
  readonly logger: Logger;
  readonly observer?: AdmissionObserver | undefined;
  readonly clock?: Clock;
}

export interface BuiltAdmission {
  readonly admission: Admission;
  /** For the start-up line: off, memory, or redis (host:port, never credentials). */
  readonly store: string;
}

/** How long start-up waits for Redis before going on without it (in fail mode until it comes). */
const CONNECT_WAIT_MS = 2000;

export async function createAdmission(deps: AdmissionDeps): Promise<BuiltAdmission> {
  const { config, logger } = deps;
  if (config.callers.empty && config.org === undefined) return { admission: NO_ADMISSION, store: "off" };
  const observer = deps.observer ?? NO_OBSERVER;

  let guarded: GuardedStore;
  let where: string;
  if (config.redis !== undefined) {
    const redis = new RedisStore({
      target: config.redis,
      prefix: config.redisPrefix,
      commandTimeoutMs: config.redisTimeoutMs,
      onConnection: (up) => guarded?.connection(up),
      onClusterNode: () => logger.error({ store: "redis" }, CLUSTER_NODE_WITHOUT_CLUSTER_MODE),
    });
    guarded = new GuardedStore(redis, config.failMode, logger, observer);
    where = describeTarget(config.redis);
    if (!(await redis.ready(CONNECT_WAIT_MS))) guarded.startDown();
  } else {
    guarded = new GuardedStore(new MemoryStore(), config.failMode, logger, observer);
    where = "memory";
  }
  observer.storeState(guarded.up);
  // Leases only where there is something to save: a round trip to a shared Redis.
  let store: AdmissionStore = guarded;
  if (config.redis !== undefined && config.leaseCalls > 0) {
    store = new LeasedStore(guarded, { calls: config.leaseCalls, idleMs: config.leaseIdleMs, clock: deps.clock ?? Date.now, onLocal: () => observer.leaseAdmitted() });
    where += `, leases of ${config.leaseCalls} calls`;
  }

  const admission = new QuotaAdmission({
    callers: config.callers,
    org: config.org === undefined ? undefined : new OrgLimitTracker(config.org),
    store,
    failMode: config.failMode,
    pricing: deps.pricing,
    defaultCompletionTokens: config.defaultCompletionTokens,
    orgQueueMaxWaitMs: config.orgQueueMaxWaitMs,
    observer,
    ...(deps.clock !== undefined ? { clock: deps.clock } : {}),
  });
  return { admission, store: where };
}
