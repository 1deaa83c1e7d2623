"""The paper exchange, on the real PostgreSQL storage: the shared Exchange contract, then the
paper venue's own rules (DESIGN §2.9)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from smarttrade.domain.account import ExchangeAccount, PaperSettings
from smarttrade.domain.messages import OrderMissing, OrderReported, PlaceOrder
from smarttrade.domain.values import Balance, OrderStatus, OrderType, Side
from smarttrade.engine.executor import Attempt, Executor, RetryPolicy
from smarttrade.exchange.paper import (
    PaperChanges,
    PaperExchange,
    PaperStorageError,
    PaperVenue,
)
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS
from smarttrade.exchange.paper_storage import PostgresPaperStorage
from smarttrade.exchange.port import (
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    RejectReason,
    TransientError,
)
from smarttrade.store.unit_of_work import UnitOfWorkFactory
from tests.integration.exchange_contract import CONTRACT, SYMBOL, Scenario
from tests.support.store import units_of_work

TENANT = "tenant-a"
ACCOUNT = "paper-1"
START = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


class Clock:
    """The venue's clock, moved by the test."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class PaperControl:
    """`VenueControl` for the contract suite: the sandbox's own levers on one account."""

    venue: PaperVenue
    tenant_id: str = TENANT
    account_id: str = ACCOUNT

    async def set_price(self, symbol: str, price: Decimal) -> object:
        return await self.venue.set_price(self.tenant_id, symbol, price)

    async def set_balance(self, asset: str, amount: Decimal) -> object:
        await self.venue.set_balances(self.tenant_id, self.account_id, {asset: amount})
        return None


async def open_venue(paper_store: UnitOfWorkFactory, clock: Clock) -> PaperVenue:
    """A paper venue on the real storage, loaded from what the database holds."""
    venue = PaperVenue(DEFAULT_MARKETS, PostgresPaperStorage(paper_store), clock=clock)
    await venue.start()
    return venue


async def paper_account(
    venue: PaperVenue,
    settings: PaperSettings | None = None,
    account_id: str = ACCOUNT,
    **balances: str,
) -> PaperExchange:
    settings = settings or PaperSettings()
    amounts = {currency: Decimal(amount) for currency, amount in balances.items()}
    await venue.open_account(TENANT, account_id, settings, amounts)
    return venue.exchange(TENANT, account_id, settings)


def market(side: Side, amount: str, label: str = "m") -> OrderRequest:
    return OrderRequest(f"{label}-{side.value}", SYMBOL, side, OrderType.MARKET, Decimal(amount))


def limit(side: Side, amount: str, price: str, label: str = "l") -> OrderRequest:
    return OrderRequest(
        f"{label}-{side.value}-{price}",
        SYMBOL,
        side,
        OrderType.LIMIT,
        Decimal(amount),
        Decimal(price),
    )


def held(balances: dict[str, Balance] | object, currency: str) -> tuple[Decimal, Decimal]:
    assert isinstance(balances, dict)
    balance = balances[currency]
    return balance.free, balance.locked


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def venue(paper_store: UnitOfWorkFactory, clock: Clock) -> PaperVenue:
    return await open_venue(paper_store, clock)


# ---- the shared contract ---------------------------------------------------------------------


@pytest.mark.parametrize("scenario", CONTRACT, ids=lambda scenario: scenario.__name__)
async def test_the_paper_exchange_meets_the_exchange_contract(
    scenario: Scenario, venue: PaperVenue
) -> None:
    exchange = await paper_account(venue)

    await scenario(exchange, PaperControl(venue))


# ---- prices and fills ------------------------------------------------------------------------


async def test_resting_limit_orders_fill_at_their_own_limit_price_oldest_first(
    venue: PaperVenue, clock: Clock
) -> None:
    exchange = await paper_account(venue, USDT="10000")
    await venue.set_price(TENANT, SYMBOL, Decimal(102))
    older = await exchange.create_order(limit(Side.BUY, "1", "100"))
    clock.advance(1)
    newer = await exchange.create_order(limit(Side.BUY, "1", "101"))
    untouched = await exchange.create_order(limit(Side.BUY, "1", "97"))

    changed = await venue.set_price(TENANT, SYMBOL, Decimal(98))

    assert [order.client_order_id for order in changed] == [
        older.client_order_id,
        newer.client_order_id,
    ]
    [older_fill] = changed[0].fills
    [newer_fill] = changed[1].fills
    assert (older_fill.price, newer_fill.price) == (Decimal(100), Decimal(101))
    assert int(older_fill.trade_id[1:]) < int(newer_fill.trade_id[1:])
    still_open = await exchange.fetch_open_orders(SYMBOL)
    assert [order.client_order_id for order in still_open] == [untouched.client_order_id]


