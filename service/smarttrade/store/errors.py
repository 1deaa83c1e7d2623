"""The store's own errors: what a unit of work raises instead of a driver's error.

Nothing above the store sees SQLAlchemy's or asyncpg's exceptions, nor their messages (which
quote the SQL): an unreachable database is `StoreUnavailable` (the API's UNAVAILABLE, with a
message of its own), a request id taken first by another call is `AlreadyClaimed`, a trade
whose version moved on under the writer is `ConcurrentUpdate`. Any other driver error is a
bug of ours, and stays what it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.exc import DBAPIError

from smarttrade.errors import NotLeader, Unavailable

# SQLSTATE classes that say the database cannot serve now, not that it refused a statement:
# connection exception, insufficient resources (too many connections, disk full), operator
# intervention (shutting down, not accepting connections yet, a cancelled statement).
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")


class StoreUnavailable(Unavailable):
    """The database could not be reached or dropped the connection. Nothing was written,
    unless the commit itself went through and only its answer was lost (a writer that
    retries finds its version already there)."""

    reason = "STORE_UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__(
            "the database is unavailable; nothing was half-written, the call can be retried",
            1.0,
        )


class AlreadyClaimed(Exception):
    """Another call with this request id got there first; nothing of this one was written."""


class ConcurrentUpdate(Exception):
    """The trade changed under the writer (another writer, or its own commit whose answer
    was lost): nothing was written; the writer reloads and decides again."""


class LeaseLost(NotLeader):
    """A write carried a fencing number that no longer holds its shard's lease (lapsed, or
    taken by another replica): nothing was written."""


def database_unavailable(error: BaseException) -> bool:
    """Whether an error means the database could not be reached or dropped the connection
    (try again later), rather than that it refused a statement."""
    if isinstance(error, StoreUnavailable | OSError | asyncpg.InterfaceError | TimeoutError):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig if error.orig is not None else error
    sqlstate = getattr(error, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES


@asynccontextmanager
async def driver_errors() -> AsyncIterator[None]:
    """Turn an unreachable database into `StoreUnavailable` (the driver's message, with its
    SQL, stays in the chained cause for the log)."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as error:
        if database_unavailable(error):
            raise StoreUnavailable() from error
        raise
