"""The one mapping from the service's errors to gRPC statuses (AIP-193).

It knows the core's errors (domain/errors.py), the kinds every layer's errors derive from
(smarttrade/errors.py) and authentication's, nothing of the store or the venues. Every error
carries a `google.rpc.Status` with one `ErrorInfo` (domain `smarttrade.v1`, a stable
reason), plus `BadRequest` for field errors, `PreconditionFailure` naming the state and the
action, and `RetryInfo` on UNAVAILABLE. Bad input is never INTERNAL; an unexpected error is
INTERNAL with no detail beyond its class, and is logged.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn, Protocol, TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from smarttrade.api.auth import Authenticator, ScopeMissing, Unauthenticated
from smarttrade.api.parse import text_fields_clean
from smarttrade.domain.errors import ActionNotAllowed, FieldViolation, InvalidSpec
from smarttrade.errors import (
    AlreadyExists,
    EtagMismatch,
    NotFound,
    OutOfRange,
    PreconditionFailed,
    Unavailable,
)

log = logging.getLogger(__name__)

DOMAIN = "smarttrade.v1"
# Status details travel in trailers, which clients cap at 8 KiB (a larger status reaches the
# caller as RESOURCE_EXHAUSTED, its own answer lost): a request with hundreds of bad fields
# gets the first ones and how many more there are, and every text that can quote a caller's
# value (a description, a field path holding a map key, a metadata value) is cut short.
MAX_VIOLATIONS = 20
MAX_MESSAGE = 400
MAX_TEXT = 200
MAX_STATUS_BYTES = 3072  # serialized: its base64 and the percent-encoded message fit in 8 KiB

R = TypeVar("R")


class Overloaded(Exception):
    """The service has as many calls in flight as it takes (api/registration.py)."""

    def __init__(self) -> None:
        super().__init__("the service is serving as many calls as it takes; retry shortly")


class Undecodable(Exception):
    """The request's bytes are not the method's request message (api/registration.py)."""

    def __init__(self) -> None:
        super().__init__("the request body is not a valid message of the method's request type")


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def bounded(text: str, limit: int = MAX_TEXT) -> str:
    """`text`, cut to at most `limit` bytes of UTF-8 (an ellipsis says it was): budgets are
    in bytes, and a character can take four (and nine when grpc-message percent-encodes it)."""
    if len(text) <= limit // 4:
        return text
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "…"


def _status(
    code: int, reason: str, message: str, metadata: dict[str, str], *details: Any
) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(
        reason=reason,
        domain=DOMAIN,
        metadata={bounded(key, 64): bounded(value) for key, value in metadata.items()},
    )
    return status_pb2.Status(
        code=code,
        message=bounded(message, MAX_MESSAGE),
        details=[_pack(info), *(_pack(d) for d in details)],
    )


def _bad_request(violations: tuple[FieldViolation, ...]) -> error_details_pb2.BadRequest:
    """The first violations that fit the status's budget, then how many more there are."""
    bad = error_details_pb2.BadRequest()
    for shown, violation in enumerate(violations[:MAX_VIOLATIONS]):
        bad.field_violations.add(
            field=bounded(violation.field), description=bounded(violation.description)
        )
        if bad.ByteSize() > MAX_STATUS_BYTES - 1024 and shown:  # room for message and info
            del bad.field_violations[-1]
            break
    hidden = len(violations) - len(bad.field_violations)
    if hidden:
        bad.field_violations.add(field="", description=f"and {hidden} more")
    return bad


def _precondition(
    kind: str, description: str, subject: str = ""
) -> error_details_pb2.PreconditionFailure:
    violation = error_details_pb2.PreconditionFailure.Violation(
        type=bounded(kind), subject=bounded(subject), description=bounded(description)
    )
    return error_details_pb2.PreconditionFailure(violations=[violation])


def _retry(seconds: float | None) -> error_details_pb2.RetryInfo:
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(int((seconds or 1.0) * 1000))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def status_of(error: Exception) -> status_pb2.Status:
    match error:
        case InvalidSpec():
            bad = _bad_request(error.violations)
            fields = ",".join(dict.fromkeys(v.field for v in bad.field_violations if v.field))
            return _status(
                code_pb2.INVALID_ARGUMENT, "INVALID_FIELD", str(error), {"fields": fields}, bad
            )
        case ActionNotAllowed():
            state, action = str(error.state.value), str(error.action.value)
            failure = _precondition("STATE", str(error), f"{action} in {state}")
            metadata = {"state": state, "action": action}
            return _status(
                code_pb2.FAILED_PRECONDITION, "ACTION_NOT_ALLOWED", str(error), metadata, failure
            )
        case NotFound():
            return _status(code_pb2.NOT_FOUND, "NOT_FOUND", str(error), {"resource": error.name})
        case AlreadyExists():
            return _status(
                code_pb2.ALREADY_EXISTS, "ALREADY_EXISTS", str(error), {"resource": error.name}
            )
        case EtagMismatch():
            return _status(code_pb2.ABORTED, "ETAG_MISMATCH", str(error), {"resource": error.name})
        case PreconditionFailed():
            failure = _precondition(error.reason, str(error))
            return _status(
                code_pb2.FAILED_PRECONDITION, error.reason, str(error), error.metadata, failure
            )
        case Overloaded():
            return _status(code_pb2.UNAVAILABLE, "OVERLOADED", str(error), {}, _retry(0.5))
        case Undecodable():
            return _status(code_pb2.INVALID_ARGUMENT, "UNDECODABLE_REQUEST", str(error), {})
        case Unauthenticated():
            return _status(code_pb2.UNAUTHENTICATED, "UNAUTHENTICATED", str(error), {})
        case ScopeMissing():
            metadata = {"scope": error.scope}
            return _status(code_pb2.PERMISSION_DENIED, "SCOPE_MISSING", str(error), metadata)
        case Unavailable():
            return _status(
                code_pb2.UNAVAILABLE,
                error.reason,
                str(error),
                error.metadata,
                _retry(error.retry_after),
            )
        case OutOfRange():
            # A cursor's answer carries no head: one tenant's cursor must not tell another's
            # activity. A cursor the caller gave is named as the field.
            details = (
                (_bad_request((FieldViolation(error.field, error.field_problem),)),)
                if error.field
                else ()
            )
            return _status(
                code_pb2.OUT_OF_RANGE, error.reason, str(error), error.metadata, *details
            )
    log.exception("unexpected error", exc_info=error)
    return _status(code_pb2.INTERNAL, "INTERNAL", "internal error", {})


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> NoReturn:
    await context.abort_with_status(rpc_status.to_status(status_of(error)))
    raise AssertionError("abort_with_status returns only by raising")  # pragma: no cover


class Guarded(Protocol):
    """A servicer whose methods are checked: by this authenticator, for this scope."""

    authenticator: Authenticator
    scope: str


def unary(
    method: Callable[..., Awaitable[R]],
) -> Callable[..., Awaitable[R]]:
    """Authenticate the call, refuse NUL characters, and map every error a unary servicer
    method raises to its status."""

    @functools.wraps(method)
    async def wrapper(
        self: Guarded, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> R:
        try:
            self.authenticator.require(context.invocation_metadata(), self.scope)
            text_fields_clean(request)
            return await method(self, request, context)
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):
                raise
            await abort(context, error)

    return wrapper


@asynccontextmanager
async def errors_as_status(context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[None]:
    """For server streams: map what the stream raises, wherever between its messages. Used
    inside the generator, so nothing wraps the path of each message."""
    try:
        yield
    except grpc.aio.AbortError:
        raise
    except Exception as error:
        await abort(context, error)
