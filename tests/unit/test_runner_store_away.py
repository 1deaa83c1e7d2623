"""A trade's writer while its store refuses commits, with no probe watching the store: it
keeps what it could not commit, sends nothing it has not committed, and catches up on its
own (backoff capped at a quarter of a second) once the store answers: at the latest price,
with the venue's answers applied exactly once.

Hand-written fakes: a store whose commits fail while it is `down`, and a venue that is the
paper matching book answering at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import pytest

from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import CloseAtMarket, Decision, PriceTicked
from smarttrade.domain.model import CloseReason, SmartTrade
from smarttrade.domain.values import OrderStatus, Side
from smarttrade.engine.executor import Executor, RetryPolicy
from smarttrade.engine.runner import TradeRunner
from smarttrade.exchange.paper_book import PaperBook
from smarttrade.exchange.port import Capabilities, OrderReport, OrderRequest
from smarttrade.store.errors import StoreUnavailable
from tests.unit.builders import market_entry, step, stop, trade_spec
from tests.unit.driver import ACCOUNT, Run

BACK_WITHIN = 1.0


@dataclass
class FlakyStore:
    """Commits fail while `down`; `fail_after` n: it goes down once n decisions are in."""

    down: bool = False
    fail_after: int | None = None
    decisions: list[Decision] = field(default_factory=list)
    done: list[tuple[str, str]] = field(default_factory=list)
    refused: int = 0
    first: SmartTrade | None = None  # the trade as stored before any decision here
    lands_anyway: bool = False  # while down, a commit still lands; only its answer is lost

    def __call__(self) -> FlakyUnitOfWork:
        return FlakyUnitOfWork(self)


class FlakyUnitOfWork:
    def __init__(self, store: FlakyStore) -> None:
        self._store = store
        self._staged: list[tuple[Decision | None, Sequence[tuple[str, str]]]] = []
        self.trades = self

    async def __aenter__(self) -> FlakyUnitOfWork:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def record(
        self,
        decision: Decision | None,
        before: SmartTrade | None,
        done: Sequence[tuple[str, str]] = (),
        **request: Any,
    ) -> None:
        self._staged.append((decision, done))

    async def get(self, trade_id: str) -> SmartTrade | None:
        self._refuse_while_down()
        decisions = self._store.decisions
        return decisions[-1].trade if decisions else self._store.first

    async def pending_intents_of(self, trade_id: str) -> list[Any]:
        decisions = self._store.decisions
        return list(decisions[-1].intents) if decisions else []

    async def forget_ahead(self, trade_id: str) -> None:
        self._refuse_while_down()

    async def write_ahead(self, decision: Decision, before: SmartTrade, *trigger: Any) -> None:
        self._refuse_while_down()  # kept durable ahead: written by the commit that follows

    async def commit(self) -> None:
        store = self._store
        if store.down and store.lands_anyway:
            store.decisions.extend(d for d, _ in self._staged if d is not None and d.persist)
        self._refuse_while_down()
        for decision, done in self._staged:
            if decision is not None and decision.persist:
                store.decisions.append(decision)
            store.done.extend(done)

    def _refuse_while_down(self) -> None:
        store = self._store
        if store.fail_after is not None and len(store.decisions) >= store.fail_after:
            store.down, store.fail_after = True, None
        if store.down:
            store.refused += 1
            raise StoreUnavailable()


class BookVenue:
    """The paper book as a venue, answering at once."""

    def __init__(self, book: PaperBook) -> None:
        self.book = book
        self.placed: list[OrderRequest] = []

    @property
    def exchange_id(self) -> str:
        return "paper"

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    async def create_order(self, request: OrderRequest) -> OrderReport:
        self.placed.append(request)
        return self.book.place(ACCOUNT, request, datetime.now(UTC))

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderReport:
        return self.book.cancel(ACCOUNT, client_order_id, datetime.now(UTC))

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport:
        return self.book.order(ACCOUNT, client_order_id)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the runner should not call {name}")


@dataclass
class Market:
    """The venue's latest price, as the engine tells the runner."""

    price: Decimal
    book: PaperBook

    def move(self, price: str) -> PriceTicked:
        self.price = Decimal(price)
        self.book.tick("BTC/USDT", self.price, datetime.now(UTC))
        return PriceTicked(self.price, datetime.now(UTC))


