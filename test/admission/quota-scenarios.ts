/**
 * The quota behaviours both end-to-end suites prove: on one in-process gateway with the
 * memory store (quotas.e2e.test.ts) and on three gateway processes sharing one Redis
 * (quotas-fleet.e2e.test.ts). Calls are spread over the fleet's members in turn.
 *
 * Time: every limit here refills one unit in far longer than a scenario takes (5 requests
 * a minute: one per 12 s; 5000 tokens a day: one per 17 s), so the counts are exact by a
 * bound, not by luck; roll-over with an injected clock is in quota-admission.test.ts.
 */
import { status } from "@grpc/grpc-js";
import { expect, it } from "vitest";
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import { estimatePromptTokens } from "../../src/admission/estimator.js";
import { decodeStatus, userRequest } from "../helpers/harness.js";
import { chatBody, json, raw } from "../helpers/http.js";
import { header, unary, type Fleet, type TestKey } from "./fleet.js";

export const KEYS = {
  rpm: { name: "rpm-team", key: "rpm-team-key-0123456789", limits: { requests_per_minute: 5 } },
  tokens: { name: "token-team", key: "token-team-key-0123456789", limits: { tokens_per_day: 5000 } },
  usd: { name: "usd-team", key: "usd-team-key-0123456789", limits: { usd_per_day: 0.0001 } },
  http: { name: "http-team", key: "http-team-key-0123456789", limits: { requests_per_minute: 2 } },
  tight: { name: "tight-team", key: "tight-team-key-0123456789", limits: { tokens_per_minute: 1000 } },
  free: { name: "free-team", key: "free-team-key-0123456789" },
} satisfies Record<string, TestKey>;

/**
 * KEYS.rpm (5 requests a minute) gets exactly 5 of 15 calls sent at once over the fleet's
 * members, the other 10 refused as the caller's quota: for the outage and transport suites,
 * on a window that starts whole (a fresh or restarted store).
 */
export async function expectFiveOfFifteen(fleet: Fleet, tag: string): Promise<void> {
  const ask = (i: number) => userRequest(`${tag} ${i}`, { model: "gpt-oss-120b", maxCompletionTokens: 20 });
  const burst = await Promise.all(Array.from({ length: 15 }, (_, i) => unary(fleet.members[i % fleet.members.length]!, ask(i), KEYS.rpm.key)));
  expect(burst.filter((r) => r.error === undefined)).toHaveLength(5);
  expect(burst.filter((r) => r.error !== undefined).map((r) => decodeStatus(r.error!).errorInfo!.reason)).toEqual(Array(10).fill("CALLER_QUOTA_EXCEEDED"));
}

/** The model the fake limits at the organisation level (the others get generous fixed headers). */
export const ORG_MODEL = "zai-glm-4.7";
export const ORG_RPM = 10;
export const FAKE_ORG_LIMITS = { [ORG_MODEL]: [{ resource: "requests" as const, window: "minute" as const, limit: ORG_RPM }] };

const MODEL = "gpt-oss-120b";

function ask(text: string, partial: Partial<ChatCompletionRequest> = {}): ChatCompletionRequest {
  return userRequest(text, { model: MODEL, maxCompletionTokens: 20, ...partial });
}

