/**
 * The upstream-429 wait policy (issue 17's item, with the pool): a per-minute quota used
 * to be retried for about 23 s before the caller heard of it, and the SDKs then retried
 * on top (up to 9 upstream attempts). Now, with no other key to move to, the gateway
 * waits for a quota's reset only when it comes within UPSTREAM_QUOTA_MAX_WAIT_MS (1 s by
 * default, in all); otherwise it answers RESOURCE_EXHAUSTED with RetryInfo at once, after
 * one upstream request. The HTTP shim tells the openai and Cerebras SDKs not to retry
 * on top when the gateway already did (x-should-retry: false), and leaves them a quota
 * that resets within a minute, which their retry then waits for.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import Cerebras from "@cerebras/cerebras_cloud_sdk";
import OpenAI, { InternalServerError, RateLimitError } from "openai";
import { afterEach, describe, expect, it } from "vitest";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { create, decodeStatus, deadlineIn, rejection, userRequest, type Harness } from "../helpers/harness.js";
import { startHttpHarness, type HttpHarness } from "../helpers/http.js";

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function harness(env: Record<string, string> = {}): Promise<HttpHarness> {
  // Retries on (as deployed), unlike the HTTP suites' default.
  const started = await startHttpHarness({ env: { UPSTREAM_MAX_RETRIES: "2", ...env } });
  h = started;
  return started;
}

const calls = (hh: Harness): number => hh.fake.chatRequests().length;

describe("the gateway's own wait for a quota reset (one key: nowhere to move)", () => {
  it("a reset within UPSTREAM_QUOTA_MAX_WAIT_MS is waited for, then the call is served", async () => {
    const hh = await harness();
    hh.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(0.2));
    const res = await create(hh.chat, userRequest("hi"), deadlineIn(5000));
    expect(res.choices[0]!.message!.content).toBe("Echo: hi");
    expect(calls(hh)).toBe(2);
  });

  it("a reset beyond it is answered at once: RESOURCE_EXHAUSTED with RetryInfo after one upstream request, well inside the caller's deadline", async () => {
    const hh = await harness();
    hh.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(11.38));
    // Before, the gateway slept 11.4 s twice: this 3 s deadline would have ended the call first.
    const err = (await rejection(create(hh.chat, userRequest("hi"), deadlineIn(3000)))) as ServiceError;
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    const d = decodeStatus(err);
    expect(d.errorInfo!.reason).toBe("UPSTREAM_QUOTA_EXCEEDED");
    expect(d.retryInfo!.retryDelay).toEqual({ seconds: 11, nanos: 380_000_000 });
    expect(calls(hh)).toBe(1);
  });

  it("the waits add up to at most UPSTREAM_QUOTA_MAX_WAIT_MS", async () => {
    const hh = await harness({ UPSTREAM_QUOTA_MAX_WAIT_MS: "300" });
    for (let i = 0; i < 3; i++) hh.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(0.2));
    const err = (await rejection(create(hh.chat, userRequest("hi"), deadlineIn(5000)))) as ServiceError;
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(calls(hh)).toBe(2); // waited 0.2 s once; a second 0.2 s would pass 0.3 s in all
    expect(decodeStatus(err).errorInfo!.metadata["attempts"]).toBe("2");
  });

  it("UPSTREAM_QUOTA_MAX_WAIT_MS=0 never waits", async () => {
    const hh = await harness({ UPSTREAM_QUOTA_MAX_WAIT_MS: "0" });
    hh.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(0.2));
    expect(((await rejection(create(hh.chat, userRequest("hi")))) as ServiceError).code).toBe(status.RESOURCE_EXHAUSTED);
    expect(calls(hh)).toBe(1);
  });

  it("a daily quota is never waited for", async () => {
    const hh = await harness({ UPSTREAM_QUOTA_MAX_WAIT_MS: "60000" });
    hh.fake.failNext(cerebrasErrors.requestQuotaPerDay(0.5));
    expect(((await rejection(create(hh.chat, userRequest("hi")))) as ServiceError).code).toBe(status.RESOURCE_EXHAUSTED);
    expect(calls(hh)).toBe(1);
  });
});

describe("the SDKs' retries on top of the gateway's (default maxRetries: 2)", () => {
  const sdk = (hh: HttpHarness): OpenAI => new OpenAI({ apiKey: "unused", baseURL: `${hh.baseUrl}/v1`, timeout: 10_000 });
  const ask = { model: "gpt-oss-120b", messages: [{ role: "user" as const, content: "hi" }] };

  it("a daily quota: x-should-retry: false, so the openai SDK makes one request and the upstream sees one", async () => {
    const hh = await harness();
    hh.fake.failNext(cerebrasErrors.requestQuotaPerDay(33_011.38));
    const err = await rejection(sdk(hh).chat.completions.create(ask));
    expect(err).toBeInstanceOf(RateLimitError);
    expect((err as RateLimitError).headers.get("x-should-retry")).toBe("false");
    expect(calls(hh)).toBe(1);
  });

  it("upstream 5xx the gateway retried already: the openai SDK does not retry again (3 upstream attempts, not 9)", async () => {
    const hh = await harness();
    for (let i = 0; i < 9; i++) hh.fake.failNext(cerebrasErrors.serverError(500));
    const err = await rejection(sdk(hh).chat.completions.create(ask));
    expect(err).toBeInstanceOf(InternalServerError);
    expect((err as InternalServerError).headers.get("x-should-retry")).toBe("false");
    expect(calls(hh)).toBe(3);
  });

  it("the Cerebras SDK honours it the same way", async () => {
    const hh = await harness();
    for (let i = 0; i < 9; i++) hh.fake.failNext(cerebrasErrors.serverError(502));
    const cerebras = new Cerebras({ apiKey: "unused", baseURL: `${hh.baseUrl}/cerebras`, warmTCPConnection: false, timeout: 10_000 });
    await rejection(cerebras.chat.completions.create(ask));
    expect(calls(hh)).toBe(3);
  });

  it("a per-minute quota resetting within a minute is left to the SDK: its retry waits for the reset and is served", async () => {
    const hh = await harness({ UPSTREAM_QUOTA_MAX_WAIT_MS: "0" });
    hh.fake.failNext(cerebrasErrors.tokenQuotaPerMinute(0.3));
    const res = await sdk(hh).chat.completions.create(ask);
    expect(res.choices[0]!.message.content).toBe("Echo: hi");
    expect(calls(hh)).toBe(2);
  });
});
