/**
 * One upstream HTTP exchange on undici's dispatch API: the response body goes straight
 * from the socket reads to a BodySink, with no Readable, no async iterator and no
 * per-read promise in between (undici's request() adds all three, which is most of what
 * the profile showed for it). Backpressure is the sink's returned promise: the socket is
 * paused until it settles.
 *
 * The exchange settles once: resolved when the body ended (any status: the caller reads
 * `status`), rejected with the first failure — the network's, the sink's, or the reason
 * given to abort() (the call's abort, a watchdog). Whatever ends it early also aborts
 * the upstream request, so nothing is left open.
 */
import type { Dispatcher } from "undici";
import type { GatewayError } from "../../core/errors.js";
import type { Abortable, CallContext } from "../../core/provider.js";

/** Where a 200 response's body goes, one socket read at a time. */
export interface BodySink {
  /**
   * Bytes of the body (a Buffer undici will not reuse). A returned promise pauses the
   * socket until it settles; a throw or a rejection fails the exchange with that error.
   */
  data(chunk: Buffer): void | Promise<void>;
  /** The body ended; may still fail the exchange (a throw or a rejection). */
  end(): void | Promise<void>;
}

/** undici's IncomingHttpHeaders (its types module is not a package export). */
export type Headers = Record<string, string | string[] | undefined>;

const NO_HEADERS: Headers = {};

export class Exchange implements Dispatcher.DispatchHandler, Abortable {
  /** The response's status; 0 until it arrived. */
  status = 0;
  headers: Headers = NO_HEADERS;
  /** Settles when the exchange is over (see the file comment). */
  readonly done: Promise<void>;
  private resolve!: () => void;
  private reject!: (err: unknown) => void;
  private controller: Dispatcher.DispatchController | undefined;
  private settled = false;
  /** Non-200 bodies are kept (up to a bound) for the error they describe. */
  private errorParts: Buffer[] | undefined;
  private errorBytes = 0;
  private failure: unknown;

  /**
   * @param sink where a 200 body goes
   * @param call the call it serves: its abort aborts the exchange, with its reason
   * @param maxErrorBody bytes of a non-200 body kept for errorText()
   * @param onResponse told about the response's status and headers as soon as they arrive (before any body)
   */
  constructor(
    private readonly sink: BodySink,
    private readonly call: Pick<CallContext, "onAbort" | "offAbort">,
    private readonly maxErrorBody: number,
    private readonly onResponse?: (status: number, headers: Headers) => void,
  ) {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    call.onAbort(this);
  }

  /** Sends the request; returns `done`. */
  send(dispatcher: Dispatcher, options: Dispatcher.DispatchOptions): Promise<void> {
    if (!this.settled) dispatcher.dispatch(options, this);
    return this.done;
  }

  /** Ends the exchange with `reason` (if it is not over) and drops the upstream request. */
  abort(reason: GatewayError): void {
    this.fail(reason);
  }

  /** A non-200 response's body, as text (bounded by maxErrorBody). */
  errorText(): string {
    const parts = this.errorParts;
    if (parts === undefined || parts.length === 0) return "";
    return (parts.length === 1 ? parts[0]! : Buffer.concat(parts)).toString("utf8");
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // Aborted while it waited in the pool's queue for a socket.
    if (this.settled) controller.abort(toError(this.failure));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: Headers): void {
    if (status < 200) return; // 1xx: the real response follows
    this.status = status;
    this.headers = headers;
    if (status !== 200) this.errorParts = [];
    this.onResponse?.(status, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    if (this.errorParts !== undefined) {
      if (this.errorBytes < this.maxErrorBody) {
        this.errorParts.push(chunk.subarray(0, this.maxErrorBody - this.errorBytes));
        this.errorBytes += chunk.length;
      }
      return;
    }
    let pending: void | Promise<void>;
    try {
      pending = this.sink.data(chunk);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (pending !== undefined) {
      controller.pause();
      pending.then(
        () => controller.resume(),
        (err: unknown) => this.fail(err),
      );
    }
  }

  onResponseEnd(): void {
    if (this.settled) return;
    if (this.errorParts !== undefined) {
      this.succeed();
      return;
    }
    let pending: void | Promise<void>;
    try {
      pending = this.sink.end();
    } catch (err) {
      this.fail(err);
      return;
    }
    if (pending === undefined) this.succeed();
    else
      pending.then(
        () => this.succeed(),
        (err: unknown) => this.fail(err),
      );
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.fail(err);
  }

  private succeed(): void {
    if (this.settle()) this.resolve();
  }

  private fail(err: unknown): void {
    if (!this.settle()) return;
    this.failure = err;
    this.reject(err);
    const controller = this.controller;
    if (controller !== undefined && !controller.aborted) controller.abort(toError(err));
  }

  /** True the first time only. */
  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.call.offAbort(this);
    return true;
  }
}

/** undici wants an Error as an abort reason; ours are (GatewayErrors), a sink's may not be. */
function toError(reason: unknown): Error {
  return reason instanceof Error ? reason : new Error(String(reason));
}
