/**
 * The fault matrix's HTTP column: the same faults and expectations as the gRPC column
 * (fault-rows.ts), through the OpenAI-compatible shim. A failure before the first byte
 * is an HTTP status; after it, an in-band `data: {"error":…,"status_code":N}` event.
 * The shim's budget is REQUEST_TIMEOUT_S (3 s here).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Fault } from "../../src/fake-upstream/faults.js";
import { until } from "../helpers/harness.js";
import { chatBody, json, raw, sseData, startHttpHarness, type HttpHarness } from "../helpers/http.js";
import { beforeFirstByte, expectOutcome, sinceLastAttempt, streamOnly, type Outcome } from "./fault-rows.js";

let h: HttpHarness;
beforeAll(async () => {
  h = await startHttpHarness({ env: { REQUEST_TIMEOUT_S: "3", FIRST_TOKEN_TIMEOUT_S: "0.5", STREAM_IDLE_TIMEOUT_S: "0.3", UPSTREAM_MAX_RETRIES: "2" } });
});
afterAll(async () => {
  await h.close();
});
afterEach(async () => {
  await until(() => h.fake.openRequests() === 0, 5000, "every upstream request to close");
  const next = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("next one")) });
  expect(next.status).toBe(200);
});

/** HTTP status → the gRPC code the shim derived it from (DESIGN.md's table, read backwards). */
const CODE_OF_STATUS: Record<number, string> = { 200: "OK", 400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED" };

interface HttpOutcome extends Outcome {
  readonly status: number;
}

async function run(faults: readonly Fault[], stream: boolean): Promise<HttpOutcome> {
  for (const f of faults) h.fake.failNext(f);
  const before = h.fake.chatRequests().length;
  const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("fault matrix", stream ? { stream: true } : {})) });
  const attempts = h.fake.chatRequests().length - before;
  if (res.status !== 200 || !stream) {
    const retryAfterMs = res.headers["retry-after-ms"];
    return {
      status: res.status,
      code: CODE_OF_STATUS[res.status] ?? `HTTP ${res.status}`,
      reason: undefined,
      attempts,
      chunks: 0,
      retryDelayMs: typeof retryAfterMs === "string" ? Number(retryAfterMs) : undefined,
    };
  }
  // A 200 stream: chunks, then [DONE] or one error event.
  const events = sseData(res.text);
  const last = events.at(-1);
  if (last === "[DONE]") return { status: 200, code: "OK", reason: undefined, attempts, chunks: events.length - 1, retryDelayMs: undefined };
  const error = JSON.parse(last ?? "{}") as { status_code?: number; error?: { code?: string } };
  const status = error.status_code ?? 0;
  return { status, code: CODE_OF_STATUS[status] ?? `HTTP ${status}`, reason: undefined, attempts, chunks: events.length - 1, retryDelayMs: undefined };
}

/** The gRPC column's expectations minus what HTTP cannot carry (ErrorInfo reason). */
function expected(e: Partial<Outcome>): Partial<Outcome> {
  const { reason: _reason, ...rest } = e;
  return rest;
}

describe.each([
  ["unary", false],
  ["streaming", true],
] as const)("HTTP shim %s", (_, stream) => {
  it.each(beforeFirstByte)("%s", async (_name, faults, want) => {
    const [got, ms] = await sinceLastAttempt(h.fake, () => run(faults, stream));
    // Nothing reached the caller before the failure (or, when it recovers, the whole answer did).
    expectOutcome(got, { ...expected(want), chunks: want.code === "OK" && stream ? expect.any(Number) : 0 }, ms);
    expect(got.status === 200).toBe(want.code === "OK");
  });
});

describe("HTTP shim streaming only", () => {
  it.each(streamOnly)("%s", async (_name, faults, want) => {
    const [got, ms] = await sinceLastAttempt(h.fake, () => run(faults, true));
    expectOutcome(got, expected(want), ms);
  });
});

describe("HTTP shim unary only", () => {
  it("a 200 body larger than the limit → 502, not retried", async () => {
    expect(await run([{ kind: "huge-body", bytes: 40 * 1024 * 1024 }], false)).toMatchObject({ status: 502, attempts: 1 });
  });
});

describe("the shim's budget", () => {
  it("a first token slower than REQUEST_TIMEOUT_S → 504 (unary) and the upstream request is aborted", async () => {
    const short = await startHttpHarness({ env: { REQUEST_TIMEOUT_S: "0.3" } });
    try {
      short.fake.failNext({ kind: "delay", ms: 10_000 });
      const res = await raw(short.httpPort, { path: "/v1/chat/completions", ...json(chatBody("slow")) });
      expect(res.status).toBe(504);
      expect(await short.fake.chatRequests()[0]!.settled).toBe("aborted");
    } finally {
      await short.close();
    }
  });
});
