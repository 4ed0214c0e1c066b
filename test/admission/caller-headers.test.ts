/**
 * The caller's rate-limit headers (src/admission/caller-headers.ts): their number
 * formatting takes V8's fast paths but must write exactly what String() and toFixed(2)
 * would, which these compare over seeded random values and the edges of each path.
 */
import { describe, expect, it } from "vitest";
import { integerText, setLimitHeaders, toFixed2 } from "../../src/admission/caller-headers.js";
import { limitsFrom, WINDOW_MS } from "../../src/admission/limits.js";
import { CallScope } from "../../src/core/call-scope.js";
import { seededRandom } from "../helpers/random.js";

describe("integerText", () => {
  it("writes what String() writes, for integers from 0 to 2^53 and past", () => {
    const edges = [0, 1, 9, 10, 2 ** 31 - 1, 2 ** 31, 2 ** 31 + 1, 1e9, 1e9 - 1, 1e9 + 1, 2e9, 1e12, 1e12 - 1, 1e14, 999_999_999_999, 1e15 + 1, 2 ** 53 - 2, 2 ** 53 - 1, 2 ** 53, 2 ** 60, 1e21, 1e22];
    for (const n of edges) expect(integerText(n), String(n)).toBe(String(n));
    const wrong: number[] = [];
    for (let k = 1; k < 9_007_199; k += 997) for (const d of [-1, 0, 1]) if (integerText(k * 1e9 + d) !== String(k * 1e9 + d)) wrong.push(k * 1e9 + d);
    const r = seededRandom(14);
    for (let i = 0; i < 200_000; i++) {
      const n = Math.floor(r() * 2 ** (31 + r() * 22));
      if (integerText(n) !== String(n)) wrong.push(n);
    }
    expect(wrong).toEqual([]);
  });
});

describe("toFixed2", () => {
  it("writes what toFixed(2) writes, halves and the ends of its fast path included", () => {
    const edges = [0, -0, 0.001, 0.004999, 0.005, 0.015, 0.025, 0.125, 1.005, 1.115, 2.675, 10.235, 59.995, 86_400, 21_474_836.47, 21_474_836.475, 21_474_836.48, 21_474_836.49, 1e8, 1e21, Infinity, NaN, 0.0000864];
    for (const x of edges) expect(toFixed2(x), String(x)).toBe(x.toFixed(2));
    const wrong: number[] = [];
    // Every half-cent up to an hour, a sample of them up to a day (86,400 s) and beyond.
    for (let k = 0; k < 720_000; k++) if (toFixed2(k / 200) !== (k / 200).toFixed(2)) wrong.push(k / 200);
    for (let k = 720_000; k < 17_280_000; k += 97) if (toFixed2(k / 200) !== (k / 200).toFixed(2)) wrong.push(k / 200);
    for (let k = 17_280_000; k < 5e9; k += 99_991) if (toFixed2(k / 200) !== (k / 200).toFixed(2)) wrong.push(k / 200);
    const r = seededRandom(2);
    for (let i = 0; i < 200_000; i++) {
      const x = r() * 10 ** Math.floor(r() * 9);
      if (toFixed2(x) !== x.toFixed(2)) wrong.push(x);
    }
    expect(wrong).toEqual([]);
  });
});

describe("setLimitHeaders", () => {
  it("sets a limit's three headers on the call: the limit, what is left (rounded down) and the seconds until full", () => {
    const [rpm] = limitsFrom({ requests_per_minute: 5_000_000_000 });
    const ctx = new CallScope(Infinity, 60_000, "req-1");
    ctx.dispose();
    const rate = rpm!.limit / WINDOW_MS.minute;
    setLimitHeaders(ctx, rpm!, 4_999_999_998.7, rpm!.limit, rate);
    expect(ctx.responseHeaders).toEqual({
      "x-ratelimit-limit-requests-minute": "5000000000",
      "x-ratelimit-remaining-requests-minute": "4999999998",
      "x-ratelimit-reset-requests-minute": (1.3 / rate / 1000).toFixed(2),
    });
  });
});
