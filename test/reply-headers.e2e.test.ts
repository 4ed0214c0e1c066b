/**
 * The headers a call adds for its caller (its rate-limit standing, Cerebras' own figures,
 * which key and model answered, the request id) are the same on both transports: gRPC
 * initial metadata and HTTP response headers carry the same names with the same values,
 * for an admitted call and for a refusal, through one gateway on the default path. And an
 * upstream rate-limit header that gRPC metadata could not carry (a byte outside printable
 * ASCII, a name gRPC does not take) is dropped on both rather than failing the reply.
 */
import { status, type Metadata } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IncomingHttpHeaders } from "node:http";
import { userRequest } from "./helpers/harness.js";
import { chatBody, json, raw, type RawResponse } from "./helpers/http.js";
import { inProcessFleet, unary, withKey, type Fleet, type TestKey, type UnaryResult } from "./admission/fleet.js";

const MODEL = "gpt-oss-120b";
/** Every caller limit (the USD budget too), far from running out. */
const LIMITS = { requests_per_minute: 100, requests_per_day: 10_000, tokens_per_minute: 1_000_000, tokens_per_day: 10_000_000, usd_per_day: 100 };
/** A pair of keys per case, one for each transport: each key's first call starts from full buckets, so both get the same figures. */
const KEYS = {
  grpc: { name: "grpc-team", key: "grpc-team-key-0123456789", limits: LIMITS },
  http: { name: "http-team", key: "http-team-key-0123456789", limits: LIMITS },
  grpcOne: { name: "grpc-one", key: "grpc-one-key-0123456789", limits: { ...LIMITS, requests_per_minute: 1 } },
  httpOne: { name: "http-one", key: "http-one-key-0123456789", limits: { ...LIMITS, requests_per_minute: 1 } },
  free: { name: "free-team", key: "free-team-key-0123456789" },
} satisfies Record<string, TestKey>;

/** The headers a call adds for its caller (x-cost-usd is HTTP's own, on a success). */
const CALLER_HEADER = /^x-(ratelimit|cerebras-ratelimit|aigw)-|^x-request-id$/;

let fleet: Fleet;
beforeAll(async () => {
  fleet = await inProcessFleet({ keys: Object.values(KEYS) });
});
afterAll(async () => {
  await fleet.close();
});

/** A unary call with this key and request id: its reply or error, and its initial metadata. */
function grpcCall(key: string, requestId: string): Promise<UnaryResult> {
  const md = withKey(key);
  md.set("x-request-id", requestId);
  const request = userRequest("same headers", { model: MODEL, maxCompletionTokens: 20 });
  const started = performance.now();
  return new Promise((resolve) => {
    let headers: Metadata | undefined;
    const call = fleet.members[0]!.chat.createChatCompletion(request, md, { deadline: Date.now() + 10_000 }, (err, reply) => resolve({ reply: reply ?? undefined, error: err ?? undefined, headers, ms: performance.now() - started }));
    call.on("metadata", (x: Metadata) => (headers = x));
  });
}

function httpCall(key: string, requestId: string): Promise<RawResponse> {
  return raw(fleet.members[0]!.httpPort, {
    path: "/v1/chat/completions",
    ...json(chatBody("same headers", { max_completion_tokens: 20 })),
    headers: { "content-type": "application/json", authorization: `Bearer ${key}`, "x-request-id": requestId },
  });
}

/** The caller headers of gRPC metadata, each with its one value. */
function fromMetadata(md: Metadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(md?.getMap() ?? {})) {
    if (!CALLER_HEADER.test(name)) continue;
    expect(md!.get(name), name).toHaveLength(1);
    out[name] = String(value);
  }
  return out;
}

function fromHttp(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!CALLER_HEADER.test(name)) continue;
    expect(typeof value, name).toBe("string");
    out[name] = value as string;
  }
  return out;
}

const ratelimitNames = (h: Record<string, string>): string[] => Object.keys(h).filter((n) => n.startsWith("x-ratelimit-")).sort();
const EVERY_LIMIT = ["requests-minute", "requests-day", "tokens-minute", "tokens-day", "usd-day"].flatMap((s) => ["limit", "remaining", "reset"].map((k) => `x-ratelimit-${k}-${s}`)).sort();

