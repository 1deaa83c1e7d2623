"""Paper futures on the real PostgreSQL storage: an account's positions on the paper
perpetuals, and the leverage and margin mode of each symbol, are written with the rest of its
paper book before an operation answers, and a venue loaded from the store has them back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from smarttrade.domain.spec import MarginMode
from smarttrade.domain.values import OrderStatus, OrderType, Side
from smarttrade.exchange.paper import PaperExchange, PaperVenue
from smarttrade.exchange.paper_futures import Holding, Setting
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS
from smarttrade.exchange.port import OrderRequest, OutcomeUnknown
from smarttrade.store.unit_of_work import UnitOfWorkFactory
from tests.integration.test_paper_exchange import (
    ACCOUNT,
    TENANT,
    Clock,
    FlakyStorage,
    open_venue,
    paper_account,
)

D = Decimal
BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def market(symbol: str, side: Side, amount: str, label: str = "m") -> OrderRequest:
    return OrderRequest(f"{label}-{symbol}-{side.value}", symbol, side, OrderType.MARKET, D(amount))


async def prepared(venue: PaperVenue, symbol: str, leverage: str, margin_mode: MarginMode) -> None:
    """The account's settings on `symbol`, as the book's `prepare` leaves them (the next
    write of the account's position there carries them)."""
    venue.book(TENANT).prepare(ACCOUNT, symbol, D(leverage), margin_mode)


def state(venue: PaperVenue, symbol: str) -> tuple[Holding, Setting]:
    futures = venue.book(TENANT).futures
    return futures.holding(ACCOUNT, symbol), futures.setting(ACCOUNT, symbol)


async def reloaded(
    paper_store: UnitOfWorkFactory, clock: Clock
) -> tuple[PaperVenue, PaperExchange]:
    """A venue started afresh from the store, and the account's port on it."""
    venue = await open_venue(paper_store, clock)
    return venue, venue.exchange(TENANT, ACCOUNT, None)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def venue(paper_store: UnitOfWorkFactory, clock: Clock) -> PaperVenue:
    venue = await open_venue(paper_store, clock)
    await venue.set_price(TENANT, BTC, D("100000"))
    await venue.set_price(TENANT, ETH, D("3000"))
    return venue


async def test_a_long_isolated_and_a_short_cross_position_survive_a_restart_of_the_venue(
    venue: PaperVenue, paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    exchange = await paper_account(venue, USDT="10000")
    await prepared(venue, BTC, "10", MarginMode.ISOLATED)
    await prepared(venue, ETH, "20", MarginMode.CROSS)
    await exchange.create_order(market(BTC, Side.BUY, "0.01"))  # 1000 notional, 100 margin
    await exchange.create_order(market(ETH, Side.SELL, "0.5"))  # 1500 notional, 75 margin
    positions = [*await exchange.fetch_positions(BTC), *await exchange.fetch_positions(ETH)]
    balances = await exchange.fetch_balances()

    restarted, again = await reloaded(paper_store, clock)

    assert [*await again.fetch_positions(BTC), *await again.fetch_positions(ETH)] == positions
    assert [(p.side, p.units, p.margin_mode) for p in positions] == [
        (Side.BUY, D("0.01"), MarginMode.ISOLATED),
        (Side.SELL, D("0.5"), MarginMode.CROSS),
    ]
    assert state(restarted, BTC) == (
        Holding(Side.BUY, D("0.01"), D("100000"), D("100")),
        Setting(D(10), MarginMode.ISOLATED),
    )
    assert state(restarted, ETH) == (
        Holding(Side.SELL, D("0.5"), D("3000"), D("75")),
        Setting(D(20), MarginMode.CROSS),
    )
    assert await again.fetch_balances() == balances


async def test_a_closed_position_reloads_flat_with_the_settings_of_its_symbol(
    venue: PaperVenue, paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    exchange = await paper_account(venue, USDT="10000")
    await prepared(venue, ETH, "25", MarginMode.ISOLATED)
    await exchange.create_order(market(ETH, Side.BUY, "1", label="open"))
    await exchange.create_order(market(ETH, Side.SELL, "1", label="close"))
    balances = await exchange.fetch_balances()

    restarted, again = await reloaded(paper_store, clock)

    assert await again.fetch_positions(ETH) == []
    assert state(restarted, ETH) == (Holding(), Setting(D(25), MarginMode.ISOLATED))
    assert await again.fetch_balances() == balances


@pytest.mark.parametrize(
    ("margin_mode", "wallet", "crash"),
    [(MarginMode.ISOLATED, "10000", "90000"), (MarginMode.CROSS, "200", "80000")],
)
async def test_a_liquidation_reloads_as_the_flat_position_and_the_wallet_it_left(
    margin_mode: MarginMode,
    wallet: str,
    crash: str,
    venue: PaperVenue,
    paper_store: UnitOfWorkFactory,
    clock: Clock,
) -> None:
    exchange = await paper_account(venue, USDT=wallet)
    await prepared(venue, BTC, "10", margin_mode)
    await exchange.create_order(market(BTC, Side.BUY, "0.01"))  # 100 margin, 1 fee

    changed = await venue.set_price(TENANT, BTC, D(crash))
    left = await exchange.fetch_balances()
    restarted, again = await reloaded(paper_store, clock)

    [liquidation] = changed
    assert liquidation.client_order_id.startswith("liquidation-")
    assert await again.fetch_balances() == left
    assert await again.fetch_positions(BTC) == []
    assert state(restarted, BTC) == (Holding(), Setting(D(10), margin_mode))
    found = await again.fetch_order(BTC, liquidation.client_order_id)
    assert (found.status, found.filled) == (OrderStatus.FILLED, D("0.01"))
    if margin_mode is MarginMode.ISOLATED:  # the margin is lost, and nothing else
        assert left["USDT"].free == D(10000) - 100 - 1
    else:  # the free balance backed it and went with it (99 before)
        assert left["USDT"].free < D("1e-12")


async def test_a_position_the_venue_could_not_record_is_written_with_the_next_write(
    paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    storage = FlakyStorage(paper_store)
    venue = PaperVenue(DEFAULT_MARKETS, storage, clock=clock)
    exchange = await paper_account(venue, USDT="10000")
    await venue.set_price(TENANT, BTC, D("100000"))
    await prepared(venue, BTC, "5", MarginMode.ISOLATED)
    storage.failures = 1

    with pytest.raises(OutcomeUnknown):
        await exchange.create_order(market(BTC, Side.SELL, "0.02"))
    [position] = await exchange.fetch_positions(BTC)
    await venue.set_price(TENANT, ETH, D("3000"))  # the next write carries it along
    restarted, again = await reloaded(paper_store, clock)

    assert await again.fetch_positions(BTC) == [position]
    assert state(restarted, BTC)[1] == Setting(D(5), MarginMode.ISOLATED)
