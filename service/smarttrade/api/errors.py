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
from smarttrade.domain.errors import ActionNotAllowed, InvalidSpec
from smarttrade.errors import EtagMismatch, NotFound, OutOfRange, PreconditionFailed, Unavailable

log = logging.getLogger(__name__)

DOMAIN = "smarttrade.v1"
# Status details travel in trailers, which clients cap at 8 KiB: a request with hundreds of
# bad fields gets the first ones, and says how many more there are.
MAX_VIOLATIONS = 20
MAX_MESSAGE = 400

R = TypeVar("R")


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _status(
    code: int, reason: str, message: str, metadata: dict[str, str], *details: Any
) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return status_pb2.Status(
        code=code, message=message, details=[_pack(info), *(_pack(d) for d in details)]
    )


def _retry(seconds: float | None) -> error_details_pb2.RetryInfo:
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(int((seconds or 1.0) * 1000))
    return error_details_pb2.RetryInfo(retry_delay=delay)


def status_of(error: Exception) -> status_pb2.Status:
    match error:
        case InvalidSpec():
            shown = list(error.violations[:MAX_VIOLATIONS])
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in shown
                ]
            )
            hidden = len(error.violations) - len(shown)
            if hidden:
                bad.field_violations.add(field="", description=f"and {hidden} more")
            fields = ",".join(dict.fromkeys(v.field for v in shown))[:MAX_MESSAGE]
            return _status(
                code_pb2.INVALID_ARGUMENT, "INVALID_FIELD", str(error), {"fields": fields}, bad
            )
        case ActionNotAllowed():
            state, action = str(error.state.value), str(error.action.value)
            failure = error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type="STATE", subject=f"{action} in {state}", description=str(error)
                    )
                ]
            )
            metadata = {"state": state, "action": action}
            return _status(
                code_pb2.FAILED_PRECONDITION, "ACTION_NOT_ALLOWED", str(error), metadata, failure
            )
        case NotFound():
            return _status(code_pb2.NOT_FOUND, "NOT_FOUND", str(error), {"resource": error.name})
        case EtagMismatch():
            return _status(code_pb2.ABORTED, "ETAG_MISMATCH", str(error), {"resource": error.name})
        case PreconditionFailed():
            failure = error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=error.reason, description=str(error)
                    )
                ]
            )
            return _status(
                code_pb2.FAILED_PRECONDITION, error.reason, str(error), error.metadata, failure
            )
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
            return _status(code_pb2.OUT_OF_RANGE, error.reason, str(error), error.metadata)
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
