"""Races with the venue, against the real server process: a cancel that meets a fill, a close
while take-profit orders are half filled, the same fills delivered again and out of order."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import asyncpg
import grpc

from smarttrade.usecases.create import trade_id_for
from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.binance_service import binance_venue, trading_on
from tests.support.process import serve_process
from tests.support.service import Client, request_id

SLOW_TRACKING = {"SMARTTRADE_ORDER_POLL_INTERVAL": "30", "SMARTTRADE_RECONCILE_INTERVAL": "30"}


def limit_buy(account: str, units: str, price: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol="BTC/USDT",
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units=units, limit_price=price),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="120", volume_percent="100")]),
    )


async def test_open_now_racing_a_fill_of_the_limit_entry_buys_nothing_more(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    entry = f"{trade_id_for('tenant-a', key)}-entry-0"
    # The service hears of fills only through what it asks: the race is the cancel's.
    async with (
        binance_venue() as venue,
        trading_on(venue, database_url, tmp_path, env=SLOW_TRACKING) as trading,
    ):
        trade = await trading.create(limit_buy(trading.account, "0.1", "95"), key)
        await venue.fill_in_parts(entry, [Decimal("0.1")])  # filled at the venue ...

        opened = await trading.client.trades.OpenSmartTrade(  # ... as Open Now cancels
            trades_pb.OpenSmartTradeRequest(name=trade.name, request_id=request_id()),
            metadata=trading.client.metadata,
        )

        done = opened.smart_trade
        assert done.state == pb.SMART_TRADE_STATE_ACTIVE
        assert [o.client_order_id for o in done.legs[0].orders] == [entry]
        assert done.legs[0].orders[0].status == pb.ORDER_STATUS_FILLED
        assert Decimal(done.position.units_bought) == Decimal("0.1") - Decimal("0.0001")
        entries = [p for p in trading.posts() if "-entry-" in p]
        assert entries == [entry]


async def test_cancel_racing_a_partial_fill_keeps_exactly_the_filled_part(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    entry = f"{trade_id_for('tenant-a', key)}-entry-0"
    async with (
        binance_venue() as venue,
        trading_on(venue, database_url, tmp_path, env=SLOW_TRACKING) as trading,
    ):
        trade = await trading.create(limit_buy(trading.account, "0.3", "95"), key)
        await venue.fill_in_parts(entry, [Decimal("0.1")])

        cancelled = await trading.client.trades.CancelSmartTrade(
            trades_pb.CancelSmartTradeRequest(name=trade.name, request_id=request_id()),
            metadata=trading.client.metadata,
        )

        done = cancelled.smart_trade
        assert done.state == pb.SMART_TRADE_STATE_CANCELLED
        order = done.legs[0].orders[0]
        assert order.status == pb.ORDER_STATUS_CANCELLED
        assert order.filled == "0.1"
        assert Decimal(done.position.units_bought) == Decimal("0.1") - Decimal("0.0001")
        assert [p for p in trading.posts() if "-entry-" in p] == [entry]


async def test_the_same_fills_three_times_and_out_of_order_count_once(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    entry = f"{trade_id_for('tenant-a', key)}-entry-0"
    async with binance_venue() as venue:
        venue.newest_first = True  # executions listed in reverse order
        async with trading_on(venue, database_url, tmp_path) as trading:
            trade = await trading.create(limit_buy(trading.account, "0.3", "95"), key)
            await venue.fill_in_parts(entry, [Decimal("0.05"), Decimal("0.1"), Decimal("0.15")])
            for _ in range(3):  # besides the order tracking's own polls
                await trading.client.trades.RefreshSmartTrade(
                    trades_pb.RefreshSmartTradeRequest(name=trade.name),
                    metadata=trading.client.metadata,
                )
            active = await trading.eventually(
                trade.name,
                lambda t: bool(t.state == pb.SMART_TRADE_STATE_ACTIVE and t.legs[1].orders),
            )

        database = await asyncpg.connect(database_url)
        rows = await database.fetch(
            "SELECT trade_id, amount FROM fills WHERE client_order_id = $1 ORDER BY amount", entry
        )
        await database.close()

    assert [row["amount"] for row in rows] == [Decimal("0.05"), Decimal("0.1"), Decimal("0.15")]
    assert len({row["trade_id"] for row in rows}) == 3
    fees = Decimal("0.00005") + Decimal("0.0001") + Decimal("0.00015")
    assert Decimal(active.position.units_bought) == Decimal("0.3") - fees
    # average entry = cost / units held = 0.3 x 95 / (0.3 - fees)
    expected = (Decimal("0.3") * 95 / (Decimal("0.3") - fees)).quantize(Decimal("1e-12"))
    assert Decimal(active.position.average_entry_price) == expected


async def test_close_at_market_with_a_step_half_filled_sells_exactly_the_rest(
    database_url: str, tmp_path: Path
) -> None:
    env = {"SMARTTRADE_TOKENS": "tenant-a:token-a"}
    async with (
        serve_process(tmp_path, database_url=database_url, env=env) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        client = Client(channel, "token-a")
        account = (
            await client.accounts.CreateExchangeAccount(
                accounts_pb.CreateExchangeAccountRequest(
                    exchange_account=accounts_pb.ExchangeAccount(
                        exchange="paper",
                        paper_settings=accounts_pb.PaperAccountSettings(
                            partial_fills=True, initial_balances={"USDT": "10000"}
                        ),
                    ),
                    request_id=request_id(),
                ),
                metadata=client.metadata,
            )
        ).exchange_account.name
        await client.set_price("BTC/USDT", "100")
        trade = await client.create(
            pb.SmartTrade(
                account=account,
                symbol="BTC/USDT",
                side=pb.SIDE_BUY,
                entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="1"),
                take_profit=pb.TakeProfit(
                    steps=[
                        pb.TakeProfitStep(price="110", volume_percent="50"),
                        pb.TakeProfitStep(price="120", volume_percent="50"),
                    ]
                ),
            )
        )
        await client.set_price("BTC/USDT", "100")  # the entry's second half fills
        await client.set_price("BTC/USDT", "110")  # step 1 fills in part
        half = await client.get(trade.name)
        step_one = half.legs[1]
        assert step_one.state == pb.LEG_STATE_PARTIALLY_FILLED

        closing = await client.trades.CloseSmartTrade(
            trades_pb.CloseSmartTradeRequest(name=trade.name, request_id=request_id()),
            metadata=client.metadata,
        )
        assert closing.smart_trade.state == pb.SMART_TRADE_STATE_CLOSING
        await client.set_price("BTC/USDT", "109")  # the market exit's second half fills
        closed = await client.get(trade.name)

    assert closed.state == pb.SMART_TRADE_STATE_CLOSED
    assert closed.close_reason == pb.CLOSE_REASON_CLOSED_AT_MARKET
    assert Decimal(closed.position.units_held) < Decimal("0.00001")  # at most lot dust
    every_order = [o for leg in closed.legs for o in leg.orders]
    assert all(o.status != pb.ORDER_STATUS_REJECTED for o in every_order)
    exit_leg = next(leg for leg in closed.legs if leg.id == "close")
    held_at_close = Decimal(half.position.units_held)
    sold_by_exit = sum(Decimal(o.filled) for o in exit_leg.orders)
    assert sold_by_exit == held_at_close.quantize(Decimal("0.00001"), rounding="ROUND_DOWN")
    await asyncio.sleep(0)
