"""Shard leases: the live trades shared between replicas on one database
(SMARTTRADE_LEASE_SECONDS).

The tenants are split into `SHARDS` shards by a hash of their id. A replica runs the trades,
the paper book and the event sequence of the tenants whose shards it holds, one lease row
per shard (revision 0010). It takes a shard when the shard is free (never taken, or expired
by the database's clock), which gives the holding a new fencing number (one sequence for
every shard: a number names one holding of one shard); renews every shard it holds in one
statement, well before they expire; and gives shards up when it stops or holds more than
its fair share, so another replica takes them at once. Every write of a replica running
with leases carries the fencing number of its tenant's shard and is written only while that
holding has not expired (store/one_statement.py): after a pause, a partition or a presumed
death, its commits are refused, and an order is sent only after its intent was committed.

Besides, a holder stops sending orders for a shard by its own clock: `holds(shard)` is false
from the moment the lease may have expired, counted from when the last renewal was *sent*
(so never later than the database's expiry), whatever the database says later, and from the
moment it starts giving the shard up.

The replicas alive say so in `replicas` with a heartbeat sent with every renewal: their
count sets each one's fair share (engine/ownership.py).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from smarttrade.store.database import Database
from smarttrade.store.errors import driver_errors

# A fixed number of shards: a tenant's shard must be the same on every replica. Twelve
# spread evenly over 1, 2, 3, 4 and 6 replicas.
SHARDS = 12

_ACQUIRE = """
INSERT INTO shard_leases AS l (shard, fence, holder, address, expires_at)
VALUES ($1, nextval('lease_fences'), $2, $3, clock_timestamp() + make_interval(secs => $4))
ON CONFLICT (shard) DO UPDATE SET fence = EXCLUDED.fence, holder = EXCLUDED.holder,
    address = EXCLUDED.address, expires_at = EXCLUDED.expires_at
WHERE l.expires_at <= clock_timestamp()
RETURNING fence
"""
_RENEW = """
UPDATE shard_leases SET expires_at = clock_timestamp() + make_interval(secs => $2)
WHERE fence = ANY($1::bigint[]) AND expires_at > clock_timestamp()
RETURNING shard
"""
_HEARTBEAT = """
INSERT INTO replicas (id, address, expires_at)
VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, expires_at = EXCLUDED.expires_at
"""
_RELEASE = "UPDATE shard_leases SET expires_at = clock_timestamp() WHERE fence = ANY($1::bigint[])"
_LEAVE = "DELETE FROM replicas WHERE id = $1"
_OWNERS = (
    "SELECT shard, holder, address, fence FROM shard_leases WHERE expires_at > clock_timestamp()"
)
_MEMBERS = "SELECT count(*) FROM replicas WHERE expires_at > clock_timestamp()"

# No fencing number is 0: writes carrying it (a tenant whose shard is not held) are refused.
NONE_HELD = 0


def shard_of(tenant_id: str) -> int:
    """The shard of a tenant: the same on every replica, whatever its Python."""
    return int.from_bytes(hashlib.sha256(tenant_id.encode()).digest()[:8], "big") % SHARDS


@dataclass(frozen=True, slots=True)
class Owner:
    holder: str
    address: str
    fence: int


@dataclass(frozen=True, slots=True)
class FleetView:
    members: int  # replicas alive (with this one)
    owners: dict[int, Owner]  # the shards held now, by whom


class ShardLeases:
    def __init__(self, database: Database, holder: str, address: str, seconds: float) -> None:
        self._database = database
        self.holder = holder
        self.address = address
        self.seconds = seconds
        self._held: dict[int, tuple[int, float]] = {}  # shard: (fence, monotonic limit)
        self._leaving: set[int] = set()

    # ---- what this replica may do now ----------------------------------------------------

    def held(self) -> list[int]:
        return sorted(self._held)

    def holds(self, shard: int) -> bool:
        """Whether this replica may send orders for the shard's trades now (its own clock)."""
        entry = self._held.get(shard)
        return entry is not None and shard not in self._leaving and time.monotonic() < entry[1]

    def fence(self, shard: int) -> int:
        """The fencing number of this replica's holding of a shard (NONE_HELD: none)."""
        entry = self._held.get(shard)
        return entry[0] if entry is not None else NONE_HELD

    def fence_of(self, tenant_id: str) -> int:
        """The fencing number the writes of a tenant carry (NONE_HELD: refused)."""
        return self.fence(shard_of(tenant_id))

    def leaving(self, shard: int) -> None:
        """Giving the shard up: no order is sent for it any more; its writes still count."""
        self._leaving.add(shard)

    # ---- the database --------------------------------------------------------------------

    async def acquire(self, shard: int) -> bool:
        """Take a shard if it is free; whether this replica holds it now."""
        sent = time.monotonic()
        fence = await self._fetchval(_ACQUIRE, shard, self.holder, self.address, self.seconds)
        if fence is None:
            return False
        self._held[shard] = (fence, sent + self.seconds)
        self._leaving.discard(shard)
        return True

    async def renew(self) -> list[int]:
        """Say this replica is alive and extend every shard it holds; the shards lost
        (expired, or taken by another), which it no longer holds."""
        sent = time.monotonic()
        fences = {fence: shard for shard, (fence, _) in self._held.items()}
        async with driver_errors(), self._database.pool.acquire() as connection:
            await connection.execute(_HEARTBEAT, self.holder, self.address, self.seconds)
            rows = await connection.fetch(_RENEW, list(fences), self.seconds) if fences else []
        kept = {row["shard"] for row in rows}
        lost = []
        for fence, shard in fences.items():
            if self._held.get(shard, (None,))[0] != fence:
                continue  # given up or taken again meanwhile
            if shard in kept:
                self._held[shard] = (fence, sent + self.seconds)
            else:
                self.forget(shard)
                lost.append(shard)
        return sorted(lost)

    def forget(self, shard: int) -> None:
        """This replica no longer holds the shard: its writes are refused from now on."""
        self._held.pop(shard, None)
        self._leaving.discard(shard)

    async def release(self, shards: list[int]) -> None:
        """Give shards up: another replica may take them at once."""
        fences = [self._held[shard][0] for shard in shards if shard in self._held]
        for shard in shards:
            self.forget(shard)
        if fences:
            async with driver_errors(), self._database.pool.acquire() as connection:
                await connection.execute(_RELEASE, fences)

    async def leave(self) -> None:
        """A graceful stop: every shard given up, and this replica no longer counted."""
        await self.release(self.held())
        async with driver_errors(), self._database.pool.acquire() as connection:
            await connection.execute(_LEAVE, self.holder)

    async def view(self) -> FleetView:
        """How many replicas are alive, and who holds which shard now."""
        async with driver_errors(), self._database.pool.acquire() as connection:
            members = await connection.fetchval(_MEMBERS)
            rows = await connection.fetch(_OWNERS)
        owners = {row["shard"]: Owner(row["holder"], row["address"], row["fence"]) for row in rows}
        return FleetView(max(int(members), 1), owners)

    async def _fetchval(self, sql: str, *arguments: object) -> int | None:
        async with driver_errors(), self._database.pool.acquire() as connection:
            value = await connection.fetchval(sql, *arguments)
        return int(value) if value is not None else None
