"""Never lose a trade: `kill -9` at the worst moments, then restart on the same database.

The venue (a Binance stub, through real ccxt) lives outside the service, as a real exchange
does, so it keeps what it was told while the service is dead.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import asyncpg

from smarttrade.usecases.create import trade_id_for
from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.binance_service import binance_venue, killed_once, trading_on
from tests.support.binance_stub import BinanceStub, CreateFault
from tests.support.service import request_id


def market_buy(account: str, stop: str = "") -> pb.SmartTrade:
    trade = pb.SmartTrade(
        account=account,
        symbol="BTC/USDT",
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="120", volume_percent="100")]),
    )
    if stop:
        trade.stop_loss.CopyFrom(pb.StopLoss(price=stop))
    return trade


def active(trade: pb.SmartTrade) -> bool:
    take_profit = next(leg for leg in trade.legs if leg.id == "tp1")
    return trade.state == pb.SMART_TRADE_STATE_ACTIVE and any(
        o.status == pb.ORDER_STATUS_OPEN for o in take_profit.orders
    )


async def until_venue(venue: BinanceStub, seen: object) -> None:
    deadline = asyncio.get_running_loop().time() + 10
    while not seen(venue):  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


async def test_killed_after_the_intent_commit_and_before_the_send_it_is_sent_once(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    entry = f"{trade_id_for('tenant-a', key)}-entry"
    async with binance_venue() as venue:
        async with trading_on(venue, database_url, tmp_path) as first:
            account = first.account
            venue.fail_next_create(CreateFault.HOLD)  # arrives, is never placed
            creating = asyncio.ensure_future(first.create(market_buy(account), key))
            await until_venue(
                venue,
                lambda v: any(
                    r.params.get("newClientOrderId", "").startswith(entry)
                    for r in v.requests_to("POST", "order")
                ),
            )
            first.server.kill()
            await asyncio.gather(creating, return_exceptions=True)

        async with trading_on(venue, database_url, tmp_path, account) as second:
            ready = await second.eventually(f"smartTrades/{trade_id_for('tenant-a', key)}", active)

    placed = [o for o in ready.legs[0].orders if o.status == pb.ORDER_STATUS_FILLED]
    assert len(placed) == 1
    assert [venue.holds(f"{entry}-{n}") for n in (0, 1)] == [False, True]


async def test_killed_after_the_venue_accepted_and_before_the_commit_it_is_adopted(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    name = f"smartTrades/{trade_id_for('tenant-a', key)}"
    entry = f"{trade_id_for('tenant-a', key)}-entry-0"
    async with binance_venue() as venue:
        async with trading_on(venue, database_url, tmp_path) as first:
            account = first.account
            venue.fail_next_create(CreateFault.ACCEPT_THEN_HOLD)  # placed, answer held
            creating = asyncio.ensure_future(first.create(market_buy(account), key))
            await until_venue(venue, lambda v: v.holds(entry))
            first.server.kill()
            await asyncio.gather(creating, return_exceptions=True)

        async with trading_on(venue, database_url, tmp_path, account) as second:
            ready = await second.eventually(name, active)

    assert [o.client_order_id for o in ready.legs[0].orders] == [entry]
    assert [o.status for o in ready.legs[0].orders] == [pb.ORDER_STATUS_FILLED]
    posts = [r.params["newClientOrderId"] for r in venue.requests_to("POST", "order")]
    assert posts.count(entry) == 1
    assert len([p for p in posts if "-tp1-" in p]) == 1


async def test_a_stop_crossed_while_the_service_was_down_fires_at_restart(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    name = f"smartTrades/{trade_id_for('tenant-a', key)}"
    async with binance_venue() as venue:
        async with trading_on(venue, database_url, tmp_path) as first:
            account = first.account
            await first.create(market_buy(account, stop="90"), key)
            await first.eventually(name, active)
            first.server.kill()

        await venue.set_price("BTC/USDT", Decimal(85))  # the market falls through the stop

        async with trading_on(venue, database_url, tmp_path, account) as second:
            closed = await second.eventually(name, lambda t: t.state == pb.SMART_TRADE_STATE_CLOSED)

    assert closed.close_reason == pb.CLOSE_REASON_STOP_LOSS
    stop = next(leg for leg in closed.legs if leg.id == "sl")
    assert stop.orders[0].type == pb.ORDER_TYPE_MARKET
    assert stop.orders[0].status == pb.ORDER_STATUS_FILLED
    assert venue.balance("BTC")[0] + venue.balance("BTC")[1] < Decimal("0.001")


async def test_a_position_sold_by_hand_while_down_ends_closed_externally(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    name = f"smartTrades/{trade_id_for('tenant-a', key)}"
    async with binance_venue() as venue:
        account, trade = await killed_once(venue, database_url, tmp_path, market_buy, key, active)

        take_profit = next(leg for leg in trade.legs if leg.id == "tp1").orders[0]
        await venue.cancel_by_hand(take_profit.client_order_id)
        await venue.set_balance("BTC", Decimal(0))  # ... and sold the coins by hand
        posts_before = len(venue.requests_to("POST", "order"))
        # The balances answer late: order updates seen meanwhile must not re-create the take
        # profit the trader cancelled (the position is checked first).
        venue.slow_answers("GET", "account", seconds=0.5)

        async with trading_on(venue, database_url, tmp_path, account) as second:
            closed = await second.eventually(name, lambda t: t.state == pb.SMART_TRADE_STATE_CLOSED)
            await asyncio.sleep(0.5)  # a few order-tracking polls: nothing may be re-created

    assert closed.close_reason == pb.CLOSE_REASON_CLOSED_EXTERNALLY
    assert len(venue.requests_to("POST", "order")) == posts_before
    assert all(
        not leg.orders or leg.orders[-1].status != pb.ORDER_STATUS_OPEN for leg in closed.legs
    )


async def test_database_connections_killed_during_fill_processing_leave_no_partial_state(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    name = f"smartTrades/{trade_id_for('tenant-a', key)}"
    database = database_url.rsplit("/", 1)[1]
    async with binance_venue() as venue, trading_on(venue, database_url, tmp_path) as trading:
        await trading.create(market_buy(trading.account), key)
        await trading.eventually(name, active)
        admin = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres")
        killed = 0

        async def kill_connections() -> None:
            nonlocal killed
            for _ in range(40):
                killed += await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    database,
                )
                await asyncio.sleep(0.025)

        storm = asyncio.ensure_future(kill_connections())
        await venue.set_price("BTC/USDT", Decimal(125))  # the take profit fills at the venue
        await storm
        await admin.close()

        closed = await trading.eventually(
            name, lambda t: t.state == pb.SMART_TRADE_STATE_CLOSED, seconds=60
        )

    assert killed > 0
    assert closed.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
    assert Decimal(closed.position.units_held) == 0
    take_profit = next(leg for leg in closed.legs if leg.id == "tp1")
    assert [o.status for o in take_profit.orders] == [pb.ORDER_STATUS_FILLED]
    assert len(take_profit.orders[0].fills) == 1
