package com.smarttrade.client;

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.BadRequest;
import com.google.rpc.ErrorInfo;
import com.google.rpc.PreconditionFailure;
import io.grpc.Status;
import io.grpc.protobuf.StatusProto;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * What a failed call says beyond its code: the google.rpc.Status that the service sends in the
 * {@code grpc-status-details-bin} trailer, with its ErrorInfo, BadRequest and PreconditionFailure.
 *
 * @param reason ErrorInfo.reason, for example "INVALID_FIELD": stable, for programs to branch on
 * @param fieldViolations BadRequest: each violated field and its description
 * @param preconditions PreconditionFailure violations as "type: subject"
 */
public record RichError(
    Status.Code code,
    String message,
    String reason,
    String domain,
    Map<String, String> metadata,
    Map<String, String> fieldViolations,
    List<String> preconditions) {

  /** The details of a failed call's StatusRuntimeException; empty when the server sent none. */
  public static Optional<RichError> of(Throwable error) {
    com.google.rpc.Status status = StatusProto.fromThrowable(error);
    if (status == null) {
      return Optional.empty();
    }
    String reason = "";
    String domain = "";
    Map<String, String> metadata = Map.of();
    Map<String, String> fields = new LinkedHashMap<>();
    List<String> preconditions = new ArrayList<>();
    try {
      for (Any detail : status.getDetailsList()) {
        if (detail.is(ErrorInfo.class)) {
          ErrorInfo info = detail.unpack(ErrorInfo.class);
          reason = info.getReason();
          domain = info.getDomain();
          metadata = info.getMetadataMap();
        } else if (detail.is(BadRequest.class)) {
          for (BadRequest.FieldViolation violation :
              detail.unpack(BadRequest.class).getFieldViolationsList()) {
            fields.put(violation.getField(), violation.getDescription());
          }
        } else if (detail.is(PreconditionFailure.class)) {
          for (PreconditionFailure.Violation violation :
              detail.unpack(PreconditionFailure.class).getViolationsList()) {
            preconditions.add(violation.getType() + ": " + violation.getSubject());
          }
        }
      }
    } catch (InvalidProtocolBufferException e) {
      throw new IllegalStateException("malformed google.rpc.Status details", e);
    }
    return Optional.of(
        new RichError(
            Status.fromCodeValue(status.getCode()).getCode(),
            status.getMessage(),
            reason,
            domain,
            metadata,
            fields,
            preconditions));
  }
}
