/**
 * findSpans: the exact bytes of the values asked for, in text JSON.parse accepted, with
 * JSON.parse's answers on the awkward parts (escapes, duplicate keys, whitespace).
 */
import { describe, expect, it } from "vitest";
import { findSpans, type JsonPath, type Want } from "../../src/wire/json-spans.js";

/** Takes the value at `target`, descends on the way to it, skips the rest. */
function at(target: JsonPath): (path: JsonPath) => Want {
  return (path) => {
    if (path.length === target.length) return path.every((p, i) => p === target[i]) ? "take" : "skip";
    return path.every((p, i) => p === target[i]) ? "descend" : "skip";
  };
}

function slice(text: string, target: JsonPath): string | undefined {
  const span = findSpans(text, at(target)).get(target.join("."));
  return span === undefined ? undefined : text.slice(span[0], span[1]);
}

describe("findSpans", () => {
  it("returns a nested value's bytes as written, spacing and key order included", () => {
    const text = '{ "a" : [ 1, { "s" : {"2": {}, "1" : [ ] } } ] , "b": 2 }';
    expect(slice(text, ["a", 1, "s"])).toBe('{"2": {}, "1" : [ ] }');
    expect(slice(text, ["b"])).toBe("2");
  });

  it("is not fooled by brackets, quotes and backslashes inside strings", () => {
    const text = String.raw`{"x": "}\"]\\", "y": {"k\"ey": "[{", "v": "\\\\"}}`;
    expect(slice(text, ["y"])).toBe(String.raw`{"k\"ey": "[{", "v": "\\\\"}`);
    expect(slice(text, ["y", 'k"ey'])).toBe('"[{"');
  });

  it("decodes escaped keys as JSON.parse does, and the last of duplicate keys wins", () => {
    const text = '{"\\u0061": {"n": 1}, "a": {"n": 2}}';
    expect(slice(text, ["a"])).toBe('{"n": 2}');
    expect((JSON.parse(text) as { a: unknown }).a).toEqual({ n: 2 });
  });

  it("finds nothing at a path that is not there, and skips non-containers it was told to descend", () => {
    expect(slice('{"a": null, "b": [true, false]}', ["a", "x"])).toBeUndefined();
    expect(slice('{"a": null, "b": [true, false]}', ["b", 1])).toBe("false");
    expect(slice("[]", [0])).toBeUndefined();
  });

  it("handles deep nesting without recursion (no stack overflow)", () => {
    const depth = 200_000;
    const text = `{"deep":${"[".repeat(depth)}${"]".repeat(depth)},"after":"ok"}`;
    expect(slice(text, ["after"])).toBe('"ok"');
    expect(slice(text, ["deep"])!.length).toBe(2 * depth);
  });
});
