"""A SmartTrade through every layer: gRPC on a real socket, the engine, the paper venue and
PostgreSQL."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import grpc
import pytest

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Service, WatchCall, request_id, rich_error

BTC = "BTC/USDT"


def market_buy(account: str, units: str, take_profit: str, stop: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units=units),
        take_profit=pb.TakeProfit(
            steps=[pb.TakeProfitStep(price=take_profit, volume_percent="100")]
        ),
        stop_loss=pb.StopLoss(price=stop),
    )


def limit_buy(account: str, units: str, price: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units=units, limit_price=price),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(percent="10", volume_percent="100")]),
    )


def legs(trade: pb.SmartTrade) -> dict[str, int]:
    return {leg.id: leg.state for leg in trade.legs}


async def test_a_market_entry_goes_active_and_the_take_profit_closes_it_with_the_right_pnl(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")

    created = await client.create(market_buy(account, "1", take_profit="110", stop="90"))

    # The paper venue fills the market entry at 100; the fee (0.1%) is paid in BTC.
    assert created.state == pb.SMART_TRADE_STATE_ACTIVE
    assert legs(created) == {
        "entry": pb.LEG_STATE_FILLED,
        "tp1": pb.LEG_STATE_ORDER_PLACED,
        "sl": pb.LEG_STATE_WAITING,
    }
    assert created.position.units_held == "0.999"
    assert created.legs[1].orders[0].amount == "0.999"
    assert created.legs[1].orders[0].price == "110"

    await client.set_price(BTC, "111")

    closed = await client.get(created.name)
    assert closed.state == pb.SMART_TRADE_STATE_CLOSED
    assert closed.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
    # Sold 0.999 at the 110 limit: 109.89 USDT, fee 0.10989 USDT. Cost 100.
    # realized = 109.89 - (100 / 0.999) * 0.999 - 0.10989 = 9.78011
    assert closed.position.realized_pnl == "9.78011"
    assert await client.balances(account) == {"BTC": "0", "USDT": "10009.78011"}


async def test_a_falling_price_stops_the_trade_out_at_market(service: Service) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    created = await client.create(market_buy(account, "1", take_profit="110", stop="90"))

    await client.set_price(BTC, "95")
    assert (await client.get(created.name)).state == pb.SMART_TRADE_STATE_ACTIVE
    await client.set_price(BTC, "89")

    stopped = await client.get(created.name)
    assert stopped.state == pb.SMART_TRADE_STATE_CLOSED
    assert stopped.close_reason == pb.CLOSE_REASON_STOP_LOSS
    take_profit = next(leg for leg in stopped.legs if leg.id == "tp1")
    assert take_profit.state == pb.LEG_STATE_CANCELLED
    assert take_profit.orders[0].status == pb.ORDER_STATUS_CANCELLED
    # Sold 0.999 at market 89: 88.911 USDT, fee 0.088911. realized = 88.911 - 100 - 0.088911
    assert stopped.position.realized_pnl == "-11.177911"
    assert await client.balances(account) == {"BTC": "0", "USDT": "9988.822089"}


async def test_trades_are_read_listed_in_pages_and_cancelled(service: Service) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    names = [
        (await client.create(limit_buy(account, "1", price))).name for price in ("95", "96", "97")
    ]

    first = await client.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(page_size=2), metadata=client.metadata
    )
    second = await client.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(page_size=2, page_token=first.next_page_token),
        metadata=client.metadata,
    )
    listed = [trade.name for trade in [*first.smart_trades, *second.smart_trades]]
    assert listed == list(reversed(names))
    assert second.next_page_token == ""
    assert (await client.balances(account))["USDT"] == "10000"

    cancelled = await client.trades.CancelSmartTrade(
        trades_pb.CancelSmartTradeRequest(name=names[0], request_id=request_id()),
        metadata=client.metadata,
    )

    trade = cancelled.smart_trade
    assert trade.state == pb.SMART_TRADE_STATE_CANCELLED
    assert trade.legs[0].orders[0].status == pb.ORDER_STATUS_CANCELLED
    balances = await service.a.paper.GetPaperBalances(
        __import__(
            "smarttrade.v1.paper_market_service_pb2", fromlist=["x"]
        ).GetPaperBalancesRequest(account=account),
        metadata=client.metadata,
    )
    usdt = next(b for b in balances.balances if b.currency == "USDT")
    assert Decimal(usdt.locked) == Decimal(96 + 97)  # only the two live limit orders lock funds
    pending = await client.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(states=[pb.SMART_TRADE_STATE_PENDING]),
        metadata=client.metadata,
    )
    assert [t.name for t in pending.smart_trades] == [names[2], names[1]]


async def collect(stream: WatchCall, until: int) -> list[trades_pb.WatchSmartTradesResponse]:
    """Read events until the trade's state changes to `until`."""
    items: list[trades_pb.WatchSmartTradesResponse] = []
    while True:
        item = await stream.read()
        assert isinstance(item, trades_pb.WatchSmartTradesResponse)
        items.append(item)
        event = item.event
        if event.type == pb.SMART_TRADE_EVENT_TYPE_STATE_CHANGED and event.state == until:
            return items


