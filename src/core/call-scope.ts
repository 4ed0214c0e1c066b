/**
 * A CallScope turns a transport's call into the CallContext providers see: one
 * AbortSignal that fires when the caller leaves or the time budget runs out, whichever
 * comes first. The budget is the caller's deadline, capped by the server's ceiling.
 */
import { GatewayError, Code, Reason } from "./errors.js";
import type { CallContext, CallStats } from "./provider.js";

const CANCELLED = new GatewayError({ code: Code.CANCELLED, reason: Reason.CANCELLED, message: "the caller cancelled the call" });

export class CallScope implements CallContext {
  readonly deadline: number;
  readonly requestId: string;
  readonly stats: CallStats = {};
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private settled = false;

  /**
   * @param callerDeadline epoch ms the caller set, or Infinity
   * @param ceilingMs the server's longest allowed call (REQUEST_TIMEOUT_S)
   */
  constructor(callerDeadline: number, ceilingMs: number, requestId: string) {
    const ceiling = Date.now() + ceilingMs;
    this.deadline = callerDeadline < ceiling ? callerDeadline : ceiling;
    this.requestId = requestId;
    const remaining = this.deadline - Date.now();
    if (remaining <= 0) {
      this.controller.abort(GatewayError.deadlineExceeded());
    } else {
      this.timer = setTimeout(() => this.controller.abort(GatewayError.deadlineExceeded()), remaining);
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /**
   * The caller went away: abort everything the call started. A no-op once the call is
   * over (grpc-js reports 'cancelled' for every call whose stream closes, finished or not).
   */
  cancel(): void {
    if (this.settled) return;
    this.controller.abort(CANCELLED);
    this.dispose();
  }

  /** The call is over: stop the budget timer. Idempotent. */
  dispose(): void {
    this.settled = true;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}

/** The abort reason of a signal as a GatewayError (CANCELLED unless it says otherwise). */
export function abortReason(signal: AbortSignal): GatewayError {
  return signal.reason instanceof GatewayError ? signal.reason : CANCELLED;
}
