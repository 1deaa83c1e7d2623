"""The service's errors, as the API maps them (api/errors.py), raised anywhere below it.

Each layer keeps its own errors (the store's `StoreUnavailable`, the exchange port's
`TransientError` and `OrderRejected`, a watch's `HistoryPruned`) and derives them from these
few kinds, so the one mapping to gRPC statuses knows the kinds and nothing of the layers.
The core's own errors (`domain.errors`: an invalid spec, an action its state refuses) stay
in the core, which imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping


class NotFound(Exception):
    """No such resource for this caller (another tenant's resource answers the same)."""

    def __init__(self, resource: str, name: str) -> None:
        super().__init__(f"{resource} {name!r} not found")
        self.resource = resource
        self.name = name


class AlreadyExists(Exception):
    """A resource of this caller already has the name the request gives the new one."""

    def __init__(self, resource: str, name: str) -> None:
        super().__init__(f"{resource} {name!r} already exists")
        self.resource = resource
        self.name = name


class EtagMismatch(Exception):
    """The caller's etag is not the resource's current one: it changed since it was read."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} changed since it was read (etag mismatch)")
        self.name = name


class PreconditionFailed(Exception):
    """The request is valid but the world is not ready for it (no market price yet, the
    venue refused, the account has live trades); `reason` is a stable code."""

    def __init__(
        self, reason: str, message: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata = dict(metadata or {})


class Unavailable(Exception):
    """A dependency cannot serve now (the venue, the database, the server is stopping):
    retry after `retry_after` seconds. `reason` says which."""

    reason = "UNAVAILABLE"

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        if reason:
            self.reason = reason
        self.metadata = dict(metadata or {})


class NotLeader(Unavailable):
    """Replicas with leases: this one does not hold the lease of the caller's shard (it is
    held elsewhere, or being taken over), so it acts on none of its trades; another replica
    serves."""

    reason = "NOT_LEADER"

    def __init__(self) -> None:
        super().__init__("this replica does not run these trades now; another one serves", 1.0)


class OutOfRange(Exception):
    """A cursor the service cannot honour (pruned, or beyond the head); `field` names the
    request's field that gave it, with what is wrong with it, when that is the point."""

    def __init__(
        self,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
        *,
        field: str = "",
        field_problem: str = "",
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.field = field
        self.field_problem = field_problem
