"""ExchangeAccountService: convert, call the use case, convert back."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import grpc

from smarttrade.api import parse, render
from smarttrade.api.auth import Authenticator, tenant
from smarttrade.api.commands import ACCOUNTS, fields_under, requested
from smarttrade.api.errors import unary
from smarttrade.domain.account import Credentials, PaperSettings
from smarttrade.usecases.accounts import (
    Accounts,
    CreateAccount,
    DeleteAccount,
    NewAccount,
    UpdateAccount,
)
from smarttrade.v1 import exchange_account_service_pb2 as pb
from smarttrade.v1 import exchange_account_service_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]
MAX_TEXT = 200
UPDATABLE = frozenset({"display_name", "credentials"})
ACCOUNT_ETAG = re.compile(r"[0-9a-f]{16}")


def _paper_settings(
    message: pb.PaperAccountSettings, out: parse.Violations
) -> tuple[PaperSettings, dict[str, Decimal]]:
    defaults = PaperSettings()
    with out.under("exchange_account.paper_settings"):
        maker = parse.decimal(message.maker_fee_rate, "maker_fee_rate", out)
        taker = parse.decimal(message.taker_fee_rate, "taker_fee_rate", out)
        slippage = parse.decimal(message.slippage_percent, "slippage_percent", out)
        for name, value in (("maker_fee_rate", maker), ("taker_fee_rate", taker)):
            if value is not None and not 0 <= value < 1:
                out.add(name, "must be a rate in [0, 1), e.g. 0.001 for 0.1%")
        if slippage is not None and not 0 <= slippage < 100:
            out.add("slippage_percent", "must be a percentage in [0, 100)")
        balances: dict[str, Decimal] = {}
        for currency, amount in message.initial_balances.items():
            path = f"initial_balances[{currency}]"
            if not currency.isalnum() or len(currency) > 20:
                out.add(path, "must be a currency code such as USDT")
            value = parse.decimal(amount, path, out, required=True)
            if value is not None and value < 0:
                out.add(path, "must not be negative")
            elif value is not None:
                balances[currency] = value
    settings = PaperSettings(
        maker_fee_rate=defaults.maker_fee_rate if maker is None else maker,
        taker_fee_rate=defaults.taker_fee_rate if taker is None else taker,
        slippage_percent=defaults.slippage_percent if slippage is None else slippage,
        partial_fills=message.partial_fills,
    )
    return settings, balances


class ExchangeAccountServicer(pb_grpc.ExchangeAccountServiceServicer):
    scope = "trade"

    def __init__(self, accounts: Accounts, authenticator: Authenticator) -> None:
        self.authenticator = authenticator
        self._accounts = accounts

    @unary
    async def CreateExchangeAccount(
        self, request: pb.CreateExchangeAccountRequest, context: Context
    ) -> pb.CreateExchangeAccountResponse:
        message = request.exchange_account
        out = parse.Violations()
        if not message.exchange:
            out.add("exchange_account.exchange", "is required, e.g. binance or paper")
        if len(message.display_name) > MAX_TEXT:
            out.add("exchange_account.display_name", f"at most {MAX_TEXT} characters")
        credentials = None
        if message.HasField("credentials"):
            given = message.credentials
            credentials = Credentials(given.api_key, given.secret, given.password)
        settings: PaperSettings | None = None
        balances: dict[str, Decimal] = {}
        if message.HasField("paper_settings"):
            settings, balances = _paper_settings(message.paper_settings, out)
        out.raise_any()
        new = NewAccount(
            display_name=message.display_name,
            exchange=message.exchange,
            credentials=credentials,
            paper_settings=settings,
            initial_balances=balances,
        )
        who = requested(request, "CreateExchangeAccount", request.request_id)
        account = await self._accounts.create(CreateAccount(who, new))
        return pb.CreateExchangeAccountResponse(exchange_account=render.exchange_account(account))

    @unary
    async def GetExchangeAccount(
        self, request: pb.GetExchangeAccountRequest, context: Context
    ) -> pb.GetExchangeAccountResponse:
        account = await self._accounts.get(tenant(), parse.name_id(request.name, ACCOUNTS))
        return pb.GetExchangeAccountResponse(exchange_account=render.exchange_account(account))

    @unary
    async def ListExchangeAccounts(
        self, request: pb.ListExchangeAccountsRequest, context: Context
    ) -> pb.ListExchangeAccountsResponse:
        accounts, token = await self._accounts.list(tenant(), request.page_size, request.page_token)
        return pb.ListExchangeAccountsResponse(
            exchange_accounts=[render.exchange_account(account) for account in accounts],
            next_page_token=token,
        )

    @unary
    async def DeleteExchangeAccount(
        self, request: pb.DeleteExchangeAccountRequest, context: Context
    ) -> pb.DeleteExchangeAccountResponse:
        account_id = parse.name_id(request.name, ACCOUNTS)
        who = requested(request, "DeleteExchangeAccount", request.request_id)
        await self._accounts.delete(DeleteAccount(who, account_id))
        return pb.DeleteExchangeAccountResponse()

    @unary
    async def UpdateExchangeAccount(
        self, request: pb.UpdateExchangeAccountRequest, context: Context
    ) -> pb.UpdateExchangeAccountResponse:
        message = request.exchange_account
        account_id = parse.name_id(message.name, ACCOUNTS, "exchange_account.name")
        out = parse.Violations()
        paths = set(request.update_mask.paths)
        if not paths or not paths <= UPDATABLE:
            out.add("update_mask", "must name display_name and/or credentials")
        if message.etag and not ACCOUNT_ETAG.fullmatch(message.etag):
            out.add("exchange_account.etag", "is not an etag this service issued")
        if len(message.display_name) > MAX_TEXT:
            out.add("exchange_account.display_name", f"at most {MAX_TEXT} characters")
        out.raise_any()
        given = message.credentials
        command = UpdateAccount(
            requested(request, "UpdateExchangeAccount", request.request_id),
            account_id,
            message.etag,
            display_name=message.display_name if "display_name" in paths else None,
            credentials=(
                Credentials(given.api_key, given.secret, given.password)
                if "credentials" in paths
                else None
            ),
        )
        with fields_under("exchange_account"):
            account = await self._accounts.update(command)
        return pb.UpdateExchangeAccountResponse(exchange_account=render.exchange_account(account))
