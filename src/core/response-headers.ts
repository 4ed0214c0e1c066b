/**
 * The headers a call adds for its caller (the caller's rate-limit standing, Cerebras' own
 * figures, which key and model answered), which both transports send with the reply:
 * HTTP response headers, gRPC initial metadata.
 *
 * A flat list (name, value, name, value…), not a Record: a limited call sets 20-odd
 * names, and an object given that many keyed stores goes to V8's dictionary mode, which
 * makes filling it and every later copy slow (bench/micro/response-headers.ts). The list
 * is cheap to fill and to walk, and the transports hand it over as it is.
 *
 * Every entry is legal on both transports, so they can hand the entries over without
 * checking them again: a name gRPC metadata takes (lower case `[0-9a-z_.-]`, not
 * `grpc-*`, not a binary `-bin` one, nor `__proto__`, which no plain object takes as a
 * key) and a value of printable ASCII (what gRPC takes; HTTP would take more).
 * setResponseHeader (provider.ts) drops an entry that is not; `setLegal` is for code that
 * builds its names once with responseHeaderName and its values from numbers.
 */

const LEGAL_NAME = /^[0-9a-z_.-]+$/;
const LEGAL_VALUE = /^[ -~]*$/;

/** Names already found legal (their test costs ≈ 0.2 µs; values are tested each time). Bounded: a cache, not a log. */
const legalNames = new Set<string>();
const MAX_CACHED_NAMES = 256;

export function isLegalHeaderName(name: string): boolean {
  if (legalNames.has(name)) return true;
  const legal = LEGAL_NAME.test(name) && !name.startsWith("grpc-") && !name.endsWith("-bin") && name !== "__proto__";
  if (legal && legalNames.size < MAX_CACHED_NAMES) legalNames.add(name);
  return legal;
}

export function isLegalHeaderValue(value: string): boolean {
  return LEGAL_VALUE.test(value);
}

/** `name`, checked once where it is built (a code constant, or made from them): throws if it could not travel on both transports. */
export function responseHeaderName(name: string): string {
  if (!isLegalHeaderName(name)) throw new Error(`not a legal response header name: ${JSON.stringify(name)}`);
  return name;
}

export class ResponseHeaders {
  private readonly entries: string[] = [];

  /** name₀, value₀, name₁, value₁…: each name once, in the order it was first set. */
  get flat(): readonly string[] {
    return this.entries;
  }

  /**
   * Sets `name` to `value`, replacing the value it had (its place is kept). Both must be
   * legal (see above): the caller vouches for them; setResponseHeader checks.
   */
  setLegal(name: string, value: string): void {
    const f = this.entries;
    for (let i = 0; i < f.length; i += 2) {
      if (f[i] === name) {
        f[i + 1] = value;
        return;
      }
    }
    f.push(name, value);
  }

  get(name: string): string | undefined {
    const f = this.entries;
    for (let i = 0; i < f.length; i += 2) if (f[i] === name) return f[i + 1];
    return undefined;
  }

  /** A copy by name (for tests and diagnostics: the transports walk `flat`). */
  toRecord(): Record<string, string> {
    const out: Record<string, string> = {};
    const f = this.entries;
    for (let i = 0; i < f.length; i += 2) out[f[i]!] = f[i + 1]!;
    return out;
  }
}
