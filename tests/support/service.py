"""The real service, in the test's event loop, on a real socket, with real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from smarttrade import app
from smarttrade.config import Settings, TokenEntry
from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import exchange_account_service_pb2_grpc as accounts_grpc
from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import paper_market_service_pb2_grpc as paper_grpc
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from smarttrade.v1 import smart_trade_service_pb2_grpc as trades_grpc
from tests.support.process import ServerProcess, serve_process

ALL = frozenset({"trade", "sandbox"})
TOKENS = (
    TokenEntry.plain("tenant-a", "token-a", ALL),
    TokenEntry.plain("tenant-b", "token-b", ALL),
    TokenEntry.plain("tenant-a", "token-a-trading-only", frozenset({"trade"})),
)


# A WatchSmartTrades call, as tests and benchmarks read it.
WatchCall = grpc.aio.UnaryStreamCall[
    trades_pb.WatchSmartTradesRequest, trades_pb.WatchSmartTradesResponse
]


def request_id() -> str:
    return str(uuid.uuid4())


async def eventually(
    client: Client, name: str, check: Callable[[pb.SmartTrade], bool], seconds: float = 15
) -> pb.SmartTrade:
    """The trade `name` once `check` holds, read until then (fails after `seconds`)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        trade = await client.get(name)
        if check(trade):
            return trade
        assert asyncio.get_running_loop().time() < deadline, str(trade)[:3000]
        await asyncio.sleep(0.05)


@dataclass
class Client:
    """Typed stubs of the three services, authenticated as one tenant."""

    channel: grpc.aio.Channel
    token: str

    def __post_init__(self) -> None:
        self.trades = trades_grpc.SmartTradeServiceStub(self.channel)
        self.accounts = accounts_grpc.ExchangeAccountServiceStub(self.channel)
        self.paper = paper_grpc.PaperMarketServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {self.token}"),)

    async def paper_account(self, **balances: str) -> str:
        account = pb_account(balances or {"USDT": "10000"})
        response = await self.accounts.CreateExchangeAccount(
            accounts_pb.CreateExchangeAccountRequest(
                exchange_account=account, request_id=request_id()
            ),
            metadata=self.metadata,
        )
        return response.exchange_account.name

    async def set_price(self, symbol: str, price: str) -> None:
        await self.paper.SetPaperPrice(
            paper_pb.SetPaperPriceRequest(symbol=symbol, price=price, request_id=request_id()),
            metadata=self.metadata,
        )

    async def balances(self, account: str) -> dict[str, str]:
        response = await self.paper.GetPaperBalances(
            paper_pb.GetPaperBalancesRequest(account=account), metadata=self.metadata
        )
        return {balance.currency: balance.total for balance in response.balances}

    async def create(self, trade: pb.SmartTrade) -> pb.SmartTrade:
        response = await self.trades.CreateSmartTrade(
            trades_pb.CreateSmartTradeRequest(smart_trade=trade, request_id=request_id()),
            metadata=self.metadata,
        )
        return response.smart_trade

    async def get(self, name: str) -> pb.SmartTrade:
        response = await self.trades.GetSmartTrade(
            trades_pb.GetSmartTradeRequest(name=name), metadata=self.metadata
        )
        return response.smart_trade


def pb_account(balances: dict[str, str]) -> accounts_pb.ExchangeAccount:
    return accounts_pb.ExchangeAccount(
        display_name="paper",
        exchange="paper",
        paper_settings=accounts_pb.PaperAccountSettings(initial_balances=balances),
    )


@dataclass
class Service:
    running: app.Running
    address: str
    a: Client
    b: Client


@asynccontextmanager
async def running_service(
    database_url: str, data_dir: Path, insecure_client: bool = True, **overrides: Any
) -> AsyncIterator[Service]:
    """The service on a free port; `overrides` are Settings fields. Its clients connect in
    plain text unless `insecure_client` is False (then their calls are the test's to make)."""
    settings = replace(
        Settings(
            listen="127.0.0.1:0",
            database_url=database_url,
            data_dir=data_dir,
            tokens=TOKENS,
            unknown_order_grace=1.0,
            shutdown_grace=1.0,
        ),
        **overrides,
    )
    running = await app.start(settings)
    address = f"127.0.0.1:{running.port}"
    if not insecure_client:
        address = f"localhost:{running.port}"
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            yield Service(running, address, Client(channel, "token-a"), Client(channel, "token-b"))
        finally:
            await app.stop(running, 0.5)


@dataclass(frozen=True)
class RichError:
    code: grpc.StatusCode
    reason: str
    metadata: dict[str, str]
    fields: dict[str, str]
    preconditions: list[str]


def rich_error(error: grpc.aio.AioRpcError) -> RichError:
    """The google.rpc.Status details of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error.code()}: {error.details()}"
    reason, metadata, fields, preconditions = "", {}, {}, []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = {v.field: v.description for v in bad.field_violations}
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            preconditions = [v.subject or v.type for v in failure.violations]
    return RichError(error.code(), reason, metadata, fields, preconditions)


# The environment of `smarttrade serve` as a process in the crash tests: tenant-a's token,
# quiet logs, and half a second before an order whose intent was written but never sent is
# placed (it is looked up first, and found missing).
PROCESS_ENV = {
    "SMARTTRADE_TOKENS": "tenant-a:token-a",
    "SMARTTRADE_LOG_LEVEL": "WARNING",
    "SMARTTRADE_UNKNOWN_ORDER_GRACE": "0.5",
}


@asynccontextmanager
async def serving_process(
    database_url: str,
    data_dir: Path,
    failpoint: str = "",
    settings: Mapping[str, str] = PROCESS_ENV,
) -> AsyncIterator[tuple[ServerProcess, Client]]:
    """`smarttrade serve` as its own process with `settings` (and a failpoint armed, if
    given), and tenant-a's client of it."""
    env = dict(settings) | ({"SMARTTRADE_FAILPOINTS": failpoint} if failpoint else {})
    async with (
        serve_process(data_dir, database_url=database_url, env=env) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        yield server, Client(channel, "token-a")
