/**
 * A call's initial metadata: the request id, then the call's reply headers
 * (CallContext.replyHeaders), made for grpc-js to send at the least cost. It is a
 * grpc-js Metadata that differs from one filled with set() in two ways, neither visible
 * to the caller (test/grpc/reply-metadata.test.ts holds both against grpc-js' own):
 *
 * - No per-entry checks. set() lower-cases each name and tests it and its value against
 *   grpc-js' patterns, ≈ 0.3 µs an entry and 20-odd entries for a limited call; the
 *   entries here are legal already (ResponseHeaders holds only legal ones, and a request
 *   id is plain: request-id.ts). They go straight into `internalRepr`, the Map that
 *   set() fills and every other method reads: a protected member of grpc-js' Metadata,
 *   that is, one its type declarations give subclasses. Should an upgrade rename it, this
 *   stops compiling; should it change what set() stores, the test fails.
 * - toHttp2Headers() returns the same object as grpc-js', in a cheaper form (below).
 *
 * And it keeps what grpc-js makes of it in V8's fast mode (warmSendTarget below), and
 * marks the entries whose value changes from one reply to the next (the request id, the
 * remaining and reset figures) never-indexed for HPACK (changesPerReply below).
 */
import { Metadata } from "@grpc/grpc-js";
import { sensitiveHeaders, type OutgoingHttpHeaders } from "node:http2";
import type { ResponseHeaders } from "../core/response-headers.js";

const REQUEST_ID = "x-request-id";

export function replyMetadata(requestId: string, headers: ResponseHeaders | undefined): Metadata {
  return new ReplyMetadata(requestId, headers);
}

class ReplyMetadata extends Metadata {
  constructor(requestId: string, headers: ResponseHeaders | undefined) {
    super();
    const repr = this.internalRepr;
    repr.set(REQUEST_ID, [requestId]);
    if (headers === undefined) return;
    const f = headers.flat;
    for (let i = 0; i < f.length; i += 2) repr.set(f[i]!, [f[i + 1]!]);
  }

  /**
   * grpc-js' own builds a new object with one keyed store per entry: past 16 entries V8
   * turns it into a dictionary, and what grpc-js does next (Object.assign onto the
   * response's default headers) then takes its slow path. This one clones a template
   * with the same names in the same order (a fast-mode object) and fills in the values:
   * the same keys, values and order. With a limited call's entries, the two together
   * cost ≈ 7 µs instead of ≈ 15 (bench/micro/response-headers.ts).
   */
  override toHttp2Headers(): OutgoingHttpHeaders {
    const shape = shapeOf(this.internalRepr);
    if (shape === undefined) return super.toHttp2Headers();
    const out: Record<string, string> = { ...templateOf(shape) };
    for (const [key, values] of this.internalRepr) out[key] = values[0] as string;
    return out;
  }
}

/**
 * The templates: one per sequence of names seen, in a tree (a shape's children extend it
 * by one name), so finding a reply's is one Map lookup per entry. Bounded: past
 * MAX_SHAPES (names are ours and the upstream's rate-limit names, few in practice), new
 * sequences take grpc-js' own path.
 */
interface Shape {
  readonly name: string;
  readonly parent: Shape | undefined;
  readonly children: Map<string, Shape>;
  template: Readonly<Record<string, string>> | undefined;
  /** Kept for its hidden class alone (warmSendTarget). */
  sendTarget: object | undefined;
}

const ROOT: Shape = { name: "", parent: undefined, children: new Map(), template: undefined, sendTarget: undefined };
const MAX_SHAPES = 512;
let shapes = 0;

/** The shape of `repr`'s names, or undefined where the template would not give grpc-js' result (several values, a Buffer, a pseudo-header) or the tree is full. */
function shapeOf(repr: ReadonlyMap<string, readonly unknown[]>): Shape | undefined {
  let shape = ROOT;
  for (const [name, values] of repr) {
    if (values.length !== 1 || typeof values[0] !== "string" || name.startsWith(":")) return undefined;
    let next = shape.children.get(name);
    if (next === undefined) {
      if (shapes >= MAX_SHAPES) return undefined;
      shapes++;
      next = { name, parent: shape, children: new Map(), template: undefined, sendTarget: undefined };
      shape.children.set(name, next);
    }
    shape = next;
  }
  return shape;
}

