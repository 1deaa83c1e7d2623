"""`SmartTradeClient`: the SmartTrade service for code without an event loop.

It is the asyncio client run on a private event loop in a background thread, so both facades
share one implementation of deadlines, retries, request ids, error decoding and the resuming
watch. Each method blocks until the call is done; iterators block for each item.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import grpc

from smarttrade_client.aio import DEFAULT_TARGET, DEFAULT_TIMEOUT, AsyncSmartTradeClient
from smarttrade_client.calls import RetryPolicy

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def _blocking(
    method: Callable[Concatenate[AsyncSmartTradeClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[SmartTradeClient, P], R]:
    """The blocking form of an `AsyncSmartTradeClient` method (same signature and doc)."""

    @functools.wraps(method)
    def call(self: SmartTradeClient, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run(method(self._client, *args, **kwargs))

    return call


def _iterating(
    method: Callable[Concatenate[AsyncSmartTradeClient, P], AsyncIterator[T]],
) -> Callable[Concatenate[SmartTradeClient, P], Iterator[T]]:
    """The blocking form of an `AsyncSmartTradeClient` method that returns an async iterator."""

    @functools.wraps(method)
    def iterate(self: SmartTradeClient, /, *args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        return self._iterate(lambda: method(self._client, *args, **kwargs))

    # help() shows the signature of the wrapped method: make it say what this one returns.
    signature = inspect.signature(method)
    returns = re.sub(
        r"^Async(?:Iterator|Generator)\[([^,\]]+).*",
        r"Iterator[\1]",
        str(signature.return_annotation),
    )
    setattr(iterate, "__signature__", signature.replace(return_annotation=returns))  # noqa: B010
    return iterate


class SmartTradeClient:
    """A blocking client of the SmartTrade service.

        with SmartTradeClient("127.0.0.1:50051", token) as client:
            account = client.create_paper_account({"USDT": Decimal(10000)})
            client.set_price("BTC/USDT", Decimal(100))
            trade = client.create_trade(
                account=account.name, symbol="BTC/USDT", side=Side.BUY,
                entry=Entry.market(units=Decimal("0.5")),
                take_profit=[TakeProfitStep(price=Decimal(110))],
            )
            for item in client.watch(trade.name):
                ...

    The methods, their arguments and their errors are those of `AsyncSmartTradeClient`
    (deadlines, retries on UNAVAILABLE with one `request_id` per mutation, typed
    `SmartTradeError`s, a watch that resumes after disconnects), without `await`. Close it
    (`close()`, or `with`): it owns a background thread.
    """

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
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="smarttrade-client", daemon=True
        )
        self._thread.start()

        async def connect() -> AsyncSmartTradeClient:
            return AsyncSmartTradeClient(
                target,
                token,
                tls=tls,
                root_certificates=root_certificates,
                timeout=timeout,
                retry=retry,
                interceptors=interceptors,
                options=options,
            )

        self._client = self._run(connect())
        self._closed = False

    def _run(self, coroutine: Coroutine[Any, Any, R]) -> R:
        future: Future[R] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt while waiting: stop the call too
            raise

    def _iterate(self, open_iterator: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
        async def start() -> AsyncIterator[T]:
            return open_iterator()

        iterator = self._run(start())

        async def step() -> T:
            return await anext(iterator)

        try:
            while True:
                try:
                    yield self._run(step())
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None and not self._closed:
                self._run(close())

    def close(self) -> None:
        """Close the connection and stop the background thread."""
        if self._closed:
            return
        self._run(self._client.close())
        self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    create_trade = _blocking(AsyncSmartTradeClient.create_trade)
    create_trade_from_share = _blocking(AsyncSmartTradeClient.create_trade_from_share)
    get_trade = _blocking(AsyncSmartTradeClient.get_trade)
    simulate = _blocking(AsyncSmartTradeClient.simulate)
    list_trades = _iterating(AsyncSmartTradeClient.list_trades)
    edit_trade = _blocking(AsyncSmartTradeClient.edit_trade)
    refresh = _blocking(AsyncSmartTradeClient.refresh)
    add_funds = _blocking(AsyncSmartTradeClient.add_funds)
    reduce_funds = _blocking(AsyncSmartTradeClient.reduce_funds)
    open_now = _blocking(AsyncSmartTradeClient.open_now)
    close_at_market = _blocking(AsyncSmartTradeClient.close_at_market)
    close_step = _blocking(AsyncSmartTradeClient.close_step)
    cancel = _blocking(AsyncSmartTradeClient.cancel)
    share = _blocking(AsyncSmartTradeClient.share)
    resolve_share = _blocking(AsyncSmartTradeClient.resolve_share)
    get_share = _blocking(AsyncSmartTradeClient.get_share)
    list_shares = _iterating(AsyncSmartTradeClient.list_shares)
    revoke_share = _blocking(AsyncSmartTradeClient.revoke_share)
    watch = _iterating(AsyncSmartTradeClient.watch)

    create_account = _blocking(AsyncSmartTradeClient.create_account)
    create_paper_account = _blocking(AsyncSmartTradeClient.create_paper_account)
    get_account = _blocking(AsyncSmartTradeClient.get_account)
    list_accounts = _iterating(AsyncSmartTradeClient.list_accounts)
    update_account = _blocking(AsyncSmartTradeClient.update_account)
    delete_account = _blocking(AsyncSmartTradeClient.delete_account)

    set_price = _blocking(AsyncSmartTradeClient.set_price)
    get_balances = _blocking(AsyncSmartTradeClient.get_balances)
    set_balances = _blocking(AsyncSmartTradeClient.set_balances)
