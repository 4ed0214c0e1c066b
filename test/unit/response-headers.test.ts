/**
 * A call's reply headers (src/core/response-headers.ts, setResponseHeader): set in place,
 * and only entries both transports can carry, since the transports hand them over
 * unchecked.
 */
import { describe, expect, it } from "vitest";
import { CallScope } from "../../src/core/call-scope.js";
import { setResponseHeader } from "../../src/core/provider.js";
import { isLegalHeaderName, isLegalHeaderValue, responseHeaderName, ResponseHeaders } from "../../src/core/response-headers.js";

function scope(): CallScope {
  const s = new CallScope(Infinity, 60_000, "req-1");
  s.dispose(); // no budget timer left behind
  return s;
}

describe("ResponseHeaders", () => {
  it("keeps each name once, where it was first set, with its last value", () => {
    const h = new ResponseHeaders();
    h.setLegal("x-a", "1");
    h.setLegal("x-b", "2");
    h.setLegal("x-a", "3");
    expect(h.flat).toEqual(["x-a", "3", "x-b", "2"]);
    expect(h.get("x-a")).toBe("3");
    expect(h.get("x-c")).toBeUndefined();
    expect(h.toRecord()).toEqual({ "x-a": "3", "x-b": "2" });
  });

  it("takes the names and values gRPC metadata and HTTP both take, and no others", () => {
    for (const name of ["x-ratelimit-limit-tokens-day", "x-aigw-model", "x_a.b-1"]) expect(isLegalHeaderName(name), name).toBe(true);
    for (const name of ["X-Upper", "x-we!rd", "x y", "", "grpc-status", "x-data-bin", ":status", "__proto__", "x-é"]) expect(isLegalHeaderName(name), name).toBe(false);
    for (const value of ["", "0.00", "gpt-oss-120b", " !~"]) expect(isLegalHeaderValue(value), value).toBe(true);
    for (const value of ["caf\u00e9", "a\tb", "a\r\nb", "\u0000", "\u007f"]) expect(isLegalHeaderValue(value), JSON.stringify(value)).toBe(false);
    expect(responseHeaderName("x-ratelimit-reset-usd-day")).toBe("x-ratelimit-reset-usd-day");
    expect(() => responseHeaderName("x-Rate")).toThrow(/not a legal response header name/);
  });
});

describe("setResponseHeader", () => {
  it("sets legal entries on the call, replacing earlier values, and drops the others", () => {
    const s = scope();
    expect(s.replyHeaders).toBeUndefined();
    expect(s.responseHeaders).toBeUndefined();
    setResponseHeader(s, "x-aigw-attempts", "1");
    setResponseHeader(s, "x-cerebras-ratelimit-reset-odd", "1\u00e9");
    setResponseHeader(s, "x-cerebras-ratelimit-we!rd", "1");
    setResponseHeader(s, "x-aigw-attempts", "2");
    expect(s.replyHeaders!.flat).toEqual(["x-aigw-attempts", "2"]);
    expect(s.responseHeaders).toEqual({ "x-aigw-attempts": "2" });
  });
});
