/**
 * What the admission needs from the configuration (src/config.ts reads the environment
 * and the keys file into this; gateway.ts builds the admission from it).
 */
import type { RedisTarget } from "../redis/client.js";
import type { CallerLimitTable, OrgLimitConfig } from "./limits.js";

export type FailMode = "open" | "closed";

export interface QuotaConfig {
  /** Every caller's limits (keys file `defaults` and per-key `limits`). */
  readonly callers: CallerLimitTable;
  /** Organisation limits per model (ORG_LIMITS); undefined: not enforced. */
  readonly org: OrgLimitConfig | undefined;
  /** REDIS_URL (and REDIS_CLUSTER): where shared counters live; undefined: in this process's memory. */
  readonly redis: RedisTarget | undefined;
  /** QUOTA_FAIL_MODE: with the store unreachable, admit unchecked (open) or refuse UNAVAILABLE (closed). */
  readonly failMode: FailMode;
  /** QUOTA_REDIS_TIMEOUT_MS: longest wait for one Redis command. */
  readonly redisTimeoutMs: number;
  /** QUOTA_REDIS_PREFIX: the hash tag every key shares, `{aigw}:…`. */
  readonly redisPrefix: string;
  /** QUOTA_DEFAULT_COMPLETION_TOKENS: completion tokens reserved when neither the request nor the catalog gives a maximum. */
  readonly defaultCompletionTokens: number;
  /** QUOTA_LEASE_CALLS: calls' worth of a caller's buckets each replica leases ahead (0: none, every call is reserved in Redis). Redis only. */
  readonly leaseCalls: number;
  /** QUOTA_LEASE_IDLE_MS: a lease unused this long goes back to Redis. */
  readonly leaseIdleMs: number;
  /** ORG_QUEUE_MAX_WAIT_MS: longest a call waits for the organisation's capacity before it is refused (0: refuse at once). */
  readonly orgQueueMaxWaitMs: number;
}
