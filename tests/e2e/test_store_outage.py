"""Trades while the store is away: what the service is told meanwhile is decided when the
store answers again (within a second, at the latest price), and what the venue did
meanwhile is applied exactly once, with the venue's close reason; never left to the
periodic sweep (an hour away in these tests).

The service talks to PostgreSQL through a proxy the test cuts at a chosen moment: right
after the paper venue wrote a tick or an order (so the venue has acted and the trade's own
write is the one that fails), or when the Binance stub receives an order. Each outcome is
compared with the same price path run without a cut (another tenant's paper book, or the
same steps on the stub).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.e2e.test_walking_trade import BTC, market_buy
from tests.support.binance_service import stub_overrides
from tests.support.binance_stub import BinanceStub
from tests.support.outage import cut_at_paper_write, ordered, priced
from tests.support.service import Client, Service, request_id, running_service
from tests.support.tcp_proxy import TcpProxy

API_KEY = "outage-binance-key-41c2"
SECRET = "outage-binance-secret-9d7e"
BACK_WITHIN = 1.0  # seconds from the store's return to the trade's decision, at most
T = TypeVar("T")


@pytest.fixture
async def service(database_url: str, proxy: TcpProxy, tmp_path: Path) -> AsyncIterator[Service]:
    async with running_service(
        proxy.url(database_url), tmp_path, reconcile_interval=3600
    ) as running:
        yield running


async def decided(
    client: Client, name: str, check: Callable[[pb.SmartTrade], bool], seconds: float = 5.0
) -> tuple[pb.SmartTrade, float]:
    """The trade once `check` holds, and how long that took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        trade = await client.get(name)
        if check(trade):
            return trade, loop.time() - start
        assert loop.time() - start < seconds, f"not within {seconds} s: {str(trade)[:2500]}"
        await asyncio.sleep(0.01)


def closed(trade: pb.SmartTrade) -> bool:
    return trade.state == pb.SMART_TRADE_STATE_CLOSED


def outcome(trade: pb.SmartTrade) -> dict[str, Any]:
    """What must not depend on the store's absence: state, close reason, each leg's state
    and its orders' fills, the position."""
    return {
        "state": pb.SmartTradeState.Name(trade.state),
        "close_reason": pb.CloseReason.Name(trade.close_reason),
        "legs": {
            leg.id: (
                pb.LegState.Name(leg.state),
                [
                    (pb.OrderStatus.Name(o.status), [(f.price, f.amount, f.fee) for f in o.fills])
                    for o in leg.orders
                ],
            )
            for leg in trade.legs
        },
        "units_held": trade.position.units_held,
        "realized_pnl": trade.position.realized_pnl,
    }


async def opened(client: Client) -> tuple[str, pb.SmartTrade]:
    """A paper account, BTC at 100, and a trade bought at market: 1 BTC, TP 110, stop 90."""
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    return account, await client.create(market_buy(account, "1", take_profit="110", stop="90"))


# ---- point 1: what the trade was told is decided once the store is back ---------------


async def test_a_stop_crossed_while_its_decision_could_not_be_committed_sells_within_a_second(
    service: Service, proxy: TcpProxy
) -> None:
    # The same path without a cut, on another tenant's paper book.
    reference_account, reference = await opened(service.b)
    await service.b.set_price(BTC, "89")
    expected = outcome(await service.b.get(reference.name))
    assert expected["close_reason"] == "CLOSE_REASON_STOP_LOSS"
    account, trade = await opened(service.a)
    line_cut = cut_at_paper_write(service, proxy, priced("89"), durable=True)

    await service.a.set_price(BTC, "89")  # the venue writes the tick; the trade cannot
    assert line_cut.is_set()
    assert (await service.a.get(trade.name)).state == pb.SMART_TRADE_STATE_ACTIVE
    await proxy.restore()
    stopped, late = await decided(service.a, trade.name, closed)

    assert late < BACK_WITHIN
    assert outcome(stopped) == expected
    assert await service.a.balances(account) == await service.b.balances(reference_account)


async def test_a_take_profit_filled_while_the_store_was_away_closes_the_trade_take_profit(
    service: Service, proxy: TcpProxy
) -> None:
    reference_account, reference = await opened(service.b)
    await service.b.set_price(BTC, "111")
    await service.b.set_price(BTC, "85")
    expected = outcome(await service.b.get(reference.name))
    assert expected["close_reason"] == "CLOSE_REASON_TAKE_PROFIT"
    account, trade = await opened(service.a)
    line_cut = cut_at_paper_write(service, proxy, priced("111"), durable=True)

    await service.a.set_price(BTC, "111")  # the take profit fills at the venue, durably
    assert line_cut.is_set()
    await proxy.restore()
    took_profit, late = await decided(service.a, trade.name, closed)
    await service.a.set_price(BTC, "85")  # below the stop: nothing is left to stop out

    assert late < BACK_WITHIN
    assert outcome(await service.a.get(trade.name)) == outcome(took_profit) == expected
    assert await service.a.balances(account) == await service.b.balances(reference_account)