def running(store: FlakyStore) -> tuple[TradeRunner, BookVenue, Market]:
    """A BUY of 0.1 BTC bought at 50,000: a take profit at 52,000 resting, a stop at 47,500."""
    run = Run.start(
        trade_spec(Side.BUY, market_entry(), (step("100", price="52000"),), stop(price="47500")),
        "50000",
    )
    assert run.trade.state is TradeState.ACTIVE
    venue = BookVenue(run.book)
    market = Market(Decimal(50000), run.book)
    runner = TradeRunner(
        run.trade,
        exchange=venue,
        unit_of_work=store,  # type: ignore[arg-type]  # the calls a runner makes
        executor=Executor(RetryPolicy()),
        clock=lambda: datetime.now(UTC),
        on_change=lambda _: None,
        latest_price=lambda: market.price,
    )
    return runner, venue, market


async def until(runner: TradeRunner, check: Any, seconds: float = BACK_WITHIN) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not check(runner.trade):
        assert loop.time() - start < seconds, f"not within {seconds} s: {runner.trade.state}"
        await asyncio.sleep(0.005)
    return loop.time() - start


def stop_fills(trade: SmartTrade) -> list[tuple[Decimal, Decimal]]:
    leg = trade.stop_loss_leg
    assert leg is not None
    return [(fill.price, fill.amount) for order in leg.orders for fill in order.fills]


def is_closed(trade: SmartTrade) -> bool:
    return trade.state is TradeState.CLOSED


async def test_a_tick_that_could_not_be_committed_is_decided_at_the_latest_price_once_back() -> (
    None
):
    store = FlakyStore()
    runner, venue, market = running(store)
    store.down = True

    await runner.submit(market.move("47000"))  # crosses the stop: nothing can be committed
    assert runner.behind
    assert venue.placed == []  # persist, then act
    market.move("46000")  # the runner is not told: the engine only knows the latest price
    store.down = False
    late = await until(runner, is_closed)

    assert late < BACK_WITHIN
    assert runner.trade.close_reason is CloseReason.STOP_LOSS
    assert stop_fills(runner.trade) == [(Decimal(46000), Decimal("0.0999"))]
    assert store.decisions[0].trade.last_price == Decimal(46000)  # not the stale 47,000
    assert not runner.behind


async def test_the_venues_answer_that_could_not_be_committed_is_applied_once_it_is_back() -> None:
    store = FlakyStore()
    runner, venue, market = running(store)
    # The stop's decision commits, and the take profit's cancel; the sale's answer does not.
    store.fail_after = 2

    await runner.submit(market.move("47000"))
    assert runner.trade.state is TradeState.CLOSING
    assert [request.side for request in venue.placed] == [Side.SELL]
    assert runner.behind
    store.down = False
    late = await until(runner, is_closed)

    assert late < BACK_WITHIN
    assert runner.trade.close_reason is CloseReason.STOP_LOSS
    assert stop_fills(runner.trade) == [(Decimal(47000), Decimal("0.0999"))]
    assert len(venue.placed) == 1  # never sent again
    sold = venue.book.order(ACCOUNT, venue.placed[0].client_order_id)
    assert sold.status is OrderStatus.FILLED
    assert ("PLACE", sold.client_order_id) in store.done  # its intent completed in the store


async def test_an_action_the_store_refuses_is_refused_and_leaves_nothing_behind() -> None:
    store = FlakyStore()
    runner, venue, _ = running(store)
    before = runner.trade
    store.down = True

    with pytest.raises(StoreUnavailable):
        await runner.submit(CloseAtMarket(datetime.now(UTC)))

    assert runner.trade is before
    assert venue.placed == []
    # Whether its write reached the store is unknown: it reads the trade back once it answers.
    assert runner.behind
    store.first = before
    store.down = False
    await until(runner, lambda _: not runner.behind)
    assert runner.trade == before
    assert venue.placed == []


async def test_an_action_whose_write_landed_though_it_was_refused_is_carried_out_once_back() -> (
    None
):
    store = FlakyStore(down=True, lands_anyway=True)
    runner, venue, _ = running(store)
    executor = Executor(RetryPolicy(lookup_interval=0.01, unknown_grace=0.05))
    runner._executor = executor  # a short lookup window, for the test's sake

    with pytest.raises(StoreUnavailable):  # the line stalled: the answer never came
        await runner.submit(CloseAtMarket(datetime.now(UTC)))
    assert venue.placed == []
    landed = store.decisions[-1].trade
    assert landed.state is TradeState.CLOSING  # ... but the write got there
    store.down = False
    await until(runner, is_closed, seconds=3)

    assert runner.trade.close_reason is CloseReason.CLOSED_AT_MARKET
    assert [request.side for request in venue.placed] == [
        Side.SELL
    ]  # sent once, found missing first
