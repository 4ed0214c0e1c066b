/**
 * A server-wide cap on calls in progress, shared by both transports: past it, new
 * calls are refused at once (RESOURCE_EXHAUSTED / HTTP 429) instead of queueing until
 * memory or the upstream's patience runs out.
 */
import { Code, GatewayError, Reason } from "./errors.js";

/** How long a refused caller is told to wait (RetryInfo). */
const RETRY_AFTER_MS = 1000;

export class InFlightLimit {
  private count = 0;

  constructor(readonly max: number) {}

  /** Takes a slot, or throws GATEWAY_OVERLOADED. Pair with release(). */
  acquire(): void {
    if (this.count >= this.max) {
      throw new GatewayError({
        code: Code.RESOURCE_EXHAUSTED,
        reason: Reason.GATEWAY_OVERLOADED,
        message: `the gateway is at its limit of ${this.max} calls in progress`,
        metadata: { maxInFlight: String(this.max) },
        retryDelayMs: RETRY_AFTER_MS,
      });
    }
    this.count++;
  }

  release(): void {
    this.count--;
  }

  get inFlight(): number {
    return this.count;
  }
}
