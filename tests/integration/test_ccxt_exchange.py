"""The ccxt adapter through real ccxt `binance`, pointed at a loopback stub of Binance spot."""

from __future__ import annotations

import asyncio
import decimal
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal

import pytest

from smarttrade.domain.values import OrderStatus, OrderType, Side
from smarttrade.exchange.ccxt_exchange import CcxtExchange
from smarttrade.exchange.port import (
    AlreadyPlaced,
    ExchangeError,
    OrderNotFound,
    OrderRejected,
    OrderReport,
    OrderRequest,
    OutcomeUnknown,
    RateLimited,
    RejectReason,
    TransientError,
)
from tests.integration.exchange_contract import (
    CONTRACT,
    PRICE,
    SYMBOL,
    Scenario,
    limit_buy,
    market_buy,
    new_client_order_id,
    wait_until,
)
from tests.support.binance_stub import BinanceStub, CreateFault

API_KEY = "stub-api-key-9f8e7d6c5b4a39281706"
SECRET = "stub-secret-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
STUB_OPTIONS = {
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
}


def binance_at(
    venue: BinanceStub,
    *,
    api_key: str = API_KEY,
    secret: str = SECRET,
    timeout: float = 5.0,
    poll_interval: float = 1.0,
) -> CcxtExchange:
    return CcxtExchange(
        "binance",
        api_key,
        secret,
        urls={"api": {"public": venue.url, "private": venue.url}},
        options=STUB_OPTIONS,
        timeout=timeout,
        poll_interval=poll_interval,
        rate_limit_ms=1,  # ccxt's throttle stays on, without Binance's 50 ms per weight unit
    )


@pytest.fixture
async def venue() -> AsyncIterator[BinanceStub]:
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as stub:
        await stub.set_price(SYMBOL, PRICE)
        await stub.set_balance("USDT", Decimal(10000))
        yield stub


@pytest.fixture
async def exchange(venue: BinanceStub) -> AsyncIterator[CcxtExchange]:
    exchange = binance_at(venue)
    yield exchange
    await exchange.close()


async def found_or_none(exchange: CcxtExchange, client_order_id: str) -> OrderReport | None:
    try:
        return await exchange.fetch_order(SYMBOL, client_order_id)
    except OrderNotFound:
        return None


async def polled_at_least(venue: BinanceStub, times: int) -> bool | None:
    return len(venue.requests_to("GET", "/ticker/24hr")) >= times or None


@pytest.mark.parametrize("scenario", CONTRACT, ids=lambda scenario: scenario.__name__)
async def test_the_ccxt_adapter_meets_the_exchange_contract(
    scenario: Scenario, exchange: CcxtExchange, venue: BinanceStub
) -> None:
    await scenario(exchange, venue)


