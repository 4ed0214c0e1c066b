/**
 * The attempt loop: one call, walked over its candidates (upstreams.ts) until one
 * answers, within the call's budget and only while nothing has reached the caller.
 *
 * A round tries the candidates in the router's order: a failure another key or model
 * may not have (failover.ts) moves the call to the next one at once; a fallback model is
 * tried only once every candidate of the models before it failed with capacity or a
 * quota (or is cooling down from one). When a round is over with nothing left to move
 * to, another round may follow after a wait: backoff for transient failures, a quota's
 * reset when it is near (UPSTREAM_QUOTA_MAX_WAIT_MS), at most UPSTREAM_MAX_RETRIES
 * rounds more. Then the caller hears the best failure (failover.ts finalError).
 *
 * With organisation limits, the admission holds the capacity of one candidate's key
 * (Reservation.upstream); a move releases it and takes the next key's (Reservation.move),
 * and a key whose buckets have no room is passed over without a request.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { Reservation } from "./admission.js";
import { abortReason } from "./call-scope.js";
import { Code, GatewayError } from "./errors.js";
import { finalError, isCapacityOrQuota, isFinal, isQuota, isTransient, quotaResetAt, quotaWait, retryDelay, type Failure, type RetryPolicy } from "./failover.js";
import { setResponseHeader, type CallContext } from "./provider.js";
import { ATTEMPTS_HEADER, MODEL_HEADER, UPSTREAM_KEY_HEADER, type UpstreamCandidate, type UpstreamRoute, type UpstreamRouter } from "./upstreams.js";

/** Most upstream requests one call makes, whatever the pool's size and the retries. */
export const MAX_ATTEMPTS = 16;

export interface WalkOptions {
  readonly router: UpstreamRouter;
  readonly policy: RetryPolicy;
  /** Told about each failed attempt that another follows (a log line, a metric); never on a good call's path. */
  readonly onRetry?: ((event: RetryEvent) => void) | undefined;
  /** Epoch ms (tests inject one). */
  readonly clock?: () => number;
  readonly random?: () => number;
}

export interface RetryEvent {
  readonly requestId: string;
  /** The attempt that failed (1 for the first). */
  readonly attempt: number;
  /** The wait before the next attempt; 0 when the call moves to another candidate at once. */
  readonly delayMs: number;
  readonly error: GatewayError;
  readonly upstreamKey: string;
  readonly model: string;
  /** Where the next attempt goes when it moves at once (undefined after a wait: the next round decides). */
  readonly next: UpstreamCandidate | undefined;
}

/** One attempt on a candidate: `request` carries the candidate's model; `attempt` is 1 for the call's first. */
export type Attempt<T> = (request: ChatCompletionRequest, candidate: UpstreamCandidate, attempt: number) => Promise<T>;

export interface WalkCall<T> {
  readonly request: ChatCompletionRequest;
  readonly ctx: CallContext;
  readonly reservation: Reservation;
  /** The route the admission saw. */
  readonly route: UpstreamRoute;
  /** A fresh route, for another round (cooldowns and failures may have changed the order). */
  readonly reroute: () => UpstreamRoute;
  readonly attempt: Attempt<T>;
  /** Whether a byte of the answer reached the caller (a stream's first chunk): then nothing moves. */
  readonly delivered: () => boolean;
}

const SAFE_HEADER_VALUE = /^[\x21-\x7e]{1,256}$/;