async def test_watching_sends_the_snapshot_then_every_event_in_sequence(service: Service) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    waiting = await client.create(limit_buy(account, "1", "50"))
    stream = client.trades.WatchSmartTrades(
        trades_pb.WatchSmartTradesRequest(), metadata=client.metadata
    )
    first = await stream.read()
    assert isinstance(first, trades_pb.WatchSmartTradesResponse)
    assert first.snapshot.name == waiting.name
    end = await stream.read()
    assert isinstance(end, trades_pb.WatchSmartTradesResponse)
    assert end.WhichOneof("payload") == "snapshot_end"

    watching = asyncio.ensure_future(collect(stream, pb.SMART_TRADE_STATE_CLOSED))
    created = await client.create(market_buy(account, "1", take_profit="110", stop="90"))
    await client.set_price(BTC, "111")
    items = await asyncio.wait_for(watching, timeout=10)
    stream.cancel()

    events = [item.event for item in items]
    sequences = [event.sequence for event in events]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    assert sequences[0] > end.snapshot_end.sequence
    assert {event.smart_trade_name for event in events} == {created.name}
    states = [e.state for e in events if e.type == pb.SMART_TRADE_EVENT_TYPE_STATE_CHANGED]
    assert states == [pb.SMART_TRADE_STATE_ACTIVE, pb.SMART_TRADE_STATE_CLOSED]
    placed = [e.client_order_id for e in events if e.type == pb.SMART_TRADE_EVENT_TYPE_ORDER_PLACED]
    assert len(placed) == len(set(placed)) == 2  # the entry and the take profit, once each


async def test_another_tenant_sees_nothing_of_a_trade(service: Service) -> None:
    account = await service.a.paper_account(USDT="10000")
    await service.a.set_price(BTC, "100")
    trade = await service.a.create(limit_buy(account, "1", "90"))

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.b.get(trade.name)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await service.b.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(), metadata=service.b.metadata
    )
    assert list(listed.smart_trades) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda t: t.ClearField("symbol"), "smart_trade.symbol"),
        (lambda t: t.entry.ClearField("units"), "smart_trade.entry.units"),
        (lambda t: setattr(t.entry, "units", "-1"), "smart_trade.entry.units"),
        (lambda t: setattr(t.entry, "units", "abc"), "smart_trade.entry.units"),
        (lambda t: setattr(t.entry, "units", "NaN"), "smart_trade.entry.units"),
        (lambda t: setattr(t.entry, "units", "1E+999999"), "smart_trade.entry.units"),
        (lambda t: setattr(t.entry, "units", "0.000001"), "smart_trade.entry.units"),
        (lambda t: setattr(t, "side", pb.SIDE_UNSPECIFIED), "smart_trade.side"),
        (lambda t: setattr(t, "symbol", "NOPE/USDT"), "smart_trade.symbol"),
        (lambda t: setattr(t.stop_loss, "price", "120"), "smart_trade.stop_loss.price"),
        (
            lambda t: setattr(t.take_profit.steps[0], "volume_percent", "90"),
            "smart_trade.take_profit.steps",
        ),
        (lambda t: setattr(t, "account", "accounts/x"), "smart_trade.account"),
    ],
    ids=[
        "missing symbol",
        "missing size",
        "negative units",
        "non-numeric units",
        "NaN units",
        "huge exponent",
        "below the market minimum",
        "no side",
        "unknown symbol",
        "stop above the entry",
        "volumes not summing to 100",
        "malformed account name",
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    service: Service, change: object, field: str
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    trade = market_buy(account, "1", take_profit="110", stop="90")
    change(trade)  # type: ignore[operator]

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.create(trade)

    error = rich_error(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_FIELD"
    assert field in error.fields


async def test_an_unknown_account_is_not_found_with_error_info(service: Service) -> None:
    await service.a.set_price(BTC, "100")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.a.create(market_buy("exchangeAccounts/00ff", "1", "110", "90"))
    error = rich_error(raised.value)
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.reason == "NOT_FOUND"


async def test_a_trade_of_another_tenants_account_is_not_found(service: Service) -> None:
    account = await service.a.paper_account(USDT="10000")
    await service.b.set_price(BTC, "100")
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.b.create(market_buy(account, "1", "110", "90"))
    assert rich_error(raised.value).code == grpc.StatusCode.NOT_FOUND


async def test_a_read_shows_the_latest_price_even_when_the_trade_itself_did_not_change(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    created = await client.create(market_buy(account, "1", take_profit="110", stop="90"))
    first = await client.get(created.name)

    await client.set_price(BTC, "104")  # inside the band: nothing of the trade changes
    second = await client.get(created.name)

    assert second.etag == first.etag
    assert (first.position.last_price, second.position.last_price) == ("100", "104")
    # 0.999 held at an average of 100 / 0.999: (104 - 100.1001...) x 0.999 = 3.896
    assert Decimal(second.position.unrealized_pnl) == Decimal("3.896")
