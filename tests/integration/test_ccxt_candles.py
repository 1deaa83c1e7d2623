"""The ccxt adapter's price history (`fetch_candles`): real ccxt against the Binance stub's
`GET /api/v3/klines`, paged, and its errors translated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from smarttrade.exchange.ccxt_exchange import CcxtExchange
from smarttrade.exchange.port import OrderRejected, RejectReason, TransientError
from tests.integration.exchange_contract import SYMBOL
from tests.integration.test_ccxt_exchange import API_KEY, SECRET, binance_at
from tests.support.binance_stub import BinanceStub

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MS = int(T0.timestamp() * 1000)


def minutes(count: int) -> list[tuple[int, str, str, str, str, str]]:
    """`count` one-minute candles from T0: minute m opens at 100 + m/100 (decimal strings)."""
    rows = []
    for m in range(count):
        open_ = Decimal(100) + Decimal(m) / 100
        rows.append(
            (MS + m * 60_000, str(open_), str(open_ + 1), str(open_ - 1), str(open_), "2.5")
        )
    return rows


@pytest.fixture
async def venue() -> AsyncIterator[BinanceStub]:
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as stub:
        stub.set_candles(SYMBOL, minutes(2500))
        yield stub


@pytest.fixture
async def exchange(venue: BinanceStub) -> AsyncIterator[CcxtExchange]:
    exchange = binance_at(venue)
    yield exchange
    await exchange.close()


async def test_a_history_longer_than_a_page_is_fetched_in_pages_and_comes_back_whole(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    candles = await exchange.fetch_candles(SYMBOL, "1m", T0, T0 + timedelta(minutes=2100))

    assert len(candles) == 2100
    assert [c.time for c in candles[:2]] == [T0, T0 + timedelta(minutes=1)]
    assert candles[-1].time == T0 + timedelta(minutes=2099)
    assert (candles[1234].open, candles[1234].high, candles[1234].low) == (
        Decimal("112.34"),
        Decimal("113.34"),
        Decimal("111.34"),
    )
    assert candles[0].volume == Decimal("2.5")
    assert len(venue.requests_to("GET", "klines")) == 3  # 1,000 a page


async def test_the_end_of_a_history_is_exclusive(exchange: CcxtExchange) -> None:
    candles = await exchange.fetch_candles(
        SYMBOL, "1m", T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)
    )

    assert [c.time for c in candles] == [T0 + timedelta(minutes=m) for m in range(10, 20)]


async def test_a_history_past_what_the_venue_has_ends_where_the_venue_ends(
    exchange: CcxtExchange,
) -> None:
    candles = await exchange.fetch_candles(
        SYMBOL, "1m", T0 + timedelta(minutes=2400), T0 + timedelta(days=30)
    )

    assert len(candles) == 100


async def test_an_unknown_symbol_is_a_bad_symbol(exchange: CcxtExchange) -> None:
    with pytest.raises(OrderRejected) as refused:
        await exchange.fetch_candles("NOPE/USDT", "1m", T0, T0 + timedelta(minutes=5))

    assert refused.value.reason is RejectReason.BAD_SYMBOL


async def test_a_venue_that_is_down_is_a_transient_error(venue: BinanceStub) -> None:
    exchange = binance_at(venue)
    await exchange.load_markets()
    await venue.stop()
    try:
        with pytest.raises(TransientError):
            await exchange.fetch_candles(SYMBOL, "1m", T0, T0 + timedelta(minutes=5))
    finally:
        await exchange.close()
