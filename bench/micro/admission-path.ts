/**
 * Micro-benchmark of the admission path alone (issue 14): what QuotaAdmission costs a
 * call in this process, admit to settle, with the in-memory store behind its breaker,
 * against NO_ADMISSION, with the four caller limits bench:admission gives its key:
 *
 *   npm run build && node dist/bench/micro/admission-path.js [--repeats N] [--calls C] [--concurrency K]
 *
 * Each round admits K calls, awaits their reservations, settles them with a usage (as a
 * unary success does) and lets the turn end (the settlement batch runs in setImmediate),
 * C calls in all; ns per call, median of N rounds. The difference between the variants
 * is the CPU the admission adds to a call before and after the upstream, without the
 * reply headers' hand-over to HTTP/2 (bench/micro/response-headers.ts measures that).
 * Bounded: N × C calls per variant.
 */
import { parseArgs } from "node:util";
import { ChatCompletionRequest, Role } from "../../gen/aigateway/v1/chat.js";
import { GuardedStore } from "../../src/admission/fail-mode.js";
import { NO_OBSERVER } from "../../src/admission/events.js";
import { CallerLimitTable } from "../../src/admission/limits.js";
import { MemoryStore } from "../../src/admission/memory-store.js";
import { QuotaAdmission } from "../../src/admission/quota-admission.js";
import { NO_ADMISSION, type Admission } from "../../src/core/admission.js";
import { CallScope } from "../../src/core/call-scope.js";
import { createLogger } from "../../src/log.js";
import { bounded } from "../lib/stats.js";

const { values: args } = parseArgs({ options: { repeats: { type: "string" }, calls: { type: "string" }, concurrency: { type: "string" } } });
const REPEATS = bounded(args.repeats, 9, 1, 51);
const CALLS = bounded(args.calls, 64_000, 64, 1_000_000);
const K = bounded(args.concurrency, 64, 1, 1024);

const LIMITS = { requests_per_minute: 1e9, requests_per_day: 1e12, tokens_per_minute: 1e12, tokens_per_day: 1e14 };
const KEY = "bench";
const REQUEST = ChatCompletionRequest.fromPartial({ model: "gpt-oss-120b", messages: [{ role: Role.ROLE_USER, contentKind: { $case: "content", value: "Say hi" } }] });
const USAGE = { promptTokens: 10, completionTokens: 20, totalTokens: 30 };

function memoryAdmission(): Admission {
  return new QuotaAdmission({
    callers: new CallerLimitTable(undefined, new Map([[KEY, LIMITS]])),
    org: undefined,
    store: new GuardedStore(new MemoryStore(), "closed", createLogger("silent"), NO_OBSERVER),
    failMode: "closed",
    pricing: () => undefined,
    defaultCompletionTokens: 1024,
    orgQueueMaxWaitMs: 0,
    observer: NO_OBSERVER,
  });
}

async function round(admission: Admission): Promise<number> {
  const started = process.hrtime.bigint();
  for (let done = 0; done < CALLS; done += K) {
    const scopes: CallScope[] = [];
    const pending = [];
    for (let i = 0; i < K; i++) {
      const scope = new CallScope(Infinity, 60_000, "req");
      scope.stats.keyName = KEY;
      scopes.push(scope);
      pending.push(admission.admit(REQUEST, undefined, scope));
    }
    const reservations = await Promise.all(pending);
    for (const r of reservations) if (r.limited) r.settle({ usage: USAGE as never, error: undefined, processed: true, upstreamRateLimits: undefined });
    for (const s of scopes) s.dispose();
    await new Promise((resolve) => setImmediate(resolve));
  }
  await admission.idle();
  return Number(process.hrtime.bigint() - started) / CALLS;
}

const variants: [string, Admission][] = [["off (NO_ADMISSION)", NO_ADMISSION], ["memory store, 4 caller limits", memoryAdmission()]];
const results = new Map<string, number[]>(variants.map(([n]) => [n, []]));
for (let r = 0; r < REPEATS; r++) for (const [name, a] of r % 2 === 0 ? variants : [...variants].reverse()) results.get(name)!.push(await round(a));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const off = median(results.get(variants[0]![0])!);
process.stdout.write(`| admission path, ns per call (median of ${REPEATS} rounds of ${CALLS}, ${K} at a time) | ns | − off |\n| --- | --: | --: |\n`);
for (const [name] of variants) {
  const m = median(results.get(name)!);
  process.stdout.write(`| ${name} | ${Math.round(m)} | ${name === variants[0]![0] ? "" : `+${Math.round(m - off)}`} |\n`);
}
