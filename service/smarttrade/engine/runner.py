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

When the store cannot be reached, nothing is lost and nothing waits for the sweep. A trader's
action whose decision could not be committed is refused (UNAVAILABLE: the caller retries).
Everything else is kept by the runner until the store answers again: the venue's answers and
reports (facts: applied in the order they came, exactly once, each with the intents it
completes) and the newest price it was shown (a price is not a fact to replay: once the store
is back the trade decides at the latest price there is, not at a stale one). The runner then
catches up on its own: after a capped backoff, or, when a probe watches the store
(store/probe.py), as soon as the probe sees it answer again (the engine wakes it), without
knocking at an unreachable store meanwhile. Persist, then act holds throughout: no intent is
sent before its decision, or the input it was decided on, is committed.

A decision that sends orders on a venue's fact or the clock (no trader's request) is made
durable ahead (store/unit_of_work.write_ahead) as one small row, the input it was decided
on, so the order goes out after the cheapest commit there is. It is written right after the
first send, and in any case before the trade's next write; until then the runner is behind.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from smarttrade import tracing
from smarttrade.domain.decide import decide
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.levels import wake_levels
from smarttrade.domain.messages import (
    ACTION_OF,
    CancelOrder,
    Decision,
    ErrorRecorded,
    Input,
    InputOf,
    Intent,
    OrderReported,
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
from smarttrade.store.trades import TRIGGERS, Trigger
from smarttrade.store.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

IntentKey = tuple[str, str]  # (kind, client order id)
VERSION_RETRIES = 5  # a version conflict: reload and decide again, this many times
STORE_TRIES = 2  # in line: a pooled connection that dropped is replaced by the next try
STORE_RETRY_BASE = 0.05  # then, kept: retried after a backoff from 0.05 s ...
STORE_RETRY_CAP = 0.25  # ... to 0.25 s, until the store answers


class StoreHealth(Protocol):
    """What a runner knows of the store (store/probe.py): whether it is believed to answer,
    and the way to say it did not."""

    @property
    def available(self) -> bool: ...

    def mark_unavailable(self) -> None: ...


class NoProbe:
    """No probe watches the store: it is assumed to answer, and a runner kept behind retries
    on its own backoff."""

    available = True

    def mark_unavailable(self) -> None:
        return None


def intent_key(intent: Intent) -> IntentKey:
    return ("PLACE" if isinstance(intent, PlaceOrder) else "CANCEL", intent.client_order_id)


def _log_change(before: SmartTrade | None, trade: SmartTrade) -> None:
    if before is not None and before.state != trade.state:
        reason = f" ({trade.close_reason.value})" if trade.close_reason else ""
        log.info("trade %s: %s -> %s%s", trade.id, before.state.value, trade.state.value, reason)


@dataclass(frozen=True, slots=True)
class _Ahead:
    """A decision made durable ahead of its write, from `before` (the trade as stored)."""

    decision: Decision
    before: SmartTrade
    done: tuple[IntentKey, ...]  # the intents it completes


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
        store: StoreHealth | None = None,
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
        # What could not be committed yet (the store was unreachable), in the order it came:
        # venue facts with the intents they complete (None: only completes them) ...
        self._backlog: deque[tuple[Input | None, tuple[IntentKey, ...]]] = deque()
        self._unseen: PriceTicked | None = None  # ... and the newest price not decided on
        self._store = store or NoProbe()
        self._store_tries = 0
        self._store_due: datetime | None = None  # when to try the store again, if at all
        self._ahead: _Ahead | None = None  # a decision made durable ahead, not written yet
        # A write failed with its outcome unknown (the line dropped or stalled: it may have
        # committed after all): the trade is read back from the store before going on.
        self._uncertain = False
        # The request of the action being applied, and whether it was written yet.
        self._request: RequestRecord | None = None
        self._request_written = False
        self.recorded = True  # the trade is in the store (false until a new one's first write)

    @property
    def finished(self) -> bool:
        return self.trade.state.is_terminal and not self._pending and not self.behind

    @property
    def behind(self) -> bool:
        """Whether something it was told could not be committed yet (the store was away)."""
        return (
            bool(self._backlog)
            or self._unseen is not None
            or self._ahead is not None
            or self._uncertain
        )

    # ---- entry points --------------------------------------------------------------------

    async def submit(
        self, input: Input | InputOf, etag: str = "", request: RequestRecord | None = None
    ) -> SmartTrade:
        """Apply one input and everything it sets off now. Errors of the input itself (an
        action not allowed, an invalid edit, a stale `etag`, a request id already used)
        propagate and change nothing. An input given as a function of the trade is made
        here, from the trade as this writer has it (an edit's settings merged with the
        trade's current ones). `request` is claimed with the input's decision and answered
        with the trade after each later write of this call.

        While the store is unreachable, a trader's action (or anything with a request)
        raises `StoreUnavailable` unless its decision was committed; any other input is
        kept to be decided once the store answers, and the trade is returned as it is."""
        async with self.lock:
            if etag and etag != self.trade.etag:
                raise EtagMismatch(f"smartTrades/{self.trade.id}")
            acting = request is not None or callable(input) or type(input) in ACTION_OF
            decided = False
            try:
                await self._catch_up()
                if acting:
                    await self._see_latest_price()
                if callable(input):
                    input = input(self.trade)
                self._request, self._request_written = request, False
                try:
                    if isinstance(input, PriceTicked):
                        decided = True  # a tick keeps itself (`_tick`)
                        await self._tick(input)
                    else:
                        await self._apply(input, ())
                        decided = True
                        await self._drive()
                finally:
                    self._request = None
            except StoreUnavailable:
                self._fell_behind()
                if not decided:
                    if acting:
                        raise
                    if not callable(input):
                        self._keep(input)
            return self.trade

    async def _see_latest_price(self) -> None:
        """An action is decided at the current price (DESIGN §2.7), and a trade is shown
        only the ticks that leave its wake band: show it the venue's latest price first."""
        price = self._latest_price()
        if price is not None and price != self.trade.last_price:
            await self._tick(PriceTicked(price, self._clock()))

    async def _tick(self, tick: PriceTicked) -> None:
        """Decide on a price. When the tick opened the position (its entry order filled at
        once), the new exits see that tick too, so a price that gapped through the stop
        stops out now. A tick whose decision could not be committed is kept as unseen."""
        opening = self.trade.state is TradeState.PENDING
        try:
            await self._apply(tick, ())
        except StoreUnavailable:
            self._keep(tick)
            raise
        await self._drive()
        if opening and self.trade.state is TradeState.ACTIVE:
            await self._tick(PriceTicked(tick.price, self._clock()))

    async def start(
        self,
        new: Decision | None = None,
        recovered: Sequence[Intent] = (),
        request: RequestRecord | None = None,
        recorded: Callable[[], None] | None = None,
    ) -> None:
        """Begin running: record a new trade's first decision (claiming `request` with it;
        then `recorded` is called), or take over a stored trade whose intents were left
        pending (each is first looked up at the venue, as an unknown outcome: it may or may
        not have been sent before the service stopped)."""
        async with self.lock:
            now = self._clock()
            self._request, self._request_written = request, False
            try:
                if new is not None:
                    self.recorded = False
                    await self._record(new, (), before=None)
                    self.recorded = True
                    if recorded is not None:
                        recorded()
                    self._enqueue(new.intents, now)
                for intent in recovered:
                    attempt = (
                        Attempt(unknown_since=now) if isinstance(intent, PlaceOrder) else Attempt()
                    )
                    self._pending[intent_key(intent)] = _Pending(intent, attempt, now)
                await self._drive()
            except StoreUnavailable:
                if not self.recorded:  # a new trade that was never written: there is none
                    raise
                self._fell_behind()  # its first decision stands: the rest is kept
            finally:
                self._request = None

    # ---- the loop ------------------------------------------------------------------------

    async def _drive(self) -> None:
        """Apply the facts kept, then carry out the intents due, each answer becoming a fact,
        until nothing is left to do now. A fact whose decision could not be committed
        (`StoreUnavailable`, raised) stays first in line, with the intents it completes."""
        try:
            while True:
                if self._backlog:
                    fact, done = self._backlog.popleft()
                    try:
                        if fact is None:
                            await self._store_with_retry(None, done)
                        else:
                            await self._apply(fact, done)
                    except StoreUnavailable:
                        self._backlog.appendleft((fact, done))
                        raise
                    continue
                key = self._next_due()
                if key is None:
                    if self._ahead is not None:
                        await self._write_ahead_decision()
                    break
                outcome = await self._carry_out(key)
                if outcome.done:
                    # The venue's answer is kept from here on, so the intent is never
                    # carried out again: it is completed by the write of its answer.
                    self._pending.pop(key, None)
                    self._backlog.append((outcome.fact, (key,)))
                else:
                    pending = self._pending[key]
                    pending.due = self._clock() + timedelta(seconds=outcome.retry_after)
                    if outcome.fact is not None:
                        self._backlog.append((outcome.fact, ()))
                if outcome.error and not self._transient_error:
                    self._transient_error = True
                    self._backlog.append((ErrorRecorded(outcome.error, self._clock()), ()))
                elif outcome.done and self._transient_error:
                    self._transient_error = False
                    self._backlog.append((ErrorRecorded("", self._clock()), ()))
                if self._ahead is not None:  # its first order is out: now the tables
                    await self._write_ahead_decision()
        finally:
            self._schedule_wake()
            self._on_change(self)

    async def _apply(self, fact: Input, done: Sequence[IntentKey]) -> None:
        """Decide on one input and record the decision; a version conflict (another writer,
        or our own commit whose answer was lost) reloads the trade and decides again unless
        the stored trade already is our decision."""
        for _ in range(VERSION_RETRIES):
            with tracing.span("smarttrade.decide", trade=self.trade.id, input=type(fact).__name__):
                decision = decide(self.trade, fact)
            ahead = (
                fact
                if isinstance(fact, TRIGGERS)
                and decision.intents
                and decision.persist
                and self._request is None
                else None
            )
            try:
                await self._store_with_retry(decision, done, ahead)
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
        if self._cancelled_unsent(pending):
            # The trade cancelled an order the venue never had (every attempt so far was
            # refused before it was placed, as by a rate limit): it is not sent now.
            message = "cancelled before it was sent"
            unsent = OrderReported(
                pending.intent.client_order_id, OrderStatus.CANCELLED, self._clock(), error=message
            )
            return Outcome(unsent, True)
        return await self._executor.carry_out(
            self._exchange, pending.intent, pending.attempt, self._clock()
        )

    def _cancelled_unsent(self, pending: _Pending) -> bool:
        """A placement whose order the trade has asked to cancel, and that the venue
        certainly never received (no attempt's outcome is unknown)."""
        if not isinstance(pending.intent, PlaceOrder) or pending.attempt.unknown_since:
            return False
        found = self.trade.find_order(pending.intent.client_order_id)
        return found is not None and found[1].cancel_requested

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

    async def _store_with_retry(
        self,
        decision: Decision | None,
        done: Sequence[IntentKey],
        ahead: Trigger | None = None,
    ) -> None:
        """Persist, surviving a dropped connection: nothing is half-written (one statement).
        Raises `StoreUnavailable` when the store stays unreachable: the caller keeps what it
        was deciding on, to be decided again once the store answers."""
        for attempt in range(STORE_TRIES):
            try:
                await self._record(decision, done, self.trade, ahead)
                return
            except StoreUnavailable as error:
                if attempt == STORE_TRIES - 1:
                    self._uncertain = True
                    raise
                log.warning("storing trade %s failed, retrying: %s", self.trade.id, error)
                await asyncio.sleep(STORE_RETRY_BASE)

    async def _record(
        self,
        decision: Decision | None,
        done: Sequence[IntentKey],
        before: SmartTrade | None,
        ahead: Trigger | None = None,
    ) -> None:
        """One unit of work: the decision, the intents it completes, and the request of the
        action being applied (claimed by its first write, answered by each later one).
        With `ahead`, the input it was decided on: the decision is made durable ahead as
        that input, and written later (`_write_ahead_decision`). A decision made durable
        ahead before is written first."""
        if self._ahead is not None:
            await self._write_ahead_decision()
        if ahead is not None and decision is not None and before is not None:
            async with self._unit_of_work() as uow:
                with tracing.span("smarttrade.commit_ahead", trade=self.trade.id):
                    await uow.trades.write_ahead(decision, before, ahead, done)
            self._ahead = _Ahead(decision, before, tuple(done))
            self.trade = decision.trade  # said in the log once written, after the send
            return
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
            with tracing.span("smarttrade.commit", trade=self.trade.id):
                await uow.commit()
        if request is not None:
            self._request_written = True
        if decision is not None:
            self.trade = decision.trade
            _log_change(before, decision.trade)

    async def _write_ahead_decision(self) -> None:
        """Write the decision made durable ahead (its events go out now). Raises
        `StoreUnavailable` when the store stays unreachable: it stays ahead, written first
        once the store answers."""
        ahead = self._ahead
        assert ahead is not None
        for attempt in range(STORE_TRIES):
            try:
                async with self._unit_of_work() as uow:
                    uow.trades.record(ahead.decision, ahead.before, ahead.done, decided_ahead=True)
                    await uow.commit()
                _log_change(ahead.before, ahead.decision.trade)
                break
            except ConcurrentUpdate:  # applied already, its answer lost (or a second writer)
                await self._reload()
                if self.trade.version != ahead.decision.trade.version:
                    log.error("trade %s: its decision made ahead no longer applies", self.trade.id)
                break
            except StoreUnavailable as error:
                if attempt == STORE_TRIES - 1:
                    raise
                log.warning("applying trade %s failed, retrying: %s", self.trade.id, error)
                await asyncio.sleep(STORE_RETRY_BASE)
        self._ahead = None

    async def _read_back(self) -> None:
        """After a write whose outcome is unknown: the trade as the store has it, with the
        intents it has pending there, which this runner may never have heard of (a write it
        took for failed that committed after all). They are looked up at the venue first,
        as a start's are. A decision the store keeps ahead for the trade was never acted on
        (the runner has none in hand): dropped, so a restart does not act on it either."""
        async with self._unit_of_work() as uow:
            await uow.trades.forget_ahead(self.trade.id)
            stored = await uow.trades.get(self.trade.id)
            intents = await uow.trades.pending_intents_of(self.trade.id)
        if stored is not None:
            self.trade = stored
        now = self._clock()
        for intent in intents:
            if intent_key(intent) not in self._pending:
                attempt = (
                    Attempt(unknown_since=now) if isinstance(intent, PlaceOrder) else Attempt()
                )
                self._pending[intent_key(intent)] = _Pending(intent, attempt, now)
        self._uncertain = False

    async def _reload(self) -> None:
        async with self._unit_of_work() as uow:
            stored = await uow.trades.get(self.trade.id)
        if stored is not None:
            self.trade = stored

    # ---- the store away ------------------------------------------------------------------

    def _keep(self, input: Input) -> None:
        """An input whose decision could not be committed: a fact waits its turn, a price
        is remembered if newer, the clock needs nothing (it is read again)."""
        if isinstance(input, PriceTicked):
            if self._unseen is None or input.at >= self._unseen.at:
                self._unseen = input
        elif not isinstance(input, TimeElapsed):
            self._backlog.append((input, ()))

    async def _catch_up(self) -> None:
        """Decide on what was kept, once the store answers: the facts in order, then the
        latest price (the venue's newest, not the one kept: every decision is made at the
        current price). Raises `StoreUnavailable`, touching nothing, while the store is
        believed unreachable."""
        if not self.behind:
            return
        if not self._store.available:
            raise StoreUnavailable()
        if self._ahead is not None:
            await self._write_ahead_decision()
        if self._uncertain:
            await self._read_back()
        await self._drive()
        if self._unseen is not None:
            latest = self._latest_price()
            price = latest if latest is not None else self._unseen.price
            self._unseen = None
            await self._tick(PriceTicked(price, self._clock()))
        self._store_tries, self._store_due = 0, None
        log.info("trade %s caught up with the store", self.trade.id)

    def _fell_behind(self) -> None:
        """Something could not be committed: say so to the store's probe, and try again
        after a capped backoff, unless a probe now watches for the store's return (then the
        engine wakes the runner through `resume` when it answers)."""
        self._store.mark_unavailable()
        if not self.behind:  # an action refused: nothing was kept, nothing to retry
            return
        self._store_tries += 1
        self._store_due = None
        if self._store.available:
            ceiling = min(STORE_RETRY_CAP, STORE_RETRY_BASE * 2**self._store_tries)
            delay = random.uniform(ceiling / 2, ceiling)
            self._store_due = self._clock() + timedelta(seconds=delay)
        self._schedule_wake()

    def resume(self) -> None:
        """The store answers again: catch up now."""
        if self.behind:
            self._store_due = self._clock()
            self._schedule_wake()

    # ---- timers --------------------------------------------------------------------------

    def next_deadline(self) -> datetime | None:
        """When the trade next needs the clock: the wake time of its levels (a stop-loss
        timeout, the time limit, a stop-limit's fallback), an intent to retry, or, when it
        is behind the store, the next try (None: a probe will say when)."""
        if self.behind:  # nothing can be decided before catching up with the store
            return self._store_due
        times = [pending.due for pending in self._pending.values()]
        at = wake_levels(self.trade).at
        if at is not None:
            times.append(at)
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
