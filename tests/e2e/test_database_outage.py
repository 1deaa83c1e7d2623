"""The database out of reach: calls that need it are UNAVAILABLE with a retry hint, never
INTERNAL, and say so without a word of SQL; health says NOT_SERVING meanwhile; nothing is
half-written, and everything works again once it is back.

The service talks to the real PostgreSQL through a loopback proxy that the test cuts (every
open connection dropped, new ones refused), stalls (so a cut lands mid-statement) and
restores. (What trades do meanwhile: test_store_outage.py.)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from smarttrade import app
from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.e2e.test_walking_trade import BTC, market_buy
from tests.support.outage import cut_at_paper_write, priced
from tests.support.service import (
    Client,
    Service,
    pb_account,
    request_id,
    rich_error,
    running_service,
)
from tests.support.tcp_proxy import TcpProxy

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
HEALTH_NAMES = ("", *app.SERVICES)
# What a database error's text would bring along: SQL, or the driver's name.
LEAKS = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|VALUES|RETURNING)\b|\[SQL|\$\d|asyncpg"
    r"|sqlalchemy|psycopg|postgres|pg_|paper_prices|smart_trades",
)


@pytest.fixture
async def service(database_url: str, proxy: TcpProxy, tmp_path: Path) -> AsyncIterator[Service]:
    async with running_service(
        proxy.url(database_url), tmp_path, reconcile_interval=3600
    ) as running:
        yield running


def retry_delay(error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            delay: Duration = info.retry_delay
            return delay.ToTimedelta().total_seconds()
    raise AssertionError("no RetryInfo")


async def test_calls_needing_the_database_are_unavailable_until_it_is_back(
    service: Service, proxy: TcpProxy
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price("BTC/USDT", "100")
    running = await client.create(market_buy(account, "1", take_profit="110", stop="90"))
    create = trades_pb.CreateSmartTradeRequest(
        smart_trade=market_buy(account, "1", take_profit="120", stop="80"),
        request_id=request_id(),
    )

    await proxy.cut()

    with pytest.raises(grpc.aio.AioRpcError) as listing:
        await client.trades.ListSmartTrades(
            trades_pb.ListSmartTradesRequest(), metadata=client.metadata
        )
    with pytest.raises(grpc.aio.AioRpcError) as creating:
        await client.trades.CreateSmartTrade(create, metadata=client.metadata)
    for raised in (listing.value, creating.value):
        error = rich_error(raised)
        assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE")
        assert retry_delay(raised) > 0
    # A running trade is still read from memory.
    assert (await client.get(running.name)).state == pb.SMART_TRADE_STATE_ACTIVE

    await proxy.restore()

    created = await client.trades.CreateSmartTrade(create, metadata=client.metadata)
    again = await client.trades.CreateSmartTrade(create, metadata=client.metadata)
    assert created.smart_trade.name == again.smart_trade.name
    listed = await client.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(), metadata=client.metadata
    )
    assert sorted(trade.name for trade in listed.smart_trades) == sorted(
        [running.name, created.smart_trade.name]
    )
    assert created.smart_trade.state == pb.SMART_TRADE_STATE_ACTIVE
    entry = next(leg for leg in created.smart_trade.legs if leg.id == "entry")
    assert len(entry.orders) == 1  # the failed attempt placed nothing


# ---- health follows the store -----------------------------------------------------------


async def statuses(health: health_pb2_grpc.HealthStub) -> set[int]:
    answers = [
        await health.Check(health_pb2.HealthCheckRequest(service=name)) for name in HEALTH_NAMES
    ]
    return {answer.status for answer in answers}


async def until_health(health: health_pb2_grpc.HealthStub, status: int, seconds: float) -> float:
    """Wait until every service (and the server, "") reports `status`; how long it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while await statuses(health) != {status}:
        assert loop.time() - start < seconds, f"not all {status} within {seconds} s"
        await asyncio.sleep(0.01)
    return loop.time() - start


