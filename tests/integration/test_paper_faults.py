"""Fault injection on the paper venue, at the Exchange port: a real venue's bad day, on
purpose, each fault happening as often as it was armed and then clearing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.values import OrderStatus, OrderType, Side
from smarttrade.exchange.paper import PaperExchange, PaperVenue
from smarttrade.exchange.port import (
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    OutcomeUnknown,
    RateLimited,
    RejectReason,
)
from smarttrade.store.unit_of_work import UnitOfWorkFactory
from tests.integration.exchange_contract import SYMBOL, new_client_order_id
from tests.integration.test_paper_exchange import Clock, open_venue

TENANT = "tenant-a"
ACCOUNT = "paper-faulty"


def limit_buy(price: str = "90") -> OrderRequest:
    return OrderRequest(
        new_client_order_id("limit"), SYMBOL, Side.BUY, OrderType.LIMIT, Decimal(1), Decimal(price)
    )


def market_buy() -> OrderRequest:
    return OrderRequest(
        new_client_order_id("market"), SYMBOL, Side.BUY, OrderType.MARKET, Decimal(1)
    )


async def not_found(exchange: PaperExchange, client_order_id: str) -> bool:
    try:
        await exchange.fetch_order(SYMBOL, client_order_id)
    except OrderNotFound:
        return True
    return False


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def venue(paper_store: UnitOfWorkFactory, clock: Clock) -> PaperVenue:
    venue = await open_venue(paper_store, clock)
    await venue.set_price(TENANT, SYMBOL, Decimal(100))
    return venue


@pytest.fixture
async def exchange(venue: PaperVenue) -> PaperExchange:
    await venue.open_account(TENANT, ACCOUNT, PaperSettings(), {"USDT": Decimal(1000)})
    return venue.exchange(TENANT, ACCOUNT, None)


async def test_accept_then_time_out_places_and_records_the_order_but_loses_the_answer(
    venue: PaperVenue, exchange: PaperExchange, paper_store: UnitOfWorkFactory, clock: Clock
) -> None:
    venue.faults(TENANT, ACCOUNT).accept_then_time_out()
    request = limit_buy()

    with pytest.raises(OutcomeUnknown):
        await exchange.create_order(request)
    found = await exchange.fetch_order(SYMBOL, request.client_order_id)
    restarted = await open_venue(paper_store, clock)

    assert found.status is OrderStatus.OPEN
    recorded = restarted.exchange(TENANT, ACCOUNT, None)
    assert await recorded.fetch_order(SYMBOL, request.client_order_id) == found


async def test_accept_then_time_out_happens_once_then_clears(
    venue: PaperVenue, exchange: PaperExchange
) -> None:
    venue.faults(TENANT, ACCOUNT).accept_then_time_out()
    with pytest.raises(OutcomeUnknown):
        await exchange.create_order(limit_buy())

    answered = await exchange.create_order(limit_buy())

    assert answered.status is OrderStatus.OPEN
    assert not venue.faults(TENANT, ACCOUNT).armed


async def test_a_lost_order_never_arrives(venue: PaperVenue, exchange: PaperExchange) -> None:
    venue.faults(TENANT, ACCOUNT).lose_next_order()
    request = market_buy()
    before = await exchange.fetch_balances()

    with pytest.raises(OutcomeUnknown):
        await exchange.create_order(request)

    assert await not_found(exchange, request.client_order_id)
    assert await exchange.fetch_balances() == before
    resent = await exchange.create_order(request)  # it never arrived: no duplicate to refuse
    assert resent.status is OrderStatus.FILLED


async def test_a_planned_rejection_refuses_the_next_orders_with_its_reason_then_clears(
    venue: PaperVenue, exchange: PaperExchange
) -> None:
    venue.faults(TENANT, ACCOUNT).reject_next_order(
        RejectReason.INSUFFICIENT_FUNDS, "Account has insufficient balance", times=2
    )
    first, second, third = limit_buy(), limit_buy(), limit_buy()

    with pytest.raises(OrderRejected) as once:
        await exchange.create_order(first)
    with pytest.raises(OrderRejected) as twice:
        await exchange.create_order(second)
    accepted = await exchange.create_order(third)

    assert once.value.reason is twice.value.reason is RejectReason.INSUFFICIENT_FUNDS
    assert str(once.value) == "Account has insufficient balance"
    assert await not_found(exchange, first.client_order_id)
    assert [o.client_order_id for o in await exchange.fetch_open_orders(SYMBOL)] == [
        accepted.client_order_id
    ]


async def test_a_rate_limit_refuses_the_next_calls_without_touching_the_book(
    venue: PaperVenue, exchange: PaperExchange
) -> None:
    venue.faults(TENANT, ACCOUNT).rate_limit(calls=3, retry_after=2.5)
    request = market_buy()
    refused = []

    for call in (
        exchange.create_order(request),
        exchange.fetch_balances(),
        exchange.fetch_ticker(SYMBOL),
    ):
        with pytest.raises(RateLimited) as limited:
            await call
        refused.append(limited.value.retry_after)
    balances = await exchange.fetch_balances()

    assert refused == [2.5, 2.5, 2.5]
    assert balances["USDT"].total == Decimal(1000)
    assert await not_found(exchange, request.client_order_id)


async def test_an_order_with_late_visibility_is_not_found_until_its_delay_has_passed(
    venue: PaperVenue, exchange: PaperExchange, clock: Clock
) -> None:
    venue.faults(TENANT, ACCOUNT).delay_visibility(seconds=5)
    request = limit_buy()

    placed = await exchange.create_order(request)
    clock.advance(4.9)
    hidden = await not_found(exchange, request.client_order_id)
    open_while_hidden = await exchange.fetch_open_orders(SYMBOL)
    with pytest.raises(OrderNotFound):
        await exchange.cancel_order(SYMBOL, request.client_order_id)
    clock.advance(0.1)
    found = await exchange.fetch_order(SYMBOL, request.client_order_id)

    assert placed.status is OrderStatus.OPEN
    assert hidden
    assert open_while_hidden == []
    assert found == placed
    assert await exchange.fetch_open_orders(SYMBOL) == [placed]


async def test_a_hidden_order_still_fills_and_the_venue_pushes_its_fill(
    venue: PaperVenue, exchange: PaperExchange
) -> None:
    venue.faults(TENANT, ACCOUNT).delay_visibility(seconds=60)
    request = limit_buy("95")
    await exchange.create_order(request)

    changed = await venue.set_price(TENANT, SYMBOL, Decimal(94))

    assert [(o.client_order_id, o.status) for o in changed] == [
        (request.client_order_id, OrderStatus.FILLED)
    ]
    assert await not_found(exchange, request.client_order_id)


async def test_a_lost_answer_with_late_visibility_is_unknown_then_not_found_then_found(
    venue: PaperVenue, exchange: PaperExchange, clock: Clock
) -> None:
    faults = venue.faults(TENANT, ACCOUNT)
    faults.accept_then_time_out()
    faults.delay_visibility(seconds=3)
    request = limit_buy()

    with pytest.raises(OutcomeUnknown):
        await exchange.create_order(request)
    hidden = await not_found(exchange, request.client_order_id)
    clock.advance(3)

    assert hidden
    assert (await exchange.fetch_order(SYMBOL, request.client_order_id)).status is (
        OrderStatus.OPEN
    )


async def test_an_order_the_book_refuses_does_not_use_up_the_faults_for_accepted_orders(
    venue: PaperVenue, exchange: PaperExchange
) -> None:
    venue.faults(TENANT, ACCOUNT).accept_then_time_out()
    too_big = OrderRequest(
        new_client_order_id("big"), SYMBOL, Side.BUY, OrderType.MARKET, Decimal(100)
    )

    with pytest.raises(OrderRejected):
        await exchange.create_order(too_big)

    with pytest.raises(OutcomeUnknown):
        await exchange.create_order(limit_buy())


async def test_faults_belong_to_one_account(venue: PaperVenue, exchange: PaperExchange) -> None:
    await venue.open_account(TENANT, "paper-healthy", PaperSettings(), {"USDT": Decimal(1000)})
    healthy = venue.exchange(TENANT, "paper-healthy", None)
    venue.faults(TENANT, ACCOUNT).rate_limit(calls=1)
    venue.faults(TENANT, ACCOUNT).lose_next_order()

    placed = await healthy.create_order(limit_buy())

    assert placed.status is OrderStatus.OPEN
    with pytest.raises(RateLimited):
        await exchange.fetch_balances()


async def test_clearing_disarms_every_fault_and_shows_hidden_orders(
    venue: PaperVenue, exchange: PaperExchange
) -> None:
    faults = venue.faults(TENANT, ACCOUNT)
    faults.delay_visibility(seconds=60)
    hidden = await exchange.create_order(limit_buy())
    faults.rate_limit(calls=5)
    faults.reject_next_order()
    faults.lose_next_order()
    faults.accept_then_time_out()

    faults.clear()

    assert not faults.armed
    assert await exchange.fetch_order(SYMBOL, hidden.client_order_id) == hidden
    assert (await exchange.create_order(limit_buy())).status is OrderStatus.OPEN
