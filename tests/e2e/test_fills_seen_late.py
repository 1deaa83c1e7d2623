"""A fill the service did not see in time: the venue filled a take profit while the service
was down, or just before it crashed, or just as a sweep asked for the balances. The trade's
own orders explain where the coins went, so it ends as the venue says (TAKE_PROFIT, at the
limit price), never as "sold outside", and nothing is placed again. Coins that the trade's
orders do not explain are still sold outside, and nothing is re-created for them.

Against the real server process: the Binance stub (through real ccxt) outlives the service,
as a real venue does; the paper venue lives inside the service, so a failpoint kills the
service right after the paper venue recorded the fill and before any trade saw it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from smarttrade.domain.messages import Input, InputOf, OrderReported
from smarttrade.domain.model import SmartTrade
from smarttrade.store.errors import StoreUnavailable
from smarttrade.usecases.create import trade_id_for
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.binance_service import binance_venue, killed_once, trading_on
from tests.support.binance_stub import CreateFault
from tests.support.process import serve_process
from tests.support.service import Client, Service, request_id

BTC = "BTC/USDT"
HELD = Decimal("0.0999")  # 0.1 bought at market, less the venue's 0.1 % fee in BTC
# The order poll does not run during a test: only reconciliation can learn of the fill.
NO_ORDER_POLL = {"SMARTTRADE_ORDER_POLL_INTERVAL": "30", "SMARTTRADE_RECONCILE_INTERVAL": "30"}


def market_buy(account: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="120", volume_percent="100")]),
    )


def take_profit(trade: pb.SmartTrade) -> pb.Leg:
    return next(leg for leg in trade.legs if leg.id == "tp1")


def active(trade: pb.SmartTrade) -> bool:
    return trade.state == pb.SMART_TRADE_STATE_ACTIVE and any(
        order.status == pb.ORDER_STATUS_OPEN for order in take_profit(trade).orders
    )


def closed(trade: pb.SmartTrade) -> bool:
    return trade.state == pb.SMART_TRADE_STATE_CLOSED


def assert_took_profit_at_the_limit(trade: pb.SmartTrade, order_id: str) -> None:
    """Closed by its one take-profit order, filled at its limit price, nothing else sold."""
    assert trade.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
    step = take_profit(trade)
    assert [o.client_order_id for o in step.orders] == [order_id]
    assert step.orders[0].status == pb.ORDER_STATUS_FILLED
    assert {Decimal(fill.price) for fill in step.orders[0].fills} == {Decimal(120)}
    assert sum(Decimal(fill.amount) for fill in step.orders[0].fills) == HELD
    assert step.state == pb.LEG_STATE_FILLED
    assert Decimal(trade.position.units_sold) == HELD
    assert Decimal(trade.position.units_held) == 0


async def test_a_take_profit_filled_on_the_binance_stub_while_the_service_was_down_ends_take_profit(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    name = f"smartTrades/{trade_id_for('tenant-a', key)}"
    async with binance_venue() as venue:
        account, ready = await killed_once(venue, database_url, tmp_path, market_buy, key, active)
        order_id = take_profit(ready).orders[0].client_order_id
        posts_before = len(venue.requests_to("POST", "order"))

        await venue.set_price(BTC, Decimal(125))  # the take profit fills while nobody watches

        async with trading_on(venue, database_url, tmp_path, account) as second:
            done = await second.eventually(name, closed)

    assert_took_profit_at_the_limit(done, order_id)
    assert len(venue.requests_to("POST", "order")) == posts_before
    assert sum(venue.balance("BTC")) == 0


async def test_a_take_profit_filled_on_paper_just_before_a_crash_ends_take_profit_after_restart(
    database_url: str, tmp_path: Path
) -> None:
    settings = {"SMARTTRADE_TOKENS": "tenant-a:token-a"}
    crash = settings | {"SMARTTRADE_FAILPOINTS": "paper-fills-recorded"}
    async with (
        serve_process(tmp_path, database_url=database_url, env=crash) as first,
        grpc.aio.insecure_channel(first.address) as channel,
    ):
        client = Client(channel, "token-a")
        account = await client.paper_account(USDT="10000")
        await client.set_price(BTC, "100")
        trade = await client.create(market_buy(account))
        ready = await eventually(client, trade.name, active)
        first.killed = True  # by its failpoint, once the venue recorded the fill
        with pytest.raises(grpc.aio.AioRpcError):
            await client.set_price(BTC, "125")  # the take profit fills at the paper venue
    order_id = take_profit(ready).orders[0].client_order_id

    async with (
        serve_process(tmp_path, database_url=database_url, env=settings) as second,
        grpc.aio.insecure_channel(second.address) as channel,
    ):
        client = Client(channel, "token-a")
        done = await eventually(client, trade.name, closed)
        balances = await client.balances(account)

    assert_took_profit_at_the_limit(done, order_id)
    assert Decimal(balances.get("BTC", "0")) == 0
    proceeds = HELD * 120 * (1 - Decimal("0.001"))  # the maker fee, in USDT
    assert Decimal(balances["USDT"]) == Decimal(10000) - Decimal(10) + proceeds


async def test_a_sweep_that_finds_the_coins_gone_first_applies_the_take_profit_fill(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    name = f"smartTrades/{trade_id_for('tenant-a', key)}"
    # Sweeps every 0.2 s; no order poll: a sweep is the first to learn of the fill.
    env = NO_ORDER_POLL | {"SMARTTRADE_RECONCILE_INTERVAL": "0.2"}
    async with (
        binance_venue() as venue,
        trading_on(venue, database_url, tmp_path, env=env) as trading,
    ):
        await trading.create(market_buy(trading.account), key)
        ready = await trading.eventually(name, active)
        order_id = take_profit(ready).orders[0].client_order_id
        posts_before = len(trading.posts())

        # The take profit fills just as a sweep asks for the balances: the balances already
        # show the coins gone, and no order update has told the trade why.
        async def fill() -> None:
            await venue.fill_in_parts(order_id, [HELD])

        venue.on_next_request("GET", "account", fill)
        done = await trading.eventually(name, closed)

        assert_took_profit_at_the_limit(done, order_id)
        assert len(trading.posts()) == posts_before


async def test_a_take_profit_believed_cancelled_that_filled_at_the_venue_ends_take_profit(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    trade_id = trade_id_for("tenant-a", key)
    name = f"smartTrades/{trade_id}"
    async with binance_venue() as venue:
        async with trading_on(venue, database_url, tmp_path) as first:
            account = first.account
            await first.create(market_buy(account), key)
            ready = await first.eventually(name, active)
            old, new = take_profit(ready).orders[0].client_order_id, f"{trade_id}-tp1-1"
            # The trader moves the target: the old order is cancelled (the venue says so)
            # and the service dies sending the new one.
            venue.fail_next_create(CreateFault.HOLD)
            moved = pb.SmartTrade(
                name=name,
                take_profit=pb.TakeProfit(
                    steps=[pb.TakeProfitStep(price="130", volume_percent="100")]
                ),
            )
            editing = asyncio.ensure_future(
                first.client.trades.UpdateSmartTrade(
                    trades_pb.UpdateSmartTradeRequest(
                        smart_trade=moved,
                        update_mask=FieldMask(paths=["take_profit"]),
                        request_id=request_id(),
                    ),
                    metadata=first.client.metadata,
                )
            )
            await until(lambda: new in first.posts())
            first.server.kill()
            await asyncio.gather(editing, return_exceptions=True)

        # The venue had filled the old order after all: the fill raced the cancel.
        await venue.fill_after_cancel(old)

        async with trading_on(venue, database_url, tmp_path, account) as second:
            done = await second.eventually(name, closed)

    assert done.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
    orders = take_profit(done).orders
    assert [(o.client_order_id, o.status) for o in orders] == [
        (old, pb.ORDER_STATUS_FILLED),
        (new, pb.ORDER_STATUS_CANCELLED),
    ]
    assert [(Decimal(f.price), Decimal(f.amount)) for f in orders[0].fills] == [
        (Decimal(120), HELD)
    ]
    assert not venue.holds(new)
    assert Decimal(done.position.units_held) == 0


async def test_refresh_applies_a_take_profit_fill_the_service_had_not_seen(
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    name = f"smartTrades/{trade_id_for('tenant-a', key)}"
    async with (
        binance_venue() as venue,
        trading_on(venue, database_url, tmp_path, env=NO_ORDER_POLL) as trading,
    ):
        await trading.create(market_buy(trading.account), key)
        ready = await trading.eventually(name, active)
        order_id = take_profit(ready).orders[0].client_order_id
        await venue.fill_in_parts(order_id, [HELD])  # filled; the service has not looked yet

        refreshed = await trading.client.trades.RefreshSmartTrade(
            trades_pb.RefreshSmartTradeRequest(name=name), metadata=trading.client.metadata
        )

        assert refreshed.smart_trade.state == pb.SMART_TRADE_STATE_CLOSED
        assert_took_profit_at_the_limit(refreshed.smart_trade, order_id)


async def test_a_trade_that_could_not_record_the_take_profit_fill_is_not_judged_sold_outside(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = service.a
    engine = service.running.engine
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    trade = await client.create(market_buy(account))
    ready = await eventually(client, trade.name, active)
    order_id = take_profit(ready).orders[0].client_order_id
    # The paper venue fills the take profit; the trade is not told (the service missed it).
    await engine.venues.paper.set_price("tenant-a", BTC, Decimal(125))
    # The trade cannot record the venue's report of the fill once (its store write failed).
    refused: list[OrderReported] = []
    submit = engine.submit

    async def failing_once(trade_id: str, input: Input | InputOf, *args: Any) -> SmartTrade:
        if isinstance(input, OrderReported) and input.fills and not refused:
            refused.append(input)
            raise StoreUnavailable
        return await submit(trade_id, input, *args)

    monkeypatch.setattr(engine, "submit", failing_once)

    first = await refresh(client, trade.name)
    second = await refresh(client, trade.name)

    assert [r.client_order_id for r in refused] == [order_id]
    assert first.state == pb.SMART_TRADE_STATE_ACTIVE  # not judged: its orders had no say
    assert second.state == pb.SMART_TRADE_STATE_CLOSED
    assert_took_profit_at_the_limit(second, order_id)


async def test_a_take_profit_partly_filled_then_cancelled_and_the_rest_sold_by_hand_while_down_keeps_its_fill_and_ends_closed_externally(  # noqa: E501
    database_url: str, tmp_path: Path
) -> None:
    key = request_id()
    name = f"smartTrades/{trade_id_for('tenant-a', key)}"
    async with binance_venue() as venue:
        account, ready = await killed_once(venue, database_url, tmp_path, market_buy, key, active)
        order_id = take_profit(ready).orders[0].client_order_id
        await venue.fill_in_parts(order_id, [Decimal("0.04")])  # part of it fills ...
        await venue.cancel_by_hand(order_id)  # ... the trader cancels the rest ...
        await venue.set_balance("BTC", Decimal(0))  # ... and sells the coins by hand
        posts_before = len(venue.requests_to("POST", "order"))

        async with trading_on(venue, database_url, tmp_path, account) as second:
            done = await second.eventually(name, closed)

    assert done.close_reason == pb.CLOSE_REASON_CLOSED_EXTERNALLY
    assert len(venue.requests_to("POST", "order")) == posts_before
    step = take_profit(done)
    assert [o.client_order_id for o in step.orders] == [order_id]
    assert step.orders[0].status == pb.ORDER_STATUS_CANCELLED
    assert [(Decimal(f.price), Decimal(f.amount)) for f in step.orders[0].fills] == [
        (Decimal(120), Decimal("0.04"))
    ]
    assert Decimal(done.position.units_sold) == Decimal("0.04")


async def refresh(client: Client, name: str) -> pb.SmartTrade:
    response = await client.trades.RefreshSmartTrade(
        trades_pb.RefreshSmartTradeRequest(name=name), metadata=client.metadata
    )
    return response.smart_trade


async def eventually(
    client: Client, name: str, check: Callable[[pb.SmartTrade], bool], seconds: float = 20
) -> pb.SmartTrade:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        trade = await client.get(name)
        if check(trade):
            return trade
        assert asyncio.get_running_loop().time() < deadline, str(trade)[:3000]
        await asyncio.sleep(0.05)


async def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