async def test_a_limit_order_marketable_when_placed_fills_at_once_at_the_last_price(
    venue: PaperVenue,
) -> None:
    exchange = await paper_account(venue, USDT="1000")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))

    report = await exchange.create_order(limit(Side.BUY, "2", "105"))

    assert report.status is OrderStatus.FILLED
    assert [(fill.price, fill.amount) for fill in report.fills] == [(Decimal(100), Decimal(2))]
    # It paid 200 at the last price; the rest of what its limit reserved (210) is free again.
    assert held(await exchange.fetch_balances(), "USDT") == (Decimal(800), Decimal(0))


async def test_limit_fills_pay_the_maker_fee_and_market_fills_the_taker_fee(
    venue: PaperVenue,
) -> None:
    settings = PaperSettings(maker_fee_rate=Decimal("0.001"), taker_fee_rate=Decimal("0.002"))
    exchange = await paper_account(venue, settings, USDT="1000", BTC="1")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    await exchange.create_order(limit(Side.SELL, "1", "110"))

    taker = await exchange.create_order(market(Side.BUY, "1"))
    [maker] = await venue.set_price(TENANT, SYMBOL, Decimal(110))

    assert [fill.fee for fill in taker.fills] == [Decimal("0.002")]  # 0.2% of 1 BTC
    assert [fill.fee for fill in maker.fills] == [Decimal("0.110")]  # 0.1% of 110 USDT


async def test_a_buy_pays_its_fee_in_base_and_a_sell_in_quote(venue: PaperVenue) -> None:
    exchange = await paper_account(venue, USDT="1000")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))

    bought = await exchange.create_order(market(Side.BUY, "1"))
    sold = await exchange.create_order(market(Side.SELL, "0.999"))

    assert [(fill.fee, fill.fee_currency) for fill in bought.fills] == [(Decimal("0.001"), "BTC")]
    assert [(fill.fee, fill.fee_currency) for fill in sold.fills] == [(Decimal("0.0999"), "USDT")]
    balances = await exchange.fetch_balances()
    assert held(balances, "BTC") == (Decimal(0), Decimal(0))  # the fee in base left no dust
    assert held(balances, "USDT") == (Decimal("999.8001"), Decimal(0))  # 900 + 99.9 - 0.0999


async def test_market_orders_fill_at_the_last_price_worsened_by_the_slippage(
    venue: PaperVenue,
) -> None:
    settings = PaperSettings(slippage_percent=Decimal("0.5"))
    exchange = await paper_account(venue, settings, USDT="1000", BTC="1")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))

    bought = await exchange.create_order(market(Side.BUY, "1"))
    sold = await exchange.create_order(market(Side.SELL, "1"))
    limited = await exchange.create_order(limit(Side.BUY, "1", "101"))

    assert [fill.price for fill in bought.fills] == [Decimal("100.5")]
    assert [fill.price for fill in sold.fills] == [Decimal("99.5")]
    assert [fill.price for fill in limited.fills] == [Decimal(100)]  # limits do not slip


async def test_an_order_beyond_the_free_balance_is_rejected_and_changes_nothing(
    venue: PaperVenue,
) -> None:
    exchange = await paper_account(venue, USDT="150", BTC="0.5")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    await exchange.create_order(limit(Side.BUY, "1", "90"))  # locks 90 of the 150 USDT

    with pytest.raises(OrderRejected) as buying:
        await exchange.create_order(market(Side.BUY, "1"))
    with pytest.raises(OrderRejected) as selling:
        await exchange.create_order(market(Side.SELL, "0.6"))

    assert buying.value.reason is RejectReason.INSUFFICIENT_FUNDS
    assert selling.value.reason is RejectReason.INSUFFICIENT_FUNDS
    balances = await exchange.fetch_balances()
    assert held(balances, "USDT") == (Decimal(60), Decimal(90))
    assert held(balances, "BTC") == (Decimal("0.5"), Decimal(0))
    assert len(await exchange.fetch_open_orders(SYMBOL)) == 1


