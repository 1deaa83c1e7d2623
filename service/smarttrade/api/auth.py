"""Authentication: a bearer token in the `authorization` metadata names the caller's tenant.

Tokens are kept only as SHA-256 hashes. Each maps to a tenant and scopes (`trade`, and
`sandbox` for PaperMarketService). Every servicer method checks the call first (the `unary`
wrapper and `errors_as_status` in `api/errors.py`; health and reflection are open), in the
handler's own context, where the principal is set for the servicer to read with
`principal()`. A grpc.aio server interceptor could only do this by wrapping each handler
the same way, after one more awaited step per call: the wrapper is that interceptor,
without the extra step.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

SCOPES = frozenset({"trade", "sandbox"})


class Unauthenticated(Exception):
    def __init__(self) -> None:
        super().__init__("a valid bearer token is required in the authorization metadata")


class ScopeMissing(Exception):
    def __init__(self, scope: str) -> None:
        super().__init__(f"the token lacks the {scope!r} scope")
        self.scope = scope


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    scopes: frozenset[str]


_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal")


def principal() -> Principal:
    return _principal.get()


def tenant() -> str:
    return _principal.get().tenant_id


def tenant_if_known() -> str | None:
    """The caller's tenant, in a call that authenticated one (None elsewhere)."""
    found = _principal.get(None)
    return found.tenant_id if found is not None else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(self, principals_by_hash: dict[str, Principal]) -> None:
        self._by_hash = principals_by_hash

    @classmethod
    def of_hashes(cls, entries: Iterable[tuple[str, str, frozenset[str]]]) -> Authenticator:
        """From (tenant, SHA-256 hex of the token, scopes) entries."""
        return cls({digest: Principal(t, scopes) for t, digest, scopes in entries})

    def require(self, metadata: Iterable[tuple[str, str | bytes]] | None, scope: str) -> Principal:
        """The caller, or `Unauthenticated` / `ScopeMissing`; also sets it for `tenant()`."""
        found = self.resolve(metadata)
        if found is None:
            raise Unauthenticated()
        if scope not in found.scopes:
            raise ScopeMissing(scope)
        _principal.set(found)
        return found

    def resolve(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal | None:
        for key, value in metadata or ():
            if key == "authorization":  # gRPC metadata keys are lowercase (HTTP/2 names)
                return self._principal_of(value)
        return None

    def _principal_of(self, header: str | bytes) -> Principal | None:
        text = header.decode() if isinstance(header, bytes) else header
        scheme, _, token = text.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        # Looked up by the digest: what the lookup's timing could reveal is how much of a
        # stored SHA-256 a guess matches, which does not help to find a token.
        return self._by_hash.get(token_hash(token.strip()))