async def test_a_stop_sell_filled_while_the_store_was_away_closes_the_trade_stop_loss(
    service: Service, proxy: TcpProxy
) -> None:
    reference_account, reference = await opened(service.b)
    await service.b.set_price(BTC, "89")
    expected = outcome(await service.b.get(reference.name))
    account, trade = await opened(service.a)
    line_cut = cut_at_paper_write(service, proxy, ordered("sl"), durable=True)

    await service.a.set_price(BTC, "89")  # the stop fires; its market sell fills, durably
    assert line_cut.is_set()
    closing = await service.a.get(trade.name)
    assert closing.state == pb.SMART_TRADE_STATE_CLOSING
    await proxy.restore()
    stopped, late = await decided(service.a, trade.name, closed)

    assert late < BACK_WITHIN
    assert outcome(stopped) == expected  # STOP_LOSS, one fill at 89: not CLOSED_EXTERNALLY
    assert await service.a.balances(account) == await service.b.balances(reference_account)


async def test_a_paper_tick_the_store_refused_reaches_the_trades_once_it_is_back(
    service: Service, proxy: TcpProxy
) -> None:
    """The line goes down between the tick's request lookup and the venue's write: the
    book took the tick (the caller was told UNAVAILABLE, and a retry answers it), the
    trades never saw it. They do as soon as the store answers."""
    reference_account, reference = await opened(service.b)
    await service.b.set_price(BTC, "89")
    expected = outcome(await service.b.get(reference.name))
    account, trade = await opened(service.a)
    cut_at_paper_write(service, proxy, priced("89"), durable=False)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await service.a.set_price(BTC, "89")
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    await proxy.restore()
    stopped, late = await decided(service.a, trade.name, closed)

    assert late < BACK_WITHIN
    assert outcome(stopped) == expected
    assert await service.a.balances(account) == await service.b.balances(reference_account)


# ---- on a real venue's API: the Binance stub, polled by the service --------------------


@pytest.fixture
async def venue() -> AsyncIterator[BinanceStub]:
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as stub:
        await stub.set_balance("USDT", Decimal(10000))
        await stub.set_price(BTC, Decimal(100))
        yield stub


@pytest.fixture
async def on_binance(
    database_url: str, proxy: TcpProxy, venue: BinanceStub, tmp_path: Path
) -> AsyncIterator[Service]:
    async with running_service(
        proxy.url(database_url),
        tmp_path,
        exchange_overrides=stub_overrides(venue),
        order_poll_interval=0.05,
        reconcile_interval=3600,
    ) as running:
        yield running


async def binance_trade(service: Service) -> pb.SmartTrade:
    """0.1 BTC bought at market at 100 on the stub, TP 110, stop 90; active."""
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
    trade = await client.create(
        market_buy(created.exchange_account.name, "0.1", take_profit="110", stop="90")
    )
    active, _ = await decided(
        client, trade.name, lambda t: t.state == pb.SMART_TRADE_STATE_ACTIVE and tp_placed(t)
    )
    return active


def tp_placed(trade: pb.SmartTrade) -> bool:
    return any(leg.id == "tp1" and leg.state == pb.LEG_STATE_ORDER_PLACED for leg in trade.legs)


async def engine_sees(service: Service, trade: pb.SmartTrade, price: str) -> None:
    """Wait until the engine has the venue's price and the trade has dealt with it."""
    engine = service.running.engine
    trade_id = trade.name.removeprefix("smartTrades/")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while engine.last_price(trade_id) != Decimal(price):
        assert loop.time() < deadline, f"the engine never saw {price}"
        await asyncio.sleep(0.01)
    await engine.settled(trade_id)


async def not_serving(health: health_pb2_grpc.HealthStub) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
        if answer.status == health_pb2.HealthCheckResponse.NOT_SERVING:
            return
        assert loop.time() < deadline, "health never said NOT_SERVING"
        await asyncio.sleep(0.01)


def sell_orders(venue: BinanceStub) -> list[str]:
    return [
        r.params["newClientOrderId"]
        for r in venue.requests_to("POST", "order")
        if r.params.get("side") == "SELL" and r.params.get("type") == "MARKET"
    ]


async def test_a_stop_crossed_during_the_cut_sells_at_the_latest_price_once_the_store_is_back(
    on_binance: Service, proxy: TcpProxy, venue: BinanceStub
) -> None:
    trade = await binance_trade(on_binance)

    await proxy.cut()
    await venue.set_price(BTC, Decimal(89))  # the stop is crossed: its decision cannot commit
    await engine_sees(on_binance, trade, "89")
    await venue.set_price(BTC, Decimal(87))
    await engine_sees(on_binance, trade, "87")
    assert sell_orders(venue) == []  # persist, then act: nothing is sent uncommitted
    await proxy.restore()
    stopped, late = await decided(on_binance.a, trade.name, closed)

    assert late < BACK_WITHIN
    assert stopped.close_reason == pb.CLOSE_REASON_STOP_LOSS
    stop = next(leg for leg in stopped.legs if leg.id == "sl")
    assert [(f.price, f.amount) for o in stop.orders for f in o.fills] == [("87", "0.0999")]
    assert len(sell_orders(venue)) == 1


