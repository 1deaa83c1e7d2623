"""Exchange-account use cases: create (credentials sealed), read, list, delete."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.engine.engine import Engine
from smarttrade.engine.errors import NotFound, PreconditionFailed
from smarttrade.engine.page_tokens import PageTokens
from smarttrade.engine.trades import DEFAULT_PAGE, MAX_PAGE
from smarttrade.exchange.paper import DEFAULT_BALANCES
from smarttrade.exchange.paper_book import PaperSettings
from smarttrade.store.accounts import (
    ExchangeAccount,
    delete_account,
    get_account,
    insert_account,
    list_accounts,
    live_trade_count,
)
from smarttrade.store.credentials import Credentials, MasterKeys, seal
from smarttrade.store.idempotency import Claim, insert_claim


@dataclass(frozen=True, slots=True)
class NewAccount:
    display_name: str
    exchange: str
    credentials: Credentials | None
    paper_settings: PaperSettings | None
    initial_balances: Mapping[str, Decimal]


class AccountService:
    def __init__(
        self,
        engine: Engine,
        keys: MasterKeys,
        tokens: PageTokens,
        supported: Callable[[str], bool],
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._tokens = tokens
        self._supported = supported
        self._clock = clock

    async def create(self, tenant_id: str, new: NewAccount, claim: Claim) -> ExchangeAccount:
        paper = new.exchange == "paper"
        violations = []
        if not paper and not self._supported(new.exchange):
            violations.append(FieldViolation("exchange", f"unknown exchange {new.exchange!r}"))
        if paper and new.credentials is not None:
            violations.append(FieldViolation("credentials", "paper accounts take no credentials"))
        if not paper and (new.credentials is None or not new.credentials.api_key):
            violations.append(FieldViolation("credentials.api_key", "is required"))
        if not paper and (new.credentials is None or not new.credentials.secret):
            violations.append(FieldViolation("credentials.secret", "is required"))
        if not paper and new.paper_settings is not None:
            violations.append(FieldViolation("paper_settings", "only for paper accounts"))
        if violations:
            raise InvalidSpec(violations)
        account_id = secrets.token_hex(8)
        account = ExchangeAccount(
            id=account_id,
            tenant_id=tenant_id,
            display_name=new.display_name,
            exchange=new.exchange,
            created_at=self._clock(),
            sealed_credentials=(
                seal(new.credentials, account_id, self._keys) if new.credentials else None
            ),
            paper_settings=(new.paper_settings or PaperSettings()) if paper else None,
        )
        async with self._engine.store.engine.begin() as connection:
            await insert_claim(connection, claim, self._clock())
            await insert_account(connection, account)
        if paper:
            assert account.paper_settings is not None
            await self._engine.venues.paper.open_account(
                tenant_id,
                account_id,
                account.paper_settings,
                new.initial_balances or DEFAULT_BALANCES,
            )
        self._engine.remember_account(account)
        return account

    async def get(self, tenant_id: str, account_id: str) -> ExchangeAccount:
        async with self._engine.store.engine.connect() as connection:
            account = await get_account(connection, tenant_id, account_id)
        if account is None:
            raise NotFound("exchange account", f"exchangeAccounts/{account_id}")
        return account

    async def list(
        self, tenant_id: str, page_size: int, page_token: str
    ) -> tuple[list[ExchangeAccount], str]:
        if page_size < 0:
            raise InvalidSpec([FieldViolation("page_size", "must not be negative")])
        size = min(page_size or DEFAULT_PAGE, MAX_PAGE)
        after = self._tokens.decode(page_token, "accounts")
        async with self._engine.store.engine.connect() as connection:
            accounts = await list_accounts(connection, tenant_id, after, size + 1)
        token = ""
        if len(accounts) > size:
            accounts = accounts[:size]
            token = self._tokens.encode((accounts[-1].created_at, accounts[-1].id), "accounts")
        return accounts, token

    async def delete(self, tenant_id: str, account_id: str, claim: Claim) -> None:
        async with self._engine.store.engine.begin() as connection:
            await insert_claim(connection, claim, self._clock())
            account = await get_account(connection, tenant_id, account_id)
            if account is None:
                raise NotFound("exchange account", f"exchangeAccounts/{account_id}")
            live = await live_trade_count(connection, account_id)
            if live:
                raise PreconditionFailed(
                    "ACCOUNT_HAS_LIVE_TRADES",
                    f"exchangeAccounts/{account_id} has {live} trades that are not finished",
                )
            await delete_account(connection, account_id, self._clock())
