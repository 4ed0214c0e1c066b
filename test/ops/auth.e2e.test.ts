/**
 * Gateway auth on both transports: callers present `authorization: Bearer <key>`; keys
 * come from GATEWAY_API_KEYS or a file of SHA-256 digests; probes, health and reflection
 * stay open; the key's name shows in the log line; no key ever reaches a log or the upstream.
 */
import { createHash } from "node:crypto";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../../gen/grpc/health/v1/health.js";
import * as reflection from "../../gen/grpc/reflection/v1/reflection.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { cerebrasErrors } from "../../src/fake-upstream/faults.js";
import { create, decodeStatus, UPSTREAM_KEY, userRequest, withKey } from "../helpers/harness.js";
import { raw, startHttpHarness, type HttpHarness } from "../helpers/http.js";

const KEY_A = "gw-key-alpha-0123456789";
const KEY_B = "gw-key-bravo-9876543210";

/** Collects the gateway's log lines. */
function logCapture(): { sink: Writable; lines: () => string[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { sink, lines: () => chunks.join("").split("\n").filter(Boolean) };
}

let h: HttpHarness;
const logs = logCapture();
beforeAll(async () => {
  h = await startHttpHarness({ env: { GATEWAY_API_KEYS: `svc-a=${KEY_A}, ${KEY_B}` }, logSink: logs.sink });
});
afterAll(async () => {
  await h.close();
});

describe("gRPC", () => {
  it("accepts a configured key and names it in the log line", async () => {
    const res = await create(h.chat, userRequest("with key"), {}, withKey(KEY_A));
    expect(res.choices[0]!.message!.content).toBe("Echo: with key");
    const line = logs.lines().map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l["msg"] === "call" && l["transport"] === "grpc");
    expect(line!["key"]).toBe("svc-a");
    await create(h.chat, userRequest("second key"), {}, withKey(KEY_B));
  });

  it("refuses a missing key (API_KEY_MISSING) and a wrong one (API_KEY_INVALID) with UNAUTHENTICATED, before any upstream call", async () => {
    const before = h.fake.chatRequests().length;
    for (const [md, reason] of [
      [new Metadata(), "API_KEY_MISSING"],
      [withKey("not-a-gateway-key-xxxxx"), "API_KEY_INVALID"],
      [withKey(UPSTREAM_KEY), "API_KEY_INVALID"], // the upstream key is never a caller's key
    ] as const) {
      const err = (await create(h.chat, userRequest("x"), {}, md).catch((e: unknown) => e)) as ServiceError;
      expect(err.code).toBe(status.UNAUTHENTICATED);
      expect(decodeStatus(err).errorInfo!.reason).toBe(reason);
    }
    expect(h.fake.chatRequests().length).toBe(before);
  });

  it("guards ModelService too, but not health or reflection", async () => {
    const err = await new Promise<ServiceError | null>((resolve) => h.models.listModels({}, (e) => resolve(e)));
    expect(err?.code).toBe(status.UNAUTHENTICATED);
    const health = new HealthClient(h.address, credentials.createInsecure());
    const s = await new Promise<number>((resolve, reject) => health.check({ service: "" }, (e, r) => (e ? reject(e) : resolve(r!.status))));
    expect(s).toBe(HealthCheckResponse_ServingStatus.SERVING);
    health.close();
    const refl = new reflection.ServerReflectionClient(h.address, credentials.createInsecure());
    const call = refl.serverReflectionInfo();
    const answer = new Promise<reflection.ServerReflectionResponse>((resolve) => call.once("data", resolve));
    call.write({ host: "", messageRequest: { $case: "listServices", value: "" } });
    expect((await answer).messageResponse?.$case).toBe("listServicesResponse");
    call.end();
    refl.close();
  });
});

