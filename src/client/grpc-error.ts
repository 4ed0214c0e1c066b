/**
 * A failed grpc-js call → the gateway's one error type. The server puts a
 * google.rpc.Status in `grpc-status-details-bin` (src/grpc/status.ts); this decodes it
 * back into the same GatewayError the server started from: code, ErrorInfo reason and
 * metadata, RetryInfo delay, BadRequest and QuotaFailure violations.
 */
import { status as GrpcStatus, type Metadata, type ServiceError } from "@grpc/grpc-js";
import { BadRequest, ErrorInfo, QuotaFailure, RetryInfo } from "../../gen/google/rpc/error_details.js";
import { Status } from "../../gen/google/rpc/status.js";
import { Code, GatewayError, Reason, type FieldViolation, type QuotaViolation } from "../core/errors.js";

const TYPE_PREFIX = "type.googleapis.com/google.rpc.";

/** The google.rpc details of a status, decoded. Unknown detail types are skipped. */
export interface StatusDetails {
  readonly errorInfo: ErrorInfo | undefined;
  readonly retryDelayMs: number | undefined;
  readonly fieldViolations: readonly FieldViolation[];
  readonly quotaViolations: readonly QuotaViolation[];
  /** Status.message, when the details carried one. */
  readonly message: string | undefined;
}

/**
 * True for the error objects grpc-js hands to callbacks and emits on streams. Checked by
 * shape, not `instanceof Metadata`: a caller's own copy of grpc-js has its own class.
 */
export function isServiceError(err: unknown): err is ServiceError {
  if (!(err instanceof Error)) return false;
  const e = err as Partial<ServiceError>;
  return typeof e.code === "number" && typeof e.metadata?.get === "function";
}

/**
 * Anything a call can fail with → GatewayError.
 * - a grpc-js ServiceError: its code and message, with the rich details decoded;
 * - a GatewayError: itself;
 * - anything else (an AbortError, a bug): as GatewayError.from() normalises it.
 *
 * `reason` is the ErrorInfo reason. A status without ErrorInfo did not come from the
 * gateway's error mapping (the channel could not connect, the client's own deadline or
 * cancel, a proxy): its reason is CANCELLED / DEADLINE_EXCEEDED for those codes, else
 * the gRPC code's name (e.g. "UNAVAILABLE"). `metadata.requestId` is always set when
 * the call had one.
 *
 * @param requestId the x-request-id the call was sent with
 */
export function toGatewayError(err: unknown, requestId?: string): GatewayError {
  if (err instanceof GatewayError) return err;
  if (!isServiceError(err)) return GatewayError.from(err);
  const details = decodeStatusDetails(err.metadata);
  const info = details.errorInfo;
  const metadata: Record<string, string> = { ...(requestId === undefined ? {} : { requestId }), ...info?.metadata };
  return new GatewayError({
    // The core's Code lists the codes the gateway sends; a channel can report others
    // (UNIMPLEMENTED, …), which keep their number.
    code: err.code as number as Code,
    // Reason lists the gateway's own values; a newer server (or a code name, see
    // above) can send others, which are passed on as they are.
    reason: (info?.reason || fallbackReason(err.code)) as Reason,
    message: err.details || details.message || GrpcStatus[err.code] || "call failed",
    metadata,
    ...(details.retryDelayMs === undefined ? {} : { retryDelayMs: details.retryDelayMs }),
    fieldViolations: details.fieldViolations,
    quotaViolations: details.quotaViolations,
    cause: err,
  });
}

/** Decodes `grpc-status-details-bin`; an absent or unreadable trailer decodes to no details. */
export function decodeStatusDetails(trailers: Metadata): StatusDetails {
  const none: StatusDetails = { errorInfo: undefined, retryDelayMs: undefined, fieldViolations: [], quotaViolations: [], message: undefined };
  const raw = trailers.get("grpc-status-details-bin")[0];
  if (!(raw instanceof Buffer)) return none;
  let status: Status;
  try {
    status = Status.decode(raw);
  } catch {
    return none;
  }
  let errorInfo: ErrorInfo | undefined;
  let retryDelayMs: number | undefined;
  const fieldViolations: FieldViolation[] = [];
  const quotaViolations: QuotaViolation[] = [];
  for (const detail of status.details) {
    try {
      switch (detail.typeUrl) {
        case `${TYPE_PREFIX}ErrorInfo`:
          errorInfo ??= ErrorInfo.decode(detail.value); // AIP-193: exactly one; keep the first
          break;
        case `${TYPE_PREFIX}RetryInfo`: {
          const d = RetryInfo.decode(detail.value).retryDelay;
          if (d !== undefined) retryDelayMs = d.seconds * 1000 + Math.round(d.nanos / 1_000_000);
          break;
        }
        case `${TYPE_PREFIX}BadRequest`:
          for (const v of BadRequest.decode(detail.value).fieldViolations) fieldViolations.push({ field: v.field, description: v.description });
          break;
        case `${TYPE_PREFIX}QuotaFailure`:
          for (const v of QuotaFailure.decode(detail.value).violations) quotaViolations.push({ subject: v.subject, description: v.description });
          break;
      }
    } catch {
      // One unreadable detail does not hide the others.
    }
  }
  return { errorInfo, retryDelayMs, fieldViolations, quotaViolations, message: status.message || undefined };
}

function fallbackReason(code: number): string {
  if (code === Code.CANCELLED) return Reason.CANCELLED;
  if (code === Code.DEADLINE_EXCEEDED) return Reason.DEADLINE_EXCEEDED;
  return GrpcStatus[code] ?? "UNKNOWN";
}
