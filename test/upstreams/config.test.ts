/**
 * Upstream keys and fallbacks as the configuration reads them: CEREBRAS_API_KEY alone (as
 * before the pool), CEREBRAS_API_KEYS, CEREBRAS_KEYS_FILE (JSON and YAML, keys inline,
 * from a variable or from a file), MODEL_FALLBACKS; and every malformed form refused
 * with a line naming the variable and the entry, never the key.
 */
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { configError, tempFile } from "../helpers/config.js";
import { spawnGateway } from "../helpers/gateway-process.js";

const KEY_A = "csk-aaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_B = "csk-bbbbbbbbbbbbbbbbbbbbbbbb";
const KEY_C = "csk-cccccccccccccccccccccccc";

describe("upstream keys", () => {
  it("a single CEREBRAS_API_KEY is one key named default on CEREBRAS_BASE_URL, as before", () => {
    const c = loadConfig({ CEREBRAS_API_KEY: "csk-x", CEREBRAS_BASE_URL: "http://127.0.0.1:9" });
    expect(c.upstreams.keys).toEqual([{ name: "default", apiKey: "csk-x", baseUrl: "http://127.0.0.1:9", weight: 1, models: undefined }]);
    expect(c.cerebrasApiKey).toBe("csk-x");
  });

  it("no key anywhere: the pool is empty (fake-upstream mode), with the 429-wait and probe defaults", () => {
    expect(loadConfig({}).upstreams).toEqual({ keys: [], fallbacks: new Map(), quotaMaxWaitMs: 1000, probeIntervalMs: 60_000 });
  });

  it("CEREBRAS_API_KEYS: name=key pairs (bare keys named key-N), added after CEREBRAS_API_KEY", () => {
    const c = loadConfig({ CEREBRAS_API_KEY: KEY_C, CEREBRAS_API_KEYS: ` org-a=${KEY_A} , ${KEY_B}` });
    expect(c.upstreams.keys.map((k) => [k.name, k.apiKey])).toEqual([
      ["default", KEY_C],
      ["org-a", KEY_A],
      ["key-2", KEY_B],
    ]);
  });

  it("CEREBRAS_KEYS_FILE (YAML): inline, from a variable and from a mounted file; base URL, weight and models", async () => {
    const secret = await tempFile("dedicated", `${KEY_C}\n`);
    const path = await tempFile(
      "keys.yaml",
      [
        "keys:",
        `  - name: org-a`,
        `    api_key: ${KEY_A}`,
        "  - name: org-b",
        "    api_key_env: AIGW_TEST_KEY_B",
        "    weight: 3",
        "  - name: dedicated",
        `    api_key_file: ${secret}`,
        "    base_url: https://acme.cerebras.example",
        "    models: [gpt-oss-120b]",
      ].join("\n"),
    );
    const c = loadConfig({ CEREBRAS_KEYS_FILE: path, AIGW_TEST_KEY_B: KEY_B });
    expect(c.upstreams.keys).toEqual([
      { name: "org-a", apiKey: KEY_A, baseUrl: "https://api.cerebras.ai", weight: 1, models: undefined },
      { name: "org-b", apiKey: KEY_B, baseUrl: "https://api.cerebras.ai", weight: 3, models: undefined },
      { name: "dedicated", apiKey: KEY_C, baseUrl: "https://acme.cerebras.example", weight: 1, models: new Set(["gpt-oss-120b"]) },
    ]);
  });

  it("CEREBRAS_KEYS_FILE (JSON), the bare-list form", async () => {
    const path = await tempFile("keys.json", JSON.stringify([{ name: "a", api_key: KEY_A }]));
    expect(loadConfig({ CEREBRAS_KEYS_FILE: path }).upstreams.keys.map((k) => k.name)).toEqual(["a"]);
  });

  it("refuses malformed keys with one line each, naming the entry and never the key", async () => {
    const path = await tempFile(
      "keys.yaml",
      [
        "keys:",
        `  - name: "9bad"`,
        `    api_key: ${KEY_A}`,
        "  - name: two-sources",
        `    api_key: ${KEY_B}`,
        "    api_key_env: AIGW_TEST_KEY_B",
        "  - name: unset-env",
        "    api_key_env: AIGW_TEST_NOT_SET",
        "  - name: missing-file",
        "    api_key_file: /nonexistent/aigw-key",
        "  - name: bad-weight",
        `    api_key: ${KEY_C}-w`,
        "    weight: -1",
        "  - name: typo",
        `    api_key: ${KEY_C}-t`,
        "    modles: [x]",
      ].join("\n"),
    );
    const message = configError({ CEREBRAS_KEYS_FILE: path, AIGW_TEST_KEY_B: KEY_B, CEREBRAS_API_KEYS: `short=abc,${KEY_A}=x==y` });
    for (const expected of [
      "keys.0.name: must be a letter",
      "keys.1: needs exactly one of api_key, api_key_env, api_key_file",
      "keys.2 (unset-env): api_key_env: AIGW_TEST_NOT_SET is not set",
      "keys.3 (missing-file): api_key_file: cannot read /nonexistent/aigw-key (ENOENT)",
      "keys.4.weight: must be positive",
      "keys.5: Unrecognized key",
      "CEREBRAS_API_KEYS: entry 1: cannot tell a name=key pair",
      "CEREBRAS_API_KEYS: entry 2: cannot tell a name=key pair",
    ]) {
      expect(message).toContain(expected);
    }
    for (const secret of [KEY_A, KEY_B, KEY_C, "abc"]) expect(message).not.toContain(secret);
  });

  it("refuses a name or a key used twice, and an upstream key that is also a caller key", () => {
    expect(configError({ CEREBRAS_API_KEYS: `a=${KEY_A},a=${KEY_B}` })).toContain('"a" is used twice');
    expect(configError({ CEREBRAS_API_KEYS: `a=${KEY_A},b=${KEY_A}` })).toContain('upstream keys "a" and "b" are the same key');
    const m = configError({ CEREBRAS_API_KEYS: `a=${KEY_A}`, GATEWAY_API_KEYS: `caller=${KEY_A}` });
    expect(m).toContain('must not contain the upstream key "a"');
    expect(m).not.toContain(KEY_A);
  });

  it("production needs a key from any of the three sources", async () => {
    expect(configError({ NODE_ENV: "production", GATEWAY_AUTH: "none" })).toMatch(/CEREBRAS_API_KEY: is required when NODE_ENV=production \(or CEREBRAS_API_KEYS/);
    expect(loadConfig({ NODE_ENV: "production", GATEWAY_AUTH: "none", CEREBRAS_API_KEYS: `a=${KEY_A}` }).production).toBe(true);
  });

  it("a malformed key list stops the process with exit code 2 and a message that quotes no key", async () => {
    const p = spawnGateway({ CEREBRAS_API_KEYS: `ok=${KEY_A},${KEY_B}=oops=x`, GRPC_PORT: "0" });
    try {
      expect(await p.exited).toBe(2);
      expect(p.stderr()).toContain("CEREBRAS_API_KEYS: entry 2");
      for (const secret of [KEY_A, KEY_B]) expect(p.stderr()).not.toContain(secret);
    } finally {
      p.kill();
    }
  });
});

describe("MODEL_FALLBACKS", () => {
  it("a chain: each model falls back to the ones after it", () => {
    const c = loadConfig({ MODEL_FALLBACKS: "gpt-oss-120b>zai-glm-4.7>llama3.1-8b, qwen-3-32b>llama3.1-8b" });
    expect(c.upstreams.fallbacks).toEqual(
      new Map([
        ["gpt-oss-120b", ["zai-glm-4.7", "llama3.1-8b"]],
        ["zai-glm-4.7", ["llama3.1-8b"]],
        ["qwen-3-32b", ["llama3.1-8b"]],
      ]),
    );
  });

  it("JSON: each model's list, as written", () => {
    const c = loadConfig({ MODEL_FALLBACKS: JSON.stringify({ "gpt-oss-120b": ["llama3.1-8b"], "zai-glm-4.7": ["gpt-oss-120b"] }) });
    expect(c.upstreams.fallbacks.get("gpt-oss-120b")).toEqual(["llama3.1-8b"]);
    expect(c.upstreams.fallbacks.get("zai-glm-4.7")).toEqual(["gpt-oss-120b"]);
  });

  it("refuses a model falling back to itself, two chains for one model, and broken forms", () => {
    expect(configError({ MODEL_FALLBACKS: "a>b>a" })).toContain("MODEL_FALLBACKS: chain 1: a model appears twice in the chain");
    expect(configError({ MODEL_FALLBACKS: "a>b,a>c" })).toContain("MODEL_FALLBACKS: chain 2: a has two fallback chains");
    expect(configError({ MODEL_FALLBACKS: "a>" })).toContain("MODEL_FALLBACKS: chain 1: must be model>fallback");
    expect(configError({ MODEL_FALLBACKS: "{not json" })).toContain("MODEL_FALLBACKS: must be chains");
    expect(configError({ MODEL_FALLBACKS: JSON.stringify({ a: [] }) })).toContain("MODEL_FALLBACKS: a:");
  });

  it("UPSTREAM_QUOTA_MAX_WAIT_MS and UPSTREAM_KEY_PROBE_S are bounded", () => {
    expect(loadConfig({ UPSTREAM_QUOTA_MAX_WAIT_MS: "0", UPSTREAM_KEY_PROBE_S: "0.5" }).upstreams).toMatchObject({ quotaMaxWaitMs: 0, probeIntervalMs: 500 });
    expect(configError({ UPSTREAM_QUOTA_MAX_WAIT_MS: "120000" })).toContain("UPSTREAM_QUOTA_MAX_WAIT_MS: must be at most 60000");
    expect(configError({ UPSTREAM_KEY_PROBE_S: "0" })).toContain("UPSTREAM_KEY_PROBE_S: must be at least 0.05");
  });
});
