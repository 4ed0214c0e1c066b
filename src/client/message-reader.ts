/**
 * Pulls messages from a grpc-js server stream one at a time.
 *
 * Not `for await (… of call)`: grpc-js emits 'error' right after the last message is
 * pushed, and Node's stream iterator then throws at once, dropping messages that
 * arrived but were not read yet. Here every received message is returned before the
 * error is thrown, and reading stays pull-based, so a slow consumer slows the server
 * (the Readable stops asking grpc-js for messages when its buffer is full).
 */
import type { ClientReadableStream } from "@grpc/grpc-js";

export const END: unique symbol = Symbol("end of stream");

export class MessageReader<T> {
  private error: unknown;
  private hasError = false;
  private finished = false;
  private wake: (() => void) | undefined;

  constructor(private readonly call: ClientReadableStream<T>) {
    const notify = (): void => {
      const wake = this.wake;
      this.wake = undefined;
      wake?.();
    };
    call.on("readable", notify);
    call.on("error", (err: unknown) => {
      if (!this.hasError) {
        this.hasError = true;
        this.error = err;
      }
      notify();
    });
    // 'status' comes after the last message and after 'error', OK or not.
    call.on("status", () => {
      this.finished = true;
      notify();
    });
    call.on("end", () => {
      this.finished = true;
      notify();
    });
  }

  /** The next message, END after an OK status; throws the call's error once every received message was read. */
  async next(): Promise<T | typeof END> {
    for (;;) {
      const message = this.call.read() as T | null;
      if (message !== null) return message;
      if (this.hasError) throw this.error;
      if (this.finished) return END;
      // Bounded: the call has a deadline, and ends (with a status) by then at the latest.
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** Cancels the call unless it is already over. Idempotent. */
  close(): void {
    if (!this.finished) this.call.cancel();
    this.finished = true;
  }
}
