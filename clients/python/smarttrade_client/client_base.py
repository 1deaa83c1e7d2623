"""What every part of the asyncio client shares: the channel, the stubs, the caller."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from smarttrade_client.calls import Caller, RetryPolicy
from smarttrade_client.v1 import exchange_account_service_pb2_grpc as accounts_grpc
from smarttrade_client.v1 import paper_market_service_pb2_grpc as paper_grpc
from smarttrade_client.v1 import smart_trade_service_pb2_grpc as trades_grpc

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 10.0
DEFAULT_PAGE_SIZE = 100
USER_AGENT = "smarttrade-client-python/0.1.0"


def trade_name(name: str) -> str:
    """`smartTrades/{id}` from a trade's name or bare id."""
    return name if "/" in name else f"smartTrades/{name}"


def account_name(name: str) -> str:
    """`exchangeAccounts/{id}` from an account's name or bare id."""
    return name if "/" in name else f"exchangeAccounts/{name}"


class ClientBase:
    """The connection of an `AsyncSmartTradeClient` (see there)."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        token: str | None = None,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        channel_options = [("grpc.primary_user_agent", USER_AGENT), *options]
        if tls or root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.aio.secure_channel(
                target, credentials, options=channel_options, interceptors=interceptors
            )
        else:
            self._channel = grpc.aio.insecure_channel(
                target, options=channel_options, interceptors=interceptors
            )
        metadata = [("authorization", f"Bearer {token}")] if token else []
        self.retry = retry or RetryPolicy()
        self._caller = Caller(metadata, timeout, self.retry)
        self._trades = trades_grpc.SmartTradeServiceStub(self._channel)
        self._accounts = accounts_grpc.ExchangeAccountServiceStub(self._channel)
        self._paper = paper_grpc.PaperMarketServiceStub(self._channel)

    async def close(self) -> None:
        """Close the connection; calls in flight are cancelled."""
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
