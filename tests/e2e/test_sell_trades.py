"""SELL trades end to end over gRPC, on the paper venue and on a Binance stub through real
ccxt (issue 12, §5; DESIGN §2.9): take-profit steps, the stop, breakeven and a trailing take
profit. A spot SELL sells coins the account holds and buys them back; every buy-back is one
order grossed up for the fee the venue takes in BTC, so the trade ends with nothing owed:
the account holds at least the coins it started with, and the few the rounding bought
beyond (under one lot per buy-back) are the surplus the trade reports.

BTC/USDT at about 100 USDT: lot 0.00001 BTC, fees 0.1 %.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.binance_service import stub_overrides
from tests.support.binance_stub import BinanceStub
from tests.support.service import Client, request_id, running_service

BTC = "BTC/USDT"
LOT = Decimal("0.00001")
API_KEY = "e2e-sell-key-4d2a91"
SECRET = "e2e-sell-secret-0b7c55"


@dataclass
class Venue:
    """Where the trade runs: a client, an account holding 1 BTC and 1,000 USDT, a way to
    move the price, and the account's BTC."""

    client: Client
    account: str
    set_price: Callable[[str], Awaitable[None]]
    btc: Callable[[], Awaitable[Decimal]]


@asynccontextmanager
async def paper(database_url: str, data_dir: Path) -> AsyncIterator[Venue]:
    async with running_service(database_url, data_dir) as service:
        client = service.a
        account = await client.paper_account(BTC="1", USDT="1000")

        async def set_price(price: str) -> None:
            await client.set_price(BTC, price)

        async def btc() -> Decimal:
            return Decimal((await client.balances(account))["BTC"])

        await set_price("100")
        yield Venue(client, account, set_price, btc)


@asynccontextmanager
async def binance(database_url: str, data_dir: Path) -> AsyncIterator[Venue]:
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as stub:
        await stub.set_balance("USDT", Decimal(1000))
        await stub.set_balance("BTC", Decimal(1))
        await stub.set_price(BTC, Decimal(100))
        overrides = stub_overrides(stub)
        async with running_service(
            database_url, data_dir, exchange_overrides=overrides, order_poll_interval=0.05
        ) as service:
            client = service.a
            created = await client.accounts.CreateExchangeAccount(
                accounts_pb.CreateExchangeAccountRequest(
                    exchange_account=accounts_pb.ExchangeAccount(
                        exchange="binance",
                        credentials=accounts_pb.ExchangeCredentials(api_key=API_KEY, secret=SECRET),
                    ),
                    request_id=request_id(),
                ),
                metadata=client.metadata,
            )

            async def set_price(price: str) -> None:
                await stub.set_price(BTC, Decimal(price))
                await asyncio.sleep(0.3)  # the service polls the ticker and the orders

            async def btc() -> Decimal:
                free, locked = stub.balance("BTC")
                return free + locked

            yield Venue(client, created.exchange_account.name, set_price, btc)


VENUES = {"paper": paper, "binance": binance}


@pytest.fixture(params=list(VENUES))
async def venue(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[Venue]:
    async with VENUES[request.param](database_url, tmp_path) as running:
        yield running


async def sell_1_btc(venue: Venue, **settings: object) -> pb.SmartTrade:
    trade = await venue.client.create(
        pb.SmartTrade(
            account=venue.account,
            symbol=BTC,
            side=pb.SIDE_SELL,
            entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="1"),
            **settings,  # type: ignore[arg-type]
        )
    )
    return await eventually(venue, trade.name, lambda t: t.state == pb.SMART_TRADE_STATE_ACTIVE)


async def eventually(
    venue: Venue, name: str, check: Callable[[pb.SmartTrade], bool]
) -> pb.SmartTrade:
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        trade = await venue.client.get(name)
        if check(trade):
            return trade
        assert asyncio.get_running_loop().time() < deadline, str(trade)[:3000]
        await asyncio.sleep(0.05)


async def closed(venue: Venue, name: str, reason: int) -> pb.SmartTrade:
    trade = await eventually(venue, name, lambda t: t.state == pb.SMART_TRADE_STATE_CLOSED)
    assert trade.close_reason == reason
    return trade


def buy_backs(trade: pb.SmartTrade, leg_id: str) -> list[tuple[int, str]]:
    leg = next(leg for leg in trade.legs if leg.id == leg_id)
    return [(order.type, order.amount) for order in leg.orders]


