/**
 * One upstream stream attempt's stall detector: `onStall` is told when no first token
 * came within `firstTokenMs`, or when a gap between two chunks exceeded `idleMs`. Timers
 * are re-armed with refresh(), so progress costs no allocation.
 *
 * What counts as progress is the reader's call (touch()): SSE events and the bytes of
 * one, never keep-alive comments (`: ping`), so an upstream that only pings is still
 * stalled, before the first token and between chunks alike. Both settings speak of
 * chunks, and an upstream that pings without generating would otherwise hold the call
 * until its deadline.
 *
 * Once the answer is complete (or nearly: a finish_reason came, the usage chunk may
 * follow), settle() replaces the stall timer: silence is then no failure, only the end.
 */
import { ProviderError, Reason, type GatewayError } from "../../core/errors.js";

/** Longest wait, once a stream has finished, for its last chunk or the end of its body. */
const SETTLE_MS = 1000;

export class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private sawFirst = false;
  private settling = false;

  constructor(
    private readonly firstTokenMs: number,
    private readonly idleMs: number,
    private readonly onStall: (error: GatewayError) => void,
  ) {
    this.timer = setTimeout(() => this.stall("the first token"), firstTokenMs);
  }

  /** Progress (an event, or part of one): restart the clock. */
  touch(): void {
    if (this.sawFirst || this.settling) {
      this.timer?.refresh();
      return;
    }
    this.sawFirst = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.stall("the next chunk"), this.idleMs);
  }

  /**
   * The stream has finished: from now on, `onQuiet` runs after a short silence (at most
   * 1 s, or the idle timeout if shorter; touch() restarts it) instead of a stall being
   * reported. Calling it again replaces `onQuiet` and restarts the wait.
   */
  settle(onQuiet: () => void): void {
    clearTimeout(this.timer);
    this.settling = true;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      onQuiet();
    }, Math.min(SETTLE_MS, this.idleMs));
  }

  /** The attempt failed where no caller is on the stack (stream-reader.ts' merged chunks): end it as a stall would. */
  fail(error: GatewayError): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.onStall(error);
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
