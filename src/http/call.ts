/**
 * One HTTP call as the handlers see it: the exchange, its CallScope (cancellation and
 * the REQUEST_TIMEOUT_S budget), and what the log line reports. Same shape of plumbing
 * as the gRPC handler adapters, so both transports log and cancel alike.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { CallReporter } from "../core/call-log.js";
import type { CallScope } from "../core/call-scope.js";
import type { CallStats } from "../core/provider.js";
import type { CallTrace } from "../core/tracing.js";
import type { HttpFailure } from "./errors.js";

export interface HttpCall {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly scope: CallScope;
  /** Named groups of the route's path pattern, URL-decoded. */
  readonly params: Readonly<Record<string, string>>;
  /** The method name for the log line: the gRPC method's name, so both transports group alike. */
  method: string | undefined;
  /** Fields accepted and dropped (OpenAI-only), for the log line. */
  ignored: readonly string[];
  /** The parsed JSON body of a route that takes one (read whole before the handler runs); undefined otherwise. */
  body: unknown;
  /** The text `body` was parsed from; the handler drops it once decoded. */
  bodyText: string | undefined;
}

export interface CallLog {
  readonly method: string | undefined;
  readonly httpMethod: string;
  readonly path: string;
  readonly requestId: string;
  readonly ignored: readonly string[];
  /** The call's figures (model, tokens, cost…); empty when it never reached the core. */
  readonly stats: CallStats;
  /** The call's span; undefined for requests that are not calls (unrouted, probes). */
  readonly trace?: CallTrace | undefined;
}

/** The one log line per call, in the same shape as the gRPC side's. `failure` undefined: it succeeded. */
/** @param routine a public route (probe, scrape): logged at debug and not counted when it succeeds */
export function reportHttpCall(reporter: CallReporter, call: CallLog, status: number, started: number, failure: HttpFailure | undefined, routine = false): void {
  const extra = { httpMethod: call.httpMethod, path: call.path, status, ...(call.ignored.length > 0 ? { ignoredFields: call.ignored } : {}) };
  const error = failure === undefined ? undefined : { code: failure.code, reason: failure.reason, message: failure.error.message, cause: failure.error.cause ?? failure.error };
  reporter.report({ transport: "http", method: call.method, requestId: call.requestId, trace: call.trace }, extra, call.stats, started, error, routine);
}
