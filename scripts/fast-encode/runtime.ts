/**
 * The runtime of the encoders scripts/protoc-gen-fast-encode.mjs generates: what every
 * generated `size*` / `write*` function shares, whatever the schema. Its source is
 * scripts/fast-encode/runtime.ts, which the plugin copies to gen/encode-runtime.ts (edit the
 * source, then `npm run generate`).
 *
 * An encoding is two passes over the message. The size pass returns the exact byte count
 * (or FALLBACK: a value the fast path does not take, for which the ts-proto encoder is
 * used, so that its bytes or its error are the result) and records, in pre-order, the
 * UTF-8 length of every string and the length of every sub-message, packed list and map
 * entry (`reserve`/`record`, `stringSize`). One Buffer of that size comes from `Buffer.allocUnsafe` (Node's pool
 * for small sizes), and the write pass fills it, consuming the recorded lengths in the
 * same order. ts-proto's encoder instead writes into a growing, zero-filled buffer, forks
 * a sub-buffer per sub-message and copies the result twice (`finish()`, `Buffer.from`).
 *
 * The bytes are ts-proto's: fields in declaration order, proto3 defaults omitted on plain
 * fields, `optional` fields and oneof members written whenever set, negative int32/enum
 * values as 10-byte varints, 64-bit integers as two's complement, floats little-endian,
 * strings as UTF-8 with lone surrogates replaced by U+FFFD (as TextEncoder and Buffer both
 * do). test/unit/fast-encode.test.ts checks them against ts-proto for every message.
 */

/** A size function's answer for "not the fast path": the caller uses the ts-proto encoder. */
export const FALLBACK = -1;

/**
 * The lengths the size pass records for the write pass, and the next one to record / to
 * read. Writes past the end of a typed array are dropped, so a message that needs more
 * slots is detected afterwards by `top > slots.length` (see `grew`), and the size pass
 * reruns with room enough. Module variables, reached only through the functions below
 * (which V8 inlines): an imported binding or an object's properties measured slower.
 */
let slots = new Int32Array(256);
let top = 0;
let read = 0;

/** Before a size pass. */
export function beginSize(): void {
  top = 0;
}

/** Before a write pass. */
export function beginWrite(): void {
  read = 0;
}

/** The slot for a length the size pass knows only after measuring what follows (pre-order). */
export function reserve(): number {
  return top++;
}

/** Records the length reserved in `slot`. */
export function record(slot: number, length: number): void {
  slots[slot] = length;
}

/** Struct/Value/ListValue nesting the fast path follows; deeper values go to ts-proto. */
export const MAX_DEPTH = 100;

/** After a size pass: true (and room made, so the pass can rerun) if it recorded more lengths than there were slots. */
export function grew(): boolean {
  if (top <= slots.length) return false;
  slots = new Int32Array(top * 2);
  return true;
}

/**
 * ts-proto's bytes as a Buffer. finish() returns a fresh copy that nothing else holds, so
 * large ones are wrapped rather than copied; small ones are copied into Node's Buffer pool,
 * which measured no slower than wrapping their own small ArrayBuffers.
 */
export function slow(u8: Uint8Array): Buffer {
  return u8.byteLength < WRAP_MIN ? Buffer.from(u8) : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}

/** Buffer.allocUnsafe's pool threshold: below it, Buffer.from(u8) copies into the pool. */
const WRAP_MIN = Buffer.poolSize >>> 1;

// ---------------------------------------------------------------------------------------
// Sizes

/** Strings up to this many UTF-16 units are measured in JS; longer ones by Buffer.byteLength. */
const SHORT_STRING = 12;
/** ASCII strings up to this many bytes are written byte by byte; longer ones natively. */
const SHORT_WRITE = 16;

export function utf8Length(s: string): number {
  const len = s.length;
  if (len > SHORT_STRING) return Buffer.byteLength(s, "utf8");
  let n = len;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      n += 1;
    } else if (c >= 0xd800 && c < 0xdc00 && i + 1 < len && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      i++;
      n += 2; // a surrogate pair: 2 units, 4 bytes
    } else {
      n += 2; // other BMP characters and lone surrogates (U+FFFD): 3 bytes
    }
  }
  return n;
}

