"""Replaying a CSV of ticks or candles into the paper venue."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.values import OrderStatus, OrderType, Side
from smarttrade.exchange.paper_replay import ReplayError, replay
from smarttrade.exchange.port import OrderRequest
from smarttrade.store.unit_of_work import UnitOfWorkFactory
from tests.integration.test_paper_exchange import Clock, open_venue


class Pushed:
    """A price sink that remembers what it was given."""

    def __init__(self) -> None:
        self.ticks: list[tuple[str, Decimal]] = []

    async def __call__(self, symbol: str, price: Decimal) -> None:
        self.ticks.append((symbol, price))

    def prices(self) -> list[Decimal]:
        return [price for _, price in self.ticks]


class Waits:
    """A sleep that only records how long it was asked to wait."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def csv_file(directory: Path, *lines: str) -> Path:
    path = directory / "prices.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def pushed() -> Pushed:
    return Pushed()


async def test_a_tick_file_pushes_each_price_in_file_order(tmp_path: Path, pushed: Pushed) -> None:
    path = csv_file(
        tmp_path,
        "time,symbol,price",
        "2026-03-02T09:30:00Z,BTC/USDT,50000.10",
        "2026-03-02T09:30:01Z,ETH/USDT,3000",
        "2026-03-02T09:30:02Z,BTC/USDT,49999.9",
    )

    count = await replay(path, pushed)

    assert count == 3
    assert pushed.ticks == [
        ("BTC/USDT", Decimal("50000.10")),
        ("ETH/USDT", Decimal(3000)),
        ("BTC/USDT", Decimal("49999.9")),
    ]


async def test_prices_are_pushed_as_the_exact_decimals_written(
    tmp_path: Path, pushed: Pushed
) -> None:
    path = csv_file(tmp_path, "time,symbol,price", "1,XRP/USDT,0.1", "2,XRP/USDT,0.30000001")

    await replay(path, pushed)

    assert pushed.prices() == [Decimal("0.1"), Decimal("0.30000001")]
    assert all(type(price) is Decimal for price in pushed.prices())


async def test_a_green_candle_goes_open_low_high_close(tmp_path: Path, pushed: Pushed) -> None:
    path = csv_file(tmp_path, "time,symbol,open,high,low,close", "1,BTC/USDT,100,110,95,108")

    await replay(path, pushed)

    assert pushed.prices() == [Decimal(100), Decimal(95), Decimal(110), Decimal(108)]


async def test_a_red_candle_goes_open_high_low_close(tmp_path: Path, pushed: Pushed) -> None:
    path = csv_file(tmp_path, "time,symbol,open,high,low,close", "1,BTC/USDT,100,104,90,92")

    await replay(path, pushed)

    assert pushed.prices() == [Decimal(100), Decimal(104), Decimal(90), Decimal(92)]


async def test_a_doji_visits_the_extreme_nearer_its_open_first(
    tmp_path: Path, pushed: Pushed
) -> None:
    path = csv_file(
        tmp_path,
        "time,symbol,open,high,low,close",
        "1,BTC/USDT,100,101,90,100",
        "2,BTC/USDT,100,120,99,100",
    )

    await replay(path, pushed)

    assert pushed.prices() == [Decimal(v) for v in (100, 101, 90, 100, 100, 99, 120, 100)]


async def test_by_default_the_replay_does_not_wait(tmp_path: Path, pushed: Pushed) -> None:
    waits = Waits()
    path = csv_file(tmp_path, "time,symbol,price", "0,BTC/USDT,1", "3600,BTC/USDT,2")

    await replay(path, pushed, sleep=waits)

    assert waits.seconds == []