async def test_health_is_not_serving_while_the_store_is_cut_and_serving_once_it_is_back(
    service: Service, proxy: TcpProxy
) -> None:
    health = health_pb2_grpc.HealthStub(service.a.channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
    seen = [(await watch.read()).status]
    assert await statuses(health) == {SERVING}

    await proxy.cut()
    await until_health(health, NOT_SERVING, 2.0)
    seen.append((await watch.read()).status)
    await proxy.restore()
    await until_health(health, SERVING, 2.0)
    seen.append((await watch.read()).status)
    watch.cancel()

    assert seen == [SERVING, NOT_SERVING, SERVING]  # a load balancer watching hears it too


async def test_a_commit_that_finds_the_store_gone_turns_health_not_serving_at_once(
    database_url: str, proxy: TcpProxy, tmp_path: Path
) -> None:
    """The probe would notice in an hour here; a trade's failed commit says it at once."""
    async with running_service(
        proxy.url(database_url), tmp_path, reconcile_interval=3600, store_probe_interval=3600
    ) as service:
        health = health_pb2_grpc.HealthStub(service.a.channel)
        account = await service.a.paper_account(USDT="10000")
        await service.a.set_price(BTC, "100")
        await service.a.create(market_buy(account, "1", take_profit="110", stop="90"))
        cut_at_paper_write(service, proxy, priced("89"), durable=True)

        await service.a.set_price(BTC, "89")  # the venue wrote it; the stop's decision cannot

        await until_health(health, NOT_SERVING, 0.5)


# ---- no SQL in what a client sees --------------------------------------------------------

Call = Callable[[], Awaitable[object]]


def every_call(
    client: Client, account: str, trade: str, share: pb.SmartTradeShare
) -> dict[str, Call]:
    """One call of each RPC that touches the store, on live resources."""
    md = client.metadata
    trades, accounts, paper = client.trades, client.accounts, client.paper

    def rid() -> str:
        return request_id()

    return {
        "SetPaperPrice": lambda: paper.SetPaperPrice(
            paper_pb.SetPaperPriceRequest(symbol=BTC, price="95", request_id=rid()), metadata=md
        ),
        "SetPaperBalances": lambda: paper.SetPaperBalances(
            paper_pb.SetPaperBalancesRequest(
                account=account,
                balances=[paper_pb.Balance(currency="USDT", total="5000")],
                request_id=rid(),
            ),
            metadata=md,
        ),
        "CreateExchangeAccount": lambda: accounts.CreateExchangeAccount(
            accounts_pb.CreateExchangeAccountRequest(
                exchange_account=pb_account({"USDT": "1"}), request_id=rid()
            ),
            metadata=md,
        ),
        "GetExchangeAccount": lambda: accounts.GetExchangeAccount(
            accounts_pb.GetExchangeAccountRequest(name=account), metadata=md
        ),
        "ListExchangeAccounts": lambda: accounts.ListExchangeAccounts(
            accounts_pb.ListExchangeAccountsRequest(), metadata=md
        ),
        "DeleteExchangeAccount": lambda: accounts.DeleteExchangeAccount(
            accounts_pb.DeleteExchangeAccountRequest(name=account, request_id=rid()), metadata=md
        ),
        "CreateSmartTrade": lambda: trades.CreateSmartTrade(
            trades_pb.CreateSmartTradeRequest(
                smart_trade=market_buy(account, "1", "120", "80"), request_id=rid()
            ),
            metadata=md,
        ),
        "ListSmartTrades": lambda: trades.ListSmartTrades(
            trades_pb.ListSmartTradesRequest(), metadata=md
        ),
        "UpdateSmartTrade": lambda: trades.UpdateSmartTrade(
            trades_pb.UpdateSmartTradeRequest(
                smart_trade=pb.SmartTrade(name=trade, stop_loss=pb.StopLoss(price="85")),
                update_mask=FieldMask(paths=["stop_loss"]),
                request_id=rid(),
            ),
            metadata=md,
        ),
        "RefreshSmartTrade": lambda: trades.RefreshSmartTrade(
            trades_pb.RefreshSmartTradeRequest(name=trade), metadata=md
        ),
        "AddSmartTradeFunds": lambda: trades.AddSmartTradeFunds(
            trades_pb.AddSmartTradeFundsRequest(
                name=trade, request_id=rid(), order_type=pb.ORDER_TYPE_MARKET, units="0.1"
            ),
            metadata=md,
        ),
        "ReduceSmartTradeFunds": lambda: trades.ReduceSmartTradeFunds(
            trades_pb.ReduceSmartTradeFundsRequest(name=trade, request_id=rid(), percent="10"),
            metadata=md,
        ),
        "CloseSmartTrade": lambda: trades.CloseSmartTrade(
            trades_pb.CloseSmartTradeRequest(name=trade, request_id=rid()), metadata=md
        ),
        "CancelSmartTrade": lambda: trades.CancelSmartTrade(
            trades_pb.CancelSmartTradeRequest(name=trade, request_id=rid()), metadata=md
        ),
        "ShareSmartTrade": lambda: trades.ShareSmartTrade(
            trades_pb.ShareSmartTradeRequest(name=trade, request_id=rid()), metadata=md
        ),
        "GetSmartTradeShare": lambda: trades.GetSmartTradeShare(
            trades_pb.GetSmartTradeShareRequest(token=share.token), metadata=md
        ),
        "DeleteSmartTradeShare": lambda: trades.DeleteSmartTradeShare(
            trades_pb.DeleteSmartTradeShareRequest(name=share.name, request_id=rid()), metadata=md
        ),
        "WatchSmartTrades": lambda: trades.WatchSmartTrades(
            trades_pb.WatchSmartTradesRequest(), metadata=md
        ).read(),
    }


async def refusal(call: Call) -> str:
    """What a client sees of a call the store's absence refused, checked: UNAVAILABLE,
    reason STORE_UNAVAILABLE, a retry hint, and no SQL in the message or the details."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call()
    error = rich_error(raised.value)
    seen = " ".join(
        [raised.value.details() or "", *error.metadata.keys(), *error.metadata.values()]
    )
    assert not LEAKS.search(seen), seen
    assert (error.code, error.reason) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE"), seen
    assert retry_delay(raised.value) > 0
    return seen


async def test_no_error_a_client_sees_while_the_store_is_cut_quotes_sql(
    service: Service, proxy: TcpProxy
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    trade = await client.create(market_buy(account, "1", take_profit="110", stop="90"))
    shared = await client.trades.ShareSmartTrade(
        trades_pb.ShareSmartTradeRequest(name=trade.name, request_id=request_id()),
        metadata=client.metadata,
    )
    calls = every_call(client, account, trade.name, shared.share)

    # The line is down before the call.
    await proxy.cut()
    for call in calls.values():
        await refusal(call)
    await proxy.restore()

    # The line stalls in the middle of the call's first statement, then goes down.
    for call in calls.values():
        proxy.stall()
        task = asyncio.ensure_future(refusal(call))
        await asyncio.sleep(0.2)
        await proxy.cut()
        await task
        await proxy.restore()

    # The line goes down as the paper venue writes what the call changed in its book.
    for name in ("SetPaperPrice", "SetPaperBalances", "CreateExchangeAccount"):
        line_cut = cut_at_paper_write(service, proxy, durable=False)
        await refusal(calls[name])
        assert line_cut.is_set(), name
        await proxy.restore()

    listed = await client.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(), metadata=client.metadata
    )
    for each in listed.smart_trades:
        assert not LEAKS.search(each.last_error), each.last_error
