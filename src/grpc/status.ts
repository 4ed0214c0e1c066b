/**
 * GatewayError → a gRPC status with google.rpc rich details in `grpc-status-details-bin`
 * (AIP-193): exactly one ErrorInfo, then RetryInfo / BadRequest / QuotaFailure where
 * they apply. Status.code equals the gRPC code and Status.message equals grpc-message,
 * or grpc-go clients (grpcurl) report a mismatch as INTERNAL.
 *
 * Size: grpc-js sends trailers whatever their size, but C-core and Java clients refuse a
 * header list over 8 KiB (their default) and a grpc-js client drops the whole connection
 * past ~64 KiB. So what goes out is bounded here, whatever the error holds (caller
 * input echoed, an upstream's message): grpc-message ≤ 768 bytes percent-encoded, the
 * encoded Status ≤ 1800 bytes (2400 as base64); with the other headers, a status weighs
 * under 4 KiB as HTTP/2 counts it. Violations beyond the budget are dropped from the
 * end; their count is already in the message.
 */
import { Metadata, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import type { Any } from "../../gen/google/protobuf/any.js";
import { BadRequest, ErrorInfo, QuotaFailure, RetryInfo } from "../../gen/google/rpc/error_details.js";
import { Status } from "../../gen/google/rpc/status.js";
import { clip, ERROR_DOMAIN, MAX_VIOLATIONS, type FieldViolation, type GatewayError, type QuotaViolation } from "../core/errors.js";

const TYPE_PREFIX = "type.googleapis.com/google.rpc.";

/** Longest message, in characters, and in bytes once percent-encoded for grpc-message. */
const MAX_MESSAGE = 384;
const MAX_ENCODED_MESSAGE = 768;
/** Longest encoded google.rpc.Status. */
const DETAILS_BUDGET = 1800;
/** Longest ErrorInfo metadata value (then, if the budget still is not met, the shorter one), violation field and description. */
const MAX_VALUE = 128;
const MIN_VALUE = 32;
const MAX_FIELD = 128;
const MAX_DESCRIPTION = 200;

export type GrpcError = Partial<StatusObject> & Pick<ServiceError, "code" | "details" | "metadata">;

/** @param requestId added to ErrorInfo metadata: what a caller quotes to find the call's log line */
export function toGrpcError(err: GatewayError, requestId: string): GrpcError {
  const message = fitMessage(err.message);
  let fields = err.fieldViolations.slice(0, MAX_VIOLATIONS).map((v): FieldViolation => ({ field: clip(v.field, MAX_FIELD), description: clip(v.description, MAX_DESCRIPTION) }));
  let quotas = err.quotaViolations.slice(0, MAX_VIOLATIONS).map((v): QuotaViolation => ({ subject: clip(v.subject, MAX_FIELD), description: clip(v.description, MAX_DESCRIPTION) }));
  let valueMax = MAX_VALUE;
  let bytes = encodeStatus(err, message, requestId, valueMax, fields, quotas);
  // Over budget: shed violations from the end, then shorten metadata values (requestId stays whole).
  while (bytes.length > DETAILS_BUDGET) {
    if (fields.length > 0) fields = fields.slice(0, -1);
    else if (quotas.length > 0) quotas = quotas.slice(0, -1);
    else if (valueMax > MIN_VALUE) valueMax = MIN_VALUE;
    else break; // cannot happen: an ErrorInfo of short values and a short message fit
    bytes = encodeStatus(err, message, requestId, valueMax, fields, quotas);
  }
  const trailers = new Metadata();
  trailers.set("grpc-status-details-bin", Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return { code: err.code, details: message, metadata: trailers };
}

function encodeStatus(
  err: GatewayError,
  message: string,
  requestId: string,
  valueMax: number,
  fieldViolations: readonly FieldViolation[],
  quotaViolations: readonly QuotaViolation[],
): Uint8Array {
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(err.metadata)) metadata[key] = clip(value, valueMax);
  metadata["requestId"] = requestId;
  const details: Any[] = [pack("ErrorInfo", ErrorInfo.encode({ reason: err.reason, domain: ERROR_DOMAIN, metadata }).finish())];
  if (err.retryDelayMs !== undefined) {
    const ms = Math.max(0, Math.round(err.retryDelayMs));
    const retryDelay = { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
    details.push(pack("RetryInfo", RetryInfo.encode({ retryDelay }).finish()));
  }
  if (fieldViolations.length > 0) {
    const violations = fieldViolations.map((v) => ({ field: v.field, description: v.description, reason: "" }));
    details.push(pack("BadRequest", BadRequest.encode(BadRequest.fromPartial({ fieldViolations: violations })).finish()));
  }
  if (quotaViolations.length > 0) {
    details.push(pack("QuotaFailure", QuotaFailure.encode(QuotaFailure.fromPartial({ violations: [...quotaViolations] })).finish()));
  }
  return Status.encode({ code: err.code, message, details }).finish();
}

/**
 * The message as sent: at most MAX_MESSAGE characters, and at most MAX_ENCODED_MESSAGE
 * bytes once grpc-js percent-encodes it for grpc-message (a non-ASCII character costs up
 * to 12 there).
 */
function fitMessage(message: string): string {
  const short = clip(message, MAX_MESSAGE);
  if (encodedLength(short) <= MAX_ENCODED_MESSAGE) return short;
  // Keep room for clip's "…(N more characters)".
  let kept = 0;
  let size = 0;
  for (const ch of short) {
    const cost = encodedLength(ch);
    if (size + cost > MAX_ENCODED_MESSAGE - 80) break;
    size += cost;
    kept += ch.length;
  }
  return clip(message, kept);
}

/** What encodeURI makes of `text`, in bytes: 1 for the characters it keeps, 3 per UTF-8 byte otherwise. */
function encodedLength(text: string): number {
  let n = 0;
  for (const ch of text) n += KEPT_BY_ENCODE_URI.test(ch) ? 1 : 3 * Buffer.byteLength(ch);
  return n;
}

const KEPT_BY_ENCODE_URI = /^[A-Za-z0-9\-_.!~*'();/?:@&=+$,#]$/;

function pack(type: string, bytes: Uint8Array): Any {
  return { typeUrl: TYPE_PREFIX + type, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}
