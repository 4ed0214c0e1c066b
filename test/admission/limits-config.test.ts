/**
 * Caller limits in the keys file and ORG_LIMITS, as the configuration reads them:
 * defaults for every caller, a key's own values over them (`null`: unlimited for that
 * key), and a malformed limit refused with one line per problem (exit 2 at start-up).
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { configError, tempFile } from "../helpers/config.js";
import { spawnGateway } from "../helpers/gateway-process.js";

const DIGEST_A = "a".repeat(64);
const DIGEST_B = "b".repeat(64);

describe("caller limits in the keys file", () => {
  it("gives every key the defaults, with its own values over them and null removing one", async () => {
    const path = await tempFile(
      "keys.yaml",
      `defaults:
  limits:
    requests_per_minute: 60
    tokens_per_day: 1000000
    usd_per_day: 12.5
keys:
  - name: billing
    sha256: ${DIGEST_A}
    limits:
      requests_per_minute: 600
      usd_per_day: null
  - name: search
    sha256: ${DIGEST_B}
`,
    );
    const { quotas } = loadConfig({ GATEWAY_KEYS_FILE: path });
    const limits = (key: string): Record<string, number> => Object.fromEntries(quotas.callers.limitsFor(key).map((l) => [l.name, l.limit]));
    expect(limits("billing")).toEqual({ requests_per_minute: 600, tokens_per_day: 1_000_000 });
    expect(limits("search")).toEqual({ requests_per_minute: 60, tokens_per_day: 1_000_000, usd_per_day: 12.5 });
    // Keys the file does not name (GATEWAY_API_KEYS, the anonymous caller) get the defaults.
    expect(limits("anonymous")).toEqual(limits("search"));
    expect(quotas.callers.empty).toBe(false);
  });

  it("reads JSON too, and a file with only defaults (the keys come from GATEWAY_API_KEYS, or auth is off)", async () => {
    const path = await tempFile("keys.json", JSON.stringify({ defaults: { limits: { tokens_per_minute: 5000 } } }));
    const withList = loadConfig({ GATEWAY_KEYS_FILE: path, GATEWAY_API_KEYS: "svc=0123456789abcdef0123" });
    expect(withList.keys?.size).toBe(1);
    expect(withList.quotas.callers.limitsFor("svc").map((l) => [l.name, l.limit])).toEqual([["tokens_per_minute", 5000]]);
    const open = loadConfig({ GATEWAY_KEYS_FILE: path });
    expect(open.keys).toBeUndefined();
    expect(open.quotas.callers.limitsFor("anonymous").map((l) => l.name)).toEqual(["tokens_per_minute"]);
  });

  it("is empty (admission is a no-op) when no limit is set anywhere", async () => {
    const path = await tempFile("keys.yaml", `keys:\n  - name: a\n    sha256: ${DIGEST_A}\n`);
    expect(loadConfig({ GATEWAY_KEYS_FILE: path }).quotas.callers.empty).toBe(true);
    expect(loadConfig({}).quotas.callers.empty).toBe(true);
  });

  it("refuses malformed limits with one line per problem, naming the file and the field", async () => {
    const path = await tempFile(
      "keys.yaml",
      `defaults:
  limits:
    token_per_minute: 100
keys:
  - name: a
    sha256: ${DIGEST_A}
    limits:
      requests_per_minute: 1.5
      usd_per_day: -3
  - name: b
    sha256: ${DIGEST_B}
    limits:
      tokens_per_day: "lots"
`,
    );
    const message = configError({ GATEWAY_KEYS_FILE: path });
    const lines = message.split("\n").slice(1);
    expect(lines).toHaveLength(4);
    expect(message).toContain(`GATEWAY_KEYS_FILE: ${path}: defaults.limits: Unrecognized key: "token_per_minute"`);
    expect(message).toContain("keys.0.limits.requests_per_minute: must be a positive integer");
    expect(message).toContain("keys.0.limits.usd_per_day: must be a positive number of US dollars");
    expect(message).toContain("keys.1.limits.tokens_per_day: must be a positive integer");
  });

  it("refuses a key name used twice (limits and metrics are per name)", async () => {
    const path = await tempFile("keys.yaml", `keys:\n  - name: a\n    sha256: ${DIGEST_A}\n  - name: a\n    sha256: ${DIGEST_B}\n`);
    expect(configError({ GATEWAY_KEYS_FILE: path })).toContain('the key name "a" is used twice');
  });

  it("makes the gateway process exit 2 with the configuration message", async () => {
    const path = await tempFile("keys.yaml", `keys:\n  - name: a\n    sha256: ${DIGEST_A}\n    limits: { tokens_per_minute: 0 }\n`);
    const p = spawnGateway({ GRPC_PORT: "0", GATEWAY_KEYS_FILE: path });
    expect(await p.exited).toBe(2);
    expect(p.stderr()).toContain("keys.0.limits.tokens_per_minute: must be a positive integer");
  });
});

describe("ORG_LIMITS and the quota variables", () => {
  it("is off by default; learn; or JSON limits per model (or *) for accounts whose headers are missing", () => {
    expect(loadConfig({}).quotas.org).toBeUndefined();
    expect(loadConfig({ ORG_LIMITS: "off" }).quotas.org).toBeUndefined();
    expect(loadConfig({ ORG_LIMITS: "learn" }).quotas.org?.configured.size).toBe(0);
    const org = loadConfig({ ORG_LIMITS: JSON.stringify({ "gpt-oss-120b": { requests_per_minute: 1000, tokens_per_minute: 1_000_000 }, "*": { requests_per_day: 14_400 } }) }).quotas.org!;
    expect(org.configured.get("gpt-oss-120b")!.map((l) => [l.name, l.resource, l.window, l.limit])).toEqual([
      ["requests_per_minute", "requests", "minute", 1000],
      ["tokens_per_minute", "tokens", "minute", 1_000_000],
    ]);
    expect(org.configured.get("*")!.map((l) => l.name)).toEqual(["requests_per_day"]);
  });

  it("lists every bad quota variable, never echoing REDIS_URL", () => {
    const message = configError({
      ORG_LIMITS: JSON.stringify({ "gpt-oss-120b": { usd_per_day: 5 } }),
      QUOTA_FAIL_MODE: "maybe",
      REDIS_URL: "http://user:secret@127.0.0.1:6379",
      QUOTA_REDIS_PREFIX: "{bad}",
      QUOTA_LEASE_CALLS: "-1",
    });
    expect(message).toMatch(/QUOTA_FAIL_MODE: must be open or closed/);
    expect(message).toMatch(/REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(message).toMatch(/QUOTA_REDIS_PREFIX: must be/);
    expect(message).toMatch(/QUOTA_LEASE_CALLS: must be at least 0/);
    expect(message).not.toContain("secret");
    const org = configError({ ORG_LIMITS: JSON.stringify({ "gpt-oss-120b": { usd_per_day: 5 } }) });
    expect(org).toContain('ORG_LIMITS: gpt-oss-120b: Unrecognized key: "usd_per_day"');
    expect(configError({ ORG_LIMITS: "lots" })).toContain("ORG_LIMITS: must be off, learn, or JSON");
  });

  it("REDIS_URL is one node; with REDIS_CLUSTER=true, one or more seed nodes of a Redis Cluster", () => {
    expect(loadConfig({ REDIS_URL: "redis://127.0.0.1:6379" }).quotas.redis).toEqual({ kind: "node", url: "redis://127.0.0.1:6379" });
    expect(loadConfig({ REDIS_URL: "rediss://u:p@a.example:6380", REDIS_CLUSTER: "true" }).quotas.redis).toEqual({ kind: "cluster", seeds: ["rediss://u:p@a.example:6380"] });
    expect(loadConfig({ REDIS_URL: "redis://a:7000, redis://b:7001", REDIS_CLUSTER: "true" }).quotas.redis).toEqual({ kind: "cluster", seeds: ["redis://a:7000", "redis://b:7001"] });
  });

  it("refuses seed lists without REDIS_CLUSTER, a cluster URL with a database or mixed credentials, and REDIS_CLUSTER alone, never echoing a URL", () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ REDIS_URL: "redis://:s3cret@a:7000,redis://:s3cret@b:7001" }, /REDIS_URL: several URLs are seed nodes of a Redis Cluster: set REDIS_CLUSTER=true/],
      [{ REDIS_URL: "redis://:s3cret@a:7000/2", REDIS_CLUSTER: "true" }, /REDIS_URL: a Redis Cluster has only database 0/],
      [{ REDIS_URL: "redis://:s3cret@a:7000,rediss://:s3cret@b:7001", REDIS_CLUSTER: "true" }, /REDIS_URL: a Redis Cluster's seed URLs must share their scheme and credentials/],
      [{ REDIS_URL: "redis://:s3cret@a:7000,nonsense", REDIS_CLUSTER: "true" }, /REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL \(or, with REDIS_CLUSTER=true, several, comma-separated\)/],
      [{ REDIS_CLUSTER: "true" }, /REDIS_CLUSTER: is true, but REDIS_URL \(the cluster's seed nodes\) is not set/],
      [{ REDIS_URL: "redis://:s3cret@a:7000", REDIS_CLUSTER: "yes please" }, /REDIS_CLUSTER: must be true or false/],
    ];
    for (const [env, expected] of cases) {
      const message = configError(env);
      expect(message).toMatch(expected);
      expect(message).not.toContain("s3cret");
    }
  });

  it("has defaults: memory store, fail open, 250 ms Redis timeout, {aigw} keys, 16384 completion tokens, no leases, 1 s queue", () => {
    expect(loadConfig({}).quotas).toMatchObject({
      redis: undefined,
      failMode: "open",
      redisTimeoutMs: 250,
      redisPrefix: "aigw",
      defaultCompletionTokens: 16_384,
      leaseCalls: 0,
      leaseIdleMs: 1000,
      orgQueueMaxWaitMs: 1000,
    });
  });
});
