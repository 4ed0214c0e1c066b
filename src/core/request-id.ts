/**
 * Request ids: the caller's own (x-request-id) when it is short and plain, else a new
 * UUID. Shared by both transports so a request id means the same thing everywhere.
 */
import { randomUUID } from "node:crypto";

const ACCEPTABLE = /^[\w.:-]{1,128}$/;

export function requestIdFrom(given: unknown): string {
  return typeof given === "string" && ACCEPTABLE.test(given) ? given : randomUUID();
}
