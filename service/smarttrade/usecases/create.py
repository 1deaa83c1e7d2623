"""Creating a trade: from settings, or from a share's settings with the caller's own size.

The trade's id derives from the request id, so two calls with one request id name the same
trade. The first decision (the trade, its entry's intent, its events) is written with the
request's claim in one statement; the trade then runs, and each later write of the call
(the venue's answer to the entry) updates the request's answer. No lookup comes first: a
duplicate's claim is refused by that write (nothing is written), and the duplicate gets the
first call's answer, the trade at the version the first call left it. In this process a
duplicate arriving while the first is still running waits for it (`InFlight`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from smarttrade import tracing
from smarttrade.domain.account import ExchangeAccount
from smarttrade.domain.decide import create
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.labels import SERVICE_TRADE_ID
from smarttrade.domain.market import Market
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.spec import MarketType, TradeSpec
from smarttrade.domain.validation import futures_defaults, shared_position_conflict
from smarttrade.engine.ownership import Engines
from smarttrade.errors import AlreadyExists, NotFound, PreconditionFailed
from smarttrade.store.errors import AlreadyClaimed, ConcurrentUpdate
from smarttrade.store.unit_of_work import UnitOfWork
from smarttrade.usecases.reading import TradeReader
from smarttrade.usecases.requests import (
    InFlight,
    Requested,
    Turns,
    answered,
    require_request_id,
)
from smarttrade.usecases.shares import ShareResolver


def trade_id_for(tenant_id: str, request_id: str, chosen_id: str = "") -> str:
    """16 hex characters, derived from the create request's id: two creates with one request
    id name the same trade, so concurrent duplicates collide instead of making two trades.
    Short enough that `{trade}-{leg}-{n}` fits every venue's client order id (Binance: 36).

    A trade whose caller chose its id (AIP-133 `smart_trade_id`) gets one derived from that
    id instead (`trade_id_named`), so a second create with the id collides with the first
    and is refused (ALREADY_EXISTS), unless it is the first's retry (same request id)."""
    if chosen_id:
        return trade_id_named(tenant_id, chosen_id)
    digest = hashlib.sha256(f"{tenant_id}\0{request_id}".encode()).hexdigest()
    return digest[:16]


def trade_id_named(tenant_id: str, resource_id: str) -> str:
    """The trade id behind the name `smartTrades/{resource_id}` of a tenant's trade.

    Decided 2026-12-03 (issue 15): the caller's id is NOT the trade's id. The trade's id is
    in every client order id (`{trade}-{leg}-{generation}`, split on its first dash by the
    engine and the fail points; Binance allows 36 characters), and it keys trades across
    tenants (the tables' primary key, leases, locks): a caller's id, with its hyphens and up
    to 63 characters, is none of that, and two tenants may choose the same one. So a chosen
    id maps to 16 hex characters derived from the tenant and that id: a pure function, so
    every call that names a trade resolves it without a lookup, and no tenant's choice can
    meet another's. The service's own ids (16 hex digits, which `domain.labels` refuses as
    a chosen id) name themselves, so a chosen-id trade also answers to its internal id.
    """
    if SERVICE_TRADE_ID.fullmatch(resource_id):
        return resource_id
    digest = hashlib.sha256(f"{tenant_id}\0id\0{resource_id}".encode()).hexdigest()
    return digest[:16]


def holds_a_position(spec: TradeSpec, market: Market) -> bool:
    """A futures trade: it opens (or shares) the account's position on a contract market."""
    return spec.leverage.market_type is not MarketType.SPOT and market.is_contract


@dataclass(frozen=True, slots=True)
class CreateTrade:
    requested: Requested
    account_id: str
    spec: TradeSpec
    chosen_id: str = ""  # the caller's id for the trade's name (AIP-133), "" if none


@dataclass(frozen=True, slots=True)
class CreateFromShare:
    """A shared trade's settings with the caller's own account and size (one of the two)."""

    requested: Requested
    account_id: str
    share_token: str
    units: Decimal | None
    total: Decimal | None
    chosen_id: str = ""


