"""The paper venue as a product: simulated accounts on the matching book, persisted.

`PaperVenue` owns one `PaperBook` per tenant (a tenant's sandbox prices move only its own
paper accounts) and writes every change through `PaperStorage` before answering, so paper
accounts survive restarts like real ones. `PaperExchange` is the `Exchange` port for one
paper account. `PaperFaults` makes one account have a real venue's bad day on purpose.

Changes apply to the books one at a time (the venue's lock); their writes are grouped: a
change made while a write is in flight goes with the next write, which carries every change
staged until it starts, in one statement (group commit). So many trades placing orders at
once cost one durable write per round, not one each, and every caller still returns only
once its own change is durable. Writes read the books' current state, in order, so the store
converges on the latest state of each order, balance and futures position (with the leverage
and margin mode of its symbol): an order on a contract market stages the position of its
account on that symbol, as it stages the account's balances.

When the storage cannot write (the database is down), the book has already changed in memory:
the change stays queued and is written with the next successful write, and the caller gets
a transient error, or `OutcomeUnknown` when it was placing an order (the order is in the
book, but would not survive a restart before the next write).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol

from smarttrade import failpoints
from smarttrade.domain.account import PaperSettings
from smarttrade.domain.market import Market
from smarttrade.domain.spec import MarginMode, TriggerPrice
from smarttrade.domain.values import Balance
from smarttrade.exchange.paper_book import PaperBook, PaperOrder
from smarttrade.exchange.paper_futures import Holding, Setting
from smarttrade.exchange.port import (
    Capabilities,
    OrderNotFound,
    OrderRejected,
    OrderReport,
    OrderRequest,
    OutcomeUnknown,
    PositionReport,
    RateLimited,
    RejectReason,
    Ticker,
    TransientError,
)
from smarttrade.store.requests import RequestRecord

DEFAULT_BALANCES = {"USDT": Decimal(10000)}

# A request id answered by a change of the venue (a sandbox tick), kept in the change's
# write, with the venue's time of the change.
KeptRequest = tuple[RequestRecord, datetime]


@dataclass(frozen=True, slots=True)
class PaperChanges:
    """What changed in one tenant's book since its last write, written before answering;
    with the request ids whose answers are kept with it (a sandbox tick's)."""

    tenant_id: str
    balances: Mapping[str, Mapping[str, Balance]]  # account -> currency -> balance
    orders: Sequence[PaperOrder]
    prices: Mapping[str, tuple[Decimal, datetime]]
    # (account, symbol) -> its position and settings on a contract market (copies)
    positions: Mapping[tuple[str, str], tuple[Holding, Setting]]
    requests: Sequence[KeptRequest] = ()


class PaperStorageError(TransientError):
    """The paper venue's storage could not read or write (its database is unreachable). To
    a caller it is the store that is unavailable, not a venue."""

    reason = "STORE_UNAVAILABLE"


def every_tenant(tenant_id: str) -> bool:
    return True


class PaperStorage(Protocol):
    async def load(self, venue: PaperVenue, tenants: Callable[[str], bool] = every_tenant) -> None:
        """Put the stored prices, balances, orders, futures positions (with their leverage
        and margin mode) and account settings of the `tenants` into the venue's books."""
        ...

    async def save(self, changes: Sequence[PaperChanges]) -> None:
        """Write the changes (of several tenants; each tenant's all or nothing); raises
        PaperStorageError when it cannot."""
        ...


@dataclass(slots=True)
class _Unsaved:
    """A tenant's changes not yet written: the accounts whose balances changed, the orders
    that changed, the prices set, the (account, symbol) whose futures position or settings
    changed, the request ids to keep."""

    accounts: set[str] = field(default_factory=set)
    orders: dict[tuple[str, str], PaperOrder] = field(default_factory=dict)
    prices: dict[str, tuple[Decimal, datetime]] = field(default_factory=dict)
    positions: set[tuple[str, str]] = field(default_factory=set)
    requests: list[KeptRequest] = field(default_factory=list)

    def merge(self, older: _Unsaved) -> None:
        """Take back the changes of a write that failed (they are older than these)."""
        self.accounts |= older.accounts
        self.positions |= older.positions
        self.orders = older.orders | self.orders
        self.prices = older.prices | self.prices
        self.requests[:0] = older.requests


class PaperFaults:
    """The faults planned for one paper account's next calls: a real venue's bad day, on
    purpose, for integrators' tests and ours. Each fault is armed for a number of calls or
    orders and clears itself once used; nothing is persisted (a restart clears the plan).

    A call meets them in the order a request travels: a rate limit first (nothing reaches
    the book), then, for a new order, a rejection, then a lost order (it never arrived); for
    an order the book accepted and recorded, late visibility, then a lost answer. So
    `delay_visibility` and `accept_then_time_out` armed together give the hardest case: the
    answer is lost and the lookup does not find the order for a while.

    Fills of a hidden order still reach the engine through the venue's push of changed
    orders (as a real venue's user stream does); only the lookups do not see it.
    """

    def __init__(self) -> None:
        self._limited_calls = 0
        self._retry_after = 0.0
        self._rejections: deque[tuple[RejectReason, str]] = deque()
        self._lost_orders = 0
        self._lost_answers = 0
        self._delays: deque[timedelta] = deque()
        self._hidden_until: dict[str, datetime] = {}

    @property
    def armed(self) -> bool:
        """Whether any fault is still to happen (hidden orders aside)."""
        return bool(
            self._limited_calls
            or self._rejections
            or self._lost_orders
            or self._lost_answers
            or self._delays
        )

    @property
    def may_hide(self) -> bool:
        """Whether an order may be placed yet not found (its visibility delayed)."""
        return bool(self._delays or self._hidden_until)

    # ---- arming ----------------------------------------------------------------------------

    def rate_limit(self, calls: int = 1, retry_after: float = 1.0) -> None:
        """The next `calls` calls of any kind raise RateLimited(retry_after) and touch
        nothing."""
        self._limited_calls, self._retry_after = calls, retry_after

    def reject_next_order(
        self,
        reason: RejectReason = RejectReason.INVALID_ORDER,
        message: str = "rejected by the paper venue's fault plan",
        times: int = 1,
    ) -> None:
        """The next `times` orders are refused with OrderRejected(reason, message)."""
        self._rejections.extend([(reason, message)] * times)

    def lose_next_order(self, times: int = 1) -> None:
        """The next `times` orders never arrive: create_order raises OutcomeUnknown and the
        book has no such order."""
        self._lost_orders += times

    def accept_then_time_out(self, times: int = 1) -> None:
        """The next `times` orders are placed and recorded, then create_order raises
        OutcomeUnknown as if the answer had timed out."""
        self._lost_answers += times

    def delay_visibility(self, seconds: float, times: int = 1) -> None:
        """The next `times` accepted orders cannot be looked up (fetch_order, cancel_order:
        OrderNotFound; not among the open orders) until `seconds` after they were placed, by
        the venue's clock."""
        self._delays.extend([timedelta(seconds=seconds)] * times)

    def clear(self) -> None:
        """Disarm every fault; orders already hidden become visible."""
        self._limited_calls = self._lost_orders = self._lost_answers = 0
        self._rejections.clear()
        self._delays.clear()
        self._hidden_until.clear()

    # ---- meeting them ----------------------------------------------------------------------

    def on_call(self, call: str) -> None:
        if self._limited_calls > 0:
            self._limited_calls -= 1
            raise RateLimited(f"paper fault: {call} rate limited", self._retry_after)

    def before_placing(self, request: OrderRequest) -> None:
        if self._rejections:
            reason, message = self._rejections.popleft()
            raise OrderRejected(reason, message)
        if self._lost_orders > 0:
            self._lost_orders -= 1
            raise OutcomeUnknown(f"paper fault: order {request.client_order_id} was lost")

    def after_placing(self, order: PaperOrder) -> None:
        if self._delays:
            self._hidden_until[order.client_order_id] = order.created_at + self._delays.popleft()
        if self._lost_answers > 0:
            self._lost_answers -= 1
            raise OutcomeUnknown(
                f"paper fault: the answer for order {order.client_order_id} timed out"
            )

    def hides(self, client_order_id: str, now: datetime) -> bool:
        until = self._hidden_until.get(client_order_id)
        if until is None:
            return False
        if now >= until:
            del self._hidden_until[client_order_id]
            return False
        return True


def utc_now() -> datetime:
    return datetime.now(UTC)


class PaperVenue:
    """One book per tenant: a tenant's sandbox prices move only that tenant's paper trades."""

    def __init__(
        self,
        markets: Iterable[Market],
        storage: PaperStorage,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._markets = tuple(markets)
        self._books: dict[str, PaperBook] = {}
        self._storage = storage
        self._clock = clock
        self._lock = asyncio.Lock()  # the books: one change at a time
        self._writing = asyncio.Lock()  # the storage: one write at a time
        self._staged = 0  # changes staged so far (tickets)
        self._saved = 0  # ... of which written
        self._ticks: dict[tuple[str, str], asyncio.Condition] = {}
        self._faults: dict[tuple[str, str], PaperFaults] = {}
        self._unsaved: dict[str, _Unsaved] = {}
        self._unreported: dict[str, list[PaperOrder]] = {}

    async def start(self, tenants: Callable[[str], bool] = every_tenant) -> None:
        """Load the books of the `tenants` from the storage (replicas: of the shards this
        one takes over, in place of whatever it held of them before)."""
        async with self._lock:
            self._drop(tenants)
            await self._storage.load(self, tenants)

    async def forget(self, tenants: Callable[[str], bool]) -> None:
        """Drop the books of the `tenants` (replicas: of the shards another one runs now),
        with what of them is not written."""
        async with self._lock:
            self._drop(tenants)

    def _drop(self, tenants: Callable[[str], bool]) -> None:
        for books in (self._books, self._unsaved, self._unreported):
            for tenant_id in [t for t in books if tenants(t)]:
                del books[tenant_id]

    def now(self) -> datetime:
        """The venue's clock: order and fill times, late visibility."""
        return self._clock()

    def faults(self, tenant_id: str, account_id: str) -> PaperFaults:
        """The fault plan of one paper account (empty until armed)."""
        return self._faults.setdefault((tenant_id, account_id), PaperFaults())

    def book(self, tenant_id: str) -> PaperBook:
        book = self._books.get(tenant_id)
        if book is None:
            book = self._books[tenant_id] = PaperBook(self._markets)
        return book

    def exchange(
        self, tenant_id: str, account_id: str, settings: PaperSettings | None
    ) -> PaperExchange:
        """The port for one paper account; `settings` None keeps the account's own (as
        loaded from storage), or the defaults for an account the venue does not know."""
        book = self.book(tenant_id)
        if settings is not None or account_id not in book.settings:
            book.open_account(account_id, settings or PaperSettings())
        return PaperExchange(self, tenant_id, account_id)

    async def open_account(
        self,
        tenant_id: str,
        account_id: str,
        settings: PaperSettings,
        balances: Mapping[str, Decimal],
    ) -> None:
        async with self._lock:
            book = self.book(tenant_id)
            book.open_account(account_id, settings)
            for currency, amount in balances.items():
                book.set_balance(account_id, currency, amount)
            ticket = self._stage(tenant_id, [account_id])
        await self._write_through(ticket)

    async def set_balances(
        self,
        tenant_id: str,
        account_id: str,
        totals: Mapping[str, Decimal],
        request: RequestRecord | None = None,
    ) -> None:
        """Set the totals held; `request` is kept with the write."""
        async with self._lock:
            book = self.book(tenant_id)
            for currency, amount in totals.items():
                book.set_balance(account_id, currency, amount)
            ticket = self._stage(tenant_id, [account_id], request=request)
        await self._write_through(ticket)

    def balances(self, tenant_id: str, account_id: str) -> dict[str, Balance]:
        return self.book(tenant_id).balances(account_id)

    def last_price(self, tenant_id: str, symbol: str) -> Decimal | None:
        return self.book(tenant_id).prices.get(symbol)

    async def set_price(
        self, tenant_id: str, symbol: str, price: Decimal, request: RequestRecord | None = None
    ) -> list[PaperOrder]:
        """A tick: fill the resting orders it crosses and record it (with `request`, kept in
        the same write). Returns the orders that changed (the caller routes them to their
        trades), oldest first."""
        if price <= 0:
            raise OrderRejected(RejectReason.INVALID_ORDER, "a price must be greater than 0")
        async with self._lock:
            at = self._clock()
            ticked = self.book(tenant_id).tick(symbol, price, at)
            # Orders a tick changed while the storage was down were never returned: they go
            # out with this one, or the trades they belong to would never see those fills.
            changed = self._unreported.pop(tenant_id, [])
            changed += [order for order in ticked if all(order is not o for o in changed)]
            accounts = [order.account_id for order in changed]
            ticket = self._stage(tenant_id, accounts, changed, {symbol: (price, at)}, request)
        try:
            await self._write_through(ticket)
        except PaperStorageError:
            unreported = self._unreported.setdefault(tenant_id, [])
            unreported[:0] = [o for o in changed if all(o is not u for u in unreported)]
            raise
        if changed and failpoints.ARMED:  # the fills are durable; no trade has applied them
            failpoints.failpoint("paper-fills-recorded")
            for order in changed:
                failpoints.failpoint(failpoints.order_point("paper-fill", order, "before-applied"))
        condition = self._ticks.get((tenant_id, symbol))
        if condition is not None:
            async with condition:
                condition.notify_all()
        return changed

    async def flush(self) -> None:
        """Write what is queued (changes made while the storage was unavailable). Raises
        PaperStorageError when it still cannot."""
        await self._write_through(self._staged)

    async def run(
        self, tenant_id: str, account_id: str, operation: Callable[[datetime], OrderReport]
    ) -> OrderReport:
        """Apply one order operation to the book and write it through. Raises
        PaperStorageError when the write failed (the change stays queued)."""
        async with self._lock:
            report = operation(self._clock())
            order = self.book(tenant_id).order_record(account_id, report.client_order_id)
            ticket = self._stage(tenant_id, [account_id], [order])
        await self._write_through(ticket)
        return report

    async def prepare(
        self,
        tenant_id: str,
        account_id: str,
        symbol: str,
        leverage: Decimal | None,
        margin_mode: MarginMode | None,
    ) -> None:
        """Set an account's leverage and margin mode on a contract market (nothing on spot)
        and write them through, as `run` does an order: the next order on the symbol is
        margined as set, before and after a restart. Raises OrderRejected when refused
        (nothing changes), PaperStorageError when the write failed (the change stays
        queued)."""
        async with self._lock:
            self.book(tenant_id).prepare(account_id, symbol, leverage, margin_mode)
            ticket = self._stage(tenant_id, [], positions=[(account_id, symbol)])
        await self._write_through(ticket)

    def _stage(
        self,
        tenant_id: str,
        account_ids: Iterable[str],
        orders: Sequence[PaperOrder] = (),
        prices: Mapping[str, tuple[Decimal, datetime]] | None = None,
        request: RequestRecord | None = None,
        positions: Iterable[tuple[str, str]] = (),
    ) -> int:
        """Queue a change for the next write; returns its ticket. An order on a contract
        market stages its account's position there: whatever moved the order (a fill, a
        liquidation, which is an order of its own) may have moved the position."""
        markets = self.book(tenant_id).markets
        unsaved = self._unsaved.setdefault(tenant_id, _Unsaved())
        unsaved.accounts.update(account_ids)
        unsaved.orders.update({(o.account_id, o.client_order_id): o for o in orders})
        unsaved.prices.update(prices or {})
        unsaved.positions.update(positions)
        unsaved.positions.update(
            (o.account_id, o.symbol) for o in orders if markets[o.symbol].is_contract
        )
        if request is not None:
            unsaved.requests.append((request, self._clock()))
        self._staged += 1
        return self._staged

    async def _write_through(self, ticket: int) -> None:
        """Return once the change `ticket` is durable. One write at a time; each takes every
        change staged until it starts, so a caller that waited for the write in flight may
        find its change already written by the next one."""
        async with self._writing:
            if self._saved >= ticket:
                return
            unsaved, self._unsaved = self._unsaved, {}
            covered = self._staged
            changes = [
                PaperChanges(
                    tenant_id,
                    {a: self.book(tenant_id).balances(a) for a in sorted(tenant.accounts)},
                    list(tenant.orders.values()),
                    dict(tenant.prices),
                    {
                        key: stored
                        for key in sorted(tenant.positions)
                        if (stored := self.book(tenant_id).futures.stored(*key)) is not None
                    },
                    list(tenant.requests),
                )
                for tenant_id, tenant in unsaved.items()
            ]
            try:
                await self._storage.save(changes)
            except PaperStorageError:
                for tenant_id, tenant in unsaved.items():
                    self._unsaved.setdefault(tenant_id, _Unsaved()).merge(tenant)
                raise
            self._saved = covered

    async def watch_ticker(self, tenant_id: str, symbol: str) -> AsyncIterator[Ticker]:
        condition = self._ticks.setdefault((tenant_id, symbol), asyncio.Condition())
        while True:
            async with condition:
                await condition.wait()
            price = self.last_price(tenant_id, symbol)
            if price is not None:
                yield Ticker(symbol, price, self._clock())


class PaperExchange:
    """The `Exchange` port for one paper account, with its fault plan applied."""

    def __init__(self, venue: PaperVenue, tenant_id: str, account_id: str) -> None:
        self._venue = venue
        self._tenant_id = tenant_id
        self._account_id = account_id
        self._faults = venue.faults(tenant_id, account_id)

    @property
    def _book(self) -> PaperBook:
        """The tenant's book now: replicas load it afresh whenever they take its shard."""
        return self._venue.book(self._tenant_id)

    @property
    def exchange_id(self) -> str:
        return "paper"

    @property
    def capabilities(self) -> Capabilities:
        # Its book is what it stored: an order it does not find never arrived (unless the
        # fault plan delays visibility, as a real venue's would).
        return Capabilities(
            watch_ticker=True,
            watch_orders=False,
            futures=True,
            final_lookups=not self._faults.may_hide,
        )

    async def load_markets(self) -> Mapping[str, Market]:
        self._faults.on_call("load_markets")
        return self._book.markets

    async def fetch_ticker(self, symbol: str) -> Ticker:
        self._faults.on_call("fetch_ticker")
        price = self._book.prices.get(symbol)
        if symbol not in self._book.markets:
            raise OrderRejected(RejectReason.BAD_SYMBOL, f"unknown symbol {symbol}")
        if price is None:
            raise OrderRejected(
                RejectReason.INVALID_ORDER,
                f"the paper venue has no price for {symbol} yet: push one with SetPaperPrice",
            )
        return Ticker(symbol, price, self._venue.now())

    async def fetch_price(self, symbol: str, source: TriggerPrice) -> Decimal:
        """The paper venue has no order book: its bid, ask and mark are its last price."""
        return (await self.fetch_ticker(symbol)).last

    async def create_order(self, request: OrderRequest) -> OrderReport:
        self._faults.on_call("create_order")
        self._faults.before_placing(request)
        book, account = self._book, self._account_id
        try:
            report = await self._venue.run(
                self._tenant_id, account, lambda at: book.place(account, request, at)
            )
        except PaperStorageError as error:
            raise OutcomeUnknown(
                f"the paper venue could not record order {request.client_order_id}: {error}"
            ) from error
        self._faults.after_placing(book.order_record(account, request.client_order_id))
        return report

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderReport:
        self._faults.on_call("cancel_order")
        self._visible(client_order_id)
        book, account = self._book, self._account_id
        return await self._venue.run(
            self._tenant_id, account, lambda at: book.cancel(account, client_order_id, at)
        )

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport:
        self._faults.on_call("fetch_order")
        self._visible(client_order_id)
        return self._book.order(self._account_id, client_order_id)

    async def fetch_open_orders(self, symbol: str) -> Sequence[OrderReport]:
        self._faults.on_call("fetch_open_orders")
        now = self._venue.now()
        return [
            report
            for report in self._book.open_orders(self._account_id, symbol)
            if not self._faults.hides(report.client_order_id, now)
        ]

    async def fetch_balances(self) -> Mapping[str, Balance]:
        self._faults.on_call("fetch_balances")
        return self._book.balances(self._account_id)

    async def fetch_positions(self, symbol: str) -> Sequence[PositionReport]:
        """The account's position on a contract market (none on spot: balances there)."""
        self._faults.on_call("fetch_positions")
        return self._book.positions(self._account_id, symbol)

    async def prepare_symbol(
        self, symbol: str, leverage: Decimal | None, margin_mode: MarginMode | None
    ) -> None:
        """Set leverage and margin mode before trading a paper perpetual (a spot market needs
        none); what is not given stays as it is, and it is stored when this returns. A value
        the venue refuses (a leverage above the market's, a margin mode changed with a
        position or an order open) raises OrderRejected(INVALID_ORDER) and changes nothing;
        a write that failed raises PaperStorageError (set all the same, and written with the
        next write: asking again is safe)."""
        self._faults.on_call("prepare_symbol")
        await self._venue.prepare(self._tenant_id, self._account_id, symbol, leverage, margin_mode)

    def _visible(self, client_order_id: str) -> None:
        if self._faults.hides(client_order_id, self._venue.now()):
            raise OrderNotFound(f"no order {client_order_id} (not visible yet)")

    async def watch_ticker(self, symbol: str) -> AsyncGenerator[Ticker, None]:
        async for ticker in self._venue.watch_ticker(self._tenant_id, symbol):
            yield ticker

    async def watch_orders(self, symbol: str) -> AsyncIterator[OrderReport]:
        """Paper fills are routed by the venue as they happen (see `PaperVenue.set_price`);
        there is nothing to poll."""
        await asyncio.Event().wait()
        nothing: tuple[OrderReport, ...] = ()
        for report in nothing:
            yield report

    async def close(self) -> None:
        return None