async def test_with_a_speed_the_replay_waits_the_time_between_rows_divided_by_the_speed(
    tmp_path: Path, pushed: Pushed
) -> None:
    waits = Waits()
    path = csv_file(
        tmp_path,
        "time,symbol,open,high,low,close",
        "2026-03-02T09:30:00,BTC/USDT,100,110,95,108",
        "2026-03-02T09:31:00,BTC/USDT,108,109,100,101",
        "2026-03-02T09:31:00,ETH/USDT,10,11,9,10.5",
        "2026-03-02T09:33:00,BTC/USDT,101,102,100,101",
    )

    await replay(path, pushed, speed=Decimal(60), sleep=waits)

    assert waits.seconds == [1.0, 2.0]  # a minute, then two, sixty times as fast
    assert len(pushed.ticks) == 16


async def test_unix_times_in_seconds_milliseconds_and_microseconds_pace_alike(
    tmp_path: Path, pushed: Pushed
) -> None:
    waits = Waits()
    path = csv_file(
        tmp_path,
        "time,symbol,price",
        "1772443800,BTC/USDT,1",
        "1772443801000,BTC/USDT,2",
        "1772443803000000,BTC/USDT,3",
    )

    await replay(path, pushed, speed=Decimal(1), sleep=waits)

    assert waits.seconds == [1.0, 2.0]


async def test_a_malformed_price_is_reported_with_its_file_and_line(
    tmp_path: Path, pushed: Pushed
) -> None:
    path = csv_file(tmp_path, "time,symbol,price", "1,BTC/USDT,100", "2,BTC/USDT,a lot")

    with pytest.raises(ReplayError, match=r"prices\.csv:3: price 'a lot' is not a decimal"):
        await replay(path, pushed)

    assert pushed.prices() == [Decimal(100)]  # what came before was pushed


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (("time,symbol,last",), r":1: the header must be"),
        (("time,symbol,price", "1,BTC/USDT"), r":2: expected 3 columns"),
        (("time,symbol,price", "1,BTC/USDT,-5"), r":2: price must be a number greater than 0"),
        (("time,symbol,price", "1,BTC/USDT,NaN"), r":2: price must be a number greater than 0"),
        (("time,symbol,price", "yesterday,BTC/USDT,1"), r":2: time 'yesterday' is neither"),
        (("time,symbol,price", "2,BTC/USDT,1", "1,BTC/USDT,1"), r":3: time goes backwards"),
        (
            ("time,symbol,open,high,low,close", "1,BTC/USDT,100,99,90,95"),
            r":2: the high and low must enclose the open and the close",
        ),
    ],
    ids=["header", "columns", "negative", "nan", "time", "backwards", "candle"],
)
async def test_a_file_that_cannot_be_replayed_says_where_and_why(
    tmp_path: Path, pushed: Pushed, lines: tuple[str, ...], problem: str
) -> None:
    with pytest.raises(ReplayError, match=problem):
        await replay(csv_file(tmp_path, *lines), pushed)


async def test_a_speed_of_zero_is_refused(tmp_path: Path, pushed: Pushed) -> None:
    with pytest.raises(ValueError, match="speed"):
        await replay(csv_file(tmp_path, "time,symbol,price"), pushed, speed=Decimal(0))


async def test_a_replayed_candle_fills_a_resting_order_on_the_paper_venue(
    tmp_path: Path, paper_store: UnitOfWorkFactory
) -> None:
    venue = await open_venue(paper_store, Clock())
    await venue.open_account("tenant-a", "paper-1", PaperSettings(), {"USDT": Decimal(1000)})
    exchange = venue.exchange("tenant-a", "paper-1", None)
    await venue.set_price("tenant-a", "BTC/USDT", Decimal(100))
    request = OrderRequest(
        "dip-buyer", "BTC/USDT", Side.BUY, OrderType.LIMIT, Decimal(1), Decimal(96)
    )
    await exchange.create_order(request)
    path = csv_file(tmp_path, "time,symbol,open,high,low,close", "1,BTC/USDT,100,110,95,108")

    await replay(path, lambda symbol, price: venue.set_price("tenant-a", symbol, price))

    filled = await exchange.fetch_order("BTC/USDT", "dip-buyer")
    assert filled.status is OrderStatus.FILLED
    assert [fill.price for fill in filled.fills] == [Decimal(96)]
    assert venue.last_price("tenant-a", "BTC/USDT") == Decimal(108)
