"""Exchange accounts: create (credentials sealed), read, list, update, delete.

Creating a paper account first opens it on the paper venue (its balances written), then
writes the account with the request's claim: a crash between the two leaves balances of an
account id nothing names, and a retry creates the account. Deleting writes the deletion
with the claim, after checking in the same transaction that no live trade uses it. Updating
compares the caller's etag and writes the change with the claim in one transaction (the row
locked); new credentials then reach the account's adapter, so the trades' next venue call
uses them (`Venues.credentials_changed`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from smarttrade.domain.account import Credentials, ExchangeAccount, PaperSettings
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.engine.ownership import Engines
from smarttrade.errors import EtagMismatch, NotFound, PreconditionFailed
from smarttrade.exchange.paper import DEFAULT_BALANCES
from smarttrade.store.credentials import MasterKeys, seal
from smarttrade.store.errors import AlreadyClaimed
from smarttrade.store.unit_of_work import UnitOfWork
from smarttrade.usecases.page_tokens import PageTokens
from smarttrade.usecases.reading import page_size
from smarttrade.usecases.requests import Requested, answered


@dataclass(frozen=True, slots=True)
class NewAccount:
    display_name: str
    exchange: str
    credentials: Credentials | None
    paper_settings: PaperSettings | None
    initial_balances: Mapping[str, Decimal]


@dataclass(frozen=True, slots=True)
class CreateAccount:
    requested: Requested
    account: NewAccount


@dataclass(frozen=True, slots=True)
class UpdateAccount:
    """What to change: a field left None stays as it is."""

    requested: Requested
    account_id: str
    etag: str  # empty: whatever the account is now
    display_name: str | None = None
    credentials: Credentials | None = None


@dataclass(frozen=True, slots=True)
class DeleteAccount:
    requested: Requested
    account_id: str


def etag_of(account: ExchangeAccount) -> str:
    """A tag of what a caller can change (AIP-154): it differs once any of the name, the
    credentials (sealed afresh each time, so a rotation to the same keys changes it too) or
    the paper settings changed."""
    digest = hashlib.sha256()
    for part in (account.display_name, repr(account.paper_settings)):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(account.sealed_credentials or b"")
    return digest.hexdigest()[:16]


def _name(account_id: str) -> str:
    return f"exchangeAccounts/{account_id}"


class Accounts:
    def __init__(
        self,
        engine: Engines,
        unit_of_work: Callable[[], UnitOfWork],
        keys: MasterKeys,
        tokens: PageTokens,
        supported: Callable[[str], bool],
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._unit_of_work = unit_of_work
        self._keys = keys
        self._tokens = tokens
        self._supported = supported
        self._clock = clock

    async def create(self, command: CreateAccount) -> ExchangeAccount:
        requested, new = command.requested, command.account
        request = requested.record("")
        if (stored := await answered(self._unit_of_work, request)) is not None:
            return await self._made_by(stored.answer, requested.tenant_id)
        self._check(new)
        paper = new.exchange == "paper"
        account_id = secrets.token_hex(8)
        account = ExchangeAccount(
            id=account_id,
            tenant_id=requested.tenant_id,
            display_name=new.display_name,
            exchange=new.exchange,
            created_at=self._clock(),
            sealed_credentials=(
                seal(new.credentials, account_id, self._keys) if new.credentials else None
            ),
            paper_settings=(new.paper_settings or PaperSettings()) if paper else None,
        )
        if account.paper_settings is not None:
            await self._engine.venues.paper.open_account(
                account.tenant_id,
                account_id,
                account.paper_settings,
                new.initial_balances or DEFAULT_BALANCES,
            )
        try:
            async with self._unit_of_work() as uow:
                await uow.accounts.add(account)
                uow.requests.claim(request.answered({"account": account_id}), account.created_at)
                await uow.commit()
        except AlreadyClaimed:  # a concurrent duplicate wrote first
            stored = await answered(self._unit_of_work, request)
            return await self._made_by(stored.answer if stored else None, requested.tenant_id)
        self._engine.remember_account(account)
        return account

    def _check(self, new: NewAccount) -> None:
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

    async def _made_by(
        self, answer: Mapping[str, object] | None, tenant_id: str
    ) -> ExchangeAccount:
        """The account a create request made (a claim kept before answers were kept has
        none to show)."""
        if answer is None:
            raise PreconditionFailed(
                "REQUEST_INTERRUPTED", "the first call with this request_id did not finish"
            )
        return await self.get(tenant_id, str(answer["account"]))

    async def get(self, tenant_id: str, account_id: str) -> ExchangeAccount:
        async with self._unit_of_work() as uow:
            account = await uow.accounts.get(tenant_id, account_id)
        if account is None:
            raise NotFound("exchange account", _name(account_id))
        return account

    async def list(
        self, tenant_id: str, size: int, page_token: str
    ) -> tuple[list[ExchangeAccount], str]:
        limit = page_size(size)
        after = self._tokens.decode_time(page_token, "accounts")
        async with self._unit_of_work() as uow:
            accounts = await uow.accounts.page(tenant_id, after, limit + 1)
        token = ""
        if len(accounts) > limit:
            accounts = accounts[:limit]
            token = self._tokens.encode((accounts[-1].created_at, accounts[-1].id), "accounts")
        return accounts, token

    async def update(self, command: UpdateAccount) -> ExchangeAccount:
        requested, account_id = command.requested, command.account_id
        request = requested.record(_name(account_id))
        if await answered(self._unit_of_work, request) is not None:
            return await self.get(requested.tenant_id, account_id)
        try:
            async with self._unit_of_work() as uow:
                account = await uow.accounts.get(requested.tenant_id, account_id, for_update=True)
                if account is None:
                    raise NotFound("exchange account", _name(account_id))
                if command.etag and command.etag != etag_of(account):
                    raise EtagMismatch(_name(account_id))
                changed = self._changed(account, command)
                now = self._clock()
                await uow.accounts.update(changed)
                uow.requests.claim(request.answered({"account": account_id}), now)
                await uow.commit()
        except AlreadyClaimed:  # a concurrent duplicate wrote first
            await answered(self._unit_of_work, request)  # refuses another request's id
            return await self.get(requested.tenant_id, account_id)
        self._engine.remember_account(changed)
        if command.credentials is not None:
            self._engine.venues.credentials_changed(changed)
        return changed

    def _changed(self, account: ExchangeAccount, command: UpdateAccount) -> ExchangeAccount:
        credentials = command.credentials
        if credentials is None:
            sealed = account.sealed_credentials
        else:
            violations = []
            if account.is_paper:
                violations.append(
                    FieldViolation("credentials", "paper accounts take no credentials")
                )
            else:
                if not credentials.api_key:
                    violations.append(FieldViolation("credentials.api_key", "is required"))
                if not credentials.secret:
                    violations.append(FieldViolation("credentials.secret", "is required"))
            if violations:
                raise InvalidSpec(violations)
            sealed = seal(credentials, account.id, self._keys)
        name = account.display_name if command.display_name is None else command.display_name
        return replace(account, display_name=name, sealed_credentials=sealed)

    async def delete(self, command: DeleteAccount) -> None:
        requested, account_id = command.requested, command.account_id
        request = requested.record(_name(account_id))
        if await answered(self._unit_of_work, request) is not None:
            return
        try:
            async with self._unit_of_work() as uow:
                account = await uow.accounts.get(requested.tenant_id, account_id)
                if account is None:
                    raise NotFound("exchange account", _name(account_id))
                live = await uow.accounts.live_trade_count(account_id)
                if live:
                    raise PreconditionFailed(
                        "ACCOUNT_HAS_LIVE_TRADES",
                        f"{_name(account_id)} has {live} trades that are not finished",
                    )
                now = self._clock()
                await uow.accounts.delete(account_id, now)
                uow.requests.claim(request.answered({}), now)
                await uow.commit()
        except AlreadyClaimed:  # a concurrent duplicate deleted it first
            await answered(self._unit_of_work, request)  # refuses another request's id
