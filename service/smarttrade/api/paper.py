"""PaperMarketService, the sandbox: convert, call the application, convert back."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import grpc

from smarttrade.api import parse, render
from smarttrade.api.auth import Authenticator, tenant
from smarttrade.api.errors import unary
from smarttrade.api.idempotency import Idempotency
from smarttrade.engine.sandbox import PaperSandbox
from smarttrade.store.idempotency import Claim
from smarttrade.v1 import paper_market_service_pb2 as pb
from smarttrade.v1 import paper_market_service_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]
ACCOUNTS = "exchangeAccounts"


class PaperMarketServicer(pb_grpc.PaperMarketServiceServicer):
    scope = "sandbox"

    def __init__(
        self, sandbox: PaperSandbox, idempotency: Idempotency, authenticator: Authenticator
    ) -> None:
        self.authenticator = authenticator
        self._sandbox = sandbox
        self._idempotency = idempotency

    @unary
    async def SetPaperPrice(
        self, request: pb.SetPaperPriceRequest, context: Context
    ) -> pb.SetPaperPriceResponse:
        out = parse.Violations()
        parse.symbol(request.symbol, "symbol", out)
        price = parse.decimal(request.price, "price", out, required=True, positive=True)
        out.raise_any()
        assert price is not None

        async def perform(claim: Claim) -> pb.SetPaperPriceResponse:
            assert price is not None
            applied = await self._sandbox.set_price(tenant(), request.symbol, price, claim)
            return pb.SetPaperPriceResponse(symbol=request.symbol, price=render.text(applied))

        async def current(name: str) -> pb.SetPaperPriceResponse:
            now = self._sandbox.last_price(tenant(), request.symbol)
            return pb.SetPaperPriceResponse(symbol=request.symbol, price=render.text(now))

        return await self._idempotency.once(
            "SetPaperPrice",
            request,
            request.request_id,
            request.symbol,
            pb.SetPaperPriceResponse,
            perform,
            current,
        )

    @unary
    async def GetPaperBalances(
        self, request: pb.GetPaperBalancesRequest, context: Context
    ) -> pb.GetPaperBalancesResponse:
        account_id = parse.name_id(request.account, ACCOUNTS, "account")
        balances = await self._sandbox.balances(tenant(), account_id)
        return pb.GetPaperBalancesResponse(balances=render.balances(balances))

    @unary
    async def SetPaperBalances(
        self, request: pb.SetPaperBalancesRequest, context: Context
    ) -> pb.SetPaperBalancesResponse:
        account_id = parse.name_id(request.account, ACCOUNTS, "account")
        out = parse.Violations()
        totals: dict[str, Decimal] = {}
        for index, balance in enumerate(request.balances):
            path = f"balances[{index}]"
            if not balance.currency.isalnum() or len(balance.currency) > 20:
                out.add(f"{path}.currency", "must be a currency code such as USDT")
            total = parse.decimal(balance.total, f"{path}.total", out, required=True)
            if total is not None and total < 0:
                out.add(f"{path}.total", "must not be negative")
            elif total is not None:
                totals[balance.currency] = total
        out.raise_any()

        async def perform(claim: Claim) -> pb.SetPaperBalancesResponse:
            balances = await self._sandbox.set_balances(tenant(), account_id, totals, claim)
            return pb.SetPaperBalancesResponse(balances=render.balances(balances))

        async def current(name: str) -> pb.SetPaperBalancesResponse:
            balances = await self._sandbox.balances(tenant(), account_id)
            return pb.SetPaperBalancesResponse(balances=render.balances(balances))

        return await self._idempotency.once(
            "SetPaperBalances",
            request,
            request.request_id,
            request.account,
            pb.SetPaperBalancesResponse,
            perform,
            current,
        )