describe("the caller's headers on both transports", () => {
  it("an admitted call gets the same names and values in gRPC metadata and HTTP headers", async () => {
    const g = await grpcCall(KEYS.grpc.key, "same-id-1");
    const h = await httpCall(KEYS.http.key, "same-id-1");
    expect(g.error).toBeUndefined();
    expect(h.status).toBe(200);
    const grpc = fromMetadata(g.headers);
    const http = fromHttp(h.headers);
    expect(ratelimitNames(grpc)).toEqual(EVERY_LIMIT);
    expect(grpc["x-request-id"]).toBe("same-id-1");
    expect(grpc["x-cerebras-ratelimit-limit-requests-day"]).toBeDefined();
    expect(grpc["x-aigw-model"]).toBe(MODEL);
    expect(http).toEqual(grpc);
    await fleet.settled();
  });

  it("a refusal gets the same names in gRPC metadata and HTTP headers, and the same figures", async () => {
    const started = performance.now();
    expect((await grpcCall(KEYS.grpcOne.key, "first-g")).error).toBeUndefined();
    expect((await httpCall(KEYS.httpOne.key, "first-h")).status).toBe(200);
    await fleet.settled();
    const g = await grpcCall(KEYS.grpcOne.key, "refused-1");
    const h = await httpCall(KEYS.httpOne.key, "refused-1");
    const elapsedS = (performance.now() - started) / 1000;
    expect(g.error?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(h.status).toBe(429);
    const grpc = fromMetadata(g.headers);
    const http = fromHttp(h.headers);
    // Refused before the upstream: the caller's standing and the request id, nothing else.
    expect(Object.keys(grpc).sort()).toEqual([...EVERY_LIMIT, "x-request-id"].sort());
    expect(Object.keys(http).sort()).toEqual(Object.keys(grpc).sort());
    expect(grpc["x-ratelimit-remaining-requests-minute"]).toBe("0");
    for (const name of Object.keys(grpc)) {
      const [, kind, suffix] = /^x-ratelimit-(limit|remaining|reset)-(.+)$/.exec(name) ?? [];
      if (kind === undefined || kind === "limit") expect(http[name], name).toBe(grpc[name]);
      else {
        // The two keys' buckets are read a moment apart and refill meanwhile: by at most
        // what `elapsedS` refills (remaining), or the seconds that passed (reset).
        const perS = Number(grpc[`x-ratelimit-limit-${suffix}`]) / (suffix!.endsWith("-day") ? 86_400 : 60);
        const bound = kind === "reset" ? elapsedS + 0.01 : perS * elapsedS + (suffix === "usd-day" ? 1e-8 : 1);
        expect(Math.abs(Number(http[name]) - Number(grpc[name])), name).toBeLessThanOrEqual(bound);
      }
    }
  });
});

describe("an upstream rate-limit header gRPC metadata cannot carry", () => {
  const fault = {
    kind: "http-error" as const,
    status: 400,
    body: { message: "bad", type: "invalid_request_error", param: "messages", code: "wrong_api_format" },
    headers: {
      "x-ratelimit-remaining-tokens-minute": "999000",
      // A Latin-1 byte (HTTP takes it, gRPC metadata does not) and a name gRPC does not take.
      "x-ratelimit-reset-odd": Buffer.from([0x31, 0xe9]).toString("latin1"),
      "x-ratelimit-limit-we!rd": "7",
    },
  };

  it("is dropped from the gRPC reply, which still arrives with the other headers", async () => {
    fleet.fake.failNext(fault);
    const g = await unary(fleet.members[0]!, userRequest("odd headers", { model: MODEL }), KEYS.free.key, 5000);
    // Before: the reply was never sent (the metadata failed grpc-js' checks) and the call ran to its deadline.
    expect(g.error?.code).toBe(status.INVALID_ARGUMENT);
    const grpc = fromMetadata(g.headers);
    expect(grpc["x-cerebras-ratelimit-remaining-tokens-minute"]).toBe("999000");
    expect(grpc["x-cerebras-ratelimit-reset-odd"]).toBeUndefined();
    expect(grpc["x-cerebras-ratelimit-limit-we!rd"]).toBeUndefined();
  });

  it("is dropped from the HTTP reply too", async () => {
    fleet.fake.failNext(fault);
    const h = await raw(fleet.members[0]!.httpPort, { path: "/v1/chat/completions", ...json(chatBody("odd headers")), headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.free.key}` } });
    expect(h.status).toBe(400);
    expect(h.headers["x-cerebras-ratelimit-remaining-tokens-minute"]).toBe("999000");
    expect(h.headers["x-cerebras-ratelimit-reset-odd"]).toBeUndefined();
    expect(h.headers["x-cerebras-ratelimit-limit-we!rd"]).toBeUndefined();
  });
});
