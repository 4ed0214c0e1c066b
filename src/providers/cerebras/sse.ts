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
  /**
   * Bytes of a line not yet terminated, one copy per read it spans: joined once, when the
   * line ends, so a long line costs its length in copies, not its length times its reads.
   */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The previous read ended with CR: a LF starting the next read belongs to it. */
  private afterCR = false;
  /** The event's data so far: data[dataStart, dataEnd), or undefined before its first data line. */
  private data: Buffer | undefined;
  private dataStart = 0;
  private dataEnd = 0;
  /**
   * The event's data once it has a second data line: a copy that grows by doubling, so an
   * event of many lines costs its length in copies, not its length times its lines.
   */
  private joined: Buffer | undefined;
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
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    if (this.afterCR) {
      this.afterCR = false;
      if (buf.length > 0 && buf[0] === LF) start = 1;
    }
    const len = buf.length;
    if (this.pendingBytes > 0) {
      // Only the new bytes can end the pending line: never rescan what was held.
      const end = lineEnd(buf, start);
      if (end === -1) {
        this.hold(buf, start);
        return;
      }
      this.pending.push(buf.subarray(start, end));
      const line = Buffer.concat(this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      this.line(line, 0, line.length, onEvent);
      start = this.pastLineEnd(buf, end);
    }

    let nextLF = buf.indexOf(LF, start);
    let nextCR = buf.indexOf(CR, start);
    while (start < len) {
      if (nextLF !== -1 && nextLF < start) nextLF = buf.indexOf(LF, start);
      if (nextCR !== -1 && nextCR < start) nextCR = buf.indexOf(CR, start);
      const end = nextCR === -1 ? nextLF : nextLF === -1 ? nextCR : Math.min(nextLF, nextCR);
      if (end === -1) break;
      this.line(buf, start, end, onEvent);
      start = this.pastLineEnd(buf, end);
    }

    if (start < len) this.hold(buf, start);
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
    if (this.pendingBytes > 0) {
      const p = Buffer.concat(this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      this.line(p, 0, p.length, onEvent);
    }
    this.dispatch(onEvent);
  }

  /** Appends LF and buf[start, end) to the event's data, in `joined` (grown by doubling). */
  private appendData(buf: Buffer, start: number, end: number): void {
    const have = this.dataEnd - this.dataStart;
    const need = have + 1 + (end - start);
    let joined = this.joined;
    if (joined === undefined || this.data !== joined || need > joined.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, 2 * have, 256));
      this.data!.copy(grown, 0, this.dataStart, this.dataEnd);
      joined = this.joined = grown;
    } else if (this.dataStart !== 0) {
      joined.copyWithin(0, this.dataStart, this.dataEnd);
    }
    joined[have] = LF;
    buf.copy(joined, have + 1, start, end);
    this.data = joined;
    this.dataStart = 0;
    this.dataEnd = need;
  }

  /** Keeps buf[start..] as part of the unterminated line, within the bound. */
  private hold(buf: Buffer, start: number): void {
    const bytes = buf.length - start;
    if (this.pendingBytes + bytes > this.maxEventBytes) throw new SseLineTooLongError(this.maxEventBytes);
    const first = this.pendingBytes > 0 ? this.pending[0]![0] : buf[start];
    if (first !== COLON) this.progressed = true; // part of a field line, not of a comment
    // Copy: keeping a view would pin the whole socket read in memory.
    this.pending.push(Buffer.from(buf.subarray(start)));
    this.pendingBytes += bytes;
  }

  /** Where the next line starts after the line end at buf[end] (a CRLF split between reads included). */
  private pastLineEnd(buf: Buffer, end: number): number {
    if (buf[end] !== CR) return end + 1;
    if (end + 1 < buf.length) return buf[end + 1] === LF ? end + 2 : end + 1;
    this.afterCR = true;
    return end + 1;
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
        // A later data line (rare): appended with its LF to the growing copy.
        this.appendData(buf, valueStart, end);
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
    if (data === undefined) return;
    this.joined = undefined;
    onEvent(data, this.dataStart, this.dataEnd, type);
  }
}

/** The first line end (LF or CR) at or after start, or -1. */
function lineEnd(buf: Buffer, start: number): number {
  const lf = buf.indexOf(LF, start);
  const cr = buf.indexOf(CR, start);
  return cr === -1 ? lf : lf === -1 ? cr : Math.min(lf, cr);
}
