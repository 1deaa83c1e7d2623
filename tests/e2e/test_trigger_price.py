"""Which price triggers (issue 15): a trade's conditions, trailing and stop watch the venue's
last price (the default), its best bid or ask, or a perpetual's mark price. On the Binance
stub through real ccxt the bid and ask are set apart from the last price (a spread) and the
mark moved off it (a premium), so a stop watching one fires while its twin watching the
last price does not; the paper venue has no order book, so there they are all its price."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.binance_service import (
    API_KEY,
    SECRET,
    open_binance_account,
    open_usdm_account,
    stub_overrides,
    usdm_overrides,
)
from tests.support.binance_stub import BinanceStub
from tests.support.service import (
    Client,
    Service,
    eventually,
    request_id,
    rich_error,
    running_service,
)

BTC, PERP = "BTC/USDT", "BTC/USDT:USDT"


def stopped_buy(account: str, symbol: str, trigger: int, **settings: object) -> pb.SmartTrade:
    """A buy of 1 at market (10 on the perpetual) with a stop at 95 watching `trigger`."""
    return pb.SmartTrade(
        account=account,
        symbol=symbol,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="1" if symbol == BTC else "10"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="150", volume_percent="100")]),
        stop_loss=pb.StopLoss(price="95"),
        trigger_price=trigger,  # type: ignore[arg-type]
        **settings,  # type: ignore[arg-type]
    )


def active(trade: pb.SmartTrade) -> bool:
    return trade.state == pb.SMART_TRADE_STATE_ACTIVE


def stopped(trade: pb.SmartTrade) -> bool:
    """Closed by its stop (CLOSING has the reason already, before the stop's order)."""
    return (
        trade.state == pb.SMART_TRADE_STATE_CLOSED
        and trade.close_reason == pb.CLOSE_REASON_STOP_LOSS
    )


def stopped_sell(account: str, trigger: int) -> pb.SmartTrade:
    """A spot sell of 1 at market with a stop at 105 watching `trigger`."""
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_SELL,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="1"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="50", volume_percent="100")]),
        stop_loss=pb.StopLoss(price="105"),
        trigger_price=trigger,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("side", "trigger", "last", "level"),
    [
        (pb.SIDE_BUY, pb.TRIGGER_PRICE_BID, "96.5", "95"),
        (pb.SIDE_SELL, pb.TRIGGER_PRICE_ASK, "103.5", "105"),
    ],
    ids=["a buy's stop on the bid", "a sell's stop on the ask"],
)
async def test_a_stop_watching_the_bid_or_ask_fires_where_the_last_price_has_not_reached(
    database_url: str, tmp_path: Path, side: int, trigger: int, last: str, level: str
) -> None:
    # Arrange: Binance spot through real ccxt, with a spread of 3: the bid 1.5 under the
    # last price, the ask 1.5 over it.
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as stub:
        await stub.set_balance("USDT", Decimal(10000))
        await stub.set_balance("BTC", Decimal(10))
        await stub.set_price(BTC, Decimal(100))
        stub.spreads["BTCUSDT"] = Decimal(3)
        async with running_service(
            database_url,
            tmp_path,
            exchange_overrides=stub_overrides(stub),
            order_poll_interval=0.05,
        ) as service:
            client = service.a
            account = await open_binance_account(client, request_id())
            make = stopped_sell if side == pb.SIDE_SELL else (lambda a, t: stopped_buy(a, BTC, t))
            watching = await client.create(make(account, trigger))
            twin = await client.create(make(account, pb.TRIGGER_PRICE_LAST))
            for trade in (watching, twin):
                await eventually(client, trade.name, active)

            # Act: the last price 96.5 (103.5): its bid 95 (its ask 105).
            await stub.set_price(BTC, Decimal(last))

            # Assert: the stop watching that price fired; the twin watching the last did not.
            done = await eventually(client, watching.name, stopped)
            assert Decimal(done.position.last_price) == Decimal(level)
            assert (await client.get(twin.name)).state == pb.SMART_TRADE_STATE_ACTIVE
            assert done.trigger_price == trigger


async def test_a_futures_stop_watching_the_mark_price_fires_where_the_last_price_has_not_reached(
    database_url: str, tmp_path: Path
) -> None:
    # Arrange: Binance USDⓈ-M through real ccxt; the mark price 3 under the last.
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as stub:
        await stub.set_futures_balance(Decimal(10000))
        await stub.set_price(PERP, Decimal(100))
        async with running_service(
            database_url,
            tmp_path,
            exchange_overrides=usdm_overrides(stub),
            order_poll_interval=0.05,
        ) as service:
            client = service.a
            account = await open_usdm_account(client)
            linear = pb.Leverage(market_type=pb.MARKET_TYPE_LINEAR, value="5")
            trade = await client.create(
                stopped_buy(account, PERP, pb.TRIGGER_PRICE_MARK, leverage=linear)
            )
            await eventually(client, trade.name, active)

            # Act: the last price 97.5, the mark 94.5.
            stub.futures.mark_offsets["BTCUSDT"] = Decimal(-3)
            await stub.set_price(PERP, Decimal("97.5"))

            # Assert: stopped at market, at the last price; the position closed.
            done = await eventually(client, trade.name, stopped)
            assert Decimal(done.position.last_price) == Decimal("94.5")
            (order,) = next(leg for leg in done.legs if leg.id == "sl").orders
            assert Decimal(order.average_price) == Decimal("97.5")


async def test_the_paper_venues_bid_ask_and_mark_are_its_one_price(service: Service) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    trade = await client.create(stopped_buy(account, BTC, pb.TRIGGER_PRICE_BID))

    await client.set_price(BTC, "95")

    done = await eventually(client, trade.name, stopped)
    assert done.position.last_price == "95"


async def invalid(client: Client, trade: pb.SmartTrade) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.create(trade)
    return raised.value


async def test_a_mark_price_trigger_on_a_spot_trade_is_invalid_argument(service: Service) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")

    error = rich_error(await invalid(client, stopped_buy(account, BTC, pb.TRIGGER_PRICE_MARK)))

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.fields) == ["smart_trade.trigger_price"]


async def test_a_simulation_of_a_bid_trigger_is_refused_for_candles_hold_last_prices(
    service: Service,
) -> None:
    client = service.a
    candle = trades_pb.Candle(open="100", high="100", low="100", close="100")
    candle.time.FromSeconds(1_772_323_200)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.trades.SimulateSmartTrade(
            trades_pb.SimulateSmartTradeRequest(
                smart_trade=stopped_buy("", BTC, pb.TRIGGER_PRICE_BID), candles=[candle]
            ),
            metadata=client.metadata,
        )

    assert list(rich_error(refused.value).fields) == ["smart_trade.trigger_price"]
