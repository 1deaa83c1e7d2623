"""A Binance stub as the venue, and `smarttrade serve` processes trading on it: the venue
outlives the service, as a real exchange does, so the service can be killed and restarted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc

from smarttrade.usecases.create import trade_id_for
from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.integration.test_ccxt_exchange import STUB_OPTIONS
from tests.support.binance_stub import BinanceStub
from tests.support.process import ServerProcess, serve_process
from tests.support.service import Client, request_id

API_KEY = "resilience-key-0c1d2e"
SECRET = "resilience-secret-3f4a5b"
GRACE = 3.0  # seconds an unanswered order may take to show up before it is declared lost


@dataclass
class Trading:
    """One running service on the stub, with a client and a binance account."""

    server: ServerProcess
    venue: BinanceStub
    client: Client
    account: str

    def posts(self) -> list[str]:
        return [r.params["newClientOrderId"] for r in self.venue.requests_to("POST", "order")]

    async def create(self, trade: pb.SmartTrade, key: str) -> pb.SmartTrade:
        response = await self.client.trades.CreateSmartTrade(
            trades_pb.CreateSmartTradeRequest(smart_trade=trade, request_id=key),
            metadata=self.client.metadata,
        )
        return response.smart_trade

    async def eventually(
        self, name: str, check: Callable[[pb.SmartTrade], bool], seconds: float = 20
    ) -> pb.SmartTrade:
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            trade = await self.client.get(name)
            if check(trade):
                return trade
            assert asyncio.get_running_loop().time() < deadline, str(trade)[:3000]
            await asyncio.sleep(0.05)


@asynccontextmanager
async def binance_venue() -> AsyncIterator[BinanceStub]:
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as venue:
        await venue.set_balance("USDT", Decimal(100000))
        await venue.set_price("BTC/USDT", Decimal(100))
        yield venue


@asynccontextmanager
async def trading_on(
    venue: BinanceStub,
    database_url: str,
    data_dir: Path,
    account: str = "",
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Trading]:
    """A service process on `venue` (with `env` on top of the test settings); creates the
    binance account unless given one (a restarted service keeps its accounts)."""
    settings = stub_settings(venue) | dict(env or {})
    async with (
        serve_process(data_dir, database_url=database_url, env=settings) as server,
        grpc.aio.insecure_channel(server.address) as channel,
    ):
        client = Client(channel, "token-a")
        account = account or await open_binance_account(client, request_id())
        yield Trading(server, venue, client, account)


async def killed_once(
    venue: BinanceStub,
    database_url: str,
    data_dir: Path,
    trade: Callable[[str], pb.SmartTrade],
    key: str,
    ready: Callable[[pb.SmartTrade], bool],
) -> tuple[str, pb.SmartTrade]:
    """A service process on `venue` creates `trade(account)` with request id `key`, and is
    SIGKILLed once the trade is `ready`: the account, and the trade as it was then."""
    async with trading_on(venue, database_url, data_dir) as first:
        await first.create(trade(first.account), key)
        seen = await first.eventually(f"smartTrades/{trade_id_for('tenant-a', key)}", ready)
        first.server.kill()
    return first.account, seen


def stub_overrides(venue: BinanceStub, **settings: Any) -> dict[str, dict[str, Any]]:
    """The service's ccxt overrides pointing `binance` at `venue` (REST and websockets):
    polled every 0.05 s with no pause between requests, unless `settings` say otherwise.
    Polled by default: tests/e2e/test_binance_streams.py covers the streams."""
    urls = {"api": {"public": venue.url, "private": venue.url, "ws": venue.ws_urls}}
    defaults = {"poll_interval": 0.05, "rate_limit_ms": 1, "streaming": False}
    return {"binance": {"urls": urls, "options": STUB_OPTIONS} | defaults | settings}


def usdm_overrides(venue: BinanceStub, **settings: Any) -> dict[str, dict[str, Any]]:
    """The service's ccxt overrides pointing `binanceusdm` at `venue`'s USDⓈ-M futures (REST
    and websockets): polled every 0.05 s, unless `settings` say otherwise."""
    urls = {"api": venue.futures_urls | {"ws": venue.ws_urls}}
    defaults = {"poll_interval": 0.05, "rate_limit_ms": 1, "streaming": False}
    return {"binanceusdm": {"urls": urls} | defaults | settings}


async def open_usdm_account(client: Client, api_key: str = API_KEY, secret: str = SECRET) -> str:
    """The stub's USDⓈ-M futures account, as the service knows it (its resource name)."""
    created = await client.accounts.CreateExchangeAccount(
        accounts_pb.CreateExchangeAccountRequest(
            exchange_account=accounts_pb.ExchangeAccount(
                exchange="binanceusdm",
                credentials=accounts_pb.ExchangeCredentials(api_key=api_key, secret=secret),
            ),
            request_id=request_id(),
        ),
        metadata=client.metadata,
    )
    return created.exchange_account.name


def stub_settings(venue: BinanceStub) -> dict[str, str]:
    """The service's settings for trading on `venue` as tenant-a (token-a)."""
    overrides = stub_overrides(venue, poll_interval=0.1, timeout=1.0)
    return {
        "SMARTTRADE_TOKENS": "tenant-a:token-a",
        "SMARTTRADE_EXCHANGE_OVERRIDES": json.dumps(overrides),
        "SMARTTRADE_UNKNOWN_ORDER_GRACE": str(GRACE),
        "SMARTTRADE_ORDER_POLL_INTERVAL": "0.1",
    }


async def open_binance_account(client: Client, key: str) -> str:
    """The stub's account, as the service knows it (its resource name)."""
    created = await client.accounts.CreateExchangeAccount(
        accounts_pb.CreateExchangeAccountRequest(
            exchange_account=accounts_pb.ExchangeAccount(
                exchange="binance",
                credentials=accounts_pb.ExchangeCredentials(api_key=API_KEY, secret=SECRET),
            ),
            request_id=key,
        ),
        metadata=client.metadata,
    )
    return created.exchange_account.name


@asynccontextmanager
async def binance_server(database_url: str, data_dir: Path) -> AsyncIterator[Trading]:
    async with binance_venue() as venue, trading_on(venue, database_url, data_dir) as trading:
        yield trading
