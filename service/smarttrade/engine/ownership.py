"""Which trades this replica runs: one engine per shard of the tenants it holds.

With one replica, one engine runs every trade. With replicas on one database (leases,
store/leases.py), the tenants are split into shards; a replica runs the trades, the paper
book and the event sequence of the tenants of the shards it holds, each shard in an engine of
its own, started through the same recovery as a start (crash-only: decisions written ahead,
pending intents looked up at the venue, reconciliation, then live prices) and stopped
without writing anything more when the shard goes elsewhere.

`Engines` is what the use cases see: each call goes to the engine that runs the trade or the
tenant it names. A call for a tenant whose shard this replica does not run now is
`NotLeader` (UNAVAILABLE, with a RetryInfo): the API forwards calls to the replica that holds
the caller's shard (api/forwarding.py), so this happens only while a shard changes hands.

`Ownership` keeps this replica's share (`run`, every quarter of the lease):
- it renews every shard it holds and says it is alive (one round trip, in its own task, so a
  long takeover never delays a renewal); a shard it lost (the database's clock expired it, or
  the database did not answer in time) is stopped at once, without writing;
- its fair share is the shards divided by the replicas alive, rounded up; holding more, it
  gives the rest up (its trades stop taking inputs and sending orders, what they are doing
  finishes, the paper book is written, then the lease is released: another replica takes it
  at once); holding less, it takes free shards (a dead replica's, once their leases lapsed;
  those given up) up to it;
- a graceful stop gives every shard up (`leave`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from smarttrade import metrics
from smarttrade.domain.account import ExchangeAccount
from smarttrade.domain.messages import Decision, Input, InputOf
from smarttrade.domain.model import SmartTrade
from smarttrade.engine.engine import Engine, cached_account
from smarttrade.engine.venues import Venues
from smarttrade.errors import NotFound, NotLeader
from smarttrade.failpoints import failpoint
from smarttrade.store.errors import StoreUnavailable
from smarttrade.store.leases import SHARDS, ShardLeases, shard_of
from smarttrade.store.requests import RequestRecord
from smarttrade.store.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

EVERY_TENANT = -1  # the key of the one engine of a replica without leases


def tenants_of(shard: int) -> Callable[[str], bool]:
    """Whether a tenant is of the shard."""
    return lambda tenant_id: shard_of(tenant_id) == shard


class Engines:
    """The engines this replica runs, by shard; what the use cases call."""

    def __init__(
        self, venues: Venues, unit_of_work: Callable[[], UnitOfWork], sharded: bool
    ) -> None:
        self.venues = venues
        self._unit_of_work = unit_of_work
        self._sharded = sharded
        self.accounts: dict[str, ExchangeAccount] = {}  # shared by the engines
        self.running_shards: dict[int, Engine] = {}

    def key_of(self, tenant_id: str) -> int:
        return shard_of(tenant_id) if self._sharded else EVERY_TENANT

    def runs(self, tenant_id: str) -> bool:
        """Whether this replica runs the tenant's trades now."""
        return self.key_of(tenant_id) in self.running_shards

    def of_tenant(self, tenant_id: str) -> Engine:
        engine = self.running_shards.get(self.key_of(tenant_id))
        if engine is None:
            raise NotLeader()
        return engine

    def _running(self, trade_id: str) -> Engine | None:
        for engine in self.running_shards.values():
            if engine.is_live(trade_id):
                return engine
        return None

    # ---- what the use cases call ---------------------------------------------------------

    async def account(self, account_id: str) -> ExchangeAccount:
        return await cached_account(self._unit_of_work, self.accounts, account_id)

    def remember_account(self, account: ExchangeAccount) -> None:
        self.accounts[account.id] = account

    def forget_accounts(self, tenants: Callable[[str], bool]) -> None:
        """Drop the cached accounts of the `tenants` (their shard ran elsewhere meanwhile,
        where they may have changed): they are read from the store again."""
        for account_id in [a.id for a in self.accounts.values() if tenants(a.tenant_id)]:
            del self.accounts[account_id]

    def is_live(self, trade_id: str) -> bool:
        return self._running(trade_id) is not None

    def tenant_of(self, trade_id: str) -> str | None:
        engine = self._running(trade_id)
        return engine.tenant_of(trade_id) if engine is not None else None

    def running(self, trade_id: str) -> SmartTrade | None:
        engine = self._running(trade_id)
        return engine.running(trade_id) if engine is not None else None

    def last_price(self, trade_id: str) -> Decimal | None:
        engine = self._running(trade_id)
        return engine.last_price(trade_id) if engine is not None else None

    async def launch(
        self,
        decision: Decision,
        request: RequestRecord | None = None,
        recorded: Callable[[], None] | None = None,
    ) -> SmartTrade:
        return await self.of_tenant(decision.trade.tenant_id).launch(decision, request, recorded)

    async def submit(
        self,
        trade_id: str,
        input: Input | InputOf,
        etag: str = "",
        request: RequestRecord | None = None,
    ) -> SmartTrade:
        engine = self._running(trade_id)
        if engine is None:
            raise NotFound("smart trade", f"smartTrades/{trade_id}")
        return await engine.submit(trade_id, input, etag, request)

    async def refresh(self, trade_id: str) -> SmartTrade | None:
        engine = self._running(trade_id)
        return await engine.refresh(trade_id) if engine is not None else None

    async def settled(self, trade_id: str) -> None:
        engine = self._running(trade_id)
        if engine is not None:
            await engine.settled(trade_id)

    async def apply_paper_price(
        self, tenant_id: str, symbol: str, price: Decimal, request: RequestRecord | None = None
    ) -> None:
        await self.of_tenant(tenant_id).apply_paper_price(tenant_id, symbol, price, request)

    # ---- the replica's -------------------------------------------------------------------

    @property
    def live_count(self) -> int:
        return sum(engine.live_count for engine in self.running_shards.values())

    async def on_store(self, available: bool) -> None:
        for engine in list(self.running_shards.values()):
            await engine.on_store(available)

    async def stop(self) -> None:
        for engine in list(self.running_shards.values()):
            await engine.stop()
        self.running_shards.clear()


