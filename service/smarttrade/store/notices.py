"""Event notices across replicas: PostgreSQL's LISTEN/NOTIFY on one channel.

The events themselves are rows, committed with their trade (unit_of_work); a notice only
says "tenant T's events are committed through sequence N", so every replica's bus can read
what it has not delivered yet from the store and hand it to its watchers. A notice is a
wake-up, not the record: one lost (the sender died between its commit and its notice, the
listening connection dropped) is made good by the next, or by the reading of every tenant's
head that the fan-out does every second (engine/fanout.py).

Notices are sent after the commit, on a connection of their own, coalesced: one per tenant
for everything committed while the previous notices were being sent, so a burst of commits
costs a few notices, and a commit never waits for one (NOTIFY inside the commit would
serialize every committing transaction on PostgreSQL's notification queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

CHANNEL = "smarttrade_events"
RECONNECT_SECONDS = 1.0

Heard = Callable[[str, int], None]  # (tenant id, committed through sequence)


def payload_of(tenant_id: str, sequence: int) -> str:
    return f"{sequence} {tenant_id}"  # a tenant id may hold spaces; a sequence does not


def parse_payload(payload: str) -> tuple[str, int] | None:
    sequence, _, tenant_id = payload.partition(" ")
    if not sequence.isascii() or not sequence.isdigit() or not tenant_id:
        return None
    return tenant_id, int(sequence)


class EventNotices:
    """Sends this replica's notices and hears every replica's, on one connection kept open
    (reconnected after a second when it drops)."""

    def __init__(self, dsn: str, heard: Heard, timeout: float = 5.0) -> None:
        """`dsn`: an asyncpg (postgresql://) URL of the store; `heard(tenant, sequence)` is
        called for every notice, this replica's own included."""
        self._dsn = dsn
        self._heard = heard
        self._timeout = timeout
        self._connection: asyncpg.Connection | None = None
        self._pending: dict[str, int] = {}  # by tenant: the sequence to announce
        self._wanted = asyncio.Event()

    def announce(self, tenant_id: str, sequence: int) -> None:
        """Tenant `tenant_id`'s events are committed through `sequence`: say so soon."""
        if sequence > self._pending.get(tenant_id, 0):
            self._pending[tenant_id] = sequence
            self._wanted.set()

    async def run(self) -> None:
        """Listen and send, until cancelled."""
        try:
            while True:
                try:
                    await self._connect()
                    await self._send_forever()
                except Exception as error:  # a dropped line, the database away: try again
                    log.warning("event notices: %r; reconnecting", error)
                await self._disconnect()
                await asyncio.sleep(RECONNECT_SECONDS)
        finally:
            await self._disconnect()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=self._timeout)
        await connection.add_listener(CHANNEL, self._on_notice)
        connection.add_termination_listener(lambda _: self._wanted.set())
        self._connection = connection
        if self._pending:
            self._wanted.set()

    async def _send_forever(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            connection = self._connection
            if connection is None or connection.is_closed():
                raise OSError("the notices' connection closed")
            pending, self._pending = self._pending, {}
            try:
                for tenant_id, sequence in pending.items():
                    await connection.execute(
                        "SELECT pg_notify($1, $2)",
                        CHANNEL,
                        payload_of(tenant_id, sequence),
                        timeout=self._timeout,
                    )
            except BaseException:
                for tenant_id, sequence in pending.items():  # sent again once reconnected
                    self.announce(tenant_id, sequence)
                raise

    def _on_notice(self, _connection: Any, _pid: int, _channel: str, payload: object) -> None:
        parsed = parse_payload(str(payload))
        if parsed is not None:
            self._heard(*parsed)

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)
