/**
 * What the key pool reports as it works, for metrics (src/metrics/upstream-metrics.ts
 * implements it). Labels stay bounded: `key` is a configured key name, `model` one a
 * key served (the metrics cap how many), `reason` an ErrorInfo reason.
 */
export interface UpstreamObserver {
  /** An upstream attempt with `key` for `model` ended; `reason` is its failure's ErrorInfo reason, undefined when it succeeded. */
  attempted(key: string, model: string, reason: string | undefined): void;
  /** `key`'s quota for `model` went into a cooldown (this replica saw the 429). */
  cooled(key: string, model: string): void;
  /** Cerebras refused `key` (401/402/403): out of rotation (counted by the replica that took it out). */
  revoked(key: string): void;
  /** `key` works again (a probe or a call succeeded): back in rotation. */
  restored(key: string): void;
  /** A call for `requested` was answered by its fallback `served`. */
  fellBack(requested: string, served: string): void;
}

export const NO_UPSTREAM_OBSERVER: UpstreamObserver = {
  attempted() {},
  cooled() {},
  revoked() {},
  restored() {},
  fellBack() {},
};
