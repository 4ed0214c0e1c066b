/**
 * A byte-level Server-Sent Events decoder (https://html.spec.whatwg.org/#event-stream-interpretation).
 *
 * Works on the Buffers the socket delivers: lines are found with native indexOf, and an
 * event's data is handed over as a byte range (feed()), decoded by whoever needs it, so a
 * multi-byte character split across two reads is never mangled and the hot path makes no
 * string, object or array per event. (push() is the same decoder returning SseEvent
 * objects.) Handles LF, CRLF and CR line ends (including a CRLF split between reads),
 * comments, `event:` fields and multi-line data. Never buffers more than one unfinished
 * line plus one unfinished event.
 */

export interface SseEvent {
  /** The `event:` field, or undefined for the default "message" type. */
  readonly event: string | undefined;
  /** `data:` lines joined with "\n". */
  readonly data: string;
}

/**
 * Told about each event: its data (`data:` lines joined with LF) is `data[start, end)`,
 * valid during the call only (a view of the socket read when the event came in one read).
 */
export type SseEventHandler = (data: Buffer, start: number, end: number, event: string | undefined) => void;

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;

export class SseLineTooLongError extends Error {
  constructor(limit: number) {
    super(`an SSE line or event exceeded ${limit} bytes`);
    this.name = "SseLineTooLongError";
  }
}

export class SseDecoder {
  /** Bytes of a line not yet terminated. */
  private pending: Buffer | undefined;
  /** The previous read ended with CR: a LF starting the next read belongs to it. */
  private afterCR = false;
  /** The event's data so far: data[dataStart, dataEnd), or undefined before its first data line. */
  private data: Buffer | undefined;
  private dataStart = 0;
  private dataEnd = 0;
  private eventType: string | undefined;
  private eventBytes = 0;
  /** A field line (not a comment) was read, or part of one is pending, since takeProgress(). */
  private progressed = false;

  /** @param maxEventBytes bound on one line or one event, so a broken upstream cannot exhaust memory */
  constructor(private readonly maxEventBytes = 8 * 1024 * 1024) {}

  /** Feeds the next bytes; returns the events they complete (often none or one). */
  push(chunk: Uint8Array): SseEvent[] {
    const events: SseEvent[] = [];
    this.feed(chunk, (data, start, end, event) => events.push({ event, data: data.toString("utf8", start, end) }));
    return events;
  }

  /** Feeds the next bytes; `onEvent` is told about each event they complete, in order. */
  feed(chunk: Uint8Array, onEvent: SseEventHandler): void {
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    if (this.afterCR) {
      this.afterCR = false;
      if (buf.length > 0 && buf[0] === LF) start = 1;
    }
    if (this.pending !== undefined) {
      buf = Buffer.concat([this.pending, buf.subarray(start)]);
      start = 0;
      this.pending = undefined;
    }

    const len = buf.length;
    let nextLF = buf.indexOf(LF, start);
    let nextCR = buf.indexOf(CR, start);
    while (start < len) {
      if (nextLF !== -1 && nextLF < start) nextLF = buf.indexOf(LF, start);
      if (nextCR !== -1 && nextCR < start) nextCR = buf.indexOf(CR, start);
      const end = nextCR === -1 ? nextLF : nextLF === -1 ? nextCR : Math.min(nextLF, nextCR);
      if (end === -1) break;
      this.line(buf, start, end, onEvent);
      if (buf[end] === CR) {
        if (end + 1 < len) start = buf[end + 1] === LF ? end + 2 : end + 1;
        else {
          this.afterCR = true;
          start = end + 1;
        }
      } else {
        start = end + 1;
      }
    }

    if (start < len) {
      if (len - start > this.maxEventBytes) throw new SseLineTooLongError(this.maxEventBytes);
      if (buf[start] !== COLON) this.progressed = true; // part of a field line, not of a comment
      // Copy: keeping a view would pin the whole socket read in memory.
      this.pending = Buffer.from(buf.subarray(start));
    }
    // An event whose blank line is still to come keeps its data, copied for the same reason.
    if (this.data === buf) {
      this.data = Buffer.from(buf.subarray(this.dataStart, this.dataEnd));
      this.dataStart = 0;
      this.dataEnd = this.data.length;
    }
  }

  /**
   * Whether anything but comments and blank lines arrived since the last call: what a
   * stall detector should count as the upstream making progress (keep-alive `: ping`
   * comments are not). Resets the flag.
   */
  takeProgress(): boolean {
    const p = this.progressed;
    this.progressed = false;
    return p;
  }

  /**
   * The stream ended. Returns the last event if its blank line never came: lenient on
   * purpose, since completeness is judged by finish_reason, not by framing.
   */
  end(): SseEvent[] {
    const events: SseEvent[] = [];
    this.finish((data, start, end, event) => events.push({ event, data: data.toString("utf8", start, end) }));
    return events;
  }

  /** The stream ended: as end(), through `onEvent`. */
  finish(onEvent: SseEventHandler): void {
    if (this.pending !== undefined) {
      const p = this.pending;
      this.pending = undefined;
      this.line(p, 0, p.length, onEvent);
    }
    this.dispatch(onEvent);
  }

  private line(buf: Buffer, start: number, end: number, onEvent: SseEventHandler): void {
    if (start === end) {
      this.dispatch(onEvent);
      return;
    }
    if (buf[start] === COLON) return; // comment, e.g. a keep-alive ": ping"
    this.progressed = true;
    let colon = buf.indexOf(COLON, start);
    if (colon === -1 || colon > end) colon = end;
    let valueStart = colon + 1;
    if (valueStart < end && buf[valueStart] === SPACE) valueStart++;
    if (valueStart > end) valueStart = end;
    const nameLength = colon - start;

    if (nameLength === 4 && buf[start] === 0x64 && buf[start + 1] === 0x61 && buf[start + 2] === 0x74 && buf[start + 3] === 0x61) {
      // "data"
      this.eventBytes += end - start;
      if (this.eventBytes > this.maxEventBytes) throw new SseLineTooLongError(this.maxEventBytes);
      if (this.data === undefined) {
        this.data = buf;
        this.dataStart = valueStart;
        this.dataEnd = end;
      } else {
        // A second data line: joined with LF (rare; copies).
        const joined = Buffer.concat([this.data.subarray(this.dataStart, this.dataEnd), NEWLINE, buf.subarray(valueStart, end)]);
        this.data = joined;
        this.dataStart = 0;
        this.dataEnd = joined.length;
      }
    } else if (nameLength === 5 && buf.toString("latin1", start, colon) === "event") {
      this.eventType = valueStart < end ? buf.toString("utf8", valueStart, end) : "";
    }
    // id, retry and unknown fields are ignored: the gateway does not reconnect streams.
  }

  private dispatch(onEvent: SseEventHandler): void {
    const data = this.data;
    const type = this.eventType;
    this.data = undefined;
    this.eventType = undefined;
    this.eventBytes = 0;
    if (data !== undefined) onEvent(data, this.dataStart, this.dataEnd, type);
  }
}

const NEWLINE = Buffer.from("\n");
