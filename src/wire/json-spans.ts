/**
 * Where values sit in a JSON text: one pass over text that JSON.parse already accepted,
 * returning the exact [start, end) of the values at the paths asked for. The HTTP shim
 * uses it to pass JSON Schemas on byte for byte (a parsed object would reorder
 * integer-like keys: {"2", "1"} becomes {"1", "2"}).
 *
 * Iterative (no input can exhaust the stack), linear in the text (strings are skipped
 * with indexOf), and it allocates only for the keys on the way to a wanted path.
 */

export type JsonPath = ReadonlyArray<string | number>;

/** What to do with the value at a path: take its span, look inside it, or skip it. */
export type Want = "take" | "descend" | "skip";

/**
 * Spans of the values `want` takes, keyed by their dotted path. `text` must be valid JSON
 * (throws otherwise). With duplicate keys the last one wins, as in JSON.parse.
 */
export function findSpans(text: string, want: (path: JsonPath) => Want): Map<string, readonly [number, number]> {
  const out = new Map<string, readonly [number, number]>();
  const s = new Scan(text);
  // One frame per container being descended: its path, its kind, the next array index.
  const frames: Array<{ path: Array<string | number>; array: boolean; index: number }> = [];
  let pending: Array<string | number> | undefined = []; // the path of the next value (the root first)
  for (;;) {
    s.ws();
    if (pending !== undefined) {
      const path = pending;
      pending = undefined;
      const w = want(path);
      const c = text.charCodeAt(s.pos);
      if (w === "take") {
        const start = s.pos;
        s.skipValue();
        out.set(path.join("."), [start, s.pos]);
      } else if (w === "descend" && (c === 0x7b || c === 0x5b)) {
        s.pos++;
        frames.push({ path, array: c === 0x5b, index: 0 });
        s.ws();
        const close = text.charCodeAt(s.pos);
        if (close === 0x7d || close === 0x5d) {
          s.pos++;
          frames.pop();
        } else {
          pending = nextPath(s, frames[frames.length - 1]!);
          continue;
        }
      } else {
        s.skipValue();
      }
    }
    // After a value: a comma (next member) or the container's end.
    const top = frames[frames.length - 1];
    if (top === undefined) return out;
    s.ws();
    const c = text.charCodeAt(s.pos++);
    if (c === 0x2c) {
      s.ws();
      pending = nextPath(s, top);
    } else if (c === 0x7d || c === 0x5d) {
      frames.pop();
    } else {
      throw new SyntaxError(`unexpected character at ${s.pos - 1}`);
    }
  }
}

/** The path of a container's next member: reads an object member's key and colon. */
function nextPath(s: Scan, frame: { path: Array<string | number>; array: boolean; index: number }): Array<string | number> {
  if (frame.array) return [...frame.path, frame.index++];
  const key = s.key();
  s.ws();
  if (s.text.charCodeAt(s.pos++) !== 0x3a) throw new SyntaxError(`expected ':' at ${s.pos - 1}`);
  return [...frame.path, key];
}

class Scan {
  pos = 0;

  constructor(readonly text: string) {}

  ws(): void {
    const t = this.text;
    for (let c = t.charCodeAt(this.pos); c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; c = t.charCodeAt(++this.pos));
  }

  /** A string at pos; returns its end (past the closing quote). */
  stringEnd(): number {
    const t = this.text;
    let i = this.pos + 1;
    for (;;) {
      const q = t.indexOf('"', i);
      if (q < 0) throw new SyntaxError("unterminated string");
      let backslashes = 0;
      for (let j = q - 1; t.charCodeAt(j) === 0x5c; j--) backslashes++;
      if (backslashes % 2 === 0) return q + 1;
      i = q + 1;
    }
  }

  /** An object key, decoded as JSON.parse decodes it. */
  key(): string {
    const start = this.pos;
    const end = this.stringEnd();
    this.pos = end;
    const raw = this.text.slice(start + 1, end - 1);
    return raw.includes("\\") ? (JSON.parse(this.text.slice(start, end)) as string) : raw;
  }

  /** Skips one value of any kind, however nested (counting brackets outside strings). */
  skipValue(): void {
    const t = this.text;
    let depth = 0;
    do {
      this.ws();
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) this.pos = this.stringEnd();
      else if (c === 0x7b || c === 0x5b) {
        depth++;
        this.pos++;
      } else if (c === 0x7d || c === 0x5d) {
        depth--;
        this.pos++;
      } else if (c === 0x2c || c === 0x3a) {
        this.pos++;
      } else {
        // A number or a literal: up to the next delimiter.
        const start = this.pos;
        while (this.pos < t.length && !/[\s,\]}:]/.test(t[this.pos]!)) this.pos++;
        if (this.pos === start) throw new SyntaxError(`unexpected character at ${start}`);
      }
    } while (depth > 0);
  }
}
