"""`AsyncSmartTradeClient`: the SmartTrade service for asyncio code."""

from __future__ import annotations

from smarttrade_client.account_calls import AccountCalls
from smarttrade_client.client_base import (
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    ClientBase,
    account_name,
    trade_name,
)
from smarttrade_client.paper_calls import PaperCalls
from smarttrade_client.trade_calls import TradeCalls

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "AsyncSmartTradeClient",
    "ClientBase",
    "account_name",
    "trade_name",
]


class AsyncSmartTradeClient(TradeCalls, AccountCalls, PaperCalls):
    """A client of the SmartTrade service for asyncio code.

        async with AsyncSmartTradeClient("127.0.0.1:50051", token) as client:
            account = await client.create_paper_account({"USDT": Decimal(10000)})
            await client.set_price("BTC/USDT", Decimal(100))
            trade = await client.create_trade(
                account=account.name, symbol="BTC/USDT", side=Side.BUY,
                entry=Entry.market(units=Decimal("0.5")),
                take_profit=[TakeProfitStep(price=Decimal(110))],
                stop_loss=StopLoss(price=Decimal(95)),
            )

    Every call carries `authorization: Bearer <token>` and a deadline (`timeout` seconds per
    attempt, changeable per call). A call that fails with UNAVAILABLE is retried as `retry`
    says; mutations get a fresh `request_id` (or the one you pass) that every retry reuses, so
    the service applies them once. Failures raise `SmartTradeError` subclasses
    (`InvalidArgument`, `NotFound`, `FailedPrecondition`, ...). Names are resource names
    (`smartTrades/{id}`, `exchangeAccounts/{id}`); a bare id is accepted too.

    Create the client inside the event loop that uses it, and close it (`await
    client.close()`, or `async with`).

    `tls=True` connects with TLS (the system's roots, or `root_certificates` in PEM);
    `interceptors` and `options` go to the grpc.aio channel.
    """
