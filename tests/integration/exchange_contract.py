"""The Exchange contract: what every adapter of the port does, whatever the venue behind it.

Each scenario is a plain async function of `(exchange, venue)`: `exchange` is the adapter
under test, `venue` moves the market and funds the account (`VenueControl`). The ccxt
adapter's tests run them against the Binance stub; the paper exchange can run the same list
against its simulated market:

    @pytest.mark.parametrize("scenario", CONTRACT, ids=lambda s: s.__name__)
    async def test_the_adapter_meets_the_exchange_contract(scenario, exchange, venue):
        await scenario(exchange, venue)

Every scenario expects a venue listing BTC/USDT (a tick no coarser than 0.01, a lot no coarser
than 0.0001, a minimum order cost no more than 100 USDT) and an account that holds nothing but
what the scenario funds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Protocol, TypeVar

import pytest

from smarttrade.domain.values import OrderStatus, OrderType, Side
from smarttrade.exchange.port import (
    AlreadyPlaced,
    Exchange,
    OrderNotFound,
    OrderRejected,
    OrderReport,
    OrderRequest,
    RejectReason,
)

SYMBOL = "BTC/USDT"
PRICE = Decimal(50000)

T = TypeVar("T")


class VenueControl(Protocol):
    """The market and the account behind an adapter, as a test drives them. What the methods
    return is ignored (`object`), so a venue's own richer answers fit."""

    async def set_price(self, symbol: str, price: Decimal) -> object:
        """Trade at `price` from now on: resting orders it crosses fill."""
        ...

    async def set_balance(self, asset: str, amount: Decimal) -> object:
        """Make the account hold `amount` of `asset`, free."""
        ...


Scenario = Callable[[Exchange, VenueControl], Awaitable[None]]


def new_client_order_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


async def wait_until(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 5.0, every: float = 0.02
) -> T:
    """What `probe` returns once it returns something; fails after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not so within {within} s")
        await asyncio.sleep(every)


async def with_status(
    exchange: Exchange, client_order_id: str, status: OrderStatus
) -> OrderReport | None:
    """The order's report if it has `status` now, else None: a probe for `wait_until`."""
    report = await exchange.fetch_order(SYMBOL, client_order_id)
    return report if report.status is status else None


async def fund(venue: VenueControl, *, usdt: Decimal, btc: Decimal = Decimal(0)) -> None:
    await venue.set_price(SYMBOL, PRICE)
    await venue.set_balance("USDT", usdt)
    await venue.set_balance("BTC", btc)


def market_buy(client_order_id: str, amount: Decimal) -> OrderRequest:
    return OrderRequest(client_order_id, SYMBOL, Side.BUY, OrderType.MARKET, amount)


def limit_buy(client_order_id: str, amount: Decimal, price: Decimal) -> OrderRequest:
    return OrderRequest(client_order_id, SYMBOL, Side.BUY, OrderType.LIMIT, amount, price)


def total_filled(report: OrderReport) -> Decimal:
    return sum((fill.amount for fill in report.fills), Decimal(0))


# ----- scenarios ---------------------------------------------------------------------------


async def a_market_order_fills_at_once_with_its_fills(
    exchange: Exchange, venue: VenueControl
) -> None:
    await fund(venue, usdt=Decimal(10000))
    client_order_id = new_client_order_id("market")

    report = await exchange.create_order(market_buy(client_order_id, Decimal("0.01")))

    assert report.client_order_id == client_order_id
    assert report.status is OrderStatus.FILLED
    assert report.filled == Decimal("0.01")
    assert total_filled(report) == Decimal("0.01")
    assert all(fill.price == PRICE and fill.fee >= 0 for fill in report.fills)
    balances = await exchange.fetch_balances()
    assert balances["BTC"].total > 0
    assert balances["USDT"].total <= Decimal(10000) - Decimal("0.01") * PRICE


async def a_limit_order_rests_until_the_price_crosses_then_fills(
    exchange: Exchange, venue: VenueControl
) -> None:
    await fund(venue, usdt=Decimal(10000))
    client_order_id = new_client_order_id("limit")
    price = Decimal(49000)

    resting = await exchange.create_order(limit_buy(client_order_id, Decimal("0.01"), price))
    open_orders = await exchange.fetch_open_orders(SYMBOL)
    balances = await exchange.fetch_balances()

    assert resting.status is OrderStatus.OPEN
    assert resting.filled == 0
    assert [o.client_order_id for o in open_orders] == [client_order_id]
    assert balances["USDT"].locked >= Decimal("0.01") * price
    assert balances["USDT"].total == Decimal(10000)

    await venue.set_price(SYMBOL, Decimal(48900))
    filled = await wait_until(lambda: with_status(exchange, client_order_id, OrderStatus.FILLED))

    assert filled.filled == Decimal("0.01")
    assert total_filled(filled) == Decimal("0.01")
    assert all(fill.price <= price for fill in filled.fills)
    assert await exchange.fetch_open_orders(SYMBOL) == []


