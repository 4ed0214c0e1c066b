/**
 * What the in-process hardening tests share (the gateway runs in the test's process):
 * bounded waits, memory after a real GC, and the gateway's log lines as objects.
 */
import { Writable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
/** A real, full GC (exposed at run time). */
export const gc = runInNewContext("gc") as () => void;

/** process.memoryUsage().arrayBuffers after two full GCs: where message bytes live. */
export function arrayBuffers(): number {
  gc();
  gc();
  return process.memoryUsage().arrayBuffers;
}

/** Fails with `what` if `p` takes longer than `ms`: a bound on a wait, not a timing bet. */
export function withinBound<T>(p: Promise<T>, what: string, ms = 10_000): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms).unref())]);
}

/** A log destination that keeps each JSON line written to it, parsed, in `lines`. */
export function jsonLogSink(): { readonly lines: Array<Record<string, unknown>>; readonly sink: Writable } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, sink };
}
