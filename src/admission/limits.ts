/**
 * The limits the gateway enforces, and how they are written in its configuration.
 *
 * Caller limits sit in the keys file (GATEWAY_KEYS_FILE), under `defaults.limits` for
 * every caller and under each key's `limits`:
 *
 *   requests_per_minute, requests_per_day, tokens_per_minute, tokens_per_day: positive integers
 *   usd_per_day: a positive number of US dollars (priced with the catalog's prices)
 *
 * A key's own value replaces the default; `null` removes it for that key (unlimited);
 * a limit set nowhere is unlimited. Organisation limits (ORG_LIMITS) are written the
 * same way per model, for requests and tokens per second, minute, hour or day.
 */
import { z } from "zod";

export type Resource = "requests" | "tokens" | "usd";
export type Window = "second" | "minute" | "hour" | "day";

export const WINDOW_MS: Readonly<Record<Window, number>> = { second: 1000, minute: 60_000, hour: 3_600_000, day: 86_400_000 };

/** At most `limit` of `resource` per `window`, refilled continuously (a token bucket: see bucket.ts). */
export interface Limit {
  /** As configured and reported: `tokens_per_minute`. */
  readonly name: string;
  readonly resource: Resource;
  readonly window: Window;
  readonly limit: number;
}

export const CALLER_LIMIT_NAMES = ["requests_per_minute", "requests_per_day", "tokens_per_minute", "tokens_per_day", "usd_per_day"] as const;
export type CallerLimitName = (typeof CALLER_LIMIT_NAMES)[number];

export const ORG_LIMIT_NAMES = [
  "requests_per_second", "requests_per_minute", "requests_per_hour", "requests_per_day",
  "tokens_per_second", "tokens_per_minute", "tokens_per_hour", "tokens_per_day",
] as const;

const count = z.number({ error: "must be a positive integer" }).int("must be a positive integer").positive("must be a positive integer").max(Number.MAX_SAFE_INTEGER, "is too large");
const dollars = z.number({ error: "must be a positive number of US dollars" }).positive("must be a positive number of US dollars").finite("must be a positive number of US dollars");

/** A key's (or the defaults') `limits`: every field optional, `null` = unlimited for this key. */
export const CallerLimitsSchema = z
  .object({
    requests_per_minute: count.nullable().optional(),
    requests_per_day: count.nullable().optional(),
    tokens_per_minute: count.nullable().optional(),
    tokens_per_day: count.nullable().optional(),
    usd_per_day: dollars.nullable().optional(),
  })
  .strict();
export type CallerLimitsInput = z.infer<typeof CallerLimitsSchema>;

/** One model's organisation limits in ORG_LIMITS. */
export const OrgLimitsSchema = z.object(Object.fromEntries(ORG_LIMIT_NAMES.map((n) => [n, count.optional()])) as Record<(typeof ORG_LIMIT_NAMES)[number], z.ZodOptional<typeof count>>).strict();
export type OrgLimitsInput = z.infer<typeof OrgLimitsSchema>;

/** `tokens_per_minute` → its parts; undefined for a name that is not resource_per_window. */
export function parseLimitName(name: string): { resource: Resource; window: Window } | undefined {
  const m = /^(requests|tokens|usd)_per_(second|minute|hour|day)$/.exec(name);
  return m === null ? undefined : { resource: m[1] as Resource, window: m[2] as Window };
}

/** The limits a `limits` object sets (nulls and absent fields set none), in a stable order. */
export function limitsFrom(input: Readonly<Record<string, number | null | undefined>>): Limit[] {
  const out: Limit[] = [];
  for (const [name, value] of Object.entries(input)) {
    const parts = parseLimitName(name);
    if (parts === undefined || value === null || value === undefined) continue;
    out.push({ name, ...parts, limit: value });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Every caller's limits: the defaults merged with each key's own. Keys it does not name
 * (GATEWAY_API_KEYS entries, the `anonymous` caller when auth is off) get the defaults.
 */
export class CallerLimitTable {
  private readonly defaults: readonly Limit[];
  private readonly byKey = new Map<string, readonly Limit[]>();

  constructor(defaults: CallerLimitsInput | undefined, perKey: ReadonlyMap<string, CallerLimitsInput>) {
    this.defaults = limitsFrom(defaults ?? {});
    for (const [name, own] of perKey) this.byKey.set(name, limitsFrom({ ...defaults, ...own }));
  }

  /** No caller has any limit: admission for callers is a no-op. */
  get empty(): boolean {
    if (this.defaults.length > 0) return false;
    for (const limits of this.byKey.values()) if (limits.length > 0) return false;
    return true;
  }

  limitsFor(keyName: string): readonly Limit[] {
    return this.byKey.get(keyName) ?? this.defaults;
  }
}

/** ORG_LIMITS: learn from Cerebras' headers, with configured limits per model (or `*`) where headers are missing. */
export interface OrgLimitConfig {
  /** model id (or `*` for any model) → limits used for buckets the upstream's headers have not reported. */
  readonly configured: ReadonlyMap<string, readonly Limit[]>;
}

/**
 * ORG_LIMITS: unset or `off` → undefined (no organisation limits); `learn` → learn every
 * bucket from Cerebras' headers; a JSON object of model id (or `*`) → limits (as
 * OrgLimitsSchema) → those where the headers are missing, learning the rest.
 * Problems are returned as `path: message` lines, never quoting the value.
 */
export function parseOrgLimits(value: string | undefined): { config: OrgLimitConfig | undefined; problems: string[] } {
  const v = value?.trim() ?? "";
  if (v === "" || v === "off") return { config: undefined, problems: [] };
  if (v === "learn") return { config: { configured: new Map() }, problems: [] };
  let json: unknown;
  try {
    json = JSON.parse(v);
  } catch {
    return { config: undefined, problems: ['must be off, learn, or JSON: {"gpt-oss-120b": {"requests_per_minute": 1000, "tokens_per_minute": 1000000}}'] };
  }
  const parsed = z.record(z.string().min(1), OrgLimitsSchema).safeParse(json);
  if (!parsed.success) return { config: undefined, problems: parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`) };
  const configured = new Map<string, readonly Limit[]>();
  for (const [model, limits] of Object.entries(parsed.data)) configured.set(model, limitsFrom(limits));
  return { config: { configured }, problems: [] };
}