class Ownership:
    """Keeps this replica's fair share of the shards, each run by an engine of its own."""

    def __init__(
        self,
        engines: Engines,
        leases: ShardLeases,
        make_engine: Callable[[Callable[[str], bool], Callable[[], bool]], Engine],
    ) -> None:
        """`make_engine(tenants, may_act)`: an engine for the `tenants`, sending orders only
        while `may_act()`."""
        self.engines = engines
        self.leases = leases
        self._make_engine = make_engine
        self._on_change: list[Callable[[], Any]] = []

    def on_change(self, callback: Callable[[], Any]) -> None:
        """Call `callback()` whenever the shards this replica runs change."""
        self._on_change.append(callback)

    def _changed(self) -> None:
        for callback in self._on_change:
            callback()

    async def keep(self) -> None:
        """Renew the leases three times per lease period; stop a shard lost at once."""
        seconds = self.leases.seconds
        while True:
            await asyncio.sleep(seconds / 3)
            try:  # a renewal that does not come back in time counts as the database away
                lost = await asyncio.wait_for(self.leases.renew(), seconds / 3)
            except Exception:
                log.warning("could not renew the leases", exc_info=True)
                lost = [s for s in self.leases.held() if not self.leases.holds(s)]
                for shard in lost:
                    self.leases.forget(shard)
            for shard in lost:
                log.error("lost shard %d: stopping its trades", shard)
                await self._stop(shard)

    async def balance(self) -> None:
        """Take or give up shards toward the fair share, four times per lease period (after
        saying this replica is alive, so that the others count it)."""
        with contextlib.suppress(StoreUnavailable):
            await self.leases.renew()
        while True:
            try:
                await self.balance_once()
            except (StoreUnavailable, TimeoutError):
                log.warning("could not balance the shards; the store does not answer")
            except Exception:
                log.exception("balancing the shards failed")
            await asyncio.sleep(self.leases.seconds / 4)

    async def balance_once(self) -> None:
        view = await asyncio.wait_for(self.leases.view(), self.leases.seconds)
        fair = math.ceil(SHARDS / view.members)
        held = self.leases.held()
        for shard in sorted(held, reverse=True)[: max(len(held) - fair, 0)]:
            await self.give_up(shard)
        free = [s for s in range(SHARDS) if s not in view.owners and s not in held]
        taken = []
        for shard in free[: max(fair - len(held), 0)]:
            if await asyncio.wait_for(self.leases.acquire(shard), self.leases.seconds):
                taken.append(shard)
        await asyncio.gather(*(self._start(shard) for shard in taken))  # recovered together

    async def _start(self, shard: int) -> None:
        log.info("took shard %d (fence %d): recovering its trades", shard, self.leases.fence(shard))
        failpoint(f"shard:{shard}:taken")
        metrics.recorder.lease_taken()

        engine = self._make_engine(tenants_of(shard), lambda: self.leases.holds(shard))
        self.engines.forget_accounts(tenants_of(shard))
        self.engines.venues.recheck_tenants(tenants_of(shard))
        try:
            await self.engines.venues.paper.start(tenants_of(shard))
            await engine.start()
        except Exception:  # a holder that cannot run the trades must not keep the shard
            log.exception("could not take over shard %d; giving it up", shard)
            await self._discard(engine, shard)
            await self.leases.release([shard])
            return
        if shard not in self.leases.held():  # lost while it recovered
            await self._discard(engine, shard)
            return
        self.engines.running_shards[shard] = engine
        self._changed()
        log.info("running shard %d: %d live trades", shard, engine.live_count)

    async def _stop(self, shard: int) -> None:
        """Stop a shard's trades (nothing more is sent; the shard is not held any more)."""
        engine = self.engines.running_shards.pop(shard, None)
        if engine is not None:
            self._changed()
            await self._discard(engine, shard)

    async def _discard(self, engine: Engine, shard: int) -> None:
        """Stop the engine of a shard and drop its tenants' paper books."""
        await engine.stop()
        await self.engines.venues.paper.forget(tenants_of(shard))

    async def give_up(self, shard: int) -> None:
        """Hand a shard over: its trades send nothing more and finish what they are doing,
        the paper book is written, then its lease is released."""
        log.info("giving shard %d up", shard)
        self.leases.leaving(shard)
        engine = self.engines.running_shards.pop(shard, None)
        if engine is not None:
            self._changed()
            await engine.stop()
            await engine.settle(self.leases.seconds / 3)
            try:
                await self.engines.venues.paper.flush()
            except Exception:
                log.warning("the paper book of shard %d could not be written", shard)
            await self.engines.venues.paper.forget(tenants_of(shard))
        failpoint(f"shard:{shard}:before-release")
        await self.leases.release([shard])

    async def leave(self) -> None:
        """A graceful stop: every shard handed over, and this replica no longer counted."""
        for shard in self.leases.held():
            self.leases.leaving(shard)
        engines = list(self.engines.running_shards.values())
        await self.engines.stop()
        for engine in engines:
            await engine.settle(self.leases.seconds / 3)
        try:
            await self.engines.venues.paper.flush()
        except Exception:
            log.warning("the paper books could not be written before leaving")
        await self.leases.leave()
