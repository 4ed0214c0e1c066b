/**
 * One upstream attempt's abort signal: it fires when the call is aborted (caller left,
 * budget spent) or when the upstream stalls — no first token within `firstTokenMs`, or
 * a gap longer than `idleMs` between chunks. Timers are re-armed with refresh(), so a
 * chunk costs no allocation.
 */
import { ProviderError, Reason } from "../../core/errors.js";

export class Watchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private sawFirst = false;
  private readonly onCallAbort = (): void => this.controller.abort(this.call.reason);

  constructor(
    private readonly call: AbortSignal,
    private readonly firstTokenMs: number,
    private readonly idleMs: number,
  ) {
    if (call.aborted) this.controller.abort(call.reason);
    else call.addEventListener("abort", this.onCallAbort, { once: true });
    this.timer = setTimeout(() => this.stall("the first token"), firstTokenMs);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** The upstream stalled (as opposed to the call being aborted). */
  get stalled(): boolean {
    return this.controller.signal.aborted && !this.call.aborted;
  }

  /** Bytes arrived: restart the idle clock. */
  touch(): void {
    if (this.sawFirst) {
      this.timer?.refresh();
      return;
    }
    this.sawFirst = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.stall("the next chunk"), this.idleMs);
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.call.removeEventListener("abort", this.onCallAbort);
  }

  private stall(what: string): void {
    const ms = this.sawFirst ? this.idleMs : this.firstTokenMs;
    this.controller.abort(
      new ProviderError({
        reason: Reason.UPSTREAM_TIMEOUT,
        message: `Cerebras did not send ${what} within ${ms} ms`,
        metadata: { stalledOn: this.sawFirst ? "chunk" : "firstToken", timeoutMs: String(ms) },
      }),
    );
  }
}
