/**
 * Model ids are caller input that ends up in logs, error details and metric labels, so
 * an absurd one is refused at the door (over 256 characters: INVALID_ARGUMENT naming the
 * field, on both transports, before the catalog or the upstream), and a label is never
 * longer than that whatever reaches the metrics.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallRecord } from "../../src/core/call-log.js";
import { ModelLabels, UNLISTED_MODEL } from "../../src/metrics/labels.js";
import { create, decodeStatus, rejection, userRequest } from "../helpers/harness.js";
import { chatBody, json, raw, startHttpHarness, type HttpHarness } from "../helpers/http.js";
import { scrape } from "../helpers/prometheus.js";

const LONG = "m".repeat(257);

let h: HttpHarness;
beforeAll(async () => {
  // Unlisted models allowed: before the fix, a long id went all the way upstream.
  h = await startHttpHarness({ env: { ALLOW_UNLISTED_MODELS: "true" } });
});
afterAll(async () => {
  await h.close();
});

describe("a model id over 256 characters", () => {
  it("gRPC: INVALID_ARGUMENT on `model` (CreateChatCompletion) and `id` (GetModel), nothing sent upstream", async () => {
    const before = h.fake.chatRequests().length;
    const err = (await rejection(create(h.chat, userRequest("x", { model: LONG })))) as ServiceError;
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(decodeStatus(err).badRequest!.fieldViolations).toEqual([{ field: "model", description: "at most 256 characters (got 257)", reason: "" }]);
    const getModel = await new Promise<ServiceError | null>((resolve) => h.models.getModel({ id: LONG }, (e) => resolve(e)));
    expect(getModel?.code).toBe(status.INVALID_ARGUMENT);
    expect(decodeStatus(getModel!).badRequest!.fieldViolations[0]!.field).toBe("id");
    expect(h.fake.chatRequests().length).toBe(before);
    // 256 is still a model id (unlisted, so it goes upstream, which does not know it).
    const ok = (await rejection(create(h.chat, userRequest("x", { model: "m".repeat(256) })))) as ServiceError;
    expect(ok.code).toBe(status.NOT_FOUND);
  });

  it("HTTP: 400 with param `model`, and GET /v1/models/{id} 400 with param `id`", async () => {
    const before = h.fake.chatRequests().length;
    const res = await raw(h.httpPort, { path: "/v1/chat/completions", ...json(chatBody("x", { model: LONG })) });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text)).toMatchObject({ error: { param: "model", code: "invalid_request", type: "invalid_request_error" } });
    const got = await raw(h.httpPort, { method: "GET", path: `/v1/models/${LONG}` });
    expect(got.status).toBe(400);
    expect(JSON.parse(got.text)).toMatchObject({ error: { param: "id" } });
    expect(h.fake.chatRequests().length).toBe(before);
    const m = (await scrape(h.httpPort)).metrics;
    for (const s of m.series("gateway_requests_total")) expect(s["model"]!.length).toBeLessThanOrEqual(256);
  });
});

describe("the model label", () => {
  const record = (model: string): CallRecord => ({
    transport: "grpc",
    method: "CreateChatCompletion",
    requestId: "r",
    code: "OK",
    durationMs: 1,
    startedAt: 0,
    stats: { model, upstreamStatus: 200 },
    error: undefined,
  });

  it("is never longer than 256 characters, even for an id the upstream accepted", () => {
    const labels = new ModelLabels(() => false);
    expect(labels.of(record("x".repeat(257)))).toBe(UNLISTED_MODEL);
    expect(labels.of(record("x".repeat(1_000_000)))).toBe(UNLISTED_MODEL);
    expect(labels.of(record("dedicated-endpoint-1"))).toBe("dedicated-endpoint-1");
  });
});
