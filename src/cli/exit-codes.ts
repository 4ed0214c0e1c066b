/**
 * Exit codes: the gRPC status code where there is one, so `$?` reads like grpc-status.
 *
 *   0      success
 *   1      CANCELLED or UNKNOWN status, or a local failure (a file that cannot be read, a bug)
 *   2      usage error (bad flags, no prompt)
 *   3–16   the gRPC code: 3 INVALID_ARGUMENT, 4 DEADLINE_EXCEEDED, 5 NOT_FOUND,
 *          8 RESOURCE_EXHAUSTED, 13 INTERNAL, 14 UNAVAILABLE, 16 UNAUTHENTICATED, …
 *   130    interrupted by Ctrl-C (SIGINT): the call was cancelled (128 + SIGINT, as shells do)
 *
 * UNKNOWN (2) cannot keep its number: 2 is the usage error every CLI convention expects.
 */
import { Code, GatewayError } from "../core/errors.js";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

export function exitCodeFor(err: unknown): number {
  if (!(err instanceof GatewayError)) return EXIT_FAILURE;
  const code: number = err.code;
  if (code === Code.UNKNOWN || code === Code.CANCELLED) return EXIT_FAILURE;
  return code >= 3 && code <= 16 ? code : EXIT_FAILURE;
}