/** Size of an unsigned 32-bit varint (0 ≤ v < 2^32). */
export function varint32Size(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Size of an int32 varint: negative values are sign-extended to 10 bytes. */
export function int32Size(v: number): number {
  return v < 0 ? 10 : varint32Size(v);
}

/** Length prefix and UTF-8 bytes of a string; records the byte length. */
export function stringSize(s: string): number {
  const l = utf8Length(s);
  slots[top++] = l;
  return (l < 0x80 ? 1 : varint32Size(l)) + l;
}

/** Length prefix and body of a length-delimited record whose body is `l` bytes. */
export function delimitedSize(l: number): number {
  return (l < 0x80 ? 1 : varint32Size(l)) + l;
}

/** Size of a varint of the 64 bits `hi:lo` (both as int32). */
export function varint64Size(lo: number, hi: number): number {
  if (hi === 0) return varint32Size(lo >>> 0);
  return Math.ceil((64 - Math.clz32(hi)) / 7);
}

/** An int64/sint64/sfixed64 number ts-proto accepts: an integer in [-2^63, 2^63). */
export function isInt64(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= -9223372036854775808 && v < 9223372036854775808;
}

/** A uint64/fixed64 number ts-proto accepts: an integer in [0, 2^64). */
export function isUint64(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 18446744073709551616;
}

/** A float ts-proto accepts: any number but a finite one that rounds to an infinite float32. */
export function isFloat32(v: unknown): v is number {
  return typeof v === "number" && (Number.isFinite(Math.fround(v)) || !Number.isFinite(v));
}

/** The low and high 32 bits (as int32) of an integer number in [-2^63, 2^64), two's complement. */
export const split = { lo: 0, hi: 0 };

export function split64(v: number): void {
  const hi = Math.floor(v / 4294967296); // exact: a power-of-two division of an integer
  split.lo = (v - hi * 4294967296) | 0;
  split.hi = hi | 0;
}

export function int64Size(v: number): number {
  if (v >= 0 && v <= 0xffffffff) return varint32Size(v);
  split64(v);
  return varint64Size(split.lo, split.hi);
}

export function sint64Size(v: number): number {
  split64(v);
  const sign = split.hi >> 31;
  return varint64Size((split.lo << 1) ^ sign, ((split.hi << 1) | (split.lo >>> 31)) ^ sign);
}

export function sint32Size(v: number): number {
  return varint32Size(((v << 1) ^ (v >> 31)) >>> 0);
}

// ---------------------------------------------------------------------------------------
// Writes. Only called after the size pass accepted the message, so no checks here. Each
// returns the position after what it wrote.

export function writeVarint32(buf: Buffer, pos: number, v: number): number {
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

export function writeInt32(buf: Buffer, pos: number, v: number): number {
  if (v >= 0) return writeVarint32(buf, pos, v);
  // Sign-extended to 64 bits: 10 bytes.
  for (let i = 0; i < 9; i++) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>= 7;
  }
  buf[pos++] = 1;
  return pos;
}

export function writeSint32(buf: Buffer, pos: number, v: number): number {
  return writeVarint32(buf, pos, ((v << 1) ^ (v >> 31)) >>> 0);
}

/** The varint of the 64 bits hi:lo (ported from @bufbuild/protobuf's BinaryWriter.writeVarint64). */
export function writeVarint64(buf: Buffer, pos: number, lo: number, hi: number): number {
  for (let i = 0; i < 28; i = i + 7) {
    const shift = lo >>> i;
    const hasNext = !(shift >>> 7 === 0 && hi === 0);
    buf[pos++] = (hasNext ? shift | 0x80 : shift) & 0xff;
    if (!hasNext) return pos;
  }
  const splitBits = ((lo >>> 28) & 0x0f) | ((hi & 0x07) << 4);
  const hasMoreBits = !(hi >> 3 === 0);
  buf[pos++] = (hasMoreBits ? splitBits | 0x80 : splitBits) & 0xff;
  if (!hasMoreBits) return pos;
  for (let i = 3; i < 31; i = i + 7) {
    const shift = hi >>> i;
    const hasNext = !(shift >>> 7 === 0);
    buf[pos++] = (hasNext ? shift | 0x80 : shift) & 0xff;
    if (!hasNext) return pos;
  }
  buf[pos++] = (hi >>> 31) & 0x01;
  return pos;
}

/** int64 and uint64 (the same bits for the numbers each accepts). */
export function writeInt64(buf: Buffer, pos: number, v: number): number {
  if (v >= 0 && v <= 0xffffffff) return writeVarint32(buf, pos, v);
  split64(v);
  return writeVarint64(buf, pos, split.lo, split.hi);
}

export function writeSint64(buf: Buffer, pos: number, v: number): number {
  split64(v);
  const sign = split.hi >> 31;
  return writeVarint64(buf, pos, (split.lo << 1) ^ sign, ((split.hi << 1) | (split.lo >>> 31)) ^ sign);
}

/** fixed64 and sfixed64. */
export function writeFixed64(buf: Buffer, pos: number, v: number): number {
  split64(v);
  buf.writeInt32LE(split.lo, pos);
  buf.writeInt32LE(split.hi, pos + 4);
  return pos + 8;
}

export function writeFixed32(buf: Buffer, pos: number, v: number): number {
  buf.writeUInt32LE(v, pos);
  return pos + 4;
}

export function writeSfixed32(buf: Buffer, pos: number, v: number): number {
  buf.writeInt32LE(v, pos);
  return pos + 4;
}

export function writeDouble(buf: Buffer, pos: number, v: number): number {
  buf.writeDoubleLE(v, pos);
  return pos + 8;
}

export function writeFloat(buf: Buffer, pos: number, v: number): number {
  buf.writeFloatLE(v, pos);
  return pos + 4;
}

/** Length prefix (recorded by the size pass) and UTF-8 bytes of a string. */
export function writeString(buf: Buffer, pos: number, s: string): number {
  const l = slots[read++]!;
  pos = l < 0x80 ? ((buf[pos] = l), pos + 1) : writeVarint32(buf, pos, l);
  if (l === s.length) {
    // ASCII.
    if (l <= SHORT_WRITE) {
      for (let i = 0; i < l; i++) buf[pos + i] = s.charCodeAt(i);
    } else {
      (buf as NativeWriters).latin1Write(s, pos, l);
    }
  } else {
    (buf as NativeWriters).utf8Write(s, pos, l);
  }
  return pos + l;
}

/** The length prefix (recorded by the size pass) of a sub-message, packed list or map entry. */
export function writeLength(buf: Buffer, pos: number): number {
  const l = slots[read++]!;
  return l < 0x80 ? ((buf[pos] = l), pos + 1) : writeVarint32(buf, pos, l);
}

/** Length prefix and bytes of a `bytes` value. */
export function writeBytes(buf: Buffer, pos: number, b: Uint8Array): number {
  pos = writeVarint32(buf, pos, b.byteLength);
  buf.set(b, pos);
  return pos + b.byteLength;
}

// Buffer's native string writers (on Buffer.prototype since Node 0.x, not in @types/node):
// `buf.write(s, offset, length, encoding)` without the encoding lookup and argument checks.
type NativeWriters = Buffer & {
  utf8Write(s: string, offset: number, length: number): number;
  latin1Write(s: string, offset: number, length: number): number;
};
