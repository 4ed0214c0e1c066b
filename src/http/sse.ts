/**
 * A server-sent-events response: `data: <json>\n\n` per event, each written to the
 * socket as it comes (Nagle off, no compression, `x-accel-buffering: no` so nginx-style
 * proxies do not batch either), with write backpressure: a full socket buffer stops the
 * writer, and so the upstream read, until it drains.
 */
import type { ServerResponse } from "node:http";

export class SseStream {
  constructor(private readonly res: ServerResponse) {}

  /**
   * Sets the 200 and the event-stream headers. They leave with the first event written
   * (one socket write and one packet, not two: the client reads them together), or with
   * flush().
   */
  open(): void {
    this.res.socket?.setNoDelay(true);
    this.res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
    });
  }

  /** Sends the headers now, if no event has carried them yet. */
  flush(): void {
    if (!this.res.headersSent && !this.closed) this.res.flushHeaders();
  }

  /** True once the client has gone (or the stream was ended). */
  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /** Writes one event; false when the socket buffer is full (wait for drained()) or the client has gone. */
  write(data: unknown): boolean {
    if (this.closed) return false;
    return this.res.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** Resolves when the socket buffer has drained, or the client has gone. */
  drained(): Promise<void> {
    return this.closed ? Promise.resolve() : drained(this.res);
  }

  /** The normal end: `data: [DONE]`. */
  done(): void {
    if (!this.closed) this.res.end("data: [DONE]\n\n");
  }

  /** The end after a failure: one last event carrying the error, no [DONE]. */
  fail(data: unknown): void {
    if (!this.closed) this.res.end(`data: ${JSON.stringify(data)}\n\n`);
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
