"""The ExchangeAccountService part of the asyncio client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from decimal import Decimal

from google.protobuf.field_mask_pb2 import FieldMask

from smarttrade_client import convert
from smarttrade_client.calls import new_request_id
from smarttrade_client.client_base import DEFAULT_PAGE_SIZE, ClientBase, account_name
from smarttrade_client.models import Account, Credentials, PaperSettings
from smarttrade_client.v1 import exchange_account_service_pb2 as accounts_pb


class AccountCalls(ClientBase):
    """Exchange accounts: create (real or paper), read, list, update, delete."""

    async def create_account(
        self,
        exchange: str,
        *,
        display_name: str = "",
        credentials: Credentials | None = None,
        paper: PaperSettings | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Account:
        """Create an exchange account: a ccxt exchange id ("binance") with `credentials`, or
        "paper" with optional `paper` settings."""
        key = request_id or new_request_id()
        request = accounts_pb.CreateExchangeAccountRequest(
            exchange_account=convert.account_message(exchange, display_name, credentials, paper),
            request_id=key,
        )
        answer = await self._caller.call(
            self._accounts.CreateExchangeAccount, request, timeout=timeout, request_id=key
        )
        return convert.account(answer.exchange_account)

    async def create_paper_account(
        self,
        balances: Mapping[str, Decimal] | None = None,
        *,
        display_name: str = "",
        settings: PaperSettings | None = None,
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Account:
        """Create a paper account starting with `balances` (default 10000 USDT)."""
        paper = settings or PaperSettings()
        if balances is not None:
            paper = PaperSettings(
                maker_fee_rate=paper.maker_fee_rate,
                taker_fee_rate=paper.taker_fee_rate,
                slippage_percent=paper.slippage_percent,
                partial_fills=paper.partial_fills,
                initial_balances=dict(balances),
            )
        return await self.create_account(
            "paper",
            display_name=display_name,
            paper=paper,
            request_id=request_id,
            timeout=timeout,
        )

    async def get_account(self, name: str, *, timeout: float | None = None) -> Account:
        """One exchange account (never its credentials)."""
        request = accounts_pb.GetExchangeAccountRequest(name=account_name(name))
        answer = await self._caller.call(
            self._accounts.GetExchangeAccount, request, timeout=timeout
        )
        return convert.account(answer.exchange_account)

    async def list_accounts(
        self, *, page_size: int = DEFAULT_PAGE_SIZE, timeout: float | None = None
    ) -> AsyncIterator[Account]:
        """Iterate over the caller's exchange accounts, newest first."""
        request = accounts_pb.ListExchangeAccountsRequest(page_size=page_size)
        while True:
            page = await self._caller.call(
                self._accounts.ListExchangeAccounts, request, timeout=timeout
            )
            for account in page.exchange_accounts:
                yield convert.account(account)
            if not page.next_page_token:
                return
            request.page_token = page.next_page_token

    async def update_account(
        self,
        name: str,
        *,
        display_name: str | None = None,
        credentials: Credentials | None = None,
        etag: str = "",
        request_id: str | None = None,
        timeout: float | None = None,
    ) -> Account:
        """Change the display name and/or rotate the credentials (the account's trades use
        the new ones from their next call to the exchange); with `etag`, `Aborted` when the
        account changed since it was read."""
        paths = [
            path
            for path, value in (("display_name", display_name), ("credentials", credentials))
            if value is not None
        ]
        message = accounts_pb.ExchangeAccount(
            name=account_name(name), display_name=display_name or "", etag=etag
        )
        if credentials is not None:
            message.credentials.CopyFrom(convert.credentials_message(credentials))
        key = request_id or new_request_id()
        request = accounts_pb.UpdateExchangeAccountRequest(
            exchange_account=message, update_mask=FieldMask(paths=paths), request_id=key
        )
        answer = await self._caller.call(
            self._accounts.UpdateExchangeAccount, request, timeout=timeout, request_id=key
        )
        return convert.account(answer.exchange_account)

    async def delete_account(
        self, name: str, *, request_id: str | None = None, timeout: float | None = None
    ) -> None:
        """Delete an exchange account; `FailedPrecondition` while it has live trades."""
        key = request_id or new_request_id()
        request = accounts_pb.DeleteExchangeAccountRequest(name=account_name(name), request_id=key)
        await self._caller.call(
            self._accounts.DeleteExchangeAccount, request, timeout=timeout, request_id=key
        )
