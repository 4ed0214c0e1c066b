/**
 * The fault matrix: each upstream fault × {unary, streaming} × transport. For every cell:
 * the status the caller gets, its ErrorInfo reason, how many upstream attempts were made
 * (retries on, default policy), that no upstream request is left open, and that the
 * gateway serves the next request.
 *
 * Budgets are short here (client deadline 3 s, first token 0.5 s, idle 0.3 s) so the
 * whole matrix runs in seconds; they are bounds, not timing bets.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Fault } from "../../src/fake-upstream/faults.js";
import { create, decodeStatus, deadlineIn, startHarness, stream, userRequest, until, type Harness } from "../helpers/harness.js";
import { beforeFirstByte, expectOutcome, sinceLastAttempt, streamOnly, type Outcome } from "./fault-rows.js";

const DEADLINE_MS = 3000;

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ env: { FIRST_TOKEN_TIMEOUT_S: "0.5", STREAM_IDLE_TIMEOUT_S: "0.3" } });
});
afterAll(async () => {
  await h.close();
});
afterEach(async () => {
  // Nothing the fault did may leave an upstream request open or the gateway unable to serve.
  await until(() => h.fake.openRequests() === 0, 5000, "every upstream request to close");
  const res = await create(h.chat, userRequest("next one"), deadlineIn(DEADLINE_MS));
  expect(res.choices[0]!.message!.content).toBe("Echo: next one");
});

async function runUnary(faults: readonly Fault[], deadlineMs = DEADLINE_MS): Promise<Outcome> {
  for (const f of faults) h.fake.failNext(f);
  const before = h.fake.chatRequests().length;
  try {
    await create(h.chat, userRequest("fault matrix"), deadlineIn(deadlineMs));
    return { code: "OK", reason: undefined, attempts: h.fake.chatRequests().length - before, chunks: 0, retryDelayMs: undefined };
  } catch (err) {
    return outcome(err as ServiceError, h.fake.chatRequests().length - before, 0);
  }
}

async function runStream(faults: readonly Fault[], deadlineMs = DEADLINE_MS): Promise<Outcome> {
  for (const f of faults) h.fake.failNext(f);
  const before = h.fake.chatRequests().length;
  const { chunks, error } = await stream(h.chat, userRequest("fault matrix"), deadlineIn(deadlineMs));
  const attempts = h.fake.chatRequests().length - before;
  if (error === undefined) return { code: "OK", reason: undefined, attempts, chunks: chunks.length, retryDelayMs: undefined };
  return outcome(error, attempts, chunks.length);
}

function outcome(err: ServiceError, attempts: number, chunks: number): Outcome {
  const code = status[err.code];
  if (err.code === status.DEADLINE_EXCEEDED && err.metadata.get("grpc-status-details-bin").length === 0) {
    // The client's own deadline fired first: grpc-js reports it without server details.
    return { code, reason: undefined, attempts, chunks, retryDelayMs: undefined };
  }
  const d = decodeStatus(err);
  expect(d.code).toBe(err.code);
  const delay = d.retryInfo?.retryDelay;
  if (attempts > 1 && err.code !== status.OK) expect(d.errorInfo!.metadata["attempts"]).toBe(String(attempts));
  return { code, reason: d.errorInfo?.reason, attempts, chunks, retryDelayMs: delay ? delay.seconds * 1000 + delay.nanos / 1e6 : undefined };
}

describe.each([
  ["unary", runUnary],
  ["streaming", runStream],
] as const)("gRPC %s", (_, run) => {
  it.each(beforeFirstByte)("%s", async (_name, faults, expected) => {
    const [got, ms] = await sinceLastAttempt(h.fake, () => run(faults));
    expectOutcome(got, expected, ms);
  });

  it("slow first token past the caller's deadline → DEADLINE_EXCEEDED, upstream aborted, no retry", async () => {
    expect(await run([{ kind: "delay", ms: 10_000 }], 300)).toMatchObject({ code: "DEADLINE_EXCEEDED", attempts: 1 });
    expect(await h.fake.chatRequests().at(-1)!.settled).toBe("aborted");
  });
});

describe("gRPC unary only", () => {
  it("a 200 body larger than the limit → UNAVAILABLE (bad response), connection dropped", async () => {
    expect(await runUnary([{ kind: "huge-body", bytes: 40 * 1024 * 1024 }])).toMatchObject({ code: "UNAVAILABLE", reason: "UPSTREAM_BAD_RESPONSE", attempts: 1 });
  });

  it("garbage instead of JSON → UNAVAILABLE (bad response), not retried", async () => {
    expect(await runUnary([{ kind: "http-error", status: 200, body: "<html>" }])).toMatchObject({ code: "UNAVAILABLE", reason: "UPSTREAM_BAD_RESPONSE", attempts: 1 });
  });
});

describe("gRPC streaming only", () => {
  it.each(streamOnly)("%s", async (_name, faults, expected) => {
    const [got, ms] = await sinceLastAttempt(h.fake, () => runStream(faults));
    expectOutcome(got, expected, ms);
  });
});

describe("an upstream that refuses connections", () => {
  it.each(["unary", "streaming"])("%s → UNAVAILABLE after the retries, within the deadline", async (kind) => {
    const dead = await startHarness();
    await dead.fake.close();
    try {
      const err =
        kind === "unary"
          ? await create(dead.chat, userRequest("x"), deadlineIn(DEADLINE_MS)).then(
              () => undefined,
              (e: unknown) => e as ServiceError,
            )
          : (await stream(dead.chat, userRequest("x"), deadlineIn(DEADLINE_MS))).error;
      expect(err?.code).toBe(status.UNAVAILABLE);
      const d = decodeStatus(err!);
      expect(d.errorInfo!.reason).toBe("UPSTREAM_CONNECTION_FAILED");
      expect(d.errorInfo!.metadata["attempts"]).toBe("3");
    } finally {
      await dead.close();
    }
  });
});