async def assert_nothing_owed(venue: Venue, trade: pb.SmartTrade, buy_back_orders: int) -> None:
    """Nothing owed, the surplus reported, and the account holds its 1 BTC plus it."""
    position = trade.position
    surplus = Decimal(position.surplus)
    assert position.units_held == "0"
    assert 0 < surplus < LOT * buy_back_orders
    assert await venue.btc() == 1 + surplus


async def test_a_sell_buys_back_each_take_profit_step_and_its_fee_in_one_order(
    venue: Venue,
) -> None:
    # Arrange: 1 BTC sold at 100; steps of 50 % at 95 and 90.
    steps = [
        pb.TakeProfitStep(price="95", volume_percent="50"),
        pb.TakeProfitStep(price="90", volume_percent="50"),
    ]
    trade = await sell_1_btc(venue, take_profit=pb.TakeProfit(steps=steps))

    # Act
    await venue.set_price("95")
    await venue.set_price("90")

    # Assert: 0.5 / 0.999 = 0.5005005... -> 0.50051 per step, one order each.
    done = await closed(venue, trade.name, pb.CLOSE_REASON_TAKE_PROFIT)
    assert buy_backs(done, "tp1") == [(pb.ORDER_TYPE_LIMIT, "0.50051")]
    assert buy_backs(done, "tp2") == [(pb.ORDER_TYPE_LIMIT, "0.50051")]
    await assert_nothing_owed(venue, done, 2)


async def test_a_sell_stop_buys_back_the_position_and_its_fee_in_one_order(
    venue: Venue,
) -> None:
    # Arrange: 1 BTC sold at 100; the stop at 105.
    trade = await sell_1_btc(
        venue,
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="90", volume_percent="100")]),
        stop_loss=pb.StopLoss(price="105"),
    )

    # Act
    await venue.set_price("105")

    # Assert: 1 / 0.999 = 1.001001... -> 1.00101 at market, the target's order cancelled.
    done = await closed(venue, trade.name, pb.CLOSE_REASON_STOP_LOSS)
    assert buy_backs(done, "sl") == [(pb.ORDER_TYPE_MARKET, "1.00101")]
    await assert_nothing_owed(venue, done, 1)


async def test_a_sell_stop_moved_to_breakeven_buys_back_the_rest_and_its_fee(
    venue: Venue,
) -> None:
    # Arrange: steps at 95 and 90; the stop at 110 moves to the average (100) after step 1.
    steps = [
        pb.TakeProfitStep(price="95", volume_percent="50"),
        pb.TakeProfitStep(price="90", volume_percent="50"),
    ]
    trade = await sell_1_btc(
        venue,
        take_profit=pb.TakeProfit(steps=steps),
        stop_loss=pb.StopLoss(price="110", move_to_breakeven=True),
    )

    # Act: step 1 fills; the price comes back to the average.
    await venue.set_price("95")
    moved = await eventually(venue, trade.name, lambda t: t.stop_loss.trigger_price == "100")
    assert moved.state == pb.SMART_TRADE_STATE_ACTIVE
    await venue.set_price("100")

    # Assert: 0.50000949 came back with step 1; the rest, 0.49999051, in one order of
    # 0.49999051 / 0.999 = 0.500491... -> 0.5005.
    done = await closed(venue, trade.name, pb.CLOSE_REASON_STOP_LOSS)
    assert buy_backs(done, "sl") == [(pb.ORDER_TYPE_MARKET, "0.5005")]
    await assert_nothing_owed(venue, done, 2)


async def test_a_sell_trailing_take_profit_buys_back_off_the_lowest_in_one_order(
    venue: Venue,
) -> None:
    # Arrange: the target 95, trailing 1 %.
    step = pb.TakeProfitStep(price="95", volume_percent="100", trailing_percent="1")
    trade = await sell_1_btc(venue, take_profit=pb.TakeProfit(steps=[step]))

    # Act: reached at 95, lowest 90, back up to 90.9 = 90 x 1.01.
    for price in ("95", "90"):
        await venue.set_price(price)
    await eventually(venue, trade.name, lambda t: _extreme(t, "tp1") == "90")
    await venue.set_price("90.9")

    # Assert
    done = await closed(venue, trade.name, pb.CLOSE_REASON_TAKE_PROFIT)
    assert buy_backs(done, "tp1") == [(pb.ORDER_TYPE_MARKET, "1.00101")]
    await assert_nothing_owed(venue, done, 1)


def _extreme(trade: pb.SmartTrade, leg_id: str) -> str:
    return next(leg for leg in trade.legs if leg.id == leg_id).trailing_extreme