async def test_a_price_back_above_the_stop_when_the_store_returns_sells_nothing(
    on_binance: Service, proxy: TcpProxy, venue: BinanceStub
) -> None:
    """Decisions are made at the current price: a stop crossed while nothing could be
    committed, and uncrossed before the store came back, is not acted on late."""
    trade = await binance_trade(on_binance)
    health = health_pb2_grpc.HealthStub(on_binance.a.channel)

    await proxy.cut()
    await venue.set_price(BTC, Decimal(89))
    await engine_sees(on_binance, trade, "89")
    await venue.set_price(BTC, Decimal(95))
    await engine_sees(on_binance, trade, "95")
    # The trade gave up writing its decision at 89 (it says so to health): it is kept.
    await not_serving(health)
    await proxy.restore()
    caught_up, _ = await decided(on_binance.a, trade.name, lambda t: t.position.last_price == "95")
    await venue.set_price(BTC, Decimal(88))  # the stop still works
    stopped, _ = await decided(on_binance.a, trade.name, closed)

    assert caught_up.state == pb.SMART_TRADE_STATE_ACTIVE
    assert stopped.close_reason == pb.CLOSE_REASON_STOP_LOSS
    stop = next(leg for leg in stopped.legs if leg.id == "sl")
    assert [(f.price, f.amount) for o in stop.orders for f in o.fills] == [("88", "0.0999")]
    assert len(sell_orders(venue)) == 1


async def test_a_stop_sell_the_venue_filled_during_the_cut_is_applied_once_it_is_back(
    on_binance: Service, proxy: TcpProxy, venue: BinanceStub
) -> None:
    """The venue's answer is kept by the trade (the order poll, which reads the store, would
    find the fill too once the store is back: on Binance it did before this was kept)."""
    trade = await binance_trade(on_binance)
    venue.slow_answers("POST", "order", 0.5)  # the sell's answer comes after the cut

    await venue.set_price(BTC, Decimal(89))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not sell_orders(venue):
        assert loop.time() < deadline, "the stop never sold"
        await asyncio.sleep(0.005)
    await proxy.cut()
    await on_binance.running.engine.settled(trade.name.removeprefix("smartTrades/"))
    assert (await on_binance.a.get(trade.name)).state == pb.SMART_TRADE_STATE_CLOSING
    await proxy.restore()
    stopped, late = await decided(on_binance.a, trade.name, closed)

    assert late < BACK_WITHIN
    assert stopped.close_reason == pb.CLOSE_REASON_STOP_LOSS  # not CLOSED_EXTERNALLY
    stop = next(leg for leg in stopped.legs if leg.id == "sl")
    assert [(f.price, f.amount) for o in stop.orders for f in o.fills] == [("89", "0.0999")]
    assert len(sell_orders(venue)) == 1


# ---- a line that stalls instead of dropping ----------------------------------------------


async def retrying_unavailable(call: Callable[[], Awaitable[T]], seconds: float = 15.0) -> T:
    """The call, made again while it answers UNAVAILABLE (as the Python client does)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or loop.time() - start > seconds:
                raise
        await asyncio.sleep(0.1)


async def test_an_action_while_the_line_stalls_is_refused_in_time_and_done_once_it_flows(
    database_url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    # Arrange: the store's time limit at 1 s; the line then holds every byte, both ways
    async with running_service(
        proxy.url(database_url), tmp_path, reconcile_interval=3600, store_timeout=1.0
    ) as service:
        client = service.a
        _, trade = await opened(client)
        close = trades_pb.CloseSmartTradeRequest(name=trade.name, request_id=request_id())
        proxy.stall()
        loop = asyncio.get_running_loop()
        started = loop.time()

        # Act: Close at Market while nothing gets through, then the same call once it flows
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.trades.CloseSmartTrade(close, metadata=client.metadata, timeout=30)
        waited = loop.time() - started
        proxy.flow()  # what was held goes through now: the refused write may land after all
        retried = await retrying_unavailable(
            lambda: client.trades.CloseSmartTrade(close, metadata=client.metadata)
        )
        ended, _ = await decided(client, trade.name, closed, seconds=15)

    # Assert: refused as unavailable within the limit's few tries (not held until the
    # caller's deadline); closed once, at market, whichever way the held write went
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert waited < 10
    assert retried.smart_trade.name == trade.name
    assert ended.close_reason == pb.CLOSE_REASON_CLOSED_AT_MARKET
    exits = [o for leg in ended.legs if leg.id == "close" for o in leg.orders]
    assert [o.status for o in exits if o.status == pb.ORDER_STATUS_FILLED] == [
        pb.ORDER_STATUS_FILLED
    ]
    assert ended.position.units_held in ("0", "0.0")