/**
 * Made once per shape with defineProperty, which (unlike a keyed store) keeps the object
 * in V8's fast mode however many names it has; a spread copy keeps its map.
 */
function templateOf(shape: Shape): Readonly<Record<string, string>> {
  if (shape.template !== undefined) return shape.template;
  const names: string[] = [];
  for (let s: Shape | undefined = shape; s !== undefined && s !== ROOT; s = s.parent) names.push(s.name);
  names.reverse();
  const entries = names.map((n) => [n, ""] as const);
  const volatile = names.filter(changesPerReply);
  shape.sendTarget = neverIndexed(warmSendTarget(entries), volatile);
  return (shape.template = neverIndexed(defineAll({}, entries), volatile));
}

/**
 * Whether a name's value changes from one reply to the next. HPACK adds every header it
 * is not told otherwise to the connection's table, and a table of 4 KiB holds two or three
 * limited replies' worth: values that never repeat only push out the entries that do
 * repeat (the limits, the model, grpc-js' own), which then go as text again. Sent
 * never-indexed (node:http2's `sensitiveHeaders`, which a spread and grpc-js'
 * Object.assign copy as they copy the names), they leave the table alone, on both ends:
 * a node:http2 server and client together spent a median of 9 µs of CPU a reply less,
 * with 26 headers of which 11 change (bench/micro/hpack-indexing.ts: −44 to +3 µs over
 * six runs on 2026-12-01, each the median of 8-12 rounds of 10,000 replies).
 */
function changesPerReply(name: string): boolean {
  return name === REQUEST_ID || CHANGING.test(name);
}

/** The caller's and the upstream's (x-cerebras-ratelimit-*) figures that move with every call. */
const CHANGING = /^x-(?:cerebras-)?ratelimit-(?:remaining|reset)-/;

/** `target` with node:http2's list of names to send never-indexed, when there are any. */
function neverIndexed<T extends object>(target: T, names: readonly string[]): T {
  if (names.length > 0) Object.defineProperty(target, sensitiveHeaders, { value: names, writable: true, enumerable: true, configurable: true });
  return target;
}

/**
 * grpc-js' sendMetadata (server-interceptors.js, 1.14) sends
 * `Object.assign(Object.assign(Object.assign({}, defaultResponseHeaders),
 * defaultCompressionHeaders), custom)`: its keyed stores make that object a dictionary
 * past 12 properties beyond the 4 a `{}` holds in itself, as a limited call's 22 entries
 * are, and node:http2's respond() then walks it with for-in, on the dictionary's slow
 * path (sorting its keys each time). V8 follows a hidden-class transition that exists
 * without that check, and every `{}` of the isolate starts from the same class: so one
 * object per shape, built with defineProperty in grpc-js' order, makes the transitions
 * grpc-js' stores then follow, and keeps them alive. (test/unit/reply-metadata.test.ts:
 * what grpc-js hands node:http2 is a fast-mode object; a grpc-js that changed its
 * defaults fails there, not on the wire.)
 */
const GRPC_JS_DEFAULT_HEADERS: readonly (readonly [string, string | number])[] = [
  [":status", 200], // defaultResponseHeaders
  ["content-type", "application/grpc+proto"],
  ["grpc-accept-encoding", "identity,deflate,gzip"], // defaultCompressionHeaders
  ["grpc-encoding", "identity"],
];

/** `entries`: the shape's names with empty values, in order (as its template has them). */
function warmSendTarget(entries: readonly (readonly [string, string])[]): object {
  return defineAll({}, [...GRPC_JS_DEFAULT_HEADERS, ...entries]);
}

/** Adds each entry with defineProperty (a plain data property, as a store makes), which keeps `target` in fast mode however many there are. */
function defineAll<T extends object>(target: T, entries: readonly (readonly [string, string | number])[]): T {
  for (const [name, value] of entries) Object.defineProperty(target, name, { value, writable: true, enumerable: true, configurable: true });
  return target;
}
