"""The leader lease: replicas on one database, one acting at a time (SMARTTRADE_LEASE_SECONDS).

The lease is one row (revision 0008). A replica takes it when it is free (never taken, or
expired by the database's clock), which raises its fencing number; renews it well before it
expires; and gives it up at a graceful stop, so a standby takes over at once. Every write of a
replica running with leases carries its fencing number and is written only while that number
holds an unexpired lease (store/one_statement.py): after a pause, a partition or a presumed
death, its commits are refused, and an order is sent only after its intent was committed.

Besides, a holder stops sending orders by its own clock: `holds()` is false from the moment
the lease may have expired, counted from when the last renewal was *sent* (so never later
than the database's expiry), whatever the database says later.
"""

from __future__ import annotations

import time

from smarttrade.store.database import Database
from smarttrade.store.errors import driver_errors

_ACQUIRE = """
INSERT INTO leader_lease AS l (id, fence, holder, address, expires_at)
VALUES (1, 1, $1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (id) DO UPDATE SET fence = l.fence + 1, holder = EXCLUDED.holder,
    address = EXCLUDED.address, expires_at = EXCLUDED.expires_at
WHERE l.expires_at <= clock_timestamp()
RETURNING fence
"""
_RENEW = """
UPDATE leader_lease SET expires_at = clock_timestamp() + make_interval(secs => $2)
WHERE id = 1 AND fence = $1 AND expires_at > clock_timestamp()
RETURNING fence
"""
_RELEASE = "UPDATE leader_lease SET expires_at = clock_timestamp() WHERE id = 1 AND fence = $1"
_HOLDER = "SELECT holder, address, fence FROM leader_lease WHERE expires_at > clock_timestamp()"

# No fencing number is 0: writes carrying it (a replica holding nothing) are all refused.
NONE_HELD = 0


class LeaderLease:
    def __init__(self, database: Database, holder: str, address: str, seconds: float) -> None:
        self._database = database
        self.holder = holder
        self.address = address
        self.seconds = seconds
        self.fence = NONE_HELD
        self._until = 0.0  # monotonic: this replica may act until then

    def holds(self) -> bool:
        return self.fence != NONE_HELD and time.monotonic() < self._until

    async def acquire(self) -> bool:
        """Take the lease if it is free; whether this replica holds it now."""
        sent = time.monotonic()
        fence = await self._fetch(_ACQUIRE, self.holder, self.address, self.seconds)
        if fence is not None:
            self.fence, self._until = fence, sent + self.seconds
        return fence is not None

    async def renew(self) -> bool:
        """Extend the lease; False once it is lost (expired, or taken by another)."""
        if self.fence == NONE_HELD:
            return False
        sent = time.monotonic()
        if await self._fetch(_RENEW, self.fence, self.seconds) is None:
            self.fence = NONE_HELD
            return False
        self._until = sent + self.seconds
        return True

    async def release(self) -> None:
        """Give the lease up (a graceful stop): a standby may take it at once."""
        fence, self.fence = self.fence, NONE_HELD
        if fence != NONE_HELD:
            async with driver_errors(), self._database.pool.acquire() as connection:
                await connection.execute(_RELEASE, fence)

    async def holder_now(self) -> tuple[str, str, int] | None:
        """Who holds an unexpired lease: (holder, address, fence), or None."""
        async with driver_errors(), self._database.pool.acquire() as connection:
            row = await connection.fetchrow(_HOLDER)
        return (row["holder"], row["address"], row["fence"]) if row is not None else None

    async def _fetch(self, sql: str, *arguments: object) -> int | None:
        async with driver_errors(), self._database.pool.acquire() as connection:
            value = await connection.fetchval(sql, *arguments)
        return int(value) if value is not None else None
