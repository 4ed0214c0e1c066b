/**
 * The upstream keys (Cerebras API keys) the gateway may send calls with, read from three
 * places that add up:
 *
 * - `CEREBRAS_API_KEY`: one key, named `default`, on `CEREBRAS_BASE_URL` (as before the pool);
 * - `CEREBRAS_API_KEYS`: `name=csk-…,name2=csk-…`, read by GATEWAY_API_KEYS' rule
 *   (src/auth/key-ring.ts: a bare key is named `key-1`, `key-2`…), on `CEREBRAS_BASE_URL`;
 * - `CEREBRAS_KEYS_FILE`: JSON or YAML, for the rest: per key its name, the key itself
 *   (inline `api_key`, or from `api_key_env` / `api_key_file`, which suits Kubernetes
 *   Secrets mounted as files or variables), an optional `base_url` (a dedicated
 *   endpoint), `weight` and `models`.
 *
 * Problems come back as lines naming the variable and the entry, never quoting a key.
 * Only names are ever logged or shown (metrics, traces, response headers).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readConfigFile } from "../config-file.js";
import { z } from "zod";
import { KEY_NAME, parseKeyList } from "../auth/key-ring.js";

/** One upstream key as the pool uses it. */
export interface UpstreamKey {
  /** Shown in logs, metrics, traces and headers (never the key). */
  readonly name: string;
  /** The secret, sent as `authorization: Bearer <apiKey>`; never logged. */
  readonly apiKey: string;
  /** e.g. https://api.cerebras.ai, or a dedicated endpoint's. */
  readonly baseUrl: string;
  /** Share of the calls among keys with the same headroom (default 1). */
  readonly weight: number;
  /** Models it may serve; undefined: any. */
  readonly models: ReadonlySet<string> | undefined;
}

/** The name CEREBRAS_API_KEY's key goes by. */
export const DEFAULT_KEY_NAME = "default";

/** Most keys in a pool (each name is a metrics label value). */
export const MAX_KEYS = 64;
const MAX_MODELS_PER_KEY = 256;
const MAX_MODEL_ID = 256;

export interface KeySources {
  readonly CEREBRAS_API_KEY?: string | undefined;
  readonly CEREBRAS_API_KEYS?: string | undefined;
  readonly CEREBRAS_KEYS_FILE?: string | undefined;
  readonly CEREBRAS_BASE_URL: string;
}

export interface ParsedKeys {
  readonly keys: UpstreamKey[];
  readonly problems: string[];
}

/** Printable ASCII without spaces: what an HTTP header value may carry safely. */
const KEY_CHARS = /^[\x21-\x7e]+$/;

/**
 * Every upstream key the sources configure, in order (CEREBRAS_API_KEY first, then the
 * list, then the file). `env` is where `api_key_env` names are looked up.
 */
export function upstreamKeysFrom(sources: KeySources, env: Readonly<Record<string, string | undefined>>): ParsedKeys {
  const keys: UpstreamKey[] = [];
  const problems: string[] = [];
  const base = { baseUrl: sources.CEREBRAS_BASE_URL, weight: 1, models: undefined };
  if (sources.CEREBRAS_API_KEY !== undefined) {
    if (!KEY_CHARS.test(sources.CEREBRAS_API_KEY)) problems.push("CEREBRAS_API_KEY: contains spaces or control characters");
    else keys.push({ name: DEFAULT_KEY_NAME, apiKey: sources.CEREBRAS_API_KEY, ...base });
  }
  if (sources.CEREBRAS_API_KEYS !== undefined) {
    const list = keysFromList(sources.CEREBRAS_API_KEYS);
    problems.push(...list.problems.map((p) => `CEREBRAS_API_KEYS: ${p}`));
    for (const k of list.keys) keys.push({ ...base, ...k });
  }
  if (sources.CEREBRAS_KEYS_FILE !== undefined) {
    const file = keysFromFile(sources.CEREBRAS_KEYS_FILE, sources.CEREBRAS_BASE_URL, env);
    problems.push(...file.problems.map((p) => `CEREBRAS_KEYS_FILE: ${p}`));
    keys.push(...file.keys);
  }
  problems.push(...uniqueness(keys));
  if (keys.length > MAX_KEYS) problems.push(`CEREBRAS_API_KEYS / CEREBRAS_KEYS_FILE: at most ${MAX_KEYS} upstream keys (got ${keys.length})`);
  return { keys, problems };
}