async def a_resting_order_is_cancelled_by_its_client_order_id(
    exchange: Exchange, venue: VenueControl
) -> None:
    await fund(venue, usdt=Decimal(10000))
    client_order_id = new_client_order_id("cancel")
    await exchange.create_order(limit_buy(client_order_id, Decimal("0.01"), Decimal(40000)))

    cancelled = await exchange.cancel_order(SYMBOL, client_order_id)

    assert cancelled.client_order_id == client_order_id
    assert cancelled.status is OrderStatus.CANCELLED
    assert cancelled.filled == 0
    assert await exchange.fetch_open_orders(SYMBOL) == []
    balances = await exchange.fetch_balances()
    assert (balances["USDT"].free, balances["USDT"].locked) == (Decimal(10000), Decimal(0))


async def cancelling_a_filled_order_returns_its_final_report(
    exchange: Exchange, venue: VenueControl
) -> None:
    await fund(venue, usdt=Decimal(10000))
    client_order_id = new_client_order_id("late-cancel")
    await exchange.create_order(market_buy(client_order_id, Decimal("0.01")))

    report = await exchange.cancel_order(SYMBOL, client_order_id)

    assert report.status is OrderStatus.FILLED
    assert report.filled == Decimal("0.01")


async def an_order_is_found_by_its_client_order_id_with_its_fills(
    exchange: Exchange, venue: VenueControl
) -> None:
    await fund(venue, usdt=Decimal(10000))
    client_order_id = new_client_order_id("fetch")
    placed = await exchange.create_order(market_buy(client_order_id, Decimal("0.02")))

    found = await exchange.fetch_order(SYMBOL, client_order_id)

    assert found.client_order_id == client_order_id
    assert found.exchange_order_id == placed.exchange_order_id
    assert (found.side, found.type, found.status) == (
        Side.BUY,
        OrderType.MARKET,
        OrderStatus.FILLED,
    )
    assert found.filled == total_filled(found) == Decimal("0.02")
    assert len({fill.trade_id for fill in found.fills}) == len(found.fills)
    assert all(fill.fee_currency for fill in found.fills)


async def an_unknown_client_order_id_is_not_found(exchange: Exchange, venue: VenueControl) -> None:
    await fund(venue, usdt=Decimal(10000))

    with pytest.raises(OrderNotFound):
        await exchange.fetch_order(SYMBOL, new_client_order_id("never-sent"))


async def reusing_the_client_order_id_of_a_live_order_is_already_placed(
    exchange: Exchange, venue: VenueControl
) -> None:
    await fund(venue, usdt=Decimal(10000))
    client_order_id = new_client_order_id("twice")
    request = limit_buy(client_order_id, Decimal("0.01"), Decimal(40000))
    await exchange.create_order(request)

    with pytest.raises(AlreadyPlaced):
        await exchange.create_order(request)

    assert [o.client_order_id for o in await exchange.fetch_open_orders(SYMBOL)] == [
        client_order_id
    ]


async def an_order_beyond_the_balance_is_rejected_for_insufficient_funds(
    exchange: Exchange, venue: VenueControl
) -> None:
    await fund(venue, usdt=Decimal(100))

    with pytest.raises(OrderRejected) as rejected:
        await exchange.create_order(market_buy(new_client_order_id("broke"), Decimal("0.01")))

    assert rejected.value.reason is RejectReason.INSUFFICIENT_FUNDS
    assert await exchange.fetch_open_orders(SYMBOL) == []


CONTRACT: tuple[Scenario, ...] = (
    a_market_order_fills_at_once_with_its_fills,
    a_limit_order_rests_until_the_price_crosses_then_fills,
    a_resting_order_is_cancelled_by_its_client_order_id,
    cancelling_a_filled_order_returns_its_final_report,
    an_order_is_found_by_its_client_order_id_with_its_fills,
    an_unknown_client_order_id_is_not_found,
    reusing_the_client_order_id_of_a_live_order_is_already_placed,
    an_order_beyond_the_balance_is_rejected_for_insufficient_funds,
)