describe("HTTP shim", () => {
  it("works for the openai SDK with a key, and answers 401 with WWW-Authenticate without one", async () => {
    const client = new OpenAI({ apiKey: KEY_A, baseURL: `${h.baseUrl}/v1`, maxRetries: 0 });
    const res = await client.chat.completions.create({ model: "gpt-oss-120b", messages: [{ role: "user", content: "hi" }] });
    expect(res.choices[0]!.message.content).toBe("Echo: hi");
    const err = await h.openai.chat.completions.create({ model: "gpt-oss-120b", messages: [{ role: "user", content: "hi" }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((err as InstanceType<typeof OpenAI.AuthenticationError>).status).toBe(401);
    const bare = await raw(h.httpPort, { method: "GET", path: "/v1/models" });
    expect(bare.status).toBe(401);
    expect(bare.headers["www-authenticate"]).toMatch(/^Bearer/);
    expect(JSON.parse(bare.text)).toMatchObject({ error: { code: "api_key_missing" } });
  });

  it("leaves the probes open", async () => {
    expect((await raw(h.httpPort, { method: "GET", path: "/healthz" })).status).toBe(200);
    expect((await raw(h.httpPort, { method: "GET", path: "/readyz" })).status).toBe(200);
  });
});

describe("secrets never leak", () => {
  it("no gateway key, upstream key or Authorization value appears in any log line, and the upstream only sees its own key", async () => {
    h.fake.failNext(cerebrasErrors.wrongApiKey());
    await create(h.chat, userRequest("fails upstream"), {}, withKey(KEY_A)).catch(() => {});
    await raw(h.httpPort, { method: "POST", path: "/v1/chat/completions", headers: { authorization: `Bearer ${KEY_B}`, "content-type": "application/json" }, body: "{bad json" });
    const all = logs.lines().join("\n");
    expect(all.length).toBeGreaterThan(0);
    for (const secret of [KEY_A, KEY_B, UPSTREAM_KEY]) expect(all).not.toContain(secret);
    expect(all).not.toMatch(/Bearer [\w-]{8,}/); // no Authorization value, whoever's key
    for (const r of h.fake.requests) expect(r.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
  });
});

describe("key sources and start-up rules", () => {
  const sha = (key: string): string => createHash("sha256").update(key).digest("hex");

  it("reads names and SHA-256 digests from a JSON or YAML keys file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "gw-keys-"));
    const json = join(dir, "keys.json");
    const yaml = join(dir, "keys.yaml");
    await writeFile(json, JSON.stringify({ keys: [{ name: "svc-json", sha256: sha(KEY_A) }] }));
    await writeFile(yaml, `keys:\n  - name: svc-yaml\n    sha256: ${sha(KEY_B)}\n`);
    expect(loadConfig({ GATEWAY_KEYS_FILE: json }).keys!.authenticate(`Bearer ${KEY_A}`)).toBe("svc-json");
    expect(loadConfig({ GATEWAY_KEYS_FILE: yaml }).keys!.authenticate(`bearer ${KEY_B}`)).toBe("svc-yaml");
    expect(() => loadConfig({ GATEWAY_KEYS_FILE: join(dir, "missing.yaml") })).toThrow(/GATEWAY_KEYS_FILE: cannot read/);
    await writeFile(yaml, "keys:\n  - name: x\n    sha256: nothex\n");
    expect(() => loadConfig({ GATEWAY_KEYS_FILE: yaml })).toThrow(/sha256: must be 64 hex digits/);
  });

  it("refuses to start in production without keys unless GATEWAY_AUTH=none says so", () => {
    const prod = { NODE_ENV: "production", CEREBRAS_API_KEY: "csk-upstream-key-000000" };
    expect(() => loadConfig(prod)).toThrow(/GATEWAY_API_KEYS or GATEWAY_KEYS_FILE: at least one key is required when NODE_ENV=production/);
    expect(loadConfig({ ...prod, GATEWAY_AUTH: "none" }).keys).toBeUndefined();
    expect(loadConfig({ ...prod, GATEWAY_API_KEYS: KEY_A }).keys!.size).toBe(1);
    expect(loadConfig({}).keys).toBeUndefined(); // open outside production (with a start-up warning)
  });

  it("refuses the upstream key as a gateway key, short keys, and keys plus GATEWAY_AUTH=none; never quoting a key", () => {
    const attempts = [
      { CEREBRAS_API_KEY: "csk-upstream-key-000000", GATEWAY_API_KEYS: "csk-upstream-key-000000" },
      { GATEWAY_API_KEYS: "svc=short" },
      { GATEWAY_API_KEYS: KEY_A, GATEWAY_AUTH: "none" },
    ];
    for (const env of attempts) {
      let message = "";
      try {
        loadConfig(env);
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        message = (e as Error).message;
      }
      expect(message).toMatch(/GATEWAY_/);
      expect(message).not.toContain("csk-upstream-key-000000");
      expect(message).not.toContain(KEY_A);
    }
  });
});