class CreateTrades:
    def __init__(
        self,
        engine: Engines,
        unit_of_work: Callable[[], UnitOfWork],
        reader: TradeReader,
        shares: ShareResolver,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._unit_of_work = unit_of_work
        self._reader = reader
        self._shares = shares
        self._clock = clock
        self._in_flight = InFlight()
        self._positions = Turns()  # futures creates, one at a time per account and symbol

    async def __call__(self, command: CreateTrade | CreateFromShare) -> SmartTrade:
        requested = command.requested
        require_request_id(requested.request_id)
        trade_id = trade_id_for(requested.tenant_id, requested.request_id, command.chosen_id)
        return await self._in_flight.once(trade_id, lambda: self._create(command, trade_id))

    async def _create(self, command: CreateTrade | CreateFromShare, trade_id: str) -> SmartTrade:
        requested = command.requested
        if self._engine.is_live(trade_id):  # made by this request id, and still running
            return await self._first_answer(command, trade_id)
        spec = command.spec if isinstance(command, CreateTrade) else await self._shared(command)
        account = await self._engine.account(command.account_id)
        if account.tenant_id != requested.tenant_id:
            raise NotFound("exchange account", f"exchangeAccounts/{command.account_id}")
        market = (await self._engine.venues.markets(account)).get(spec.symbol)
        if market is None:
            raise InvalidSpec(
                [FieldViolation("symbol", f"{spec.symbol!r} is not a market of {account.exchange}")]
            )

        if not holds_a_position(spec, market):
            return await self._launch(command, trade_id, account, spec, market)
        # A futures trade must fit the position the account's live trades on the symbol
        # hold, and two creates must not both pass that check before either is written: in
        # this process they take turns per account and symbol, from the check until the
        # trade is written (not until its entry is answered). Decided 2026-12-03: a tenant's
        # trades, hence its accounts', are created only by the replica holding its shard
        # (`Engines.launch` refuses elsewhere), so a turn in the process is enough.
        async with self._positions.turn((account.id, spec.symbol)) as hand_on:
            return await self._launch(command, trade_id, account, spec, market, hand_on)

    async def _launch(
        self,
        command: CreateTrade | CreateFromShare,
        trade_id: str,
        account: ExchangeAccount,
        spec: TradeSpec,
        market: Market,
        recorded: Callable[[], None] | None = None,
    ) -> SmartTrade:
        if holds_a_position(spec, market):
            await self._check_shared_position(account.id, spec)
        last_price = await self._engine.venues.last_price(account, spec.symbol)
        with tracing.span("smarttrade.decide", trade=trade_id, input="create"):
            decision = create(
                trade_id=trade_id,
                tenant_id=command.requested.tenant_id,
                account_id=account.id,
                exchange_id=account.exchange,
                spec=spec,
                market=market,
                last_price=last_price,
                at=self._clock(),
                chosen_id=command.chosen_id,
            )
        request = command.requested.record(f"smartTrades/{trade_id}")
        try:
            return await self._engine.launch(decision, request, recorded)
        except (AlreadyClaimed, ConcurrentUpdate):
            return await self._first_answer(command, trade_id)

    async def _check_shared_position(self, account_id: str, spec: TradeSpec) -> None:
        """Refuse a futures trade that does not fit the position the account's live trades
        on the symbol hold (see `shared_position_conflict`)."""
        async with self._unit_of_work() as uow:
            live = await uow.trades.live_specs(account_id, spec.symbol)
        conflict = shared_position_conflict(futures_defaults(spec), live)
        if conflict is not None:
            raise PreconditionFailed("POSITION_SHARED", conflict)

    async def _first_answer(
        self, command: CreateTrade | CreateFromShare, trade_id: str
    ) -> SmartTrade:
        """The trade as the first call with this request id left it. A trade with this id
        whose request is no longer kept (pruned) is that request's trade as it is now; a
        trade of a chosen id that this request did not make is another's (ALREADY_EXISTS)."""
        name = f"smartTrades/{command.chosen_id or trade_id}"
        request = command.requested.record(f"smartTrades/{trade_id}")
        stored = await answered(self._unit_of_work, request)
        if stored is None and command.chosen_id:
            raise AlreadyExists("smart trade", name)
        version = stored.trade_version if stored is not None else None
        return await self._reader.at_version(request.tenant_id, trade_id, version)

    async def _shared(self, command: CreateFromShare) -> TradeSpec:
        shared = await self._shares.resolve(command.share_token)
        entry = replace(shared.spec.entry, units=command.units, total=command.total)
        return replace(shared.spec, entry=entry)