async def test_partial_fills_are_off_by_default(venue: PaperVenue) -> None:
    exchange = await paper_account(venue, USDT="1000")
    await venue.set_price(TENANT, SYMBOL, Decimal(101))
    await exchange.create_order(limit(Side.BUY, "1", "100"))

    [order] = await venue.set_price(TENANT, SYMBOL, Decimal(100))

    assert (order.status, len(order.fills)) == (OrderStatus.FILLED, 1)


async def test_with_partial_fills_on_a_limit_order_fills_in_parts_across_ticks(
    venue: PaperVenue,
) -> None:
    exchange = await paper_account(venue, PaperSettings(partial_fills=True), USDT="1000")
    await venue.set_price(TENANT, SYMBOL, Decimal(101))
    placed = await exchange.create_order(limit(Side.BUY, "1", "100"))

    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    half = await exchange.fetch_order(SYMBOL, placed.client_order_id)
    await venue.set_price(TENANT, SYMBOL, Decimal(99))
    whole = await exchange.fetch_order(SYMBOL, placed.client_order_id)

    assert (half.status, half.filled) == (OrderStatus.OPEN, Decimal("0.5"))
    assert (whole.status, whole.filled) == (OrderStatus.FILLED, Decimal(1))
    assert [fill.price for fill in whole.fills] == [Decimal(100), Decimal(100)]
    assert held(await exchange.fetch_balances(), "USDT") == (Decimal(900), Decimal(0))


async def test_with_partial_fills_on_a_market_order_fills_half_at_once_and_the_rest_next_tick(
    venue: PaperVenue,
) -> None:
    exchange = await paper_account(venue, PaperSettings(partial_fills=True), BTC="1")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))

    first = await exchange.create_order(market(Side.SELL, "1"))
    [rest] = await venue.set_price(TENANT, SYMBOL, Decimal(90))

    assert (first.status, first.filled) == (OrderStatus.OPEN, Decimal("0.5"))
    assert rest.status is OrderStatus.FILLED
    assert [(fill.price, fill.amount) for fill in rest.fills] == [
        (Decimal(100), Decimal("0.5")),
        (Decimal(90), Decimal("0.5")),
    ]


async def test_the_rest_of_a_market_buy_the_account_can_no_longer_pay_for_expires(
    venue: PaperVenue,
) -> None:
    exchange = await paper_account(venue, PaperSettings(partial_fills=True), USDT="100")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    placed = await exchange.create_order(market(Side.BUY, "1"))  # half at 100, 50 USDT locked

    await venue.set_price(TENANT, SYMBOL, Decimal(200))  # 50 USDT buys 0.25 more, not 0.5
    after_rise = await exchange.fetch_balances()
    await venue.set_price(TENANT, SYMBOL, Decimal(200))
    final = await exchange.fetch_order(SYMBOL, placed.client_order_id)

    assert held(after_rise, "USDT") == (Decimal(0), Decimal(0))
    assert (final.status, final.filled) == (OrderStatus.EXPIRED, Decimal("0.75"))
    assert held(await exchange.fetch_balances(), "USDT") == (Decimal(0), Decimal(0))
    assert await exchange.fetch_open_orders(SYMBOL) == []


async def test_a_tick_equal_to_the_last_price_still_counts(venue: PaperVenue) -> None:
    exchange = await paper_account(venue, PaperSettings(partial_fills=True), USDT="1000")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    placed = await exchange.create_order(limit(Side.BUY, "1", "99"))
    await venue.set_price(TENANT, SYMBOL, Decimal(99))  # the first half
    tickers = exchange.watch_ticker(SYMBOL)
    next_ticker = asyncio.ensure_future(anext(tickers))
    await asyncio.sleep(0)  # let the watcher start waiting before the tick

    [again] = await venue.set_price(TENANT, SYMBOL, Decimal(99))
    ticker = await asyncio.wait_for(next_ticker, timeout=5)
    await tickers.aclose()

    assert (again.client_order_id, again.status) == (placed.client_order_id, OrderStatus.FILLED)
    assert ticker.last == Decimal(99)


async def test_a_price_for_a_symbol_the_venue_does_not_list_is_refused(venue: PaperVenue) -> None:
    with pytest.raises(OrderRejected) as refused:
        await venue.set_price(TENANT, "NOPE/USDT", Decimal(1))

    assert refused.value.reason is RejectReason.BAD_SYMBOL


