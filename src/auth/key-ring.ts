/**
 * The gateway's own API keys. Callers present `authorization: Bearer <key>`; the ring
 * holds only each key's SHA-256 and a name (for logs and metrics), so plaintext keys need
 * not sit on disk. A presented key is hashed and compared with every entry in constant
 * time, so timing says nothing about which key, or how much of one, matched.
 */
import { hash, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { readConfigFile } from "../config-file.js";
import { CallerLimitsSchema, type CallerLimitsInput } from "../admission/limits.js";
import { Code, GatewayError, Reason } from "../core/errors.js";

export interface KeyEntry {
  readonly name: string;
  /** SHA-256 of the key, 32 bytes. */
  readonly sha256: Buffer;
  /** The key's own limits (keys file only), over the file's `defaults`. */
  readonly limits?: CallerLimitsInput;
}

export class KeyRing {
  constructor(private readonly entries: readonly KeyEntry[]) {}

  get size(): number {
    return this.entries.length;
  }

  /**
   * The key's name for a valid `authorization` value; throws UNAUTHENTICATED otherwise.
   * The value is never logged or echoed.
   */
  authenticate(authorization: string | undefined): string {
    const key = bearer(authorization);
    if (key === undefined) throw unauthenticated(Reason.API_KEY_MISSING, "missing gateway API key: send authorization: Bearer <key>");
    const digest = sha256(key);
    let match: string | undefined;
    for (const entry of this.entries) {
      // No early exit: every entry is compared.
      if (timingSafeEqual(digest, entry.sha256) && match === undefined) match = entry.name;
    }
    if (match === undefined) throw unauthenticated(Reason.API_KEY_INVALID, "invalid gateway API key");
    return match;
  }

  /** Whether `key` is one of the ring's (used to refuse the upstream key as a gateway key). */
  contains(key: string): boolean {
    const digest = sha256(key);
    return this.entries.some((e) => timingSafeEqual(digest, e.sha256));
  }
}

function bearer(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return m?.[1];
}

function unauthenticated(reason: Reason, message: string): GatewayError {
  return new GatewayError({ code: Code.UNAUTHENTICATED, reason, message, headers: { "www-authenticate": 'Bearer realm="cerebras-gateway"' } });
}

/** One-shot: no Hash object per call (every authenticated call hashes its key). */
export function sha256(text: string): Buffer {
  return hash("sha256", text, "buffer");
}

/** Shortest key accepted. */
export const MIN_KEY_LENGTH = 16;
/** What a key's name looks like in `name=key` (it becomes a log field and a metrics label). */
export const KEY_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

/**
 * GATEWAY_API_KEYS: comma-separated `name=key` pairs, or bare keys (named key-1, key-2…).
 * Returns the entries or a list of problems (never quoting any part of an item: what looks
 * like a name may be part of a key).
 *
 * A key may itself contain `=` (base64 padding), so an item is read by one rule:
 * - no `=`, or nothing but `=` after the first one (`abc==`): a bare key;
 * - a name (a letter, then up to 63 of letters, digits, `_`, `.`, `-`) before the first
 *   `=` and at least 16 characters after it: `name=key`;
 * - anything else is ambiguous and refused (a bare key may hold `=` only as trailing
 *   padding; name it to use any other).
 */
export function keysFromList(value: string): { entries: KeyEntry[]; problems: string[] } {
  const { items, problems } = parseKeyList(value);
  return { entries: items.map((k) => ({ name: k.name, sha256: sha256(k.key) })), problems };
}

/**
 * The items of a comma-separated key list by the rule above (also CEREBRAS_API_KEYS', in
 * src/upstreams/config.ts), each named (`key-N` when bare), or a problem naming its entry,
 * in the list's order. `check` may refuse a key for a reason of its caller's.
 */
export function parseKeyList(value: string, check?: (key: string) => string | undefined): { items: { name: string; key: string }[]; problems: string[] } {
  const items: { name: string; key: string }[] = [];
  const problems: string[] = [];
  value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .forEach((item, i) => {
      const entry = `entry ${i + 1}`;
      const parsed = parseItem(item);
      if (parsed === undefined) {
        problems.push(
          `${entry}: cannot tell a name=key pair from a bare key containing "=" (write name=key with a name of letters, digits, _ . - and a key of at least ${MIN_KEY_LENGTH} characters; a bare key may contain "=" only as trailing padding)`,
        );
      } else if (parsed.key.length < MIN_KEY_LENGTH) {
        problems.push(`${entry}: keys must be at least ${MIN_KEY_LENGTH} characters`);
      } else {
        const refused = check?.(parsed.key);
        if (refused !== undefined) problems.push(`${entry}: ${refused}`);
        else items.push({ name: parsed.name ?? `key-${i + 1}`, key: parsed.key });
      }
    });
  return { items, problems };
}

/** One item by the rule above; undefined when it is ambiguous. (Also the rule of CEREBRAS_API_KEYS, src/upstreams/config.ts.) */
export function parseItem(item: string): { name: string | undefined; key: string } | undefined {
  const eq = item.indexOf("=");
  if (eq === -1 || /^=*$/.test(item.slice(eq))) return { name: undefined, key: item };
  const name = item.slice(0, eq).trim();
  const key = item.slice(eq + 1).trim();
  if (KEY_NAME.test(name) && key.length >= MIN_KEY_LENGTH) return { name, key };
  return undefined;
}

const FileKey = z.object({
  name: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, "must be 64 hex digits"),
  limits: CallerLimitsSchema.optional(),
});
const KeysObject = z
  .object({ defaults: z.object({ limits: CallerLimitsSchema.optional() }).strict().optional(), keys: z.array(FileKey).optional() })
  .refine((f) => f.keys !== undefined || f.defaults !== undefined, { message: "needs keys (or at least defaults)", path: ["keys"] });
const KeysList = z.array(FileKey);
/** The object form or the bare list, picked by shape so the errors are the chosen form's (a union reports only "Invalid input"). */
const parseKeysFile = (data: unknown) => (Array.isArray(data) ? KeysList.safeParse(data) : KeysObject.safeParse(data));

export interface KeysFromFile {
  entries: KeyEntry[];
  problems: string[];
  /** `defaults.limits`: every caller's limits unless its own entry says otherwise. */
  defaults?: CallerLimitsInput;
}

/**
 * GATEWAY_KEYS_FILE: JSON or YAML, `{defaults?: {limits}, keys: [{name, sha256, limits?}]}`
 * or the bare list. Make an entry with: printf %s "$KEY" | sha256sum
 */
export function keysFromFile(path: string): KeysFromFile {
  const file = readConfigFile(path);
  if (file.problem !== undefined) return { entries: [], problems: [file.problem] };
  const data = file.data;
  const parsed = parseKeysFile(data);
  if (!parsed.success) return { entries: [], problems: parsed.error.issues.map((i) => `${path}: ${i.path.join(".") || "(root)"}: ${i.message}`) };
  const list = Array.isArray(parsed.data) ? parsed.data : (parsed.data.keys ?? []);
  const defaults = Array.isArray(parsed.data) ? undefined : parsed.data.defaults?.limits;
  const entries = list.map((k): KeyEntry => ({ name: k.name, sha256: Buffer.from(k.sha256, "hex"), ...(k.limits !== undefined ? { limits: k.limits } : {}) }));
  return { entries, problems: [], ...(defaults !== undefined ? { defaults } : {}) };
}