async def test_markets_carry_the_venues_lot_tick_and_minimums_and_are_loaded_once(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    markets = await exchange.load_markets()
    await exchange.load_markets()

    btc = markets[SYMBOL]
    assert (btc.base, btc.quote) == ("BTC", "USDT")
    assert (btc.amount_step, btc.price_tick) == (Decimal("0.00001"), Decimal("0.01"))
    assert (btc.min_amount, btc.min_cost) == (Decimal("0.00001"), Decimal(5))
    assert markets["ETH/USDT"].amount_step == Decimal("0.0001")
    assert len(venue.requests_to("GET", "/exchangeInfo")) == 1


async def test_a_market_order_is_sent_truncated_to_the_lot_with_our_client_order_id(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    client_order_id = new_client_order_id("lot")

    report = await exchange.create_order(market_buy(client_order_id, Decimal("0.123456789")))

    [sent] = venue.requests_to("POST", "/order")
    assert sent.params["quantity"] == "0.12345"
    assert sent.params["newClientOrderId"] == client_order_id
    assert sent.params["type"] == "MARKET"
    assert "price" not in sent.params  # with a price, ccxt would spend quoteOrderQty instead
    assert "quoteOrderQty" not in sent.params
    assert (report.amount, report.filled, report.price) == (
        Decimal("0.12345"),
        Decimal("0.12345"),
        None,
    )


async def test_a_limit_order_is_sent_with_its_price_rounded_to_the_tick(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    client_order_id = new_client_order_id("tick")

    report = await exchange.create_order(
        limit_buy(client_order_id, Decimal("0.0100009"), Decimal("49000.125"))
    )

    [sent] = venue.requests_to("POST", "/order")
    assert (sent.params["quantity"], sent.params["price"]) == ("0.01", "49000.13")
    assert sent.params["newClientOrderId"] == client_order_id
    assert (report.status, report.price, report.amount) == (
        OrderStatus.OPEN,
        Decimal("49000.13"),
        Decimal("0.01"),
    )


async def test_an_order_is_looked_up_by_orig_client_order_id_with_fills_and_fees(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    client_order_id = new_client_order_id("fees")
    placed = await exchange.create_order(market_buy(client_order_id, Decimal("0.01")))

    found = await exchange.fetch_order(SYMBOL, client_order_id)

    [lookup] = venue.requests_to("GET", "/order")
    [trades] = venue.requests_to("GET", "/myTrades")
    assert lookup.params["origClientOrderId"] == client_order_id
    assert trades.params["orderId"] == placed.exchange_order_id
    [fill] = found.fills
    assert (fill.price, fill.amount) == (PRICE, Decimal("0.01"))
    assert (fill.fee, fill.fee_currency) == (Decimal("0.00001"), "BTC")  # 0.1% of what came in
    assert fill.trade_id == placed.fills[0].trade_id


async def test_a_503_after_the_order_was_accepted_is_an_unknown_outcome_and_the_order_is_found(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    client_order_id = new_client_order_id("503")
    venue.fail_next_create(CreateFault.ACCEPT_THEN_503)

    with pytest.raises(OutcomeUnknown):
        await exchange.create_order(market_buy(client_order_id, Decimal("0.01")))
    found = await exchange.fetch_order(SYMBOL, client_order_id)

    assert (found.status, found.filled) == (OrderStatus.FILLED, Decimal("0.01"))
    assert len(found.fills) == 1


async def test_a_timeout_after_the_order_was_accepted_is_an_unknown_outcome_and_the_order_is_found(
    venue: BinanceStub,
) -> None:
    exchange = binance_at(venue, timeout=0.3)
    client_order_id = new_client_order_id("slow")
    venue.fail_next_create(CreateFault.ACCEPT_THEN_TIMEOUT, seconds=10)
    try:
        with pytest.raises(OutcomeUnknown, match="RequestTimeout"):
            await exchange.create_order(limit_buy(client_order_id, Decimal("0.01"), Decimal(40000)))
        found = await exchange.fetch_order(SYMBOL, client_order_id)
    finally:
        await exchange.close()

    assert found.status is OrderStatus.OPEN


async def test_an_order_invisible_for_a_while_is_not_found_then_found(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    client_order_id = new_client_order_id("late")
    venue.fail_next_create(CreateFault.INVISIBLE, seconds=1.0)
    await exchange.create_order(limit_buy(client_order_id, Decimal("0.01"), Decimal(40000)))

    with pytest.raises(OrderNotFound):
        await exchange.fetch_order(SYMBOL, client_order_id)
    assert await exchange.fetch_open_orders(SYMBOL) == []
    found = await wait_until(lambda: found_or_none(exchange, client_order_id), within=5.0)

    assert found.status is OrderStatus.OPEN
    assert [o.client_order_id for o in await exchange.fetch_open_orders(SYMBOL)] == [
        client_order_id
    ]


async def test_the_venues_duplicate_order_answer_is_already_placed(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    venue.fail_next_create(CreateFault.DUPLICATE)

    with pytest.raises(AlreadyPlaced, match="Duplicate order sent"):
        await exchange.create_order(market_buy(new_client_order_id("dup"), Decimal("0.01")))


async def test_rate_limits_are_honoured_without_sending_requests_during_the_cooldown(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    await exchange.load_markets()
    venue.rate_limit_storm(requests=1, retry_after=1, ban_retry_after=2)
    sent_before = len(venue.requests)

    with pytest.raises(RateLimited) as too_many:
        await exchange.fetch_ticker(SYMBOL)
    for _ in range(5):
        with pytest.raises(RateLimited) as cooling:
            await exchange.fetch_ticker(SYMBOL)
        assert cooling.value.retry_after is not None
        assert 0 < cooling.value.retry_after <= 1
    assert too_many.value.retry_after == 1
    assert len(venue.requests) == sent_before + 1

    await asyncio.sleep(1.05)  # the cooldown the venue asked for
    with pytest.raises(RateLimited) as banned:  # a 418 while placing is no unknown outcome
        await exchange.create_order(market_buy(new_client_order_id("ban"), Decimal("0.01")))
    with pytest.raises(RateLimited):
        await exchange.fetch_balances()
    assert banned.value.retry_after == 2
    assert len(venue.requests) == sent_before + 2

    await asyncio.sleep(2.05)
    ticker = await exchange.fetch_ticker(SYMBOL)

    assert ticker.last == PRICE
    assert len(venue.requests) == sent_before + 3


async def test_an_unknown_symbol_is_a_bad_symbol_and_sends_no_order(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    request = OrderRequest(
        new_client_order_id("doge"), "DOGE/USDT", Side.BUY, OrderType.MARKET, Decimal(100)
    )

    with pytest.raises(OrderRejected) as rejected:
        await exchange.create_order(request)

    assert rejected.value.reason is RejectReason.BAD_SYMBOL
    assert venue.requests_to("POST", "/order") == []


async def test_a_cancel_reports_our_client_order_id_not_the_cancel_requests_own(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    client_order_id = new_client_order_id("ours")
    await exchange.create_order(limit_buy(client_order_id, Decimal("0.01"), Decimal(40000)))

    cancelled = await exchange.cancel_order(SYMBOL, client_order_id)

    [sent] = venue.requests_to("DELETE", "/order")
    assert sent.params["origClientOrderId"] == client_order_id
    assert (cancelled.client_order_id, cancelled.status) == (
        client_order_id,
        OrderStatus.CANCELLED,
    )


async def test_a_cancelled_order_whose_fills_the_history_lacks_yet_is_reported_open(
    exchange: CcxtExchange, venue: BinanceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: a resting buy of 0.01 filled 0.004 at the venue; the trade history lags.
    client_order_id = new_client_order_id("part")
    await exchange.create_order(limit_buy(client_order_id, Decimal("0.01"), Decimal(40000)))
    await venue.fill_in_parts(client_order_id, [Decimal("0.004")])
    fetch_my_trades = exchange._ccxt.fetch_my_trades

    async def no_trades_yet(*args: object, **kwargs: object) -> list[object]:
        return []

    monkeypatch.setattr(exchange._ccxt, "fetch_my_trades", no_trades_yet)

    # Act: the cancel's answer says 0.004 executed, with no fills.
    cancelled = await exchange.cancel_order(SYMBOL, client_order_id)
    monkeypatch.setattr(exchange._ccxt, "fetch_my_trades", fetch_my_trades)
    found = await exchange.fetch_order(SYMBOL, client_order_id)

    # Assert: OPEN until its fills are known (the 0.006 left must not be taken for 0.01),
    # then CANCELLED with them.
    assert (cancelled.status, cancelled.filled, cancelled.fills) == (
        OrderStatus.OPEN,
        Decimal("0.004"),
        (),
    )
    assert (found.status, [f.amount for f in found.fills]) == (
        OrderStatus.CANCELLED,
        [Decimal("0.004")],
    )


async def test_a_wrong_secret_is_an_authentication_rejection(venue: BinanceStub) -> None:
    exchange = binance_at(venue, secret="not-" + SECRET)
    try:
        with pytest.raises(OrderRejected) as rejected:
            await exchange.fetch_balances()
    finally:
        await exchange.close()

    assert rejected.value.reason is RejectReason.AUTHENTICATION


async def test_a_refused_connection_is_transient_even_while_placing(venue: BinanceStub) -> None:
    exchange = binance_at(venue)
    try:
        await exchange.load_markets()
        await venue.stop()
        with pytest.raises(TransientError) as refused:
            await exchange.create_order(market_buy(new_client_order_id("down"), Decimal("0.01")))
    finally:
        await exchange.close()

    assert not isinstance(refused.value, OutcomeUnknown)


async def test_error_messages_never_contain_the_api_key_or_secret(venue: BinanceStub) -> None:
    exchange = binance_at(venue, timeout=0.3)
    impostor = binance_at(venue, api_key="impostor-" + API_KEY, secret="impostor-" + SECRET)
    errors: list[ExchangeError] = []

    async def failing(call: Awaitable[object]) -> None:
        try:
            await call
        except ExchangeError as error:
            errors.append(error)

    try:
        await venue.set_balance("USDT", Decimal(1))
        await failing(exchange.create_order(market_buy(new_client_order_id("poor"), Decimal(1))))
        await failing(exchange.fetch_order(SYMBOL, new_client_order_id("nobody")))
        await venue.set_balance("USDT", Decimal(100000))
        venue.fail_next_create(CreateFault.ACCEPT_THEN_503)
        await failing(exchange.create_order(limit_buy("x-503", Decimal(1), Decimal(1000))))
        venue.fail_next_create(CreateFault.ACCEPT_THEN_TIMEOUT, seconds=10)
        await failing(exchange.create_order(limit_buy("x-slow", Decimal(1), Decimal(1000))))
        await failing(impostor.fetch_balances())
        venue.rate_limit_storm(requests=1, retry_after=1)
        await failing(exchange.fetch_ticker(SYMBOL))
    finally:
        await exchange.close()
        await impostor.close()

    assert len(errors) == 6
    for error in errors:
        for text in (str(error), repr(error), str(error.__cause__)):
            assert API_KEY not in text
            assert SECRET not in text


async def test_watch_ticker_polls_and_yields_only_price_changes(venue: BinanceStub) -> None:
    exchange = binance_at(venue, poll_interval=0.01)
    prices = exchange.watch_ticker(SYMBOL)
    try:
        first = await asyncio.wait_for(anext(prices), timeout=5)
        next_change = asyncio.ensure_future(anext(prices))
        await wait_until(lambda: polled_at_least(venue, 3))  # two polls of an unchanged price
        unchanged_yielded = next_change.done()
        await venue.set_price(SYMBOL, Decimal(50100))
        second = await asyncio.wait_for(next_change, timeout=5)
    finally:
        await prices.aclose()
        await exchange.close()

    assert not unchanged_yielded
    assert (first.last, second.last) == (PRICE, Decimal(50100))


async def test_watch_orders_reports_a_resting_order_then_its_fill(venue: BinanceStub) -> None:
    exchange = binance_at(venue, poll_interval=0.01)
    client_order_id = new_client_order_id("watched")
    await exchange.create_order(limit_buy(client_order_id, Decimal("0.01"), Decimal(49000)))
    reports = exchange.watch_orders(SYMBOL)
    try:
        resting = await asyncio.wait_for(anext(reports), timeout=5)
        await venue.set_price(SYMBOL, Decimal(48000))
        filled = await asyncio.wait_for(anext(reports), timeout=5)
    finally:
        await reports.aclose()
        await exchange.close()

    assert (resting.client_order_id, resting.status) == (client_order_id, OrderStatus.OPEN)
    assert (filled.client_order_id, filled.status) == (client_order_id, OrderStatus.FILLED)
    assert [fill.price for fill in filled.fills] == [Decimal(49000)]


async def test_ccxt_rounding_does_not_leak_into_the_decimal_context(
    exchange: CcxtExchange,
) -> None:
    before = decimal.getcontext().copy()

    await exchange.create_order(market_buy(new_client_order_id("ctx"), Decimal("0.01")))

    after = decimal.getcontext()
    assert (after.rounding, after.traps[decimal.Underflow]) == (
        before.rounding,
        before.traps[decimal.Underflow],
    )


async def test_the_watches_of_a_closed_adapter_end_instead_of_calling_the_venue_forever(
    venue: BinanceStub,
) -> None:
    # Arrange: an adapter whose key the venue no longer accepts (rotated), still watched.
    exchange = binance_at(venue, poll_interval=0.01)
    prices, orders = exchange.watch_ticker(SYMBOL), exchange.watch_orders(SYMBOL)
    await asyncio.wait_for(anext(prices), timeout=5)
    venue.api_key = "rotated-" + API_KEY
    pending = asyncio.ensure_future(anext(orders))  # failing auth, and retrying
    await asyncio.sleep(0.1)

    # Act: the adapter is retired.
    await exchange.close()

    # Assert: both watches end (their consumer opens the next on the current adapter).
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, timeout=5)
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(prices), timeout=5)
