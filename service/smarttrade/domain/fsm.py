"""The lifecycles of a trade and of its legs, as data.

Each machine is one literal table `{(state, trigger): next_state}`; `transition` is the only
function that applies it, and a pair missing from the table raises `InvalidTransition`, so a
refused transition changes nothing. Odd edges carry a one-line comment saying why they exist.
Every edge is used: the property test of the core reaches each one, and an edge no rule takes
is removed rather than kept "just in case".

Rules decided here where the spec is silent:
- A leg's state says what the service did with it, an order's status what the venue did.
  A leg abandoned (CANCELLED) stays so when an order of it turns out filled after all (a
  cancel that raced a fill): the order keeps the venue's FILLED status and its fills count
  in the position, as any part filled before the cancel does.
- PARTIALLY_FILLED is entered once, by the first fill; later fills change the leg's filled
  amount, not its state, until it is FILLED.
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from smarttrade.domain.errors import InvalidTransition


class TradeState(Enum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in (TradeState.CLOSED, TradeState.CANCELLED, TradeState.FAILED)


class TradeTrigger(Enum):
    ENTRY_FILLED = "ENTRY_FILLED"  # the first fill of an entry-side order
    ENTRY_ENDED = "ENTRY_ENDED"  # the entry ended on the venue with nothing filled
    EXIT_STARTED = "EXIT_STARTED"  # a market exit began (stop loss, close, trailing TP)
    POSITION_EXITED = "POSITION_EXITED"  # nothing tradable is left of the position
    EXITED_EXTERNALLY = "EXITED_EXTERNALLY"  # reconciliation found the coins gone
    CANCEL = "CANCEL"  # the user cancelled
    REJECTED = "REJECTED"  # the venue finally refused an order the trade cannot do without


TRADE_TRANSITIONS: dict[tuple[TradeState, TradeTrigger], TradeState] = {
    (TradeState.PENDING, TradeTrigger.ENTRY_FILLED): TradeState.ACTIVE,
    # The entry order was cancelled or expired on the venue, outside the service, unfilled.
    (TradeState.PENDING, TradeTrigger.ENTRY_ENDED): TradeState.CANCELLED,
    (TradeState.PENDING, TradeTrigger.CANCEL): TradeState.CANCELLED,
    (TradeState.PENDING, TradeTrigger.REJECTED): TradeState.FAILED,
    (TradeState.ACTIVE, TradeTrigger.EXIT_STARTED): TradeState.CLOSING,
    # The take-profit limit orders sold everything.
    (TradeState.ACTIVE, TradeTrigger.POSITION_EXITED): TradeState.CLOSED,
    (TradeState.ACTIVE, TradeTrigger.EXITED_EXTERNALLY): TradeState.CLOSED,
    (TradeState.ACTIVE, TradeTrigger.CANCEL): TradeState.CANCELLED,
    # Close at Market while a stop-limit rests unfilled: the exit moves to a market order.
    (TradeState.CLOSING, TradeTrigger.EXIT_STARTED): TradeState.CLOSING,
    # The trader gives up on an exit in flight (a stop-limit resting unfilled): the
    # service's orders are cancelled, what is still held stays on the exchange.
    (TradeState.CLOSING, TradeTrigger.CANCEL): TradeState.CANCELLED,
    (TradeState.CLOSING, TradeTrigger.POSITION_EXITED): TradeState.CLOSED,
    (TradeState.CLOSING, TradeTrigger.EXITED_EXTERNALLY): TradeState.CLOSED,
    # The exit order was finally refused: the service cannot flatten the position.
    (TradeState.CLOSING, TradeTrigger.REJECTED): TradeState.FAILED,
}


class LegState(Enum):
    IDLE = "IDLE"
    WAITING = "WAITING"
    ORDER_PLACED = "ORDER_PLACED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"

    @property
    def is_done(self) -> bool:
        return self in (LegState.FILLED, LegState.CANCELLED, LegState.FAILED)


class LegTrigger(Enum):
    ARM = "ARM"  # the service starts watching a condition or a trailing level
    DISARM = "DISARM"  # the watched condition was removed by an edit
    PLACE = "PLACE"  # an order of the leg was recorded for sending
    PARTIAL_FILL = "PARTIAL_FILL"
    FILL = "FILL"  # the leg's whole volume is executed
    CANCEL = "CANCEL"  # the leg is abandoned (by the user, an edit, or an exit)
    REJECT = "REJECT"  # the venue finally refused the leg's order


LEG_TRANSITIONS: dict[tuple[LegState, LegTrigger], LegState] = {
    (LegState.IDLE, LegTrigger.ARM): LegState.WAITING,
    (LegState.IDLE, LegTrigger.PLACE): LegState.ORDER_PLACED,
    (LegState.IDLE, LegTrigger.CANCEL): LegState.CANCELLED,
    # Skip entry: the coins are already held, nothing is sent.
    (LegState.IDLE, LegTrigger.FILL): LegState.FILLED,
    # The service itself refused the leg before sending anything: when it became due, its
    # size was below the market's minimum at the price of the moment.
    (LegState.IDLE, LegTrigger.REJECT): LegState.FAILED,
    (LegState.WAITING, LegTrigger.PLACE): LegState.ORDER_PLACED,
    (LegState.WAITING, LegTrigger.REJECT): LegState.FAILED,
    # An edit re-armed the entry, but the order it replaced had filled before its cancel:
    # once due, what was bought already covers the entry.
    (LegState.WAITING, LegTrigger.FILL): LegState.FILLED,
    # An edit removed the stop loss (or the trailing) the leg was watching.
    (LegState.WAITING, LegTrigger.DISARM): LegState.IDLE,
    (LegState.WAITING, LegTrigger.CANCEL): LegState.CANCELLED,
    # An edit made a placed entry conditional again, or a take-profit step trailing; its
    # order is being cancelled.
    (LegState.ORDER_PLACED, LegTrigger.ARM): LegState.WAITING,
    # A replacement or top-up order (after Add Funds, an edit, a lost order).
    (LegState.ORDER_PLACED, LegTrigger.PLACE): LegState.ORDER_PLACED,
    (LegState.ORDER_PLACED, LegTrigger.PARTIAL_FILL): LegState.PARTIALLY_FILLED,
    (LegState.ORDER_PLACED, LegTrigger.FILL): LegState.FILLED,
    (LegState.ORDER_PLACED, LegTrigger.CANCEL): LegState.CANCELLED,
    (LegState.ORDER_PLACED, LegTrigger.REJECT): LegState.FAILED,
    (LegState.PARTIALLY_FILLED, LegTrigger.PLACE): LegState.PARTIALLY_FILLED,
    (LegState.PARTIALLY_FILLED, LegTrigger.FILL): LegState.FILLED,
    # Abandoned after a part was executed; the part counts in the position.
    (LegState.PARTIALLY_FILLED, LegTrigger.CANCEL): LegState.CANCELLED,
    (LegState.PARTIALLY_FILLED, LegTrigger.REJECT): LegState.FAILED,
}

S = TypeVar("S", bound=Enum)
T = TypeVar("T", bound=Enum)


def transition(table: dict[tuple[S, T], S], machine: str, state: S, trigger: T) -> S:
    """The next state, or `InvalidTransition` when the table has no such edge."""
    try:
        return table[(state, trigger)]
    except KeyError:
        raise InvalidTransition(machine, state, trigger) from None


def can_transition(table: dict[tuple[S, T], S], state: S, trigger: T) -> bool:
    return (state, trigger) in table
