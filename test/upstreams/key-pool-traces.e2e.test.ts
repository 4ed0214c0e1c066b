/**
 * Traces of a call walked over the pool: each attempt is a client span naming the
 * upstream key and the model it asked for, and the call's span names the key of the
 * attempt that answered, as exported over OTLP to a receiver on 127.0.0.1.
 */
import { credentials, Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChatServiceClient } from "../../gen/aigateway/v1/chat.js";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { startGatewayProcess, type StartedGateway } from "../helpers/gateway-process.js";
import { create, userRequest } from "../helpers/harness.js";
import { startOtlpReceiver, type OtlpReceiver } from "../helpers/otlp-receiver.js";
import { keyOf, startFakes, type Fakes } from "./pool-harness.js";

const MODEL = "gpt-oss-120b";
const FALLBACK = "zai-glm-4.7";

let receiver: OtlpReceiver;
let fakes: Fakes;
let gw: StartedGateway;
let chat: ChatServiceClient;

beforeAll(async () => {
  receiver = await startOtlpReceiver("http");
  fakes = await startFakes([{ name: "a" }, { name: "b" }]);
  gw = await startGatewayProcess({
    CEREBRAS_KEYS_FILE: fakes.keysFile,
    MODEL_FALLBACKS: `${MODEL}>${FALLBACK}`,
    UPSTREAM_MAX_RETRIES: "0",
    GRPC_PORT: "0",
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_BSP_SCHEDULE_DELAY: "20",
  });
  chat = new ChatServiceClient(gw.at.grpc, credentials.createInsecure());
});

afterAll(async () => {
  chat?.close();
  await gw?.process.stop();
  await fakes?.close();
  await receiver?.close();
});

describe("a call walked over two keys and a fallback", () => {
  it("has one attempt span per key and model tried, and the call span names the key that answered", async () => {
    // The first call of equally full keys goes to a: a's quota, then b's, then the fallback on a.
    fakes.fakes.a!.failNext(cerebrasErrors.tokenQuotaPerMinute(30));
    fakes.fakes.b!.failNext(cerebrasErrors.tokenQuotaPerMinute(30));
    const md = new Metadata();
    md.set("x-request-id", "walk-1");
    const completion = await create(chat, userRequest("hi", { model: MODEL, maxCompletionTokens: 50 }), {}, md);
    expect(completion.model).toBe(FALLBACK);
    const spans = await receiver.spans((all) => all.some((s) => s.attributes["gateway.request_id"] === "walk-1" && s.kind === 2));
    const call = spans.find((s) => s.attributes["gateway.request_id"] === "walk-1" && s.kind === 2)!;
    const attempts = spans.filter((s) => s.traceId === call.traceId && s.kind === 3).sort((x, y) => Number(x.attributes["gateway.attempt"]) - Number(y.attributes["gateway.attempt"]));
    expect(attempts.map((s) => [s.attributes["gateway.attempt"], s.attributes["gateway.upstream_key"], s.attributes["gen_ai.request.model"], s.attributes["error.type"] ?? "ok"])).toEqual([
      [1, "a", MODEL, "UPSTREAM_QUOTA_EXCEEDED"],
      [2, "b", MODEL, "UPSTREAM_QUOTA_EXCEEDED"],
      [3, "a", FALLBACK, "ok"],
    ]);
    expect(attempts.map((s) => s.name)).toEqual([`chat ${MODEL}`, `chat ${MODEL}`, `chat ${FALLBACK}`]);
    expect(call.attributes).toMatchObject({ "gateway.upstream_key": "a", "gateway.attempts": 3, "gen_ai.request.model": MODEL, "gen_ai.response.model": FALLBACK });
    for (const k of ["a", "b"]) expect(Buffer.concat(receiver.payloads).includes(keyOf(k))).toBe(false);
  });
});
