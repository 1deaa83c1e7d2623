"""One trade at runtime: the single writer that applies its inputs one at a time.

Every input (a price, a venue report, a trader's action, a timer) goes through `submit`,
which holds the trade's lock while it decides, records the decision (persist, then act),
carries out the intents and feeds the venue's answers back, until nothing is left to do
now. Intents that must wait (a transient fault, an order not yet visible) are retried by
a timer, outside the lock, so a slow venue never holds up the trade's other inputs for
long, and never holds up other trades at all.

A trader's action comes with its request (the use case's request id and fingerprint): the
request is claimed in the same write as the action's decision, and every later write of the
same call updates its answer (the trade at that version), so a retry is answered with what
the call did, and a call that never wrote left no claim behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from smarttrade.domain.decide import decide
from smarttrade.domain.fsm import LegState, TradeState
from smarttrade.domain.messages import (
    ACTION_OF,
    CancelOrder,
    Decision,
    ErrorRecorded,
    Input,
    InputOf,
    Intent,
    PlaceOrder,
    PriceTicked,
    TimeElapsed,
)
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.values import OrderStatus
from smarttrade.engine.executor import Attempt, Executor, Outcome
from smarttrade.errors import EtagMismatch
from smarttrade.exchange.port import Exchange
from smarttrade.store.errors import AlreadyClaimed, ConcurrentUpdate, StoreUnavailable
from smarttrade.store.requests import RequestRecord
from smarttrade.store.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

IntentKey = tuple[str, str]  # (kind, client order id)
STORE_RETRIES = 5


def intent_key(intent: Intent) -> IntentKey:
    return ("PLACE" if isinstance(intent, PlaceOrder) else "CANCEL", intent.client_order_id)


@dataclass(slots=True)
class _Pending:
    intent: Intent
    attempt: Attempt
    due: datetime


class TradeRunner:
    def __init__(
        self,
        trade: SmartTrade,
        *,
        exchange: Exchange,
        unit_of_work: Callable[[], UnitOfWork],
        executor: Executor,
        clock: Callable[[], datetime],
        on_change: Callable[[TradeRunner], None],
        latest_price: Callable[[], Decimal | None] = lambda: None,
    ) -> None:
        self.trade = trade
        self._latest_price = latest_price
        self.lock = asyncio.Lock()
        self._exchange = exchange
        self._unit_of_work = unit_of_work
        self._executor = executor
        self._clock = clock
        self._on_change = on_change
        self._pending: dict[IntentKey, _Pending] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._wake_task: asyncio.Task[None] | None = None
        self._transient_error = False
        # The request of the action being applied, and whether it was written yet.
        self._request: RequestRecord | None = None
        self._request_written = False
        self.recorded = True  # the trade is in the store (false until a new one's first write)

    def has_pending(self, client_order_id: str) -> bool:
        return any(key[1] == client_order_id for key in self._pending)

    @property
    def finished(self) -> bool:
        return self.trade.state.is_terminal and not self._pending

    # ---- entry points --------------------------------------------------------------------

    async def submit(
        self, input: Input | InputOf, etag: str = "", request: RequestRecord | None = None
    ) -> SmartTrade:
        """Apply one input and everything it sets off now. Errors of the input itself (an
        action not allowed, an invalid edit, a stale `etag`, a request id already used)
        propagate and change nothing. An input given as a function of the trade is made
        here, from the trade as this writer has it (an edit's settings merged with the
        trade's current ones). `request` is claimed with the input's decision and answered
        with the trade after each later write of this call."""
        async with self.lock:
            if etag and etag != self.trade.etag:
                raise EtagMismatch(f"smartTrades/{self.trade.id}")
            if callable(input) or type(input) in ACTION_OF:
                await self._see_latest_price()
            if callable(input):
                input = input(self.trade)
            opening = self.trade.state is TradeState.PENDING
            self._request, self._request_written = request, False
            try:
                await self._apply(input, ())
                await self._drive(deque())
                if opening and isinstance(input, PriceTicked):
                    await self._exits_see(input)
            finally:
                self._request = None
            return self.trade

    async def _see_latest_price(self) -> None:
        """An action is decided at the current price (DESIGN §2.7), and a trade is shown
        only the ticks that leave its wake band: show it the venue's latest price first."""
        price = self._latest_price()
        if price is not None and price != self.trade.last_price:
            await self._apply(PriceTicked(price, self._clock()), ())
            await self._drive(deque())

    async def _exits_see(self, tick: PriceTicked) -> None:
        """The tick opened the position (its entry order filled at once): the new exits see
        that tick too, so a price that gapped through the stop stops out now."""
        if self.trade.state is TradeState.ACTIVE:
            await self._apply(PriceTicked(tick.price, self._clock()), ())
            await self._drive(deque())

    async def start(
        self,
        new: Decision | None = None,
        recovered: Sequence[Intent] = (),
        request: RequestRecord | None = None,
    ) -> None:
        """Begin running: record a new trade's first decision (claiming `request` with it),
        or take over a stored trade whose intents were left pending (each is first looked
        up at the venue, as an unknown outcome: it may or may not have been sent before the
        service stopped)."""
        async with self.lock:
            now = self._clock()
            self._request, self._request_written = request, False
            try:
                if new is not None:
                    self.recorded = False
                    await self._record(new, (), before=None)
                    self.recorded = True
                    self._enqueue(new.intents, now)
                for intent in recovered:
                    attempt = (
                        Attempt(unknown_since=now) if isinstance(intent, PlaceOrder) else Attempt()
                    )
                    self._pending[intent_key(intent)] = _Pending(intent, attempt, now)
                await self._drive(deque())
            finally:
                self._request = None

    # ---- the loop ------------------------------------------------------------------------

    async def _drive(self, facts: deque[Input]) -> None:
        while True:
            if facts:
                await self._apply(facts.popleft(), ())
                continue
            key = self._next_due()
            if key is None:
                break
            outcome = await self._carry_out(key)
            done = (key,) if outcome.done else ()
            if outcome.fact is not None:
                await self._apply(outcome.fact, done)
            elif done:
                await self._store_with_retry(None, done)
            if outcome.done:
                self._pending.pop(key, None)
            else:
                pending = self._pending[key]
                pending.due = self._clock() + timedelta(seconds=outcome.retry_after)
            if outcome.error and not self._transient_error:
                self._transient_error = True
                facts.append(ErrorRecorded(outcome.error, self._clock()))
            elif outcome.done and self._transient_error:
                self._transient_error = False
                facts.append(ErrorRecorded("", self._clock()))
        self._schedule_wake()
        self._on_change(self)

    async def _apply(self, fact: Input, done: Sequence[IntentKey]) -> None:
        """Decide on one input and record the decision; a version conflict (another writer,
        or our own commit whose answer was lost) reloads the trade and decides again unless
        the stored trade already is our decision."""
        for _ in range(STORE_RETRIES):
            decision = decide(self.trade, fact)
            try:
                await self._store_with_retry(decision, done)
            except (ConcurrentUpdate, AlreadyClaimed):
                await self._reload()
                if self.trade.version == decision.trade.version:  # our own commit
                    self._request_written = True
                    self._enqueue(decision.intents, self._clock())
                    return
                if self._request is not None and not self._request_written:
                    raise AlreadyClaimed(self._request.request_id) from None
                continue
            self._enqueue(decision.intents, self._clock())
            return
        raise ConcurrentUpdate(self.trade.id)

    def _enqueue(self, intents: Sequence[Intent], now: datetime) -> None:
        for intent in intents:
            self._pending.setdefault(intent_key(intent), _Pending(intent, Attempt(), now))

    def _next_due(self) -> IntentKey | None:
        now = self._clock()
        due = [(p.due, key) for key, p in self._pending.items() if p.due <= now]
        return min(due)[1] if due else None

    async def _carry_out(self, key: IntentKey) -> Outcome:
        pending = self._pending[key]
        if not self._still_wanted(pending.intent):
            return Outcome(None, True)
        return await self._executor.carry_out(
            self._exchange, pending.intent, pending.attempt, self._clock()
        )

    def _still_wanted(self, intent: Intent) -> bool:
        """An intent outlives its reason when the order's fate is already known."""
        found = self.trade.find_order(intent.client_order_id)
        if found is None:
            return False
        _, order = found
        if isinstance(intent, CancelOrder):
            return order.status.is_live
        return order.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN)

    # ---- persistence ---------------------------------------------------------------------

    async def _store_with_retry(self, decision: Decision | None, done: Sequence[IntentKey]) -> None:
        """Persist, surviving a lost connection: nothing is half-written (one statement)."""
        for attempt in range(STORE_RETRIES):
            try:
                await self._record(decision, done, self.trade)
                return
            except StoreUnavailable as error:
                if attempt == STORE_RETRIES - 1:
                    raise
                log.warning("storing trade %s failed, retrying: %s", self.trade.id, error)
                await asyncio.sleep(0.05 * 2**attempt)

    async def _record(
        self, decision: Decision | None, done: Sequence[IntentKey], before: SmartTrade | None
    ) -> None:
        """One unit of work: the decision, the intents it completes, and the request of the
        action being applied (claimed by its first write, answered by each later one)."""
        request = self._request
        if decision is None or not decision.persist:
            request = request if not self._request_written else None
        async with self._unit_of_work() as uow:
            uow.trades.record(
                decision,
                before,
                done,
                request=request,
                first_of_request=not self._request_written,
            )
            await uow.commit()
        if request is not None:
            self._request_written = True
        if decision is not None:
            self.trade = decision.trade

    async def _reload(self) -> None:
        async with self._unit_of_work() as uow:
            stored = await uow.trades.get(self.trade.id)
        if stored is not None:
            self.trade = stored

    # ---- timers --------------------------------------------------------------------------

    def next_deadline(self) -> datetime | None:
        """When the trade next needs the clock: a stop-loss timeout, or an intent to retry."""
        times = [pending.due for pending in self._pending.values()]
        stop = self.trade.stop_loss_leg
        spec = self.trade.spec.stop_loss
        if (
            stop is not None
            and spec is not None
            and spec.timeout is not None
            and stop.state is LegState.WAITING
            and stop.breach_since is not None
        ):
            times.append(stop.breach_since + spec.timeout)
        return min(times) if times else None

    def _schedule_wake(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.next_deadline()
        if deadline is None:
            return
        delay = max((deadline - self._clock()).total_seconds(), 0.0)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._wake)

    def _wake(self) -> None:
        self._timer = None
        self._wake_task = asyncio.get_running_loop().create_task(self._on_wake())

    async def _on_wake(self) -> None:
        try:
            await self.submit(TimeElapsed(self._clock()))
        except Exception:  # a timer has no caller to report to: log, and retry later
            log.exception("trade %s: timed work failed", self.trade.id)
            async with self.lock:
                self._schedule_wake()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
