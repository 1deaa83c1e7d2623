"""PaperMarketService, the sandbox: convert, call the use case, convert back."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import grpc

from smarttrade.api import parse, render
from smarttrade.api.auth import Authenticator, tenant
from smarttrade.api.commands import ACCOUNTS, requested
from smarttrade.api.errors import unary
from smarttrade.usecases.sandbox import Sandbox, SetBalances, SetPrice
from smarttrade.v1 import paper_market_service_pb2 as pb
from smarttrade.v1 import paper_market_service_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class PaperMarketServicer(pb_grpc.PaperMarketServiceServicer):
    scope = "sandbox"

    def __init__(self, sandbox: Sandbox, authenticator: Authenticator) -> None:
        self.authenticator = authenticator
        self._sandbox = sandbox

    @unary
    async def SetPaperPrice(
        self, request: pb.SetPaperPriceRequest, context: Context
    ) -> pb.SetPaperPriceResponse:
        out = parse.Violations()
        parse.symbol(request.symbol, "symbol", out)
        price = parse.decimal(request.price, "price", out, required=True, positive=True)
        out.raise_any()
        assert price is not None
        who = requested(request, "SetPaperPrice", request.request_id)
        applied = await self._sandbox.set_price(SetPrice(who, request.symbol, price))
        return pb.SetPaperPriceResponse(symbol=request.symbol, price=render.text(applied))

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
        who = requested(request, "SetPaperBalances", request.request_id)
        balances = await self._sandbox.set_balances(SetBalances(who, account_id, totals))
        return pb.SetPaperBalancesResponse(balances=render.balances(balances))
