"""Tenant B with tenant A's ids, on every RPC: the answer for a missing id, and nothing of A."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Client, Service, request_id

MISSING_TRADE = "smartTrades/0123456789abcdef"
MISSING_ACCOUNT = "exchangeAccounts/0123456789abcdef"
MISSING_SHARE = "smartTrades/0123456789abcdef/shares/fedcba9876543210"

Call = Callable[[Client, str, str, str], Awaitable[Any]]


def calls() -> dict[str, Call]:
    """Each RPC that names a resource, given (client, trade, account, share) names."""

    def meta(c: Client) -> Any:
        return c.metadata

    async def watch(c: Client, t: str, a: str, s: str) -> Any:
        stream = c.trades.WatchSmartTrades(
            trades_pb.WatchSmartTradesRequest(name=t), metadata=meta(c)
        )
        return await stream.read()

    def edit(t: str) -> trades_pb.UpdateSmartTradeRequest:
        return trades_pb.UpdateSmartTradeRequest(
            smart_trade=pb.SmartTrade(name=t, note="x"),
            update_mask=FieldMask(paths=["note"]),
            request_id=request_id(),
        )

    return {
        "GetSmartTrade": lambda c, t, a, s: c.trades.GetSmartTrade(
            trades_pb.GetSmartTradeRequest(name=t), metadata=meta(c)
        ),
        "UpdateSmartTrade": lambda c, t, a, s: c.trades.UpdateSmartTrade(edit(t), metadata=meta(c)),
        "RefreshSmartTrade": lambda c, t, a, s: c.trades.RefreshSmartTrade(
            trades_pb.RefreshSmartTradeRequest(name=t), metadata=meta(c)
        ),
        "AddSmartTradeFunds": lambda c, t, a, s: c.trades.AddSmartTradeFunds(
            trades_pb.AddSmartTradeFundsRequest(name=t, units="0.1", request_id=request_id()),
            metadata=meta(c),
        ),
        "ReduceSmartTradeFunds": lambda c, t, a, s: c.trades.ReduceSmartTradeFunds(
            trades_pb.ReduceSmartTradeFundsRequest(name=t, percent="10", request_id=request_id()),
            metadata=meta(c),
        ),
        "OpenSmartTrade": lambda c, t, a, s: c.trades.OpenSmartTrade(
            trades_pb.OpenSmartTradeRequest(name=t, request_id=request_id()), metadata=meta(c)
        ),
        "CloseSmartTrade": lambda c, t, a, s: c.trades.CloseSmartTrade(
            trades_pb.CloseSmartTradeRequest(name=t, request_id=request_id()), metadata=meta(c)
        ),
        "CloseSmartTradeStep": lambda c, t, a, s: c.trades.CloseSmartTradeStep(
            trades_pb.CloseSmartTradeStepRequest(name=t, step=1, request_id=request_id()),
            metadata=meta(c),
        ),
        "CancelSmartTrade": lambda c, t, a, s: c.trades.CancelSmartTrade(
            trades_pb.CancelSmartTradeRequest(name=t, request_id=request_id()), metadata=meta(c)
        ),
        "ShareSmartTrade": lambda c, t, a, s: c.trades.ShareSmartTrade(
            trades_pb.ShareSmartTradeRequest(name=t, request_id=request_id()), metadata=meta(c)
        ),
        "DeleteSmartTradeShare": lambda c, t, a, s: c.trades.DeleteSmartTradeShare(
            trades_pb.DeleteSmartTradeShareRequest(name=s, request_id=request_id()),
            metadata=meta(c),
        ),
        "WatchSmartTrades": watch,
        "CreateSmartTrade": lambda c, t, a, s: c.trades.CreateSmartTrade(
            trades_pb.CreateSmartTradeRequest(
                smart_trade=pb.SmartTrade(
                    account=a,
                    symbol="BTC/USDT",
                    side=pb.SIDE_BUY,
                    entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
                ),
                request_id=request_id(),
            ),
            metadata=meta(c),
        ),
        "GetExchangeAccount": lambda c, t, a, s: c.accounts.GetExchangeAccount(
            accounts_pb.GetExchangeAccountRequest(name=a), metadata=meta(c)
        ),
        "DeleteExchangeAccount": lambda c, t, a, s: c.accounts.DeleteExchangeAccount(
            accounts_pb.DeleteExchangeAccountRequest(name=a, request_id=request_id()),
            metadata=meta(c),
        ),
        "GetPaperBalances": lambda c, t, a, s: c.paper.GetPaperBalances(
            paper_pb.GetPaperBalancesRequest(account=a), metadata=meta(c)
        ),
        "SetPaperBalances": lambda c, t, a, s: c.paper.SetPaperBalances(
            paper_pb.SetPaperBalancesRequest(
                account=a,
                balances=[paper_pb.Balance(currency="USDT", total="1")],
                request_id=request_id(),
            ),
            metadata=meta(c),
        ),
    }


async def outcome(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str, bytes]:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        details = [v for k, v in error.trailing_metadata() or () if k.endswith("-bin")]
        return (
            error.code(),
            error.details() or "",
            b"".join(v if isinstance(v, bytes) else v.encode() for v in details),
        )
    return grpc.StatusCode.OK, "", b""


@pytest.mark.parametrize("rpc", sorted(calls()))
async def test_another_tenants_ids_answer_exactly_like_missing_ones(
    service: Service, rpc: str
) -> None:
    a, b = service.a, service.b
    account = await a.paper_account(USDT="10000")
    await a.set_price("BTC/USDT", "100")
    await b.set_price("BTC/USDT", "100")
    trade = await a.create(
        pb.SmartTrade(
            account=account,
            symbol="BTC/USDT",
            side=pb.SIDE_BUY,
            entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
            take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="120", volume_percent="100")]),
        )
    )
    share = (
        await a.trades.ShareSmartTrade(
            trades_pb.ShareSmartTradeRequest(name=trade.name, request_id=request_id()),
            metadata=a.metadata,
        )
    ).share
    call = calls()[rpc]

    code, details, rich = await outcome(call(b, trade.name, account, share.name))
    missing = await outcome(call(b, MISSING_TRADE, MISSING_ACCOUNT, MISSING_SHARE))

    assert code == missing[0] == grpc.StatusCode.NOT_FOUND
    ids = (share.name, trade.name, account)  # the share's name contains the trade's: first
    stand_ins = (MISSING_SHARE, MISSING_TRADE, MISSING_ACCOUNT)
    for real, stand_in in zip(ids, stand_ins, strict=True):
        details = details.replace(real, stand_in)
        rich = rich.replace(real.encode(), stand_in.encode())
    assert (details, rich) == missing[1:]
    assert (await a.get(trade.name)).state == pb.SMART_TRADE_STATE_ACTIVE


async def test_another_tenant_lists_and_watches_nothing_of_a(service: Service) -> None:
    a, b = service.a, service.b
    stream = b.trades.WatchSmartTrades(trades_pb.WatchSmartTradesRequest(), metadata=b.metadata)
    end = await stream.read()
    account = await a.paper_account(USDT="10000")
    await a.set_price("BTC/USDT", "100")
    await a.create(
        pb.SmartTrade(
            account=account,
            symbol="BTC/USDT",
            side=pb.SIDE_BUY,
            entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
        )
    )

    trades = await b.trades.ListSmartTrades(trades_pb.ListSmartTradesRequest(), metadata=b.metadata)
    accounts = await b.accounts.ListExchangeAccounts(
        accounts_pb.ListExchangeAccountsRequest(), metadata=b.metadata
    )
    assert list(trades.smart_trades) == []
    assert list(accounts.exchange_accounts) == []
    assert isinstance(end, trades_pb.WatchSmartTradesResponse)
    assert end.WhichOneof("payload") == "snapshot_end"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stream.read(), timeout=1)
    stream.cancel()
