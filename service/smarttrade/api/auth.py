"""Authentication: a bearer token in the `authorization` metadata names the caller's tenant.

Tokens are kept only as SHA-256 hashes. Each maps to a tenant and scopes (`trade`, and
`sandbox` for PaperMarketService). The interceptor wraps every handler (except health and
reflection) so the check runs in the handler's own context, where the principal is set for
the servicer to read with `principal()`.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

PUBLIC_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
SANDBOX_SERVICE = "/smarttrade.v1.PaperMarketService/"
SCOPES = frozenset({"trade", "sandbox"})


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    scopes: frozenset[str]


_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def principal() -> Principal:
    return _principal.get()


def tenant() -> str:
    return _principal.get().tenant_id


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(self, principals_by_hash: dict[str, Principal]) -> None:
        self._by_hash = principals_by_hash

    @classmethod
    def of_hashes(cls, entries: Iterable[tuple[str, str, frozenset[str]]]) -> Authenticator:
        """From (tenant, SHA-256 hex of the token, scopes) entries."""
        return cls({digest: Principal(t, scopes) for t, digest, scopes in entries})

    def resolve(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal | None:
        for key, value in metadata or ():
            if key.lower() != "authorization":
                continue
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token:
                return None
            digest = token_hash(token.strip())
            for known, found in self._by_hash.items():
                if hmac.compare_digest(known, digest):
                    return found
            return None
        return None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or method.startswith(PUBLIC_SERVICES):
            return handler
        needed = "sandbox" if method.startswith(SANDBOX_SERVICE) else "trade"
        check = self._checker(needed)
        # grpc's stubs type handlers as the synchronous API; under grpc.aio they are async.
        if handler.unary_unary is not None:
            inner: Any = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                await check(context)
                return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner_stream: Any = handler.unary_stream

            async def stream(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                await check(context)
                async for item in inner_stream(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _checker(
        self, scope: str
    ) -> Callable[[grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]:
        async def check(context: grpc.aio.ServicerContext[Any, Any]) -> None:
            found = self._authenticator.resolve(context.invocation_metadata())
            if found is None:
                await _refuse(
                    context,
                    code_pb2.UNAUTHENTICATED,
                    "UNAUTHENTICATED",
                    "a valid bearer token is required in the authorization metadata",
                )
            assert found is not None
            if scope not in found.scopes:
                await _refuse(
                    context,
                    code_pb2.PERMISSION_DENIED,
                    "SCOPE_MISSING",
                    f"the token lacks the {scope!r} scope",
                )
            _principal.set(found)

        return check


async def _refuse(
    context: grpc.aio.ServicerContext[Any, Any], code: int, reason: str, message: str
) -> None:
    """Refusals carry an ErrorInfo like every other error of the service."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain="smarttrade.v1")
    packed = any_pb2.Any()
    packed.Pack(info)
    status = status_pb2.Status(code=code, message=message, details=[packed])
    await context.abort_with_status(rpc_status.to_status(status))
