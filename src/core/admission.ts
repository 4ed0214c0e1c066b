/**
 * Admission: the seam between the core and whatever enforces quotas (src/admission
 * implements it; gateway.ts wires one in). ChatService asks for a Reservation after its
 * own pre-flight checks (validation, model resolution: nothing the gateway refuses by
 * itself is charged) and before the provider, and settles it exactly once when the call
 * ends, however it ends: success, upstream failure, cancel, deadline.
 *
 * With nothing limited the gateway uses NO_ADMISSION: admit() returns one shared
 * reservation synchronously (no promise, no allocation), and the core skips the rest of
 * the bookkeeping because that reservation is not `limited`.
 */
import type { ChatCompletionChunk, ChatCompletionRequest, Usage } from "../../gen/aigateway/v1/chat.js";
import type { Model } from "../../gen/aigateway/v1/models.js";
import type { GatewayError } from "./errors.js";
import type { CallContext } from "./provider.js";
import type { UpstreamCandidate } from "./upstreams.js";

/** How an admitted call ended, as the core saw it: what settlement charges from. */
export interface CallOutcome {
  /** The upstream's usage (with costUsd when the model's prices are known), when it reported one. */
  readonly usage: Usage | undefined;
  /** Why the call failed; undefined when it succeeded. */
  readonly error: GatewayError | undefined;
  /**
   * Whether the upstream took the request in: it answered 200 (a stream may still have
   * failed after), or the caller left (cancel, deadline) while a request was out. False
   * when the upstream refused it (an error status) or could not be reached: then only the
   * request itself counts.
   */
  readonly processed: boolean;
  /** The upstream's own `x-ratelimit-*` headers from its last response, names as sent. */
  readonly upstreamRateLimits: Readonly<Record<string, string>> | undefined;
}

/** A candidate the admission passed over: its key's organisation buckets had no room (nothing was sent). */
export interface Skipped {
  readonly candidate: UpstreamCandidate;
  /** RESOURCE_EXHAUSTED UPSTREAM_QUOTA_EXCEEDED, `detectedBy: gateway`. */
  readonly error: GatewayError;
}

/** Capacity held for one admitted call until it is settled. */
export interface Reservation {
  /**
   * False only for the shared no-op reservation: the core then calls neither delivered()
   * nor settle(). Every limited reservation is settled exactly once.
   */
  readonly limited: boolean;
  /**
   * True when the reservation holds the organisation's capacity of one candidate's key
   * (organisation limits on): an attempt on another candidate goes through move() first.
   */
  readonly tracksUpstream: boolean;
  /** The candidate whose key's organisation capacity is held; undefined when none is (a move was refused). */
  readonly upstream: UpstreamCandidate | undefined;
  /** Candidates admit() passed over, in order, before the one it holds. */
  readonly skipped: readonly Skipped[];
  /**
   * Gives back the organisation capacity held for the current candidate (its attempt
   * failed) and reserves `candidate`'s instead; resolves to the refusal when its buckets
   * have no room (then none is held, and the call may move on again). Never waits in a queue.
   */
  move(candidate: UpstreamCandidate): Promise<GatewayError | undefined>;
  /** One chunk of a stream reached the caller (limited reservations only): the tally for a call that ends without usage. */
  delivered(chunk: ChatCompletionChunk): void;
  /**
   * The call is over: charge what it used, release the rest. Idempotent (a second call is
   * ignored). Never throws and never waits: the store's work happens after the reply is
   * sent (Admission.idle() awaits it).
   */
  settle(outcome: CallOutcome): void;
}

export interface Admission {
  /**
   * Reserves what `request` may use for its caller (ctx.stats.keyName; "anonymous" with
   * auth off) and for the organisation's limits of its model, or throws a GatewayError
   * (RESOURCE_EXHAUSTED when a limit has no room; UNAVAILABLE when the limit store is down
   * and QUOTA_FAIL_MODE=closed). May add to ctx.replyHeaders (the caller's standing).
   *
   * With organisation limits, the candidates are tried in order: the first whose key has
   * room for the call is held (the others before it are Reservation.skipped); when none
   * has, the call queues or is refused as for one key.
   *
   * @param request validated, with its model resolved (request.model is the model id)
   * @param model the catalog's entry for it, when the catalog lists it
   * @param candidates the call's route (upstreams.ts); default: the key `default` for request.model
   */
  admit(request: ChatCompletionRequest, model: Model | undefined, ctx: CallContext, candidates?: readonly UpstreamCandidate[]): Reservation | Promise<Reservation>;
  /** Resolves once every settlement issued so far has reached the store (tests; shutdown). */
  idle(): Promise<void>;
  /** Waits for pending settlements, then releases the store (Redis connection). */
  close(): Promise<void>;
}

/** The reservation of a call nothing limits. */
const NOTHING_SKIPPED: readonly Skipped[] = Object.freeze([]);
const MOVED: Promise<undefined> = Promise.resolve(undefined);

export const UNLIMITED: Reservation = Object.freeze({
  limited: false,
  tracksUpstream: false,
  upstream: undefined,
  skipped: NOTHING_SKIPPED,
  move: (): Promise<undefined> => MOVED,
  delivered(): void {},
  settle(): void {},
});

/** No limits anywhere: every call is admitted at once, for free. */
export const NO_ADMISSION: Admission = Object.freeze({
  admit: (): Reservation => UNLIMITED,
  idle: (): Promise<void> => Promise.resolve(),
  close: (): Promise<void> => Promise.resolve(),
});
