/**
 * replyMetadata (src/grpc/reply-metadata.ts) fills grpc-js' Metadata through its protected
 * `internalRepr` and overrides toHttp2Headers: these hold it to what a Metadata filled with
 * set() gives, through every public method grpc-js and an interceptor could use, so a
 * grpc-js upgrade that changed either fails here rather than on the wire.
 */
import { Metadata } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ResponseHeaders } from "../../src/core/response-headers.js";
import { replyMetadata } from "../../src/grpc/reply-metadata.js";

const REQUEST_ID = "req-0123";

/** A limited call's headers: more than V8 keeps in a fast-mode object filled by keyed stores. */
function limitedHeaders(seed: number): ResponseHeaders {
  const h = new ResponseHeaders();
  for (const window of ["requests-day", "requests-minute", "tokens-day", "tokens-minute"]) {
    h.setLegal(`x-ratelimit-limit-${window}`, "1000000000000");
    h.setLegal(`x-ratelimit-remaining-${window}`, String(999_999_000_000 - seed));
    h.setLegal(`x-ratelimit-reset-${window}`, `${seed % 60}.25`);
  }
  h.setLegal("x-aigw-upstream-key", "default");
  h.setLegal("x-aigw-attempts", "1");
  h.setLegal("x-aigw-model", "gpt-oss-120b");
  for (const name of ["limit-requests-day", "remaining-tokens-minute", "reset-tokens-minute"]) h.setLegal(`x-cerebras-ratelimit-${name}`, String(seed));
  return h;
}

/** The same entries through grpc-js' own set(). */
function viaSet(requestId: string, headers: ResponseHeaders | undefined): Metadata {
  const m = new Metadata();
  m.set("x-request-id", requestId);
  const f = headers?.flat ?? [];
  for (let i = 0; i < f.length; i += 2) m.set(f[i]!, f[i + 1]!);
  return m;
}

/** Keys in order with their values: toEqual alone would not see a different order. */
const ordered = (o: object): [string, unknown][] => Object.entries(o);

function expectSameAsSet(m: Metadata, reference: Metadata): void {
  expect(m.getMap()).toEqual(reference.getMap());
  expect(m.toJSON()).toEqual(reference.toJSON());
  expect(ordered(m.toHttp2Headers())).toEqual(ordered(reference.toHttp2Headers()));
  // grpc-js' own rendering of the same Metadata agrees with the override.
  expect(ordered(Metadata.prototype.toHttp2Headers.call(m))).toEqual(ordered(m.toHttp2Headers()));
  for (const name of Object.keys(reference.getMap())) expect(m.get(name)).toEqual(reference.get(name));
  expect(ordered(m.clone().toHttp2Headers())).toEqual(ordered(reference.toHttp2Headers()));
}

describe("replyMetadata", () => {
  it("is, to grpc-js, the Metadata set() would build: a limited call's 19 entries, in order", () => {
    for (let seed = 0; seed < 3; seed++) {
      const headers = limitedHeaders(seed);
      const m = replyMetadata(REQUEST_ID, headers);
      expect(m).toBeInstanceOf(Metadata);
      expectSameAsSet(m, viaSet(REQUEST_ID, headers));
      expect(Object.keys(m.toHttp2Headers())).toHaveLength(19);
      expect(Object.keys(m.toHttp2Headers())[0]).toBe("x-request-id");
    }
  });

  it("carries the request id alone when the call added no header", () => {
    const m = replyMetadata(REQUEST_ID, undefined);
    expectSameAsSet(m, viaSet(REQUEST_ID, undefined));
    expect(m.toHttp2Headers()).toEqual({ "x-request-id": REQUEST_ID });
  });

  it("gives every call its own object, with that call's values, whatever shapes came before", () => {
    const short = new ResponseHeaders();
    short.setLegal("x-aigw-attempts", "2");
    const a = replyMetadata("a", limitedHeaders(1)).toHttp2Headers();
    const b = replyMetadata("b", short).toHttp2Headers();
    const c = replyMetadata("c", limitedHeaders(2)).toHttp2Headers();
    expect(a).not.toBe(c);
    expect(a["x-request-id"]).toBe("a");
    expect(c["x-ratelimit-remaining-tokens-day"]).toBe(String(999_999_000_000 - 2));
    expect(ordered(b)).toEqual([["x-request-id", "b"], ["x-aigw-attempts", "2"]]);
    // Mutating one (grpc-js copies it, but a caller could write to it) leaves the next alone.
    (a as Record<string, string>)["x-aigw-model"] = "changed";
    expect(replyMetadata("d", limitedHeaders(1)).toHttp2Headers()["x-aigw-model"]).toBe("gpt-oss-120b");
  });

  it("follows changes made through Metadata's own methods, as an interceptor might make them", () => {
    const m = replyMetadata(REQUEST_ID, limitedHeaders(5));
    const reference = viaSet(REQUEST_ID, limitedHeaders(5));
    for (const x of [m, reference]) {
      x.set("x-added", "1");
      x.add("x-aigw-attempts", "2"); // two values: an array in the HTTP/2 headers
      x.remove("x-aigw-model");
    }
    expectSameAsSet(m, reference);
    expect(m.toHttp2Headers()["x-aigw-attempts"]).toEqual(["1", "2"]);
    const merged = replyMetadata(REQUEST_ID, undefined);
    merged.merge(m);
    expect(merged.get("x-added")).toEqual(["1"]);
  });

  it("still renders past the bound on remembered shapes (then through grpc-js' own path)", () => {
    // Every sequence of names is a shape; this makes more than the 512 the module keeps.
    for (let i = 0; i < 600; i++) {
      const h = new ResponseHeaders();
      h.setLegal(`x-shape-${i}`, String(i));
      h.setLegal("x-aigw-attempts", "1");
      const m = replyMetadata(REQUEST_ID, h);
      expect(ordered(m.toHttp2Headers())).toEqual([["x-request-id", REQUEST_ID], [`x-shape-${i}`, String(i)], ["x-aigw-attempts", "1"]]);
    }
    expectSameAsSet(replyMetadata(REQUEST_ID, limitedHeaders(9)), viaSet(REQUEST_ID, limitedHeaders(9)));
  });
});
