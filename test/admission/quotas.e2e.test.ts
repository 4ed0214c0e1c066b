/**
 * Caller quotas and organisation limits through a real gateway on the default path:
 * one process, the memory store (no Redis). The shared behaviours (quota-scenarios.ts)
 * run here and on three processes sharing Redis (quotas-fleet.e2e.test.ts); the cases
 * below need the in-process fake's fault injection: how calls that end badly are charged.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChatCompletionChunk } from "../../gen/aigateway/v1/chat.js";
import { estimatePromptTokens } from "../../src/admission/estimator.js";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { userRequest } from "../helpers/harness.js";
import { scrape } from "../helpers/prometheus.js";
import { header, inProcessFleet, unary, withKey, type Fleet } from "./fleet.js";
import { FAKE_ORG_LIMITS, KEYS, quotaBehaviours } from "./quota-scenarios.js";

/**
 * 3000 tokens a day refill one token every 29 s: readings within that long of the key's
 * first use are exact (the refill has not added a whole token yet).
 */
const CHARGED = { name: "charged-team", key: "charged-team-key-0123456789", limits: { tokens_per_day: 3000 } };

let fleet: Fleet;
beforeAll(async () => {
  fleet = await inProcessFleet({ keys: [...Object.values(KEYS), CHARGED], env: { ORG_LIMITS: "learn", ORG_QUEUE_MAX_WAIT_MS: "0" }, fake: { rateLimits: FAKE_ORG_LIMITS } });
});
afterAll(async () => {
  await fleet.close();
});

describe("quotas on one gateway with the memory store", () => {
  quotaBehaviours(() => fleet);

  it("counts admissions and refusals by key and limit, reserved vs charged tokens, and the store's round trips and state", async () => {
    await fleet.settled();
    const { metrics } = await scrape(fleet.members[0]!.httpPort);
    expect(metrics.value("gateway_quota_admissions_total", { key: "rpm-team" })).toBe(5);
    expect(metrics.value("gateway_quota_refusals_total", { key: "rpm-team", limit: "requests_per_minute" })).toBe(10);
    expect(metrics.value("gateway_quota_refusals_total", { key: "free-team", limit: "org:requests_per_minute" })).toBeGreaterThan(0);
    expect(metrics.value("gateway_quota_refusals_total", { key: "usd-team", limit: "usd_per_day" })).toBe(2);
    const reserved = metrics.value("gateway_quota_reserved_tokens_total", { key: "token-team" })!;
    const charged = metrics.value("gateway_quota_charged_tokens_total", { key: "token-team" })!;
    expect(charged).toBeGreaterThan(0);
    expect(reserved).toBeGreaterThan(charged);
    expect(metrics.histogram("gateway_limit_store_duration_seconds", { op: "reserve", result: "ok" }).count).toBeGreaterThan(0);
    expect(metrics.histogram("gateway_limit_store_duration_seconds", { op: "adjust", result: "ok" }).count).toBeGreaterThan(0);
    expect(metrics.value("gateway_limit_store_up")).toBe(1);
    // Labels stay bounded: configured key names and limit names only.
    const keys = new Set(metrics.samples("gateway_quota_refusals_total").map((x) => x.labels["key"]));
    for (const k of keys) expect(Object.values(KEYS).map((x) => x.name)).toContain(k);
  });
});

describe("what a call that ends badly is charged", () => {
  const request = (text: string) => userRequest(text, { model: "gpt-oss-120b", maxCompletionTokens: 200 });
  const m = () => fleet.members[0]!;

  /**
   * CHARGED's token level, read with a probe call (max_completion_tokens 0): `before` the
   * probe (its remaining plus its own reservation) and `after` it (less its usage).
   */
  async function probe(): Promise<{ before: number; after: number }> {
    await fleet.settled();
    const p = userRequest("probe", { model: "gpt-oss-120b", maxCompletionTokens: 0 });
    const r = await unary(m(), p, CHARGED.key);
    expect(r.error).toBeUndefined();
    const before = Number(header(r.headers, "x-ratelimit-remaining-tokens-day")) + estimatePromptTokens(p);
    await fleet.settled();
    return { before, after: before - r.reply!.usage!.promptTokens - r.reply!.usage!.completionTokens };
  }

  /** Tokens charged for what `act` does, between two probes. */
  async function chargedFor(act: () => Promise<void>): Promise<number> {
    const start = await probe();
    await act();
    return start.after - (await probe()).before;
  }

  it("an upstream error status charges no tokens (the upstream never processed the request)", async () => {
    const charged = await chargedFor(async () => {
      fleet.fake.failNext(cerebrasErrors.serverError(500));
      const r = await unary(m(), request("fails"), CHARGED.key);
      expect(r.error!.code).toBe(status.UNAVAILABLE);
    });
    expect(charged).toBe(0);
  });

  it("a caller's deadline while the upstream has the request charges the estimated prompt", async () => {
    const charged = await chargedFor(async () => {
      fleet.fake.failNext({ kind: "hang" });
      const r = await unary(m(), request("hangs"), CHARGED.key, 300);
      expect(r.error!.code).toBe(status.DEADLINE_EXCEEDED);
      // The caller's own deadline fired; wait for the gateway's, which aborts the upstream request and settles.
      expect(await fleet.fake.chatRequests().at(-1)!.settled).toBe("aborted");
    });
    expect(charged).toBe(estimatePromptTokens(request("hangs")));
  });

  it("a stream cancelled mid-way charges the estimated prompt plus what was streamed", async () => {
    let streamed = "";
    const charged = await chargedFor(async () => {
      const gate = fleet.fake.holdNext(3);
      const call = m().chat.streamChatCompletion(request("stream then cancel"), withKey(CHARGED.key));
      const chunks: ChatCompletionChunk[] = [];
      call.on("data", (c: ChatCompletionChunk) => chunks.push(c));
      call.on("error", () => {});
      await gate.reached;
      // Let the three chunks reach the caller, then leave (bounded by the test's timeout).
      await new Promise<void>((resolve) => {
        const check = (): void => (chunks.length >= 3 ? resolve() : void setTimeout(check, 5));
        check();
      });
      call.cancel();
      // The gateway has aborted the upstream request before the fake may send more.
      expect(await fleet.fake.chatRequests().at(-1)!.settled).toBe("aborted");
      gate.release();
      streamed = chunks.map((c) => (c.choices[0]?.delta?.reasoning ?? "") + (c.choices[0]?.delta?.content ?? "")).join("");
    });
    const prompt = estimatePromptTokens(request("stream then cancel"));
    expect(streamed.length).toBeGreaterThan(0);
    expect(charged).toBeGreaterThan(prompt);
    // The role chunk and two one-word deltas reached the caller before it left.
    expect(charged).toBe(prompt + 2);
  });

  it("a stream that completes is charged its usage, and its first message carries the caller's standing", async () => {
    let usage = 0;
    const events: string[] = [];
    const charged = await chargedFor(async () => {
      const call = m().chat.streamChatCompletion(request("stream to the end"), withKey(CHARGED.key));
      call.on("metadata", (md) => events.push(`metadata:${String(md.get("x-ratelimit-limit-tokens-day")[0])}`));
      call.on("data", (c: ChatCompletionChunk) => {
        events.push("data");
        if (c.usage) usage = c.usage.promptTokens + c.usage.completionTokens;
      });
      await new Promise<void>((resolve, reject) => {
        call.on("end", resolve);
        call.on("error", reject);
      });
    });
    expect(events[0]).toBe("metadata:3000");
    expect(usage).toBeGreaterThan(0);
    expect(charged).toBe(usage);
  });
});
