/**
 * GatewayError → a gRPC status with google.rpc rich details in `grpc-status-details-bin`
 * (AIP-193): exactly one ErrorInfo, then RetryInfo / BadRequest / QuotaFailure where
 * they apply. Status.code equals the gRPC code and Status.message equals grpc-message,
 * or grpc-go clients (grpcurl) report a mismatch as INTERNAL.
 */
import { Metadata, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import type { Any } from "../../gen/google/protobuf/any.js";
import { BadRequest, ErrorInfo, QuotaFailure, RetryInfo } from "../../gen/google/rpc/error_details.js";
import { Status } from "../../gen/google/rpc/status.js";
import { ERROR_DOMAIN, type GatewayError } from "../core/errors.js";

const TYPE_PREFIX = "type.googleapis.com/google.rpc.";

export type GrpcError = Partial<StatusObject> & Pick<ServiceError, "code" | "details" | "metadata">;

/** @param requestId added to ErrorInfo metadata: what a caller quotes to find the call's log line */
export function toGrpcError(err: GatewayError, requestId: string): GrpcError {
  const metadata = { ...err.metadata, requestId };
  const details: Any[] = [pack("ErrorInfo", ErrorInfo.encode({ reason: err.reason, domain: ERROR_DOMAIN, metadata }).finish())];
  if (err.retryDelayMs !== undefined) {
    const ms = Math.max(0, Math.round(err.retryDelayMs));
    const retryDelay = { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
    details.push(pack("RetryInfo", RetryInfo.encode({ retryDelay }).finish()));
  }
  if (err.fieldViolations.length > 0) {
    const fieldViolations = err.fieldViolations.map((v) => ({ field: v.field, description: v.description, reason: "" }));
    details.push(pack("BadRequest", BadRequest.encode(BadRequest.fromPartial({ fieldViolations })).finish()));
  }
  if (err.quotaViolations.length > 0) {
    const violations = err.quotaViolations.map((v) => ({ subject: v.subject, description: v.description }));
    details.push(pack("QuotaFailure", QuotaFailure.encode(QuotaFailure.fromPartial({ violations })).finish()));
  }
  const trailers = new Metadata();
  trailers.set("grpc-status-details-bin", Buffer.from(Status.encode({ code: err.code, message: err.message, details }).finish()));
  return { code: err.code, details: err.message, metadata: trailers };
}

function pack(type: string, bytes: Uint8Array): Any {
  return { typeUrl: TYPE_PREFIX + type, value: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}
