"""Paper futures on the real PostgreSQL storage: an account's positions on the paper
perpetuals, and the leverage and margin mode of each symbol, are written with the rest of its
paper book before an operation answers (an order, a tick that liquidates, `prepare_symbol`),
and a venue loaded from the store has them back."""

from __future__ import annotations

from decimal import Decimal

import pytest

from smarttrade.domain.spec import MarginMode
from smarttrade.domain.values import OrderStatus, OrderType, Side
from smarttrade.exchange.paper import PaperExchange, PaperStorageError, PaperVenue
from smarttrade.exchange.paper_futures import Holding, Setting
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS
from smarttrade.exchange.port import (
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    RejectReason,
    TransientError,
)
from smarttrade.store.errors import LeaseLost
from smarttrade.store.leases import ShardLeases, shard_of
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
    await exchange.prepare_symbol(BTC, D(10), MarginMode.ISOLATED)
    await exchange.prepare_symbol(ETH, D(20), MarginMode.CROSS)
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
    await exchange.prepare_symbol(ETH, D(25), MarginMode.ISOLATED)
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
    await exchange.prepare_symbol(BTC, D(10), margin_mode)
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


async def test_a_resting_reduce_only_order_comes_back_reduce_only_and_goes_with_a_liquidation(
    venue: PaperVenue, paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    exchange = await paper_account(venue, USDT="10000")
    await exchange.prepare_symbol(BTC, D(10), MarginMode.ISOLATED)
    await exchange.create_order(market(BTC, Side.BUY, "0.01"))
    take_profit = OrderRequest(
        "tp", BTC, Side.SELL, OrderType.LIMIT, D("0.01"), D("120000"), reduce_only=True
    )
    await exchange.create_order(take_profit)

    restarted, again = await reloaded(paper_store, clock)
    changed = await restarted.set_price(TENANT, BTC, D("90000"))

    cancelled, liquidation = changed
    assert (cancelled.client_order_id, cancelled.status) == ("tp", OrderStatus.CANCELLED)
    assert liquidation.client_order_id.startswith("liquidation-")
    assert await again.fetch_open_orders(BTC) == []


async def test_a_position_the_venue_could_not_record_is_written_with_the_next_write(
    paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    storage = FlakyStorage(paper_store)
    venue = PaperVenue(DEFAULT_MARKETS, storage, clock=clock)
    exchange = await paper_account(venue, USDT="10000")
    await venue.set_price(TENANT, BTC, D("100000"))
    await exchange.prepare_symbol(BTC, D(5), MarginMode.ISOLATED)
    storage.failures = 1

    with pytest.raises(OutcomeUnknown):
        await exchange.create_order(market(BTC, Side.SELL, "0.02"))
    [position] = await exchange.fetch_positions(BTC)
    await venue.set_price(TENANT, ETH, D("3000"))  # the next write carries it along
    restarted, again = await reloaded(paper_store, clock)

    assert await again.fetch_positions(BTC) == [position]
    assert state(restarted, BTC)[1] == Setting(D(5), MarginMode.ISOLATED)


# ---- prepare_symbol ----------------------------------------------------------------------------


async def test_prepare_symbol_on_a_flat_symbol_is_stored_when_it_returns(
    venue: PaperVenue, paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    exchange = await paper_account(venue, USDT="1000")

    await exchange.prepare_symbol(ETH, D(50), MarginMode.ISOLATED)
    await exchange.prepare_symbol(ETH, D(40), None)  # the margin mode stays as it is
    restarted, again = await reloaded(paper_store, clock)

    assert again.capabilities.futures
    assert state(restarted, ETH) == (Holding(), Setting(D(40), MarginMode.ISOLATED))
    assert await again.fetch_positions(ETH) == []


async def test_prepare_symbol_on_a_spot_market_sets_and_stores_nothing(
    venue: PaperVenue, paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    exchange = await paper_account(venue, USDT="1000")

    await exchange.prepare_symbol("BTC/USDT", D(5), MarginMode.ISOLATED)
    restarted, _ = await reloaded(paper_store, clock)

    for book in (venue.book(TENANT), restarted.book(TENANT)):
        assert (ACCOUNT, "BTC/USDT") not in book.futures.settings


@pytest.mark.parametrize(
    ("symbol", "leverage", "margin_mode", "reason"),
    [
        pytest.param(BTC, "126", None, RejectReason.INVALID_ORDER, id="above-the-market"),
        pytest.param(ETH, "101", MarginMode.ISOLATED, RejectReason.INVALID_ORDER, id="both"),
        pytest.param(BTC, "0", None, RejectReason.INVALID_ORDER, id="below-1"),
        pytest.param(BTC, "2.5", None, RejectReason.INVALID_ORDER, id="not-whole"),
        pytest.param(BTC, "20", MarginMode.CROSS, RejectReason.INVALID_ORDER, id="position-open"),
        pytest.param(ETH, None, MarginMode.ISOLATED, RejectReason.INVALID_ORDER, id="order-open"),
        pytest.param("DOT/USDT:USDT", "5", None, RejectReason.BAD_SYMBOL, id="unknown-symbol"),
    ],
)
async def test_a_refused_prepare_symbol_changes_nothing_in_the_book_or_the_store(
    symbol: str,
    leverage: str | None,
    margin_mode: MarginMode | None,
    reason: RejectReason,
    venue: PaperVenue,
    paper_store: UnitOfWorkFactory,
    clock: Clock,
) -> None:
    exchange = await paper_account(venue, USDT="10000")
    await exchange.prepare_symbol(BTC, D(10), MarginMode.ISOLATED)
    await exchange.create_order(market(BTC, Side.BUY, "0.01"))  # a position open on BTC
    await exchange.create_order(  # an order open on ETH
        OrderRequest("rest", ETH, Side.BUY, OrderType.LIMIT, D("0.01"), D("2900"))
    )
    before = state(venue, BTC)[1], state(venue, ETH)[1]

    with pytest.raises(OrderRejected) as refused:
        await exchange.prepare_symbol(
            symbol, D(leverage) if leverage is not None else None, margin_mode
        )
    restarted, _ = await reloaded(paper_store, clock)

    assert refused.value.reason is reason
    assert before == (Setting(D(10), MarginMode.ISOLATED), Setting())
    assert (state(venue, BTC)[1], state(venue, ETH)[1]) == before
    assert (state(restarted, BTC)[1], state(restarted, ETH)[1]) == before


async def test_prepare_symbol_the_store_could_not_write_is_a_transient_error_written_later(
    paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    storage = FlakyStorage(paper_store)
    venue = PaperVenue(DEFAULT_MARKETS, storage, clock=clock)
    exchange = await paper_account(venue, USDT="1000")
    storage.failures = 1

    with pytest.raises(PaperStorageError) as raised:
        await exchange.prepare_symbol(BTC, D(3), MarginMode.ISOLATED)
    await venue.set_price(TENANT, ETH, D("3000"))  # the next write carries it along
    restarted, _ = await reloaded(paper_store, clock)

    assert isinstance(raised.value, TransientError)
    assert state(restarted, BTC)[1] == Setting(D(3), MarginMode.ISOLATED)


async def test_settings_alone_are_written_only_under_the_lease_of_the_tenants_shard(
    venue: PaperVenue, paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    exchange = await paper_account(venue, USDT="1000")
    replica = ShardLeases(paper_store.database, "replica-a", "127.0.0.1:1", seconds=30)
    assert await replica.acquire(shard_of(TENANT))
    paper_store.lease = replica

    await exchange.prepare_symbol(BTC, D(20), MarginMode.ISOLATED)  # fenced by its lease
    async with paper_store.database.pool.acquire() as connection:  # another replica took over
        await connection.execute("UPDATE shard_leases SET fence = nextval('lease_fences')")
    with pytest.raises(LeaseLost):
        await exchange.prepare_symbol(BTC, D(30), None)
    paper_store.lease = None
    restarted, _ = await reloaded(paper_store, clock)

    assert state(restarted, BTC)[1] == Setting(D(20), MarginMode.ISOLATED)
