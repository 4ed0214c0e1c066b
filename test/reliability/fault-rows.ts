/**
 * The fault matrix's rows, shared by the gRPC and HTTP columns: a fault (queued on the
 * fake upstream, one per upstream attempt) and what the caller must see.
 */
import { expect } from "vitest";
import { cerebrasErrors, type Fault } from "../../src/fake-upstream/faults.js";
import type { FakeUpstream } from "../../src/fake-upstream/server.js";

/** What one call came to. `code` is the gRPC status name ("OK" on success). */
export interface Outcome {
  readonly code: string;
  readonly reason: string | undefined;
  readonly attempts: number;
  readonly chunks: number;
  readonly retryDelayMs: number | undefined;
}

export type Row = [name: string, faults: Fault[], expected: Partial<Outcome>];

/**
 * `got` is `want`. A row's retryDelayMs is the upstream's reset, and RetryInfo counts it
 * from when the gateway answered, so the time since the last attempt failed is already
 * off it: at most the row's figure, and at least that less the time from the last
 * attempt's arrival at the fake to the answer's at the caller (`sinceLastAttemptMs`;
 * 1 ms more for rounding).
 */
export function expectOutcome(got: Outcome, want: Partial<Outcome>, sinceLastAttemptMs: number): void {
  const { retryDelayMs, ...rest } = want;
  expect(got).toMatchObject(rest);
  if (retryDelayMs === undefined) return;
  expect(got.retryDelayMs).toBeLessThanOrEqual(retryDelayMs);
  expect(got.retryDelayMs).toBeGreaterThanOrEqual(retryDelayMs - sinceLastAttemptMs - 1);
}

/** `run()`, and the ms from the fake's last chat request's arrival to run()'s end. */
export async function sinceLastAttempt<T>(fake: FakeUpstream, run: () => Promise<T>): Promise<[T, number]> {
  const out = await run();
  const last = fake.chatRequests().at(-1);
  return [out, last === undefined ? 0 : performance.now() - last.receivedAt];
}

export const times = (n: number, f: Fault): Fault[] => Array.from({ length: n }, () => f);

/** Faults that hit before any byte reaches the caller: the same on both RPCs. */
export const beforeFirstByte: Row[] = [
  ["reset before headers, every attempt", times(3, { kind: "reset-before-headers" }), { code: "UNAVAILABLE", reason: "UPSTREAM_CONNECTION_FAILED", attempts: 3 }],
  ["reset before headers once, then fine", [{ kind: "reset-before-headers" }], { code: "OK", attempts: 2 }],
  ["500, every attempt", times(3, cerebrasErrors.serverError(500)), { code: "UNAVAILABLE", reason: "UPSTREAM_SERVER_ERROR", attempts: 3 }],
  ["503 twice, then fine", times(2, cerebrasErrors.serverError(503)), { code: "OK", attempts: 3 }],
  ["429 queue_exceeded, every attempt", times(3, cerebrasErrors.queueExceeded()), { code: "UNAVAILABLE", reason: "UPSTREAM_OVERLOADED", attempts: 3 }],
  ["429 queue_exceeded once, then fine", [cerebrasErrors.queueExceeded()], { code: "OK", attempts: 2 }],
  [
    "429 token quota resetting inside the budget, every attempt",
    times(3, cerebrasErrors.tokenQuotaPerMinute(0.1)),
    { code: "RESOURCE_EXHAUSTED", reason: "UPSTREAM_QUOTA_EXCEEDED", attempts: 3, retryDelayMs: 100 },
  ],
  ["429 token quota resetting inside the budget once, then fine", [cerebrasErrors.tokenQuotaPerMinute(0.1)], { code: "OK", attempts: 2 }],
  [
    "429 token quota resetting after the budget",
    [cerebrasErrors.tokenQuotaPerMinute(60)],
    { code: "RESOURCE_EXHAUSTED", reason: "UPSTREAM_QUOTA_EXCEEDED", attempts: 1, retryDelayMs: 60_000 },
  ],
  ["429 daily request quota", [cerebrasErrors.requestQuotaPerDay(3600)], { code: "RESOURCE_EXHAUSTED", reason: "UPSTREAM_QUOTA_EXCEEDED", attempts: 1 }],
  ["401 of the gateway's own key", [cerebrasErrors.wrongApiKey()], { code: "UNAVAILABLE", reason: "UPSTREAM_AUTH_FAILED", attempts: 1 }],
  ["400 wrong_api_format", [cerebrasErrors.wrongApiFormat()], { code: "INVALID_ARGUMENT", reason: "UPSTREAM_INVALID_REQUEST", attempts: 1 }],
  ["404 model_not_found", [cerebrasErrors.modelNotFound()], { code: "NOT_FOUND", reason: "MODEL_NOT_FOUND", attempts: 1 }],
];

/** Faults on a stream, before or after its first chunk. */
export const streamOnly: Row[] = [
  ["no first token in time, every attempt (retried: nothing was sent yet)", times(3, { kind: "stall", afterChunks: 0 }), { code: "UNAVAILABLE", reason: "UPSTREAM_TIMEOUT", attempts: 3, chunks: 0 }],
  ["no first token in time once, then fine", [{ kind: "stall", afterChunks: 0 }], { code: "OK", attempts: 2 }],
  ["a response slower than FIRST_TOKEN_TIMEOUT_S, once: that attempt is dropped and retried", [{ kind: "delay", ms: 10_000 }], { code: "OK", attempts: 2 }],
  ["idle stream after 2 chunks (not retried: chunks were sent)", [{ kind: "stall", afterChunks: 2 }], { code: "UNAVAILABLE", reason: "UPSTREAM_TIMEOUT", attempts: 1, chunks: 2 }],
  ["reset mid-stream", [{ kind: "cut-stream", afterChunks: 3 }], { code: "UNAVAILABLE", reason: "UPSTREAM_CONNECTION_FAILED", attempts: 1, chunks: 3 }],
  ["mid-stream error frame", [{ kind: "error-frame", afterChunks: 2 }], { code: "UNAVAILABLE", reason: "UPSTREAM_STREAM_ERROR", attempts: 1, chunks: 2 }],
  ["error frame (500) before any chunk, every attempt", times(3, { kind: "error-frame", afterChunks: 0 }), { code: "UNAVAILABLE", reason: "UPSTREAM_SERVER_ERROR", attempts: 3, chunks: 0 }],
  ["EOF without finish_reason", [{ kind: "eof-without-finish", afterChunks: 3 }], { code: "UNAVAILABLE", reason: "UPSTREAM_STREAM_TRUNCATED", attempts: 1, chunks: 3 }],
  ["garbage bytes mid-stream", [{ kind: "garbage", afterChunks: 2 }], { code: "UNAVAILABLE", reason: "UPSTREAM_BAD_RESPONSE", attempts: 1, chunks: 2 }],
  ["one event larger than the SSE bound", [{ kind: "huge-event", afterChunks: 1, bytes: 9 * 1024 * 1024 }], { code: "UNAVAILABLE", reason: "UPSTREAM_BAD_RESPONSE", attempts: 1, chunks: 1 }],
];
