"""Carrying out intents at the venue, and turning every answer into a fact for the core.

The rules that keep the promise "never place an order twice":
- An order is sent under its deterministic client order id, once. A lost answer (timeout,
  5xx) is never answered by sending again: the order is looked up by that id.
- An order the venue does not show yet may still appear (late visibility): it is looked up
  again until `unknown_grace` has passed since the outcome became unknown; only then is it
  declared missing, and the core re-places it under a new id.
- A duplicate-id refusal means the venue has the order: it is looked up and adopted.
- A transient fault changes nothing at the venue: the intent is retried later, with backoff.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from smarttrade import failpoints, metrics, tracing
from smarttrade.domain.messages import (
    CancelOrder,
    Input,
    Intent,
    OrderMissing,
    OrderReported,
    PlaceOrder,
)
from smarttrade.domain.values import OrderStatus
from smarttrade.exchange.port import (
    AlreadyPlaced,
    Exchange,
    OrderNotFound,
    OrderRejected,
    OrderReport,
    OrderRequest,
    OutcomeUnknown,
    TransientError,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What carrying out an intent produced.

    `fact` goes to the core; `done` means the intent needs nothing more; otherwise it is
    tried again after `retry_after` seconds. `error` is shown as the trade's last error.
    """

    fact: Input | None
    done: bool
    retry_after: float = 0.0
    error: str = ""


@dataclass(slots=True)
class Attempt:
    """The memory of an intent being carried out (lost on a crash, which is fine: after a
    restart every pending intent is first looked up, as an unknown outcome)."""

    tries: int = 0
    unknown_since: datetime | None = None


def reported(report: OrderReport, at: datetime) -> OrderReported:
    return OrderReported(
        client_order_id=report.client_order_id,
        status=report.status,
        at=at,
        fills=report.fills,
        exchange_order_id=report.exchange_order_id,
    )


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 0.5
    cap: float = 30.0
    lookup_interval: float = 1.0
    unknown_grace: float = 10.0

    def backoff(self, tries: int, asked: float | None) -> float:
        """Exponential backoff with full jitter, never shorter than the venue asked."""
        delay = random.uniform(0, min(self.cap, self.base * 2 ** max(tries - 1, 0)))
        return max(delay, asked or 0.0)


class Executor:
    def __init__(self, policy: RetryPolicy, may_act: Callable[[], bool] | None = None) -> None:
        """`may_act`: replicas with leases, whether this one still holds the lease of the
        trades' shard by its own clock (and is not giving it up); nothing is sent to a venue
        when it does not."""
        self.policy = policy
        self._may_act = may_act

    async def carry_out(
        self, exchange: Exchange, intent: Intent, attempt: Attempt, now: datetime
    ) -> Outcome:
        if self._may_act is not None and not self._may_act():
            # Not an error of the trade's: the replica that runs it next carries it out.
            return Outcome(None, False, self.policy.lookup_interval)
        attempt.tries += 1
        kind = "place" if isinstance(intent, PlaceOrder) else "cancel"
        try:
            with tracing.span("smarttrade.venue", order=intent.client_order_id, kind=kind):
                if isinstance(intent, PlaceOrder):
                    return await self._place(exchange, intent, attempt, now)
                return await self._cancel(exchange, intent, attempt, now)
        except TransientError as error:
            metrics.recorder.venue_error("unavailable")
            delay = self.policy.backoff(attempt.tries, error.retry_after)
            return Outcome(None, False, delay, f"exchange unavailable, retrying: {error}")

    async def _place(
        self, exchange: Exchange, intent: PlaceOrder, attempt: Attempt, now: datetime
    ) -> Outcome:
        if attempt.unknown_since is not None:
            return await self._look_up(exchange, intent, attempt, now)
        request = OrderRequest.of(intent)
        if failpoints.ARMED:  # the intent is committed; nothing is sent yet
            failpoints.failpoint(failpoints.order_point("order", intent, "before-send"))
        metrics.recorder.order_sent()
        try:
            if intent.leverage is not None or intent.margin_mode is not None:
                # Futures: the order opens or grows a position at the trade's leverage and
                # margin mode, so the symbol is set to them first (each time: setting what
                # is set succeeds, and the account may have been changed by hand).
                await exchange.prepare_symbol(intent.symbol, intent.leverage, intent.margin_mode)
            report = await exchange.create_order(request)
        except (OutcomeUnknown, AlreadyPlaced):
            metrics.recorder.venue_error("outcome_unknown")
            attempt.unknown_since = now
            return await self._look_up(exchange, intent, attempt, now)
        except OrderRejected as error:
            metrics.recorder.venue_error("rejected")
            rejected = OrderReported(
                intent.client_order_id, OrderStatus.REJECTED, now, error=str(error)
            )
            return Outcome(rejected, True)
        if failpoints.ARMED:  # the venue has the order; its answer is not recorded yet
            failpoints.failpoint(failpoints.order_point("order", intent, "after-send"))
        return Outcome(reported(report, now), True)

    async def _look_up(
        self, exchange: Exchange, intent: PlaceOrder, attempt: Attempt, now: datetime
    ) -> Outcome:
        assert attempt.unknown_since is not None
        try:
            report = await exchange.fetch_order(intent.symbol, intent.client_order_id)
        except OrderNotFound:
            waited = now - attempt.unknown_since
            grace = 0.0 if exchange.capabilities.final_lookups else self.policy.unknown_grace
            if waited >= timedelta(seconds=grace):
                return Outcome(OrderMissing(intent.client_order_id, now), True)
            unknown = OrderReported(intent.client_order_id, OrderStatus.UNKNOWN, now)
            return Outcome(unknown, False, self.policy.lookup_interval)
        return Outcome(reported(report, now), True)

    async def _cancel(
        self, exchange: Exchange, intent: CancelOrder, attempt: Attempt, now: datetime
    ) -> Outcome:
        if failpoints.ARMED:  # the cancel is committed; nothing is sent yet
            failpoints.failpoint(failpoints.order_point("cancel", intent, "before-send"))
        try:
            report = await exchange.cancel_order(intent.symbol, intent.client_order_id)
        except OrderNotFound:
            # Either it never arrived (its placement is being resolved and will say so) or
            # it already ended: its final report settles the cancel either way.
            try:
                report = await exchange.fetch_order(intent.symbol, intent.client_order_id)
            except OrderNotFound:
                return Outcome(None, False, self.policy.lookup_interval)
        except OrderRejected as error:
            # The venue refuses to cancel (already final): its own report says how it ended.
            try:
                report = await exchange.fetch_order(intent.symbol, intent.client_order_id)
            except OrderNotFound:
                return Outcome(None, False, self.policy.lookup_interval, str(error))
        if failpoints.ARMED:  # the venue has ended the order; its answer is not recorded yet
            failpoints.failpoint(failpoints.order_point("cancel", intent, "after-send"))
        return Outcome(reported(report, now), True)