export async function walkUpstreams<T>(o: WalkOptions, call: WalkCall<T>): Promise<T> {
  const { request, ctx, reservation } = call;
  const clock = o.clock ?? Date.now;
  const random = o.random ?? Math.random;
  let route = call.route;
  const failures: Failure[] = [];
  /** This round's tries: candidate → how it failed. */
  let tried = new Map<UpstreamCandidate, Failure>();
  const note = (candidate: UpstreamCandidate, error: GatewayError): Failure => {
    const f: Failure = { candidate, error, at: clock() };
    failures.push(f);
    tried.set(candidate, f);
    return f;
  };
  for (const s of reservation.skipped) note(s.candidate, s.error);

  let attempts = 0;
  let retries = 0;
  let waited = 0;
  /** The last failed attempt, until the next one starts (for onRetry). */
  let pending: { failure: Failure; attempt: number } | undefined;
  for (;;) {
    if (ctx.abortReason !== undefined) throw ctx.abortReason;
    const c = attempts >= MAX_ATTEMPTS ? undefined : next(route.candidates, tried);
    if (c === undefined) {
      const wait = attempts >= MAX_ATTEMPTS ? undefined : roundDelay([...tried.values()], retries, waited, ctx.deadline, clock(), o.policy, random);
      if (wait === undefined) throw failures.length === 0 ? GatewayError.from(new Error("no upstream candidate")) : finalError(failures, attempts, clock());
      if (pending !== undefined) report(o, ctx, pending, wait.ms, undefined);
      pending = undefined;
      try {
        await sleep(wait.ms, undefined, { signal: ctx.signal });
      } catch {
        throw abortReason(ctx);
      }
      retries++;
      if (wait.quota) waited += wait.ms;
      route = call.reroute();
      tried = new Map();
      continue;
    }
    if (reservation.tracksUpstream && !sameTarget(reservation.upstream, c)) {
      const refused = await reservation.move(c);
      if (refused !== undefined) {
        note(c, refused);
        continue;
      }
    }
    if (pending !== undefined) report(o, ctx, pending, 0, c);
    pending = undefined;

    attempts++;
    const s = ctx.stats;
    s.attempts = attempts;
    s.upstreamKey = c.key;
    s.upstreamModel = c.model;
    // Each response's own (a failed attempt's must not be read as the next key's).
    s.upstreamRateLimits = undefined;
    setResponseHeader(ctx, UPSTREAM_KEY_HEADER, c.key);
    setResponseHeader(ctx, ATTEMPTS_HEADER, String(attempts));
    if (SAFE_HEADER_VALUE.test(c.model)) setResponseHeader(ctx, MODEL_HEADER, c.model);
    o.router.started(c, route);
    try {
      const result = await call.attempt(c.model === request.model ? request : { ...request, model: c.model }, c, attempts);
      o.router.finished(c, route, undefined, s.upstreamRateLimits);
      return result;
    } catch (err) {
      const error = GatewayError.from(err);
      o.router.finished(c, route, error, s.upstreamRateLimits);
      if (isFinal(error, call.delivered())) throw attempts > 1 && !left(error) ? error.withMetadata({ attempts: String(attempts) }) : error;
      pending = { failure: note(c, error), attempt: attempts };
    }
  }
}

/**
 * The next candidate of the round: the first not tried yet whose turn has come — a
 * fallback's only once every candidate of the models before it failed with capacity or
 * a quota, or is cooling down from a quota.
 */
function next(candidates: readonly UpstreamCandidate[], tried: ReadonlyMap<UpstreamCandidate, Failure>): UpstreamCandidate | undefined {
  for (const c of candidates) {
    if (tried.has(c)) continue;
    if (c.fallback > 0 && !fallbackOpen(c.fallback, candidates, tried)) continue;
    return c;
  }
  return undefined;
}

function fallbackOpen(level: number, candidates: readonly UpstreamCandidate[], tried: ReadonlyMap<UpstreamCandidate, Failure>): boolean {
  for (const d of candidates) {
    if (d.fallback >= level) continue;
    const f = tried.get(d);
    if (f !== undefined ? !isCapacityOrQuota(f.error) : d.standing !== "cooling") return false;
  }
  return true;
}

/** Whether another round follows, and after how long: see the file comment. */
function roundDelay(round: readonly Failure[], retries: number, waited: number, deadline: number, now: number, policy: RetryPolicy, random: () => number): { ms: number; quota: boolean } | undefined {
  if (round.length === 0) return undefined;
  if (round.every((f) => isQuota(f.error))) {
    // Every key's quota is spent: wait only for the first reset, only when it is near.
    let first: number | undefined;
    for (const f of round) {
      const at = quotaResetAt(f);
      if (at !== undefined && (first === undefined || at < first)) first = at;
    }
    const ms = quotaWait(first === undefined ? undefined : first - now, false, retries, waited, deadline - now, policy, random);
    return ms === undefined ? undefined : { ms, quota: true };
  }
  let transient: Failure | undefined;
  for (const f of round) if (isTransient(f.error)) transient = f;
  if (transient === undefined) return undefined;
  const ms = retryDelay(transient.error, retries, deadline - now, policy, random);
  return ms === undefined ? undefined : { ms, quota: false };
}

/** The caller left or ran out of time: its error says so, and nothing else. */
function left(err: GatewayError): boolean {
  return err.code === Code.CANCELLED || err.code === Code.DEADLINE_EXCEEDED;
}

function sameTarget(held: UpstreamCandidate | undefined, c: UpstreamCandidate): boolean {
  return held !== undefined && held.key === c.key && held.model === c.model;
}

function report(o: WalkOptions, ctx: CallContext, pending: { failure: Failure; attempt: number }, delayMs: number, next: UpstreamCandidate | undefined): void {
  const f = pending.failure;
  o.onRetry?.({ requestId: ctx.requestId, attempt: pending.attempt, delayMs: Math.round(delayMs), error: f.error, upstreamKey: f.candidate.key, model: f.candidate.model, next });
}