async def test_each_tenant_has_its_own_prices(venue: PaperVenue) -> None:
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    await venue.set_price("tenant-b", SYMBOL, Decimal(200))

    assert venue.last_price(TENANT, SYMBOL) == Decimal(100)
    assert venue.last_price("tenant-b", SYMBOL) == Decimal(200)


# ---- restarts --------------------------------------------------------------------------------


async def test_balances_orders_and_prices_survive_a_restart_of_the_venue(
    venue: PaperVenue, paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    exchange = await paper_account(venue, USDT="1000")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    bought = await exchange.create_order(market(Side.BUY, "1"))
    resting = await exchange.create_order(limit(Side.SELL, "0.5", "120"))
    balances = await exchange.fetch_balances()

    restarted = await open_venue(paper_store, clock)
    again = restarted.exchange(TENANT, ACCOUNT, None)

    assert await again.fetch_balances() == balances
    assert restarted.last_price(TENANT, SYMBOL) == Decimal(100)
    assert await again.fetch_order(SYMBOL, bought.client_order_id) == bought
    assert await again.fetch_open_orders(SYMBOL) == [resting]
    [filled] = await restarted.set_price(TENANT, SYMBOL, Decimal(120))
    assert (filled.client_order_id, filled.status) == (resting.client_order_id, OrderStatus.FILLED)


async def test_a_restarted_venue_still_fills_resting_orders_oldest_first(
    venue: PaperVenue, paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    exchange = await paper_account(venue, PaperSettings(partial_fills=True), USDT="100000")
    await venue.set_price(TENANT, SYMBOL, Decimal(200))
    placed = [  # all at the same instant: only the placement order tells them apart
        await exchange.create_order(limit(Side.BUY, "1", price)) for price in ("190", "150", "170")
    ]
    await venue.set_price(TENANT, SYMBOL, Decimal(185))  # the oldest is rewritten: half filled

    restarted = await open_venue(paper_store, clock)
    restarted.exchange(TENANT, ACCOUNT, PaperSettings(partial_fills=True))
    changed = await restarted.set_price(TENANT, SYMBOL, Decimal(100))

    assert [o.client_order_id for o in changed] == [o.client_order_id for o in placed]


async def test_fills_after_a_restart_never_repeat_an_earlier_fill_id(
    venue: PaperVenue, paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    settings = PaperSettings(partial_fills=True)
    exchange = await paper_account(venue, settings, USDT="1000")
    await venue.set_price(TENANT, SYMBOL, Decimal(101))
    placed = await exchange.create_order(limit(Side.BUY, "1", "100"))
    await venue.set_price(TENANT, SYMBOL, Decimal(100))  # the first half, fill id after the order

    restarted = await open_venue(paper_store, clock)
    restarted.exchange(TENANT, ACCOUNT, settings)
    [order] = await restarted.set_price(TENANT, SYMBOL, Decimal(100))

    assert order.client_order_id == placed.client_order_id
    assert len({fill.trade_id for fill in order.fills}) == len(order.fills) == 2


async def test_a_restarted_venue_fills_with_the_accounts_own_settings(
    venue: PaperVenue, paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    settings = PaperSettings(maker_fee_rate=Decimal("0.005"), partial_fills=True)
    async with paper_store() as uow:
        await uow.accounts.add(
            ExchangeAccount(ACCOUNT, TENANT, "paper", "paper", START, paper_settings=settings)
        )
        await uow.commit()
    exchange = await paper_account(venue, settings, BTC="1")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    await exchange.create_order(limit(Side.SELL, "1", "110"))

    restarted = await open_venue(paper_store, clock)
    [order] = await restarted.set_price(TENANT, SYMBOL, Decimal(110))  # before any exchange()

    assert [(fill.amount, fill.fee) for fill in order.fills] == [(Decimal("0.5"), Decimal("0.275"))]


# ---- storage failures ------------------------------------------------------------------------


class FlakyStorage(PostgresPaperStorage):
    """The real storage, failing the writes the test asks it to."""

    failures = 0

    async def save(self, changes: Sequence[PaperChanges]) -> None:
        if self.failures:
            self.failures -= 1
            raise PaperStorageError("the database is down (on purpose)")
        await super().save(changes)


async def test_an_order_the_venue_could_not_record_is_an_unknown_outcome_written_later(
    paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    storage = FlakyStorage(paper_store)
    venue = PaperVenue(DEFAULT_MARKETS, storage, clock=clock)
    exchange = await paper_account(venue, USDT="1000")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    request = limit(Side.BUY, "1", "90")
    storage.failures = 1

    with pytest.raises(OutcomeUnknown):
        await exchange.create_order(request)
    found = await exchange.fetch_order(SYMBOL, request.client_order_id)
    await venue.set_price(TENANT, SYMBOL, Decimal(95))  # the next write carries it along
    restarted = await open_venue(paper_store, clock)

    assert found.status is OrderStatus.OPEN
    reloaded = restarted.exchange(TENANT, ACCOUNT, None)
    assert await reloaded.fetch_open_orders(SYMBOL) == [found]
    assert held(await reloaded.fetch_balances(), "USDT") == (Decimal(910), Decimal(90))


async def test_fills_of_a_tick_the_venue_could_not_record_are_returned_by_the_next_tick(
    paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    storage = FlakyStorage(paper_store)
    venue = PaperVenue(DEFAULT_MARKETS, storage, clock=clock)
    exchange = await paper_account(venue, USDT="1000")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    resting = await exchange.create_order(limit(Side.BUY, "1", "90"))
    storage.failures = 1

    with pytest.raises(TransientError):
        await venue.set_price(TENANT, SYMBOL, Decimal(89))
    changed = await venue.set_price(TENANT, SYMBOL, Decimal(120))

    assert [(o.client_order_id, o.status) for o in changed] == [
        (resting.client_order_id, OrderStatus.FILLED)
    ]
    assert await venue.set_price(TENANT, SYMBOL, Decimal(121)) == []


async def test_an_unreachable_database_is_a_transient_error_of_the_paper_venue(
    clock: Clock, tmp_path: Path
) -> None:
    nowhere = "postgresql://postgres@127.0.0.1:9/nowhere"
    async with units_of_work(nowhere, tmp_path, migrated=False) as uow:
        venue = PaperVenue(DEFAULT_MARKETS, PostgresPaperStorage(uow), clock=clock)
        with pytest.raises(TransientError) as raised:
            await venue.set_price(TENANT, SYMBOL, Decimal(100))
    assert "paper_prices" not in str(raised.value)  # no SQL in what a caller may see


def a_market_buy() -> PlaceOrder:
    """An intent of a trade's entry, as a runner carries it out."""
    return PlaceOrder("t1-entry-0", "entry", SYMBOL, Side.BUY, OrderType.MARKET, Decimal(1), None)


async def test_an_order_the_paper_venue_never_received_is_given_up_at_once_after_a_restart(
    venue: PaperVenue, clock: Clock
) -> None:
    """A replica killed between an order's intent and its send: the next one looks the order
    up, and the paper venue (whose book is what it stored) not having it settles it at once,
    where a real venue's silence is given a grace (it may show the order late)."""
    exchange = await paper_account(venue, USDT="1000")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    executor = Executor(RetryPolicy(unknown_grace=10.0))
    never_sent = PlaceOrder(
        "t1-entry-0", "entry", SYMBOL, Side.BUY, OrderType.MARKET, Decimal(1), None
    )

    outcome = await executor.carry_out(
        exchange, never_sent, Attempt(unknown_since=clock.now), clock.now
    )

    assert exchange.capabilities.final_lookups
    assert outcome.done
    assert isinstance(outcome.fact, OrderMissing)


async def test_while_the_fault_plan_delays_visibility_an_order_not_found_is_given_the_grace(
    venue: PaperVenue, clock: Clock
) -> None:
    exchange = await paper_account(venue, USDT="1000")
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    venue.faults(TENANT, ACCOUNT).delay_visibility(5.0)
    executor = Executor(RetryPolicy(unknown_grace=10.0))
    not_found = PlaceOrder(
        "t1-entry-0", "entry", SYMBOL, Side.BUY, OrderType.MARKET, Decimal(1), None
    )

    outcome = await executor.carry_out(
        exchange, not_found, Attempt(unknown_since=clock.now), clock.now
    )

    assert not exchange.capabilities.final_lookups
    assert not outcome.done
    assert isinstance(outcome.fact, OrderReported)
    assert outcome.fact.status == OrderStatus.UNKNOWN
