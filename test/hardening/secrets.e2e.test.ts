/**
 * Secrets at the edges: credentials in CEREBRAS_BASE_URL never reach a log line; a bare
 * caller key containing `=` (base64 padding) is one key, never split into a "name" that
 * is printed or becomes a /metrics label; an item that could be either is refused
 * without quoting it; /metrics can be protected with METRICS_KEY or moved to its own
 * listener (METRICS_HOST).
 */
import { credentials } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ChatServiceClient } from "../../gen/aigateway/v1/chat.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { startFakeUpstream } from "../../src/fake-upstream/server.js";
import { listening, spawnGateway } from "../helpers/gateway-process.js";
import { create, startHarness, userRequest, withKey } from "../helpers/harness.js";
import { raw, startHttpHarness } from "../helpers/http.js";
import { parseExposition } from "../helpers/prometheus.js";

/** A base64 key with padding: before the fix, "name" = everything before the first "=". */
const PADDED_KEY = "c2VjcmV0LWtleS1ib2R5LTAxMjM0NTY3OA==";
const KEY_BODY = PADDED_KEY.replace(/=+$/, "");

describe("CEREBRAS_BASE_URL credentials", () => {
  it("never appear in the start-up line (or anywhere else the process writes)", async () => {
    const fake = await startFakeUpstream({ apiKey: "csk-upstream-test-0000000000" });
    const port = new URL(fake.url).port;
    const p = spawnGateway({
      CEREBRAS_API_KEY: "csk-upstream-test-0000000000",
      CEREBRAS_BASE_URL: `http://proxyuser:pr0xy-Pa55word@127.0.0.1:${port}/?token=qs-s3cret`,
      GRPC_PORT: "0",
      HTTP_PORT: "0",
    });
    try {
      const line = await p.line("listening");
      expect(line["upstream"]).toBe(`http://[redacted]@127.0.0.1:${port}/?[redacted]`);
      expect(await p.stop()).toBe(0);
      const everything = JSON.stringify(p.lines()) + p.stderr();
      for (const secret of ["pr0xy-Pa55word", "proxyuser", "qs-s3cret"]) expect(everything).not.toContain(secret);
    } finally {
      p.kill();
      await fake.close();
    }
  });
});

describe("GATEWAY_API_KEYS items containing =", () => {
  it("a bare base64 key with padding is one key: it authenticates whole, is named key-1, and no part of it reaches stderr or /metrics", async () => {
    const p = spawnGateway({ GRPC_PORT: "0", HTTP_PORT: "0", FAKE_UPSTREAM_TOKEN_DELAY_MS: "0", GATEWAY_API_KEYS: PADDED_KEY });
    try {
      const at = await listening(p);
      const client = new ChatServiceClient(at.grpc, credentials.createInsecure());
      const res = await create(client, userRequest("padded"), {}, withKey(PADDED_KEY));
      client.close();
      expect(res.choices[0]!.message!.content).toBe("Echo: padded");
      // The log line may leave the process after the reply does: wait for it, do not race it.
      const call = await p.line("call");
      expect(call["key"]).toBe("key-1");
      const scraped = await raw(Number(at.http!.split(":")[1]), { method: "GET", path: "/metrics" });
      const metrics = parseExposition(scraped.text);
      expect(metrics.value("gateway_requests_total", { transport: "grpc", method: "CreateChatCompletion", code: "OK", model: "gpt-oss-120b", key: "key-1" })).toBe(1);
      expect(await p.stop()).toBe(0);
      for (const text of [scraped.text, p.stderr(), JSON.stringify(p.lines())]) {
        expect(text).not.toContain(KEY_BODY.slice(0, 12));
        expect(text).not.toContain(KEY_BODY.slice(-12));
      }
    } finally {
      p.kill();
    }
  });

  it("name=key pairs still work; an item that could be either is refused, quoting no part of it", () => {
    const ring = loadConfig({ GATEWAY_API_KEYS: `billing=${PADDED_KEY}, svc-b.v2=key-bravo-0123456789` }).keys!;
    expect(ring.authenticate(`Bearer ${PADDED_KEY}`)).toBe("billing");
    expect(ring.authenticate("Bearer key-bravo-0123456789")).toBe("svc-b.v2");
    for (const item of ["svc=short-key", "has/slash=0123456789abcdef0123", "9bad=0123456789abcdef0123"]) {
      let message = "";
      try {
        loadConfig({ GATEWAY_API_KEYS: item });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        message = (err as Error).message;
      }
      expect(message).toContain("GATEWAY_API_KEYS: entry 1:");
      for (const part of item.split("=")) expect(message).not.toContain(part);
    }
  });
});

describe("/metrics protection", () => {
  it("METRICS_KEY: a scrape needs authorization: Bearer <METRICS_KEY> (401 otherwise), on the shim and on the standalone listener", async () => {
    const key = "metrics-scraper-key-0123456789";
    const h = await startHttpHarness({ env: { METRICS_KEY: key } });
    const standalone = await startHarness({ env: { METRICS_KEY: key, HTTP_ENABLED: "false" } });
    try {
      for (const port of [h.httpPort, standalone.gateway.metricsPort!]) {
        const bare = await raw(port, { method: "GET", path: "/metrics" });
        expect(bare.status).toBe(401);
        expect(bare.headers["www-authenticate"]).toMatch(/^Bearer/);
        expect(bare.text).not.toContain("gateway_requests_total");
        expect((await raw(port, { method: "GET", path: "/metrics", headers: { authorization: "Bearer wrong-key-0123456789" } })).status).toBe(401);
        const ok = await raw(port, { method: "GET", path: "/metrics", headers: { authorization: `Bearer ${key}` } });
        expect(ok.status).toBe(200);
        expect(ok.text).toContain("gateway_requests_total");
      }
      // The probes stay open.
      expect((await raw(h.httpPort, { method: "GET", path: "/healthz" })).status).toBe(200);
    } finally {
      await h.close();
      await standalone.close();
    }
  });

  it("METRICS_HOST: /metrics moves to its own listener on that host (METRICS_PORT); the shim no longer serves it", async () => {
    const h = await startHttpHarness({ env: { METRICS_HOST: "127.0.0.1", METRICS_PORT: "0" } });
    try {
      const port = h.gateway.metricsPort!;
      expect(port).toBeGreaterThan(0);
      expect(port).not.toBe(h.httpPort);
      expect((await raw(h.httpPort, { method: "GET", path: "/metrics" })).status).toBe(404);
      const ok = await raw(port, { method: "GET", path: "/metrics" });
      expect(ok.status).toBe(200);
      expect(ok.text).toContain("gateway_requests_total");
    } finally {
      await h.close();
    }
  });

  it("METRICS_KEY must be long enough to be a secret", () => {
    expect(() => loadConfig({ METRICS_KEY: "short" })).toThrow(/METRICS_KEY: must be at least 16 characters/);
  });
});
