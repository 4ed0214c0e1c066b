/**
 * A server-streaming call as an AsyncIterable that cannot leak the call: leaving the
 * loop early (break, return, throw) or aborting the signal cancels it on the wire, and
 * the gateway aborts its upstream request. Failures are GatewayErrors, thrown after
 * every message received before them has been yielded.
 *
 * The call starts when iteration starts. With retries on, UNAVAILABLE is retried only
 * while nothing has been yielded: a stream is never restarted under its consumer.
 */
import type { CallOptions, ClientReadableStream, Metadata } from "@grpc/grpc-js";
import type { CallPlan } from "./call-plan.js";
import { toGatewayError } from "./grpc-error.js";
import { END, MessageReader } from "./message-reader.js";
import { cancelledError, pause, retryDelayMs, type RetryPolicy } from "./retry.js";

/** The shape of a generated server-streaming method. */
export type StreamInvoker<T> = (metadata: Metadata, options: Partial<CallOptions>) => ClientReadableStream<T>;

export class ResponseStream<T> implements AsyncIterable<T> {
  /** The call's x-request-id: what the gateway logs it under and puts in its errors. */
  readonly requestId: string;
  private readonly controller = new AbortController();
  private iterated = false;

  /** @param plan is made when iteration starts, so the deadline counts from the call's start */
  constructor(
    requestId: string,
    private readonly plan: (signal: AbortSignal) => CallPlan,
    private readonly invoke: StreamInvoker<T>,
    private readonly policy: RetryPolicy | undefined,
    private readonly callerSignal: AbortSignal | undefined,
  ) {
    this.requestId = requestId;
  }

  /** Cancels the call; a pending or later next() throws CANCELLED. */
  cancel(reason?: unknown): void {
    this.controller.abort(reason);
  }

  /** One iteration per stream: a second would be a second call. */
  [Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    if (this.iterated) throw new TypeError("a ResponseStream can be iterated once");
    this.iterated = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<T, void, undefined> {
    const caller = this.callerSignal;
    const follow = (): void => this.controller.abort(caller?.reason);
    if (caller?.aborted) follow();
    caller?.addEventListener("abort", follow, { once: true });
    try {
      yield* this.attempts(this.controller.signal);
    } finally {
      caller?.removeEventListener("abort", follow);
    }
  }

  private async *attempts(signal: AbortSignal): AsyncGenerator<T, void, undefined> {
    const plan = this.plan(signal);
    for (let attempts = 1; ; attempts++) {
      if (signal.aborted) throw cancelledError(signal.reason, this.requestId);
      const reader = new MessageReader(this.invoke(plan.metadata(), plan.callOptions()));
      const onAbort = (): void => reader.close();
      signal.addEventListener("abort", onAbort, { once: true });
      let yielded = 0;
      try {
        for (;;) {
          const message = await reader.next();
          if (signal.aborted) throw cancelledError(signal.reason, this.requestId);
          if (message === END) return;
          yielded++;
          yield message;
        }
      } catch (err) {
        if (signal.aborted) throw cancelledError(signal.reason, this.requestId);
        const error = toGatewayError(err, this.requestId);
        const delay = yielded > 0 || this.policy === undefined ? undefined : retryDelayMs(error, attempts, plan.deadline, this.policy);
        if (delay === undefined) throw error;
        await pause(delay, signal, this.requestId);
      } finally {
        signal.removeEventListener("abort", onAbort);
        // Runs on break/return too: the consumer left, so the call must end now.
        reader.close();
      }
    }
  }
}
