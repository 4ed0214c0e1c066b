/**
 * One upstream stream attempt's stall detector: `onStall` is told when no first token
 * came within `firstTokenMs`, or when a gap between two reads exceeded `idleMs`. Timers
 * are re-armed with refresh(), so a read costs no allocation.
 */
import { ProviderError, Reason } from "../../core/errors.js";

export class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private sawFirst = false;

  constructor(
    private readonly firstTokenMs: number,
    private readonly idleMs: number,
    private readonly onStall: (error: ProviderError) => void,
  ) {
    this.timer = setTimeout(() => this.stall("the first token"), firstTokenMs);
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
  }

  private stall(what: string): void {
    const ms = this.sawFirst ? this.idleMs : this.firstTokenMs;
    this.timer = undefined;
    this.onStall(
      new ProviderError({
        reason: Reason.UPSTREAM_TIMEOUT,
        message: `Cerebras did not send ${what} within ${ms} ms`,
        metadata: { stalledOn: this.sawFirst ? "chunk" : "firstToken", timeoutMs: String(ms) },
      }),
    );
  }
}
