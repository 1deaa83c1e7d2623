"""SimulateSmartTrade over gRPC (issue 15): the final trade and its events, nothing stored,
the account's fees, a history fetched from a venue (the Binance stub, through real ccxt),
and every refusal naming its field.

BTC/USDT at about 100 USDT: lot 0.00001 BTC, tick 0.01, fees 0.1 %.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.binance_service import stub_overrides
from tests.support.binance_stub import BinanceStub
from tests.support.service import Client, Service, request_id, rich_error, running_service

BTC = "BTC/USDT"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
Prices = tuple[str, str, str, str]  # open, high, low, close
# Bought at 100; the target at 104 fills at the second candle's high.
TO_THE_TARGET: list[Prices] = [
    ("100", "100.5", "99.8", "100.2"),
    ("100.2", "104.3", "100", "104"),
]


def at(minute: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(T0 + timedelta(minutes=minute))
    return stamp


def candles(rows: list[Prices]) -> list[trades_pb.Candle]:
    return [
        trades_pb.Candle(time=at(m), open=o, high=h, low=low, close=c)
        for m, (o, h, low, c) in enumerate(rows)
    ]


def a_buy(account: str = "", **settings: object) -> pb.SmartTrade:
    trade = pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="10"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="104", volume_percent="100")]),
        stop_loss=pb.StopLoss(price="95"),
    )
    for name, value in settings.items():
        getattr(trade, name).CopyFrom(value)
    return trade


async def simulate(
    client: Client, request: trades_pb.SimulateSmartTradeRequest
) -> trades_pb.SimulateSmartTradeResponse:
    response: trades_pb.SimulateSmartTradeResponse = await client.trades.SimulateSmartTrade(
        request, metadata=client.metadata
    )
    return response


def fills(trade: pb.SmartTrade) -> list[tuple[str, str, str, str, str]]:
    return [
        (leg.id, fill.price, fill.amount, fill.fee, fill.fee_currency)
        for leg in trade.legs
        for order in leg.orders
        for fill in order.fills
    ]


@pytest.fixture
async def service(database_url: str, tmp_path: Path) -> AsyncIterator[Service]:
    async with running_service(database_url, tmp_path) as running:
        yield running


async def test_a_simulation_answers_the_final_trade_and_its_events_and_stores_nothing(
    service: Service,
) -> None:
    # Arrange
    client = service.a

    # Act
    answer = await simulate(
        client,
        trades_pb.SimulateSmartTradeRequest(smart_trade=a_buy(), candles=candles(TO_THE_TARGET)),
    )

    # Assert: 10 BTC bought at 100 (fee 0.01 BTC), 9.99 sold at 104 (fee 1.03896 USDT).
    trade = answer.smart_trade
    assert (trade.state, trade.close_reason) == (
        pb.SMART_TRADE_STATE_CLOSED,
        pb.CLOSE_REASON_TAKE_PROFIT,
    )
    assert fills(trade) == [
        ("entry", "100", "10", "0.01", "BTC"),
        ("tp1", "104", "9.99", "1.03896", "USDT"),
    ]
    assert trade.position.realized_pnl == "37.92104"  # 1,038.96 - 1,000 - 1.03896
    assert (trade.name, trade.etag, list(trade.available_actions)) == (
        "smartTrades/simulation",
        "",
        [],
    )
    assert [e.sequence for e in answer.events] == list(range(1, len(answer.events) + 1))
    assert answer.events[0].type == pb.SMART_TRADE_EVENT_TYPE_CREATED
    states = [e.state for e in answer.events if e.type == pb.SMART_TRADE_EVENT_TYPE_STATE_CHANGED]
    assert states == [pb.SMART_TRADE_STATE_ACTIVE, pb.SMART_TRADE_STATE_CLOSED]
    assert (answer.candle_count, answer.tick_count) == (2, 8)
    listed = await client.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(), metadata=client.metadata
    )
    assert list(listed.smart_trades) == []


async def test_a_simulation_names_the_candles_in_which_it_filled_more_than_was_traded(
    service: Service,
) -> None:
    # Arrange: the entry's 10 BTC at the first candle, where 4 BTC traded; the target's
    # 9.99 in the second, where 50 traded; the third has no volume.
    history = candles([*TO_THE_TARGET, ("104", "104", "104", "104")])
    history[0].volume, history[1].volume = "4", "50"

    # Act
    answer = await simulate(
        service.a, trades_pb.SimulateSmartTradeRequest(smart_trade=a_buy(), candles=history)
    )

    # Assert
    assert [
        (s.candle_time.ToDatetime(tzinfo=UTC), s.volume, s.filled) for s in answer.volume_shortfalls
    ] == [(T0, "4", "10")]


async def test_a_simulation_on_a_paper_account_fills_with_its_fees_and_slippage(
    service: Service,
) -> None:
    # Arrange: taker fee 0.2 %, market orders 1 % worse.
    client = service.a
    created = await client.accounts.CreateExchangeAccount(
        accounts_pb.CreateExchangeAccountRequest(
            exchange_account=accounts_pb.ExchangeAccount(
                display_name="paper",
                exchange="paper",
                paper_settings=accounts_pb.PaperAccountSettings(
                    taker_fee_rate="0.002", slippage_percent="1"
                ),
            ),
            request_id=request_id(),
        ),
        metadata=client.metadata,
    )

    # Act
    answer = await simulate(
        client,
        trades_pb.SimulateSmartTradeRequest(
            smart_trade=a_buy(created.exchange_account.name), candles=candles(TO_THE_TARGET)
        ),
    )

    # Assert
    assert fills(answer.smart_trade)[0] == ("entry", "101", "10", "0.02", "BTC")
    assert answer.smart_trade.account == created.exchange_account.name


async def test_a_simulation_without_the_balance_it_needs_fails_as_the_venue_refuses(
    service: Service,
) -> None:
    answer = await simulate(
        service.a,
        trades_pb.SimulateSmartTradeRequest(
            smart_trade=a_buy(), candles=candles(TO_THE_TARGET), balances={"USDT": "50"}
        ),
    )

    assert answer.smart_trade.state == pb.SMART_TRADE_STATE_FAILED
    assert answer.balances["USDT"] == "50"


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "no history": ({}, "candles"),
    "high below low": (
        {"candles": candles([*TO_THE_TARGET[:1], ("100", "99", "101", "100")])},
        "candles[1].high",
    ),
    "times not increasing": (
        {
            "candles": [
                trades_pb.Candle(time=at(1), open="100", high="100", low="100", close="100"),
                trades_pb.Candle(time=at(1), open="100", high="100", low="100", close="100"),
            ]
        },
        "candles[1].time",
    ),
    "a price not a decimal": (
        {"candles": candles([("1e2", "100", "100", "100")])},
        "candles[0].open",
    ),
    "a candle without a time": (
        {"candles": [trades_pb.Candle(open="100", high="100", low="100", close="100")]},
        "candles[0].time",
    ),
    "too many candles": (
        {
            "candles": [
                trades_pb.Candle(time=at(m), open="1", high="1", low="1", close="1")
                for m in range(50_001)
            ]
        },
        "candles",
    ),
    "both histories": (
        {
            "candles": candles(TO_THE_TARGET),
            "candle_source": trades_pb.CandleSource(
                exchange="binance", timeframe="1m", start_time=at(0), end_time=at(10)
            ),
        },
        "candle_source",
    ),
    "an unknown timeframe": (
        {
            "candle_source": trades_pb.CandleSource(
                exchange="binance", timeframe="7m", start_time=at(0), end_time=at(10)
            )
        },
        "candle_source.timeframe",
    ),
    "a source longer than the limit": (
        {
            "candle_source": trades_pb.CandleSource(
                exchange="binance", timeframe="1m", start_time=at(0), end_time=at(600_001)
            )
        },
        "candle_source",
    ),
    "a negative balance": (
        {"candles": candles(TO_THE_TARGET), "balances": {"USDT": "-1"}},
        "balances['USDT']",
    ),
    "an unknown symbol": (
        {"candles": candles(TO_THE_TARGET), "symbol": "NOPE/USDT"},
        "smart_trade.symbol",
    ),
    "a target below a buy's entry": (
        {"candles": candles(TO_THE_TARGET), "target": "90"},
        "smart_trade.take_profit.steps[0].price",
    ),
    "a futures trade on a spot market": (
        {"candles": candles(TO_THE_TARGET), "futures": True},
        "smart_trade.symbol",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
async def test_a_simulation_that_cannot_run_is_invalid_argument_naming_the_field(
    service: Service, case: str
) -> None:
    # Arrange
    given, field = REFUSED[case]
    given = dict(given)  # a copy: the case stays as written for the next run
    trade = a_buy()
    if "symbol" in given:
        trade.symbol = str(given.pop("symbol"))
    if "target" in given:
        trade.take_profit.steps[0].price = str(given.pop("target"))
    if given.pop("futures", False):
        trade.leverage.market_type = pb.MARKET_TYPE_LINEAR
    request = trades_pb.SimulateSmartTradeRequest(smart_trade=trade, **given)

    # Act
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await simulate(service.a, request)

    # Assert
    error = rich_error(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.fields) == [field], error.fields


async def test_a_simulation_needs_a_token_with_the_trade_scope(service: Service) -> None:
    request = trades_pb.SimulateSmartTradeRequest(
        smart_trade=a_buy(), candles=candles(TO_THE_TARGET)
    )

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.a.trades.SimulateSmartTrade(request)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_another_tenants_account_is_not_found(service: Service) -> None:
    account = await service.b.paper_account()
    request = trades_pb.SimulateSmartTradeRequest(
        smart_trade=a_buy(account), candles=candles(TO_THE_TARGET)
    )

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await simulate(service.a, request)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_history_fetched_from_a_venue_simulates_as_the_same_candles_given(
    database_url: str, tmp_path: Path
) -> None:
    # Arrange: 1,500 minutes at the Binance stub, flat at 100 and then up to the target.
    rows = [("100", "100.5", "99.8", "100.2")] * 1499 + [TO_THE_TARGET[1]]
    minute_ms = 60_000
    start_ms = int(T0.timestamp() * 1000)
    async with BinanceStub(api_key="k", secret="s") as stub:
        stub.set_candles(BTC, [(start_ms + m * minute_ms, *row, "1") for m, row in enumerate(rows)])
        async with running_service(
            database_url, tmp_path, exchange_overrides=stub_overrides(stub)
        ) as service:
            source = trades_pb.CandleSource(
                exchange="binance", timeframe="1m", start_time=at(0), end_time=at(1500)
            )

            # Act
            fetched = await simulate(
                service.a,
                trades_pb.SimulateSmartTradeRequest(smart_trade=a_buy(), candle_source=source),
            )
            given = await simulate(
                service.a,
                trades_pb.SimulateSmartTradeRequest(smart_trade=a_buy(), candles=candles(rows)),
            )

    # Assert
    assert fetched.candle_count == 1500
    assert fetched.smart_trade.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
    assert fills(fetched.smart_trade) == fills(given.smart_trade)
    assert len(stub.requests_to("GET", "klines")) == 2