/** Declares the shared behaviours; `fleet()` is the suite's running fleet. */
export function quotaBehaviours(fleet: () => Fleet): void {
  const member = (i: number) => fleet().members[i % fleet().members.length]!;

  it("a key limited to N requests per minute gets exactly N successes when 3N are sent at once, spread over the gateways", async () => {
    const before = fleet().fake.chatRequests().length;
    const results = await Promise.all(Array.from({ length: 15 }, (_, i) => unary(member(i), ask(`burst ${i}`), KEYS.rpm.key)));
    const ok = results.filter((r) => r.error === undefined);
    const refused = results.filter((r) => r.error !== undefined);
    expect(ok).toHaveLength(5);
    expect(refused).toHaveLength(10);
    for (const r of refused) {
      expect(r.error!.code).toBe(status.RESOURCE_EXHAUSTED);
      const d = decodeStatus(r.error!);
      expect(d.errorInfo!.reason).toBe("CALLER_QUOTA_EXCEEDED");
      expect(d.errorInfo!.metadata).toMatchObject({ key: "rpm-team", limit: "requests_per_minute" });
      expect(d.quotaFailure!.violations[0]!.subject).toBe("key:rpm-team");
      expect(d.retryInfo!.retryDelay!.seconds).toBeGreaterThan(0);
    }
    // Nothing refused reached the upstream.
    expect(fleet().fake.chatRequests().length - before).toBe(5);
    await fleet().settled();
  });

  it("token limits reserve the estimate plus max_completion_tokens and settle to the exact usage, across gateways and transports", async () => {
    const request = ask("count my tokens exactly");
    const reservation = estimatePromptTokens(request) + 20;
    let expected = 5000 - reservation;
    for (let i = 0; i < 4; i++) {
      const m = member(i);
      let remaining: number;
      let used: number;
      if (i % 2 === 0) {
        const res = await raw(m.httpPort, { path: "/v1/chat/completions", ...json(chatBody("count my tokens exactly", { max_completion_tokens: 20 })), headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.tokens.key}` } });
        expect(res.status).toBe(200);
        remaining = Number(res.headers["x-ratelimit-remaining-tokens-day"]);
        expect(res.headers["x-ratelimit-limit-tokens-day"]).toBe("5000");
        const usage = (JSON.parse(res.text) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
        used = usage.prompt_tokens + usage.completion_tokens;
      } else {
        const r = await unary(m, request, KEYS.tokens.key);
        expect(r.error).toBeUndefined();
        remaining = Number(header(r.headers, "x-ratelimit-remaining-tokens-day"));
        used = r.reply!.usage!.promptTokens + r.reply!.usage!.completionTokens;
      }
      // After call i's reservation: everything before it charged at its real usage.
      expect(remaining).toBe(expected);
      await fleet().settled();
      // Its reservation is replaced by its usage, and the next call reserves the same again.
      expected = remaining + reservation - used - reservation;
    }
  });

  it("a USD budget stops the key once spent, priced with the catalog's prices", async () => {
    let spent = 0;
    let refusal: ReturnType<typeof decodeStatus> | undefined;
    let remainingAtRefusal: string | undefined;
    let calls = 0;
    for (let i = 0; i < 40 && refusal === undefined; i++) {
      const r = await unary(member(i), ask("spend"), KEYS.usd.key);
      if (r.error !== undefined) {
        refusal = decodeStatus(r.error);
        remainingAtRefusal = header(r.headers, "x-ratelimit-remaining-usd-day");
        break;
      }
      calls++;
      spent += r.reply!.usage!.costUsd!;
      await fleet().settled();
    }
    expect(calls).toBeGreaterThan(2);
    expect(refusal?.errorInfo?.reason).toBe("CALLER_QUOTA_EXCEEDED");
    expect(refusal!.errorInfo!.metadata["limit"]).toBe("usd_per_day");
    expect(spent).toBeLessThanOrEqual(0.0001);
    // What is left is the budget less what was spent (to the header's 1e-8 $), and less than the call needs.
    expect(Math.abs(Number(remainingAtRefusal) - (0.0001 - spent))).toBeLessThan(2e-8);
    expect(Number(remainingAtRefusal)).toBeLessThan(Number(refusal!.errorInfo!.metadata["requested"]));
    // It stays stopped.
    const again = await unary(member(calls + 1), ask("spend"), KEYS.usd.key);
    expect(decodeStatus(again.error!).errorInfo!.reason).toBe("CALLER_QUOTA_EXCEEDED");
  });

  it("HTTP callers get 429 with retry-after and x-ratelimit-* for their limits, and the same figures on every success", async () => {
    const send = () => raw(member(0).httpPort, { path: "/v1/chat/completions", ...json(chatBody("hi")), headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.http.key}` } });
    const first = await send();
    expect(first.status).toBe(200);
    expect(first.headers).toMatchObject({ "x-ratelimit-limit-requests-minute": "2", "x-ratelimit-remaining-requests-minute": "1" });
    expect(Number(first.headers["x-ratelimit-reset-requests-minute"])).toBeGreaterThan(0);
    // Cerebras' own figures ride along under their own names.
    expect(first.headers["x-cerebras-ratelimit-limit-tokens-minute"]).toBeDefined();
    expect((await send()).status).toBe(200);
    const refused = await send();
    expect(refused.status).toBe(429);
    const body = JSON.parse(refused.text) as { error: { type: string; code: string; message: string } };
    expect(body.error).toMatchObject({ type: "rate_limit_error", code: "caller_quota_exceeded" });
    expect(body.error.message).toContain('key "http-team" has a requests_per_minute limit of 2 requests');
    expect(refused.headers).toMatchObject({ "x-ratelimit-limit-requests-minute": "2", "x-ratelimit-remaining-requests-minute": "0" });
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
    expect(Number(refused.headers["retry-after-ms"])).toBeGreaterThan(0);
    await fleet().settled();
  });

  it("refuses a request larger than a whole limit without RetryInfo, naming the max_completion_tokens that would fit", async () => {
    const r = await unary(member(0), ask("too big", { maxCompletionTokens: 4000 }), KEYS.tight.key);
    const d = decodeStatus(r.error!);
    expect(d.errorInfo!.reason).toBe("CALLER_QUOTA_EXCEEDED");
    expect(d.retryInfo).toBeUndefined();
    expect(d.message).toContain("can never fit");
    expect(d.message).toMatch(/set max_completion_tokens to at most \d+/);
  });

  it("refuses a burst beyond the organisation's remaining capacity locally, with no upstream 429", async () => {
    const members = fleet().members.length;
    const orgAsk = (i: number) => userRequest(`org ${i}`, { model: ORG_MODEL, maxCompletionTokens: 20 });
    // Each gateway learns the organisation's limits from its first response for the model.
    for (let i = 0; i < members; i++) {
      expect((await unary(member(i), orgAsk(i), KEYS.free.key)).error).toBeUndefined();
      await fleet().settled();
    }
    const before = fleet().fake.chatRequests().length;
    const results = await Promise.all(Array.from({ length: 15 }, (_, i) => unary(member(i), orgAsk(100 + i), KEYS.free.key)));
    const ok = results.filter((r) => r.error === undefined);
    expect(ok).toHaveLength(ORG_RPM - members);
    for (const r of results.filter((x) => x.error !== undefined)) {
      const d = decodeStatus(r.error!);
      expect(r.error!.code).toBe(status.RESOURCE_EXHAUSTED);
      // The organisation's quota, not the caller's own: told apart by reason.
      expect(d.errorInfo!.reason).toBe("UPSTREAM_QUOTA_EXCEEDED");
      expect(d.errorInfo!.metadata).toMatchObject({ detectedBy: "gateway", model: ORG_MODEL, limit: "requests_per_minute" });
      expect(d.retryInfo).toBeDefined();
    }
    expect(fleet().fake.chatRequests().length - before).toBe(ORG_RPM - members);
    expect(fleet().fake.rateLimited).toBe(0);
    await fleet().settled();
  });
}
