/** The google.rpc.Status that the service sends in the `grpc-status-details-bin` trailer. */
import { ServiceError, status } from "@grpc/grpc-js";

import { BadRequest, ErrorInfo, PreconditionFailure } from "./gen/google/rpc/error_details";
import { Status } from "./gen/google/rpc/status";

export interface FieldViolation {
  field: string;
  description: string;
}

/** What a failed call says beyond its code: the ErrorInfo and the violated fields. */
export interface RichError {
  code: status;
  message: string;
  /** ErrorInfo.reason, for example "INVALID_FIELD"; stable, for programs to branch on. */
  reason: string;
  /** ErrorInfo.domain: "smarttrade.v1". */
  domain: string;
  metadata: Record<string, string>;
  /** BadRequest.field_violations, for INVALID_ARGUMENT. */
  fieldViolations: FieldViolation[];
  /** PreconditionFailure.violations as "type: subject", for refused actions. */
  preconditions: string[];
}

const DETAILS_TRAILER = "grpc-status-details-bin";

/** Decodes the status details of a failed call; undefined when the server sent none. */
export function richError(error: ServiceError): RichError | undefined {
  const [bytes] = error.metadata?.get(DETAILS_TRAILER) ?? [];
  if (!(bytes instanceof Buffer)) return undefined;
  const decoded = Status.decode(bytes);
  const rich: RichError = {
    code: decoded.code as status,
    message: decoded.message,
    reason: "",
    domain: "",
    metadata: {},
    fieldViolations: [],
    preconditions: [],
  };
  for (const detail of decoded.details) {
    // A type URL is "type.googleapis.com/<full message name>"; only the name is meaningful.
    switch (detail.typeUrl.slice(detail.typeUrl.lastIndexOf("/") + 1)) {
      case "google.rpc.ErrorInfo": {
        const info = ErrorInfo.decode(detail.value);
        rich.reason = info.reason;
        rich.domain = info.domain;
        rich.metadata = info.metadata;
        break;
      }
      case "google.rpc.BadRequest":
        rich.fieldViolations = BadRequest.decode(detail.value).fieldViolations.map(
          ({ field, description }) => ({ field, description }),
        );
        break;
      case "google.rpc.PreconditionFailure":
        rich.preconditions = PreconditionFailure.decode(detail.value).violations.map(
          (violation) => `${violation.type}: ${violation.subject}`,
        );
        break;
    }
  }
  return rich;
}
