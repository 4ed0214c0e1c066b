/**
 * The calls in progress on one listener. Shutdown uses it to end the calls still running
 * when the grace period is over with a status that says why (UNAVAILABLE
 * GATEWAY_SHUTTING_DOWN, in-band: the gRPC status, the SSE error event) before their
 * connections are closed, instead of cutting them (which a gRPC client sees as
 * CANCELLED and an SSE client as a stream that just stops).
 */
import type { CallScope } from "./call-scope.js";
import type { GatewayError } from "./errors.js";

export class LiveCalls {
  private readonly scopes = new Set<CallScope>();

  /** From the moment the call has a scope until it is over (pair with delete()). */
  add(scope: CallScope): void {
    this.scopes.add(scope);
  }

  delete(scope: CallScope): void {
    this.scopes.delete(scope);
  }

  get size(): number {
    return this.scopes.size;
  }

  /** Ends every call still in progress with `reason` (their upstream requests are aborted); returns how many. */
  endAll(reason: GatewayError): number {
    const scopes = [...this.scopes];
    this.scopes.clear();
    for (const scope of scopes) scope.end(reason);
    return scopes.length;
  }
}
