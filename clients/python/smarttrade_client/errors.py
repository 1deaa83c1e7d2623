"""Typed exceptions for the service's errors, with the details of its `google.rpc.Status`.

Every failed call raises a subclass of `SmartTradeError` chosen by the gRPC status code:

    try:
        client.create_trade(...)
    except InvalidArgument as error:
        error.reason            # "INVALID_FIELD": the stable ErrorInfo reason
        error.field_violations  # {"smart_trade.symbol": "unknown symbol ..."}
    except FailedPrecondition as error:
        error.metadata          # {"state": "CLOSED", "action": "CLOSE_AT_MARKET"}

The service puts one `ErrorInfo` (domain "smarttrade.v1", a `reason`, `metadata`) on every
error, a `BadRequest` for field errors, a `PreconditionFailure` for refused actions and a
`RetryInfo` on UNAVAILABLE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class PreconditionViolation:
    """Why an action was refused: `type` ("STATE"), `subject` ("CLOSE_AT_MARKET in CLOSED")."""

    type: str
    subject: str
    description: str


class SmartTradeError(Exception):
    """A call failed. `code` is the gRPC status code; the other attributes come from the
    status details (empty when the server sent none, e.g. for an authentication failure)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: dict[str, str] | None = None,
        field_violations: dict[str, str] | None = None,
        preconditions: tuple[PreconditionViolation, ...] = (),
        retry_delay: timedelta | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.reason = reason  # the stable ErrorInfo reason, e.g. "INVALID_FIELD"
        self.domain = domain  # "smarttrade.v1"
        self.metadata = metadata or {}  # ErrorInfo metadata, e.g. {"resource": "..."}
        self.field_violations = field_violations or {}  # request field path -> description
        self.preconditions = preconditions
        self.retry_delay = retry_delay  # RetryInfo: how long the server asks to wait
        self.request_id = request_id  # the mutation's request_id, to retry it safely later

    def __str__(self) -> str:
        head = f"{self.code.name}: {self.message}" if self.message else self.code.name
        return f"{head} ({self.reason})" if self.reason else head


class InvalidArgument(SmartTradeError):
    """The request is malformed or breaks a rule; `field_violations` names every bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(SmartTradeError):
    """No such resource for the caller (another tenant's resource answers the same)."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(SmartTradeError):
    """The name the request gives a new resource is taken (a trade's `smart_trade_id`)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(SmartTradeError):
    """The action is not allowed now (`reason` ACTION_NOT_ALLOWED, with `metadata` state and
    action), or the exchange refused (EXCHANGE_REJECTED)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(SmartTradeError):
    """The trade changed since it was read (ETAG_MISMATCH): read it again, then decide."""

    code = grpc.StatusCode.ABORTED


class OutOfRange(SmartTradeError):
    """A watch resumed from before the retained history (HISTORY_PRUNED)."""

    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(SmartTradeError):
    """The service or the exchange cannot answer now; the client already retried."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(SmartTradeError):
    """No answer within the call's deadline. A mutation may still have happened: retry it
    with the same `request_id` (see the exception's `request_id`) to find out safely."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unauthenticated(SmartTradeError):
    """No bearer token, or the service does not know it."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(SmartTradeError):
    """The token lacks a scope the call needs (e.g. `sandbox` for the paper market)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(SmartTradeError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Internal(SmartTradeError):
    """A bug on the server side; it logged the details."""

    code = grpc.StatusCode.INTERNAL


class Cancelled(SmartTradeError):
    code = grpc.StatusCode.CANCELLED


_BY_CODE: dict[grpc.StatusCode, type[SmartTradeError]] = {
    kind.code: kind
    for kind in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unavailable,
        DeadlineExceeded,
        Unauthenticated,
        PermissionDenied,
        ResourceExhausted,
        Internal,
        Cancelled,
    )
}


@dataclass
class _Details:
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] | None = None
    fields: dict[str, str] | None = None
    preconditions: tuple[PreconditionViolation, ...] = ()
    retry_delay: timedelta | None = None


def _details(call: Any) -> _Details:
    """The google.rpc.Status details of a failed call (empty when there are none)."""
    found = _Details()
    try:
        status = rpc_status.from_call(call)
    except ValueError:  # a status whose code disagrees with the call's: ignore the details
        return found
    if status is None:
        return found
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.reason, found.domain = str(info.reason), str(info.domain)
            found.metadata = {str(k): str(v) for k, v in info.metadata.items()}
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.fields = {str(v.field): str(v.description) for v in bad.field_violations}
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            found.preconditions = tuple(
                PreconditionViolation(str(v.type), str(v.subject), str(v.description))
                for v in failure.violations
            )
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            found.retry_delay = retry.retry_delay.ToTimedelta()
    return found


def from_rpc_error(error: grpc.RpcError, request_id: str | None = None) -> SmartTradeError:
    """The typed exception for a failed call (`grpc.aio.AioRpcError` or a sync `grpc.Call`)."""
    code_of = getattr(error, "code", None)
    code: grpc.StatusCode = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details_of = getattr(error, "details", None)
    message = str(details_of() or "") if callable(details_of) else str(error)
    found = _details(error)
    kind = _BY_CODE.get(code, SmartTradeError)
    return kind(
        message,
        code=code,
        reason=found.reason,
        domain=found.domain,
        metadata=found.metadata,
        field_violations=found.fields,
        preconditions=found.preconditions,
        retry_delay=found.retry_delay,
        request_id=request_id,
    )
