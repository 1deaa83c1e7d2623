"""Failpoints for store-outage tests: cut the line to the database at the paper venue's
write, so the outage starts at a moment the test chooses, not by timing luck."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from smarttrade.exchange.paper import PaperChanges
from tests.support.service import Service
from tests.support.tcp_proxy import TcpProxy

Written = Callable[[Sequence[PaperChanges]], bool]


def cut_at_paper_write(
    service: Service, proxy: TcpProxy, written: Written = lambda _: True, *, durable: bool
) -> asyncio.Event:
    """Cut the line at the paper venue's next write of changes matching `written`: once it
    is durable (`durable`: the venue has acted, the trade's write that follows finds the
    store gone), or just before it (the book changed, its write fails). Returns an event set
    once the line is cut; later writes go through untouched."""
    storage: Any = service.running.engine.venues.paper._storage
    save = storage.save
    cut = asyncio.Event()

    async def save_with_a_cut(changes: Sequence[PaperChanges]) -> None:
        matching = not cut.is_set() and written(changes)
        if matching and not durable:
            await proxy.cut()
            cut.set()
        await save(changes)
        if matching and durable:
            await proxy.cut()
            cut.set()

    storage.save = save_with_a_cut
    return cut


def priced(price: str) -> Written:
    """A write of a tick at `price`."""
    return lambda changes: any(
        p == Decimal(price) for change in changes for p, _ in change.prices.values()
    )


def ordered(leg: str) -> Written:
    """A write of an order of the leg `leg` (client order ids are trade-leg-generation)."""
    return lambda changes: any(
        f"-{leg}-" in order.client_order_id for change in changes for order in change.orders
    )
