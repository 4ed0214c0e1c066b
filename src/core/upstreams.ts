/**
 * Upstream choice as the core sees it (src/upstreams implements it; gateway.ts wires one
 * in): for each call, the candidates — an upstream key and the model to ask it for — in
 * the order to try them, and what each attempt on one taught (headroom, a quota spent, a
 * key refused, a connection failing). The core walks the candidates (upstream-walk.ts);
 * the router only ranks them and keeps the keys' picture.
 *
 * Without a pool the core uses SINGLE_UPSTREAM: the one key, `default`, for every model.
 */
import type { ChatCompletionRequest } from "../../gen/aigateway/v1/chat.js";
import type { Model } from "../../gen/aigateway/v1/models.js";
import { GatewayError } from "./errors.js";

/**
 * How a key stood when the route was made. Only `ready` keys are tried first; the others
 * come after every ready one (in this order), as a last resort: a key never makes a call
 * fail by being left out, so a gateway with one key behaves as if there were no pool.
 */
export type Standing = "ready" | "cooling" | "backoff" | "revoked";

/** One way to serve a call. */
export interface UpstreamCandidate {
  /** The upstream key's name (never the key). */
  readonly key: string;
  /** The model to ask it for: the requested one, or a fallback. */
  readonly model: string;
  /** 0: the requested model; n: its n-th fallback. */
  readonly fallback: number;
  /** The model the caller asked for (resolved). */
  readonly requested: string;
  readonly standing: Standing;
}

export interface UpstreamRoute {
  /** Best first: ready keys of the requested model, then ready keys of each fallback, then the rest by standing. */
  readonly candidates: readonly UpstreamCandidate[];
  /** The call's estimated size in tokens (prompt + completion budget), as the router ranked it; 0 when it did not need it. */
  readonly tokens: number;
}

export interface UpstreamRouter {
  /**
   * The candidates for a call to `request.model` (resolved), its fallbacks included when
   * `fallbacks` (MODEL_FALLBACKS configured, and the caller did not refuse them).
   * @param model the catalog's entry for the requested model, when listed
   */
  route(request: ChatCompletionRequest, model: Model | undefined, fallbacks: boolean): UpstreamRoute;
  /** An attempt on `candidate` begins: its reservation (`route.tokens`) counts as in flight on that key until finished(). */
  started(candidate: UpstreamCandidate, route: UpstreamRoute): void;
  /**
   * The attempt is over. `error` undefined: the upstream answered 200. `rateLimits`: the
   * response's own `x-ratelimit-*` headers (names as sent), when there was a response.
   */
  finished(candidate: UpstreamCandidate, route: UpstreamRoute, error: GatewayError | undefined, rateLimits: Readonly<Record<string, string>> | undefined): void;
}

/** The key CEREBRAS_API_KEY goes by (and the embedded fake's). */
export const DEFAULT_UPSTREAM_KEY = "default";

/** One key, every model, no picture to keep: the core's default, and what a pool of one key amounts to. */
export const SINGLE_UPSTREAM: UpstreamRouter = {
  route: (request) => ({ candidates: [{ key: DEFAULT_UPSTREAM_KEY, model: request.model, fallback: 0, requested: request.model, standing: "ready" }], tokens: 0 }),
  started: () => {},
  finished: () => {},
};

/**
 * The caller's say on fallbacks for one call: gRPC metadata or HTTP header
 * `x-aigw-fallbacks: off` refuses them (`on`, or no entry: fallbacks as configured).
 */
export const FALLBACKS_HEADER = "x-aigw-fallbacks";

/** Whether the call may be served by a fallback model, from its `x-aigw-fallbacks` value; INVALID_ARGUMENT for anything but on/off. */
export function fallbacksAllowed(value: string | undefined): boolean {
  if (value === undefined) return true;
  const v = value.trim().toLowerCase();
  if (v === "on") return true;
  if (v === "off") return false;
  throw GatewayError.invalidArgument([{ field: FALLBACKS_HEADER, description: "must be on or off" }]);
}

/** Response metadata (gRPC) and headers (HTTP) naming who served the call. */
export const UPSTREAM_KEY_HEADER = "x-aigw-upstream-key";
export const ATTEMPTS_HEADER = "x-aigw-attempts";
export const MODEL_HEADER = "x-aigw-model";
