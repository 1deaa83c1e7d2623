"""The PaperMarketService part of the asyncio client: the paper venue's sandbox."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from smarttrade_client import convert
from smarttrade_client.calls import new_request_id
from smarttrade_client.client_base import ClientBase, account_name
from smarttrade_client.models import Balance
from smarttrade_client.v1 import paper_market_service_pb2 as paper_pb


class PaperCalls(ClientBase):
    """The paper market: push prices, read and set balances of paper accounts."""

    async def set_price(
        self,
        symbol: str,
        price: Decimal,
        *,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Decimal:
        """Push a last price of the paper venue (a tick). Returns once every paper trade on
        the symbol has fully reacted (orders filled, triggers fired, events published)."""
        key = request_id or new_request_id()
        request = paper_pb.SetPaperPriceRequest(
            symbol=symbol, price=convert.text(price), request_id=key
        )
        answer = await self._caller.call(
            self._paper.SetPaperPrice, request, timeout=timeout, request_id=key
        )
        return convert.figure(answer.price)

    async def get_balances(
        self, account: str, *, timeout: float | None = None
    ) -> dict[str, Balance]:
        """A paper account's balances, by currency."""
        request = paper_pb.GetPaperBalancesRequest(account=account_name(account))
        answer = await self._caller.call(self._paper.GetPaperBalances, request, timeout=timeout)
        return convert.balances(answer.balances)

    async def set_balances(
        self,
        account: str,
        totals: Mapping[str, Decimal],
        *,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Balance]:
        """Set a paper account's balances (currency -> total to hold); other currencies stay
        as they are. Returns all balances after the change."""
        key = request_id or new_request_id()
        request = paper_pb.SetPaperBalancesRequest(
            account=account_name(account),
            balances=convert.balance_messages(totals),
            request_id=key,
        )
        answer = await self._caller.call(
            self._paper.SetPaperBalances, request, timeout=timeout, request_id=key
        )
        return convert.balances(answer.balances)
