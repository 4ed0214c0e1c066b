/**
 * What the admission reports as it works, for metrics (src/metrics/admission-metrics.ts
 * implements it). Labels stay bounded: `key` is a configured key name or `anonymous`,
 * `limit` one of the limit names, `org:<name>` or `store_unavailable`.
 */
export type StoreOp = "reserve" | "adjust" | "sync";

export interface AdmissionObserver {
  /** A call was admitted against its limits. */
  admitted(key: string): void;
  /** A call was refused by `limit`. */
  refused(key: string, limit: string): void;
  /** The store was down and QUOTA_FAIL_MODE=open: the call went through unchecked. */
  unchecked(key: string): void;
  /** A call waited for the organisation's capacity (queued), `ms` long, and then got it or not. */
  queued(key: string, ms: number, admitted: boolean): void;
  /** A call was settled: the tokens reserved for it, and those charged. */
  settled(key: string, reservedTokens: number, chargedTokens: number): void;
  /** One store operation took `seconds` (failed: it threw or timed out). */
  storeOp(op: StoreOp, seconds: number, failed: boolean): void;
  /** The store became reachable (true) or unreachable (false). */
  storeState(up: boolean): void;
  /** A call was admitted from this replica's leases, with no store round trip (lease-store.ts). */
  leaseAdmitted(): void;
}

export const NO_OBSERVER: AdmissionObserver = {
  admitted() {},
  refused() {},
  unchecked() {},
  queued() {},
  settled() {},
  storeOp() {},
  storeState() {},
  leaseAdmitted() {},
};
