"""The worst days of a real venue, against the real server process and real ccxt: a stub of
Binance that accepts an order and loses the answer, shows it late, never receives it, says
it is a duplicate, or throttles. Exactly one order per intent, always."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from smarttrade.usecases.create import trade_id_for
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.binance_service import GRACE, binance_server
from tests.support.binance_stub import CreateFault
from tests.support.service import Client, request_id


def market_buy(account: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol="BTC/USDT",
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="120", volume_percent="100")]),
    )


def active(trade: pb.SmartTrade) -> bool:
    take_profit = next(leg for leg in trade.legs if leg.id == "tp1")
    return trade.state == pb.SMART_TRADE_STATE_ACTIVE and any(
        order.status == pb.ORDER_STATUS_OPEN for order in take_profit.orders
    )


def entry_id(key: str, generation: int = 0) -> str:
    return f"{trade_id_for('tenant-a', key)}-entry-{generation}"


async def placements(client: Client, name: str, until: int) -> list[str]:
    """The ORDER_PLACED events of one trade, read from its stream until `until` of them."""
    stream = client.trades.WatchSmartTrades(
        trades_pb.WatchSmartTradesRequest(name=name, after_sequence=1),
        metadata=client.metadata,
    )
    placed: list[str] = []
    try:
        while len(placed) < until:
            item = await asyncio.wait_for(stream.read(), timeout=10)
            assert isinstance(item, trades_pb.WatchSmartTradesResponse)
            event = item.event
            if event.type == pb.SMART_TRADE_EVENT_TYPE_ORDER_PLACED:
                placed.append(event.client_order_id)
        extra = await asyncio.wait_for(stream.read(), timeout=1)
        assert isinstance(extra, trades_pb.WatchSmartTradesResponse)
        if extra.event.type == pb.SMART_TRADE_EVENT_TYPE_ORDER_PLACED:
            placed.append(extra.event.client_order_id)
    except TimeoutError:
        pass
    finally:
        stream.cancel()
    return placed


async def test_an_entry_accepted_then_timed_out_is_found_not_resent(
    database_url: str, tmp_path: Path
) -> None:
    async with binance_server(database_url, tmp_path) as setup:
        setup.venue.fail_next_create(CreateFault.ACCEPT_THEN_TIMEOUT, seconds=3)
        key = request_id()

        trade = await setup.create(market_buy(setup.account), key)
        ready = await setup.eventually(trade.name, active)

        assert setup.posts().count(entry_id(key)) == 1
        assert [o.client_order_id for o in ready.legs[0].orders] == [entry_id(key)]
        placed = await placements(setup.client, trade.name, until=2)
        assert placed.count(entry_id(key)) == 1


async def test_a_503_after_accept_with_late_visibility_waits_and_adopts_without_resending(
    database_url: str, tmp_path: Path
) -> None:
    async with binance_server(database_url, tmp_path) as setup:
        setup.venue.fail_next_create(CreateFault.ACCEPT_THEN_503, seconds=GRACE / 2)
        key = request_id()

        trade = await setup.create(market_buy(setup.account), key)
        ready = await setup.eventually(trade.name, active)

        assert setup.posts().count(entry_id(key)) == 1
        assert entry_id(key, 1) not in setup.posts()
        assert ready.legs[0].orders[0].status == pb.ORDER_STATUS_FILLED


async def test_an_order_that_never_arrived_is_placed_again_under_a_new_id_once(
    database_url: str, tmp_path: Path
) -> None:
    async with binance_server(database_url, tmp_path) as setup:
        setup.venue.fail_next_create(CreateFault.LOST)
        key = request_id()

        trade = await setup.create(market_buy(setup.account), key)
        ready = await setup.eventually(trade.name, active)

        entry_posts = [p for p in setup.posts() if "-entry-" in p]
        assert entry_posts == [entry_id(key, 0), entry_id(key, 1)]
        orders = ready.legs[0].orders
        assert [o.status for o in orders] == [pb.ORDER_STATUS_CANCELLED, pb.ORDER_STATUS_FILLED]
        assert Decimal(ready.position.units_bought) < Decimal("0.1") + Decimal("0.0001")


async def test_a_duplicate_client_order_id_answer_is_adopted_not_failed(
    database_url: str, tmp_path: Path
) -> None:
    async with binance_server(database_url, tmp_path) as setup:
        setup.venue.fail_next_create(CreateFault.PLACED_EARLIER)
        key = request_id()

        trade = await setup.create(market_buy(setup.account), key)
        ready = await setup.eventually(trade.name, active)

        assert ready.legs[0].orders[0].status == pb.ORDER_STATUS_FILLED
        assert setup.posts().count(entry_id(key)) == 1
        assert entry_id(key, 1) not in setup.posts()


async def test_a_rate_limit_storm_is_waited_out_with_a_bounded_number_of_requests(
    database_url: str, tmp_path: Path
) -> None:
    async with binance_server(database_url, tmp_path) as setup:
        key = request_id()
        trade = await setup.create(
            pb.SmartTrade(
                account=setup.account,
                symbol="BTC/USDT",
                side=pb.SIDE_BUY,
                entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="0.1", limit_price="95"),
                take_profit=pb.TakeProfit(
                    steps=[pb.TakeProfitStep(price="120", volume_percent="100")]
                ),
            ),
            key,
        )
        before = len(setup.venue.requests)
        setup.venue.rate_limit_storm(requests=3, retry_after=1, ban_retry_after=2)
        await setup.venue.set_price("BTC/USDT", Decimal(94))  # the entry fills at the venue

        ready = await setup.eventually(trade.name, active)

        storm_and_after = setup.venue.requests[before:]
        assert len(storm_and_after) <= 40  # polling at 10/s for ~4 s would be far more
        assert setup.posts().count(entry_id(key)) == 1
        take_profit_ids = [p for p in setup.posts() if "-tp1-" in p]
        assert len(take_profit_ids) == 1
        assert ready.legs[0].orders[0].status == pb.ORDER_STATUS_FILLED


async def test_a_stop_exit_refused_by_a_rate_limit_is_not_sent_once_the_trade_is_cancelled(
    database_url: str, tmp_path: Path
) -> None:
    async with binance_server(database_url, tmp_path) as setup:
        # Arrange: a long with a stop at 95; the stop's sell is refused with a 429 and a
        # Retry-After of 3 s (not placed), so the trade waits in CLOSING to send it again.
        key = request_id()
        trade = await setup.create(
            pb.SmartTrade(
                account=setup.account,
                symbol="BTC/USDT",
                side=pb.SIDE_BUY,
                entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
                stop_loss=pb.StopLoss(price="95"),
            ),
            key,
        )
        await setup.eventually(trade.name, lambda t: t.state == pb.SMART_TRADE_STATE_ACTIVE)
        setup.venue.fail_next_create(CreateFault.RATE_LIMITED, seconds=3)
        await setup.venue.set_price("BTC/USDT", Decimal(94))
        await setup.eventually(trade.name, lambda t: "sl-0" in " ".join(setup.posts()))
        closing = await setup.client.get(trade.name)

        # Act: the trader cancels while the sell waits out the rate limit.
        await setup.client.trades.CancelSmartTrade(
            trades_pb.CancelSmartTradeRequest(name=trade.name, request_id=request_id()),
            metadata=setup.client.metadata,
        )
        ended = await setup.eventually(
            trade.name,
            lambda t: all(o.status == pb.ORDER_STATUS_CANCELLED for o in t.legs[-1].orders),
        )
        await asyncio.sleep(4)  # past the Retry-After: the sell is never sent again

    # Assert: the only sell ever sent is the refused one; the coins stay.
    assert closing.state == pb.SMART_TRADE_STATE_CLOSING
    assert [p for p in setup.posts() if "-sl-" in p] == [f"{trade_id_for('tenant-a', key)}-sl-0"]
    assert ended.state == pb.SMART_TRADE_STATE_CANCELLED
    assert [o.status for o in ended.legs[-1].orders] == [pb.ORDER_STATUS_CANCELLED]
    assert ended.position.units_held == ended.position.units_bought