/** CEREBRAS_API_KEYS: the GATEWAY_API_KEYS rule (name=key, or a bare key named key-N). */
function keysFromList(value: string): { keys: { name: string; apiKey: string }[]; problems: string[] } {
  const { items, problems } = parseKeyList(value, (key) => (KEY_CHARS.test(key) ? undefined : "the key contains spaces or control characters"));
  return { keys: items.map((k) => ({ name: k.name, apiKey: k.key })), problems };
}

const FileKey = z
  .object({
    name: z.string().regex(KEY_NAME, "must be a letter, then up to 63 letters, digits, _ . -"),
    api_key: z.string().min(1, "must not be empty").optional(),
    api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable's name").optional(),
    api_key_file: z.string().min(1, "must be a path").optional(),
    base_url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
    weight: z.number({ error: "must be a number" }).positive("must be positive").max(1000, "must be at most 1000").optional(),
    models: z
      .array(z.string().min(1, "must not be empty").max(MAX_MODEL_ID, `must be at most ${MAX_MODEL_ID} characters`), { error: "must be a list of model ids" })
      .min(1, "must list at least one model (leave it out for any model)")
      .max(MAX_MODELS_PER_KEY, `at most ${MAX_MODELS_PER_KEY} models`)
      .optional(),
  })
  .strict()
  .refine((k) => [k.api_key, k.api_key_env, k.api_key_file].filter((v) => v !== undefined).length === 1, {
    message: "needs exactly one of api_key, api_key_env, api_key_file",
  });
/** The file's shape; each entry is then checked on its own, so every bad entry is reported at once. */
const KeysObject = z.object({ keys: z.array(z.unknown(), { error: "must be a list" }) }).strict();

/**
 * CEREBRAS_KEYS_FILE: `{keys: [{name, api_key | api_key_env | api_key_file, base_url?, weight?, models?}]}`
 * or the bare list. `.json` is JSON, anything else YAML.
 */
export function keysFromFile(path: string, defaultBaseUrl: string, env: Readonly<Record<string, string | undefined>>): ParsedKeys {
  const file = readConfigFile(path);
  if (file.problem !== undefined) return { keys: [], problems: [file.problem] };
  const data = file.data;
  let entries: readonly unknown[];
  let prefix = "";
  if (Array.isArray(data)) {
    entries = data;
  } else {
    const shape = KeysObject.safeParse(data);
    if (!shape.success) return { keys: [], problems: shape.error.issues.map((i) => `${path}: ${i.path.join(".") || "(root)"}: ${i.message}`) };
    entries = shape.data.keys;
    prefix = "keys.";
  }
  const keys: UpstreamKey[] = [];
  const problems: string[] = [];
  entries.forEach((entry, i) => {
    const parsed = FileKey.safeParse(entry);
    // zod's messages name paths and expectations, never the values.
    if (!parsed.success) {
      for (const issue of parsed.error.issues) problems.push(`${path}: ${[`${prefix}${i}`, ...issue.path].join(".")}: ${issue.message}`);
      return;
    }
    const k = parsed.data;
    const at = `${path}: ${prefix}${i} (${k.name})`;
    const secret = secretOf(k, env);
    if (typeof secret !== "string") {
      problems.push(`${at}: ${secret.problem}`);
      return;
    }
    if (!KEY_CHARS.test(secret)) {
      problems.push(`${at}: the key contains spaces or control characters`);
      return;
    }
    keys.push({ name: k.name, apiKey: secret, baseUrl: k.base_url ?? defaultBaseUrl, weight: k.weight ?? 1, models: k.models === undefined ? undefined : new Set(k.models) });
  });
  return { keys, problems };
}

function secretOf(k: z.infer<typeof FileKey>, env: Readonly<Record<string, string | undefined>>): string | { problem: string } {
  if (k.api_key !== undefined) return k.api_key;
  if (k.api_key_env !== undefined) {
    const value = env[k.api_key_env];
    return value === undefined || value.trim() === "" ? { problem: `api_key_env: ${k.api_key_env} is not set` } : value.trim();
  }
  let text: string;
  try {
    text = readFileSync(k.api_key_file!, "utf8");
  } catch (err) {
    return { problem: `api_key_file: cannot read ${k.api_key_file!} (${(err as NodeJS.ErrnoException).code ?? "error"})` };
  }
  // A Secret mounted as a file often ends with a newline.
  const value = text.trim();
  return value === "" ? { problem: `api_key_file: ${k.api_key_file!} is empty` } : value;
}

