"""Errors of the application layer, next to the core's own (domain/errors.py)."""

from __future__ import annotations


class NotFound(Exception):
    """No such resource for this caller (another tenant's resource answers the same)."""

    def __init__(self, resource: str, name: str) -> None:
        super().__init__(f"{resource} {name!r} not found")
        self.resource = resource
        self.name = name


class EtagMismatch(Exception):
    """The caller's etag is not the resource's current one: it changed since it was read."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} changed since it was read (etag mismatch)")
        self.name = name


class PreconditionFailed(Exception):
    """The request is valid but the world is not ready for it (e.g. no market price yet)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Unavailable(Exception):
    """A dependency (the exchange) is temporarily unreachable; retry after `retry_after`."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
