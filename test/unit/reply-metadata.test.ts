/**
 * replyMetadata (src/grpc/reply-metadata.ts) fills grpc-js' Metadata through its protected
 * `internalRepr` and overrides toHttp2Headers: these hold it to what a Metadata filled with
 * set() gives, through every public method grpc-js and an interceptor could use, so a
 * grpc-js upgrade that changed either fails here rather than on the wire. And the headers
 * grpc-js hands node:http2 for it stay a fast-mode object (the module's warmSendTarget).
 */
import { credentials, Client, Metadata, Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData } from "@grpc/grpc-js";
import { once } from "node:events";
import { connect, createServer, sensitiveHeaders, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import { setFlagsFromString } from "node:v8";
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
    expect(m.toHttp2Headers()).toEqual({ "x-request-id": REQUEST_ID, [sensitiveHeaders]: ["x-request-id"] });
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

/** node:http2's ServerHttp2Stream.prototype (not exported): from a stream of a throwaway server. */
async function serverStreamPrototype(): Promise<ServerHttp2Stream> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  const client = connect(`http://127.0.0.1:${port}`);
  try {
    const [stream] = (await Promise.all([once(server, "stream"), once(client.request({ ":method": "POST" }).end(), "ready")]))[0] as [ServerHttp2Stream];
    stream.close();
    return Object.getPrototypeOf(stream) as ServerHttp2Stream;
  } finally {
    client.destroy();
    server.close();
  }
}

/**
 * Whether V8 holds `o` in fast mode, from its own %HasFastProperties (the flag only lets
 * code compiled after it use natives syntax; nothing else changes).
 */
function fastPropertiesProbe(): (o: object) => boolean {
  setFlagsFromString("--allow-natives-syntax");
  return new Function("o", "return %HasFastProperties(o)") as (o: object) => boolean;
}

/** The same entries after one more, through set(): a sequence of names replyMetadata never rendered, so nothing warmed its transitions. */
function unwarmed(requestId: string): Metadata {
  const m = new Metadata();
  m.set("x-control", "1");
  m.merge(viaSet(requestId, limitedHeaders(7)));
  return m;
}

describe("what grpc-js sends for it", () => {
  it("is a fast-mode object, however many entries; a Metadata filled with set() gives a dictionary", async () => {
    const isFast = fastPropertiesProbe();
    const proto = await serverStreamPrototype();
    const respond = proto.respond;
    const sent: { id: unknown; fast: boolean; count: number }[] = [];
    proto.respond = function (this: ServerHttp2Stream, headers?: OutgoingHttpHeaders, options?: Parameters<ServerHttp2Stream["respond"]>[1]): void {
      if (headers !== undefined) sent.push({ id: headers["x-request-id"], fast: isFast(headers), count: Object.keys(headers).length });
      respond.call(this, headers, options);
    };
    // One unary method of raw bytes: the reply's initial metadata is replyMetadata's, or set()'s.
    const server = new Server();
    const method = { path: "/test.Send/Target", requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
    server.addService({ target: method }, {
      target: (call: ServerUnaryCall<Buffer, Buffer>, done: sendUnaryData<Buffer>) => {
        const id = call.metadata.get("x-which")[0] as string;
        call.sendMetadata(id.startsWith("set") ? unwarmed(id) : replyMetadata(id, limitedHeaders(7)));
        done(null, Buffer.alloc(0));
      },
    });
    const port = await new Promise<number>((ok, fail) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? fail(err) : ok(p))));
    const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    const call = (which: string): Promise<Metadata> =>
      new Promise((ok, fail) => {
        const md = new Metadata();
        md.set("x-which", which);
        let headers: Metadata | undefined;
        const c = client.makeUnaryRequest(method.path, (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), md, (err) => (err ? fail(err) : ok(headers!)));
        c.on("metadata", (m: Metadata) => (headers = m));
      });
    try {
      for (const which of ["reply-1", "set-1", "reply-2", "set-2"]) {
        const got = await call(which);
        expect(got.get("x-request-id")).toEqual([which]);
        expect(got.get("x-ratelimit-remaining-tokens-day")).toEqual([String(999_999_000_000 - 7)]);
      }
    } finally {
      proto.respond = respond;
      client.close();
      server.forceShutdown();
    }
    // :status, content-type and grpc-js' two encoding headers, then the 19 entries.
    expect(sent.map((s) => [s.id, s.count])).toEqual([["reply-1", 23], ["set-1", 24], ["reply-2", 23], ["set-2", 24]]);
    expect(sent.filter((s) => String(s.id).startsWith("reply")).map((s) => s.fast)).toEqual([true, true]);
    // The control (what the probe says without the warm-up): grpc-js' Object.assign made a dictionary.
    expect(sent.filter((s) => String(s.id).startsWith("set")).map((s) => s.fast)).toEqual([false, false]);
  });
});

describe("on the wire", () => {
  it("sends the values that change with every reply never-indexed (the request id, remaining, reset), and the rest for HPACK to index", async () => {
    const server = new Server();
    const method = { path: "/test.Send/Target", requestStream: false, responseStream: false, requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };
    server.addService({ target: method }, {
      target: (call: ServerUnaryCall<Buffer, Buffer>, done: sendUnaryData<Buffer>) => {
        call.sendMetadata(replyMetadata(REQUEST_ID, limitedHeaders(3)));
        done(null, Buffer.alloc(0));
      },
    });
    const port = await new Promise<number>((ok, fail) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? fail(err) : ok(p))));
    // A plain node:http2 client: it lists the headers that arrived flagged never-indexed under sensitiveHeaders.
    const session = connect(`http://127.0.0.1:${port}`);
    try {
      const req = session.request({ ":method": "POST", ":path": method.path, "content-type": "application/grpc", te: "trailers" });
      req.end(Buffer.alloc(5));
      req.resume();
      const [headers] = (await once(req, "response")) as [IncomingHttpHeaders];
      const never = (headers as Record<symbol, unknown>)[sensitiveHeaders];
      expect(headers["x-request-id"]).toBe(REQUEST_ID);
      expect([...(never as string[])].sort()).toEqual([
        "x-cerebras-ratelimit-remaining-tokens-minute",
        "x-cerebras-ratelimit-reset-tokens-minute",
        "x-ratelimit-remaining-requests-day",
        "x-ratelimit-remaining-requests-minute",
        "x-ratelimit-remaining-tokens-day",
        "x-ratelimit-remaining-tokens-minute",
        "x-ratelimit-reset-requests-day",
        "x-ratelimit-reset-requests-minute",
        "x-ratelimit-reset-tokens-day",
        "x-ratelimit-reset-tokens-minute",
        "x-request-id",
      ]);
      // The limits themselves, and grpc-js' own headers, repeat: left for HPACK's table.
      expect(headers["x-ratelimit-limit-tokens-day"]).toBe("1000000000000");
      await once(req, "close");
    } finally {
      session.destroy();
      server.forceShutdown();
    }
  });
});