/** Names are labels and headers, so each is one key; one key under two names would be counted twice. */
function uniqueness(keys: readonly UpstreamKey[]): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  const digests = new Map<string, string>();
  for (const k of keys) {
    if (names.has(k.name)) problems.push(`upstream key names must be unique: "${k.name}" is used twice`);
    names.add(k.name);
    const digest = createHash("sha256").update(k.apiKey).digest("hex");
    const first = digests.get(digest);
    if (first !== undefined && first !== k.name) problems.push(`upstream keys "${first}" and "${k.name}" are the same key`);
    else digests.set(digest, k.name);
  }
  return problems;
}

/** Longest fallback chain (the requested model included). */
export const MAX_CHAIN = 8;

/**
 * MODEL_FALLBACKS: chains `gpt-oss-120b>zai-glm-4.7>llama3.1-8b` (comma-separated for
 * several; each model in a chain falls back to the ones after it), or JSON
 * `{"gpt-oss-120b": ["zai-glm-4.7", "llama3.1-8b"]}`. Unset or empty: no fallbacks.
 * Returns model → its fallbacks, in order.
 */
export function parseFallbacks(value: string | undefined): { table: Map<string, readonly string[]>; problems: string[] } {
  const table = new Map<string, readonly string[]>();
  const problems: string[] = [];
  const v = value?.trim() ?? "";
  if (v === "") return { table, problems };
  const add = (model: string, chain: readonly string[], where: string): void => {
    if (table.has(model)) problems.push(`${where}: ${model} has two fallback chains`);
    else if (chain.length > 0) table.set(model, chain);
  };
  if (v.startsWith("{")) {
    let json: unknown;
    try {
      json = JSON.parse(v);
    } catch {
      return { table, problems: ['must be chains (gpt-oss-120b>zai-glm-4.7>llama3.1-8b, comma-separated) or JSON: {"gpt-oss-120b": ["zai-glm-4.7"]}'] };
    }
    const parsed = z.record(z.string().min(1).max(MAX_MODEL_ID), z.array(z.string().min(1).max(MAX_MODEL_ID)).min(1).max(MAX_CHAIN - 1)).safeParse(json);
    if (!parsed.success) return { table, problems: parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`) };
    for (const [model, chain] of Object.entries(parsed.data)) {
      const problem = chainProblem([model, ...chain]);
      if (problem !== undefined) problems.push(`${model}: ${problem}`);
      else add(model, chain, model);
    }
    return { table, problems };
  }
  v.split(",").forEach((raw, i) => {
    const chain = raw.split(">").map((m) => m.trim());
    const where = `chain ${i + 1}`;
    if (chain.length < 2 || chain.some((m) => m === "")) {
      problems.push(`${where}: must be model>fallback[>fallback…]`);
      return;
    }
    const problem = chainProblem(chain);
    if (problem !== undefined) {
      problems.push(`${where}: ${problem}`);
      return;
    }
    for (let j = 0; j < chain.length - 1; j++) add(chain[j]!, chain.slice(j + 1), where);
  });
  return { table, problems };
}

function chainProblem(chain: readonly string[]): string | undefined {
  if (chain.length > MAX_CHAIN) return `at most ${MAX_CHAIN} models in a chain`;
  if (chain.some((m) => m.length > MAX_MODEL_ID)) return `model ids are at most ${MAX_MODEL_ID} characters`;
  if (new Set(chain).size !== chain.length) return "a model appears twice in the chain";
  return undefined;
}

/** What the key pool and the attempt loop take from the configuration. */
export interface UpstreamsConfig {
  /** Empty: no key at all, so the embedded fake upstream answers (one key, `default`). */
  readonly keys: readonly UpstreamKey[];
  /** model → its fallbacks in order (MODEL_FALLBACKS); empty: none. */
  readonly fallbacks: ReadonlyMap<string, readonly string[]>;
  /** UPSTREAM_QUOTA_MAX_WAIT_MS: longest the gateway waits, in all, on quota resets when no key can serve. */
  readonly quotaMaxWaitMs: number;
  /** UPSTREAM_KEY_PROBE_S: how often a refused (revoked) key is probed to bring it back. */
  readonly probeIntervalMs: number;
}
