"""The ccxt adapter streaming Binance USDⓈ-M futures: real ccxt.pro `binanceusdm` (and
`binance` trading swaps) against the loopback stub's futures websockets. ccxt.pro subscribes
`btcusdt@miniTicker` on /market/ws/<n> for the perpetual's price, and reads the account's
order changes (ORDER_TRADE_UPDATE) on /private/ws?listenKey=<key>, the key from POST
/fapi/v1/listenKey. A stream the venue drops is polled meanwhile and subscribed again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from decimal import Decimal
from typing import Any, TypeVar

import pytest

from smarttrade.domain.values import Fill, OrderStatus, OrderType, Side
from smarttrade.exchange.ccxt_exchange import CcxtExchange
from smarttrade.exchange.port import OrderReport, OrderRequest, Ticker
from tests.integration.exchange_contract import new_client_order_id
from tests.integration.test_binance_usdm import API_KEY, PERPETUAL, PRICE, SECRET, WALLET, market
from tests.support.binance_stub import BinanceStub
from tests.support.binance_usdm import MAKER_FEE

TICKER = "btcusdt@miniTicker"
USER_DATA = "listenKey"  # what the stub logs as a user data stream connects
POLL = 0.05  # seconds between polls while a stream is away
T = TypeVar("T")

# ccxt's binanceusdm, and binance told to trade swaps (spot markets loaded too, so that the
# id BTCUSDT is both a spot and a perpetual market: the stream's url tells them apart).
VARIANTS = {
    "binanceusdm": ("binanceusdm", {}),
    "binance-swap": (
        "binance",
        {"defaultType": "swap", "fetchMarkets": {"types": ["spot", "linear"]}},
    ),
}


def streaming_usdm(
    venue: BinanceStub, exchange_id: str = "binanceusdm", **options: Any
) -> CcxtExchange:
    """The adapter streaming through ccxt.pro, REST and websockets pointed at `venue`."""
    return CcxtExchange(
        exchange_id,
        API_KEY,
        SECRET,
        urls={"api": venue.futures_urls | {"ws": venue.ws_urls}},
        options=options,
        streaming=True,
        poll_interval=POLL,
        stream_retry=0.5,
        timeout=5.0,
        rate_limit_ms=1,
    )


@pytest.fixture
async def venue() -> AsyncIterator[BinanceStub]:
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as stub:
        await stub.set_price(PERPETUAL, PRICE)
        await stub.set_futures_balance(WALLET)
        yield stub


@pytest.fixture(params=list(VARIANTS))
async def exchange(
    request: pytest.FixtureRequest, venue: BinanceStub
) -> AsyncIterator[CcxtExchange]:
    """Each way ccxt reaches USDⓈ-M futures, streaming."""
    exchange_id, options = VARIANTS[request.param]
    exchange = streaming_usdm(venue, exchange_id, **options)
    yield exchange
    await exchange.close()


@pytest.fixture
async def usdm(venue: BinanceStub) -> AsyncIterator[CcxtExchange]:
    exchange = streaming_usdm(venue)
    yield exchange
    await exchange.close()


@asynccontextmanager
async def collected(stream: AsyncGenerator[T]) -> AsyncIterator[asyncio.Queue[T]]:
    """What `stream` yields, queued as it comes, while the block runs."""
    queue: asyncio.Queue[T] = asyncio.Queue()

    async def pump() -> None:
        async for item in stream:
            await queue.put(item)

    task = asyncio.create_task(pump())
    try:
        yield queue
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await stream.aclose()


async def next_matching(
    queue: asyncio.Queue[T], wanted: Callable[[T], bool], seconds: float = 5
) -> T:
    """The next item of `queue` that is `wanted` (others are skipped)."""
    async with asyncio.timeout(seconds):
        while not wanted(item := await queue.get()):
            pass
    return item


async def next_report(
    reports: asyncio.Queue[OrderReport], client_order_id: str, status: OrderStatus
) -> OrderReport:
    return await next_matching(
        reports, lambda r: (r.client_order_id, r.status) == (client_order_id, status)
    )


async def next_price(prices: asyncio.Queue[Ticker], last: Decimal) -> Ticker:
    return await next_matching(prices, lambda t: t.last == last)


async def eventually(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "never happened"
        await asyncio.sleep(0.02)


def ticker_polls(venue: BinanceStub) -> int:
    """REST price lookups, spot or futures."""
    paths = ("ticker/24hr", "ticker/price", "premiumIndex")
    return sum(len(venue.requests_to("GET", path)) for path in paths)


def order_polls(venue: BinanceStub) -> int:
    """REST order lookups: what watch_orders polls when it does not stream."""
    return len(venue.requests_to("GET", "/fapi/v1/openOrders")) + len(
        venue.requests_to("GET", "/fapi/v1/order")
    )


def reduce_only_buy(units: str, price: Decimal, tag: str = "tp") -> OrderRequest:
    return OrderRequest(
        new_client_order_id(tag),
        PERPETUAL,
        Side.BUY,
        OrderType.LIMIT,
        Decimal(units),
        price,
        reduce_only=True,
    )


def maker_fill(units: str, price: Decimal) -> tuple[Decimal, Decimal, Decimal, str]:
    """(price, amount, fee, fee currency) of a resting fill: the maker fee, in USDT."""
    amount = Decimal(units)
    return price, amount, price * amount * MAKER_FEE, "USDT"


def described(fills: tuple[Fill, ...]) -> list[tuple[Decimal, Decimal, Decimal, str]]:
    return [(f.price, f.amount, f.fee, f.fee_currency) for f in fills]


async def test_watch_ticker_on_the_perpetual_yields_the_price_set_without_polling_the_rest_ticker(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    async with collected(exchange.watch_ticker(PERPETUAL)) as prices:
        first = await next_matching(prices, lambda t: True)
        await venue.set_price(PERPETUAL, Decimal(50100))
        second = await next_matching(prices, lambda t: True)
        await asyncio.sleep(10 * POLL)

    assert (first.symbol, first.last) == (PERPETUAL, PRICE)
    assert (second.symbol, second.last) == (PERPETUAL, Decimal(50100))
    assert ticker_polls(venue) == 0
    # One futures market stream, subscribed once; the spot streams are left alone.
    assert venue.futures_subscriptions == [TICKER]
    assert venue.subscriptions == []


async def test_watch_orders_reports_a_reduce_only_limit_placed_then_its_fill_with_the_fee_in_usdt(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    await exchange.create_order(market(Side.SELL, "0.01"))  # a short at 50000 to reduce
    take_profit = reduce_only_buy("0.01", Decimal(45000))
    async with collected(exchange.watch_orders(PERPETUAL)) as reports:
        await eventually(lambda: USER_DATA in venue.futures_subscriptions)
        await exchange.create_order(take_profit)
        placed = await next_report(reports, take_profit.client_order_id, OrderStatus.OPEN)
        await venue.set_price(PERPETUAL, Decimal("44990.5"))
        filled = await next_report(reports, take_profit.client_order_id, OrderStatus.FILLED)

    assert (placed.filled, placed.price, placed.fills) == (Decimal(0), Decimal(45000), ())
    assert filled.filled == Decimal("0.01")
    assert described(filled.fills) == [maker_fill("0.01", Decimal(45000))]  # 0.09 USDT
    # Told by the stream: no order was looked up; one listen key, from the futures API.
    assert order_polls(venue) == 0
    assert len(venue.requests_to("POST", "/fapi/v1/listenKey")) == 1
    assert venue.futures_subscriptions.count(USER_DATA) == 1
    assert venue.futures.position("BTCUSDT") is None


async def test_a_reduce_only_limit_larger_than_the_short_fills_it_and_the_rest_is_reported_expired(
    usdm: CcxtExchange, venue: BinanceStub
) -> None:
    await usdm.create_order(market(Side.SELL, "0.01"))
    too_big = reduce_only_buy("0.02", Decimal(45000))
    async with collected(usdm.watch_orders(PERPETUAL)) as reports:
        await eventually(lambda: USER_DATA in venue.futures_subscriptions)
        await usdm.create_order(too_big)
        await venue.set_price(PERPETUAL, Decimal(44000))
        expired = await next_report(reports, too_big.client_order_id, OrderStatus.EXPIRED)

    assert (expired.amount, expired.filled) == (Decimal("0.02"), Decimal("0.01"))
    assert described(expired.fills) == [maker_fill("0.01", Decimal(45000))]
    assert order_polls(venue) == 0
    assert venue.futures.position("BTCUSDT") is None


async def test_a_futures_order_filled_in_parts_is_reported_partly_filled_then_filled(
    usdm: CcxtExchange, venue: BinanceStub
) -> None:
    order = reduce_only_buy("0.03", Decimal(45000), "parts")
    await usdm.create_order(market(Side.SELL, "0.03"))
    async with collected(usdm.watch_orders(PERPETUAL)) as reports:
        await eventually(lambda: USER_DATA in venue.futures_subscriptions)
        await usdm.create_order(order)
        await next_report(reports, order.client_order_id, OrderStatus.OPEN)
        venue.futures.fill_in_parts(order.client_order_id, [Decimal("0.01")])
        part = await next_matching(reports, lambda r: r.filled == Decimal("0.01"))
        venue.futures.fill_in_parts(order.client_order_id, [Decimal("0.02")])
        filled = await next_report(reports, order.client_order_id, OrderStatus.FILLED)

    assert part.status is OrderStatus.OPEN  # Binance's PARTIALLY_FILLED
    assert described(part.fills) == [maker_fill("0.01", Decimal(45000))]
    assert described(filled.fills) == [
        maker_fill("0.01", Decimal(45000)),
        maker_fill("0.02", Decimal(45000)),
    ]
    assert order_polls(venue) == 0


async def test_a_futures_order_cancelled_is_reported_cancelled_by_the_stream(
    usdm: CcxtExchange, venue: BinanceStub
) -> None:
    resting = OrderRequest(
        new_client_order_id("cxl"), PERPETUAL, Side.BUY, OrderType.LIMIT, Decimal("0.01"), PRICE / 2
    )
    async with collected(usdm.watch_orders(PERPETUAL)) as reports:
        await eventually(lambda: USER_DATA in venue.futures_subscriptions)
        await usdm.create_order(resting)
        await next_report(reports, resting.client_order_id, OrderStatus.OPEN)
        await usdm.cancel_order(PERPETUAL, resting.client_order_id)
        cancelled = await next_report(reports, resting.client_order_id, OrderStatus.CANCELLED)

    assert (cancelled.amount, cancelled.filled) == (Decimal("0.01"), Decimal(0))
    assert order_polls(venue) == 0


async def test_a_dropped_futures_stream_is_polled_meanwhile_then_streams_the_next_fill_again(
    usdm: CcxtExchange, venue: BinanceStub
) -> None:
    await usdm.create_order(market(Side.SELL, "0.01"))
    take_profit = reduce_only_buy("0.01", Decimal(45000))
    async with (
        collected(usdm.watch_ticker(PERPETUAL)) as prices,
        collected(usdm.watch_orders(PERPETUAL)) as reports,
    ):
        await next_price(prices, PRICE)
        await eventually(lambda: USER_DATA in venue.futures_subscriptions)

        # Act: the venue hangs up every websocket and refuses new ones for 1 s.
        polls = ticker_polls(venue), order_polls(venue)
        await venue.drop_streams(refuse_for=1.0)

        # Assert: prices and orders are polled while the streams are away ...
        await eventually(lambda: ticker_polls(venue) > polls[0] and order_polls(venue) > polls[1])
        # ... and streamed again once the venue takes websockets again.
        await eventually(lambda: venue.futures_subscriptions.count(TICKER) >= 2)
        await eventually(lambda: venue.futures_subscriptions.count(USER_DATA) >= 2)
        polls = ticker_polls(venue), order_polls(venue)
        await asyncio.sleep(10 * POLL)
        assert (ticker_polls(venue), order_polls(venue)) == polls  # streaming, not polling

        await usdm.create_order(take_profit)
        await next_report(reports, take_profit.client_order_id, OrderStatus.OPEN)
        await venue.set_price(PERPETUAL, Decimal("44990.5"))
        await next_price(prices, Decimal("44990.5"))
        filled = await next_report(reports, take_profit.client_order_id, OrderStatus.FILLED)

    assert described(filled.fills) == [maker_fill("0.01", Decimal(45000))]
    assert (ticker_polls(venue), order_polls(venue)) == polls
    # The listen key outlived its sockets: ccxt connected again with the same one.
    assert len(venue.requests_to("POST", "/fapi/v1/listenKey")) == 1


async def test_the_listen_key_is_kept_alive_with_put_at_ccxts_refresh_rate(
    venue: BinanceStub,
) -> None:
    usdm = streaming_usdm(venue, listenKeyRefreshRate=200)  # ms; ccxt's default is 20 min
    try:
        async with collected(usdm.watch_orders(PERPETUAL)):
            # ccxt 4.5.90 (Python) renews once: keep_alive_listen_key looks for the stream's
            # client with safe_dict, which a Client object is not, so it schedules no more.
            await eventually(lambda: len(venue.requests_to("PUT", "/fapi/v1/listenKey")) >= 1)
    finally:
        await usdm.close()

    assert len(venue.requests_to("POST", "/fapi/v1/listenKey")) == 1
    assert venue.futures_subscriptions.count(USER_DATA) == 1
