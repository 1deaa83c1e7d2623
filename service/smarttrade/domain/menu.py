"""The trade-management menu (DESIGN §2.7): which actions and edits each state allows.

Two actions depend on more than the state, decided here (issue 15):
- Close Step (one take-profit step at market) is on the menu while ACTIVE and some step is
  not done; a done step, or a step number not in the plan, is refused by the action itself.
- Close at Market and Cancel are on the menu while CLOSING, so that a stop-limit that does
  not fill never strands a trade; Close at Market only while the exit in flight is such a
  limit order (a market exit already sells everything at market: closing again would do
  nothing but race it).
"""

from __future__ import annotations

from smarttrade.domain.errors import ActionNotAllowed
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.model import Action, LegKind, SmartTrade
from smarttrade.domain.values import OrderType

ACTIONS: dict[TradeState, frozenset[Action]] = {
    TradeState.PENDING: frozenset(
        {
            Action.REFRESH,
            Action.ADD_FUNDS,
            Action.OPEN_NOW,
            Action.EDIT,
            Action.SHARE,
            Action.CANCEL,
        }
    ),
    TradeState.ACTIVE: frozenset(
        {
            Action.REFRESH,
            Action.ADD_FUNDS,
            Action.REDUCE_FUNDS,
            Action.CLOSE_AT_MARKET,
            Action.EDIT,
            Action.SHARE,
            Action.CANCEL,
            Action.CLOSE_STEP,
        }
    ),
    TradeState.CLOSING: frozenset(
        {Action.REFRESH, Action.CLOSE_AT_MARKET, Action.SHARE, Action.CANCEL}
    ),
    TradeState.CLOSED: frozenset({Action.REFRESH, Action.SHARE}),
    TradeState.CANCELLED: frozenset({Action.REFRESH, Action.SHARE}),
    TradeState.FAILED: frozenset({Action.REFRESH, Action.SHARE}),
}

# The update-mask roots an edit may touch, by state. Sub-paths ("stop_loss.price") follow
# their root. Everything else (account, symbol, side, leverage) is fixed at creation.
EDITABLE: dict[TradeState, tuple[str, ...]] = {
    TradeState.PENDING: ("entry", "take_profit", "stop_loss", "note", "labels", "time_limit"),
    TradeState.ACTIVE: ("take_profit", "stop_loss", "note", "labels", "time_limit"),
}
EDITABLE_ROOTS = frozenset(EDITABLE[TradeState.PENDING])


def available_actions(trade: SmartTrade) -> list[Action]:
    allowed = ACTIONS[trade.state]
    return [action for action in Action if action in allowed and _why_not(trade, action) is None]


def _why_not(trade: SmartTrade, action: Action) -> str | None:
    """Why an action the state allows is not available now (None: it is)."""
    if action is Action.CLOSE_STEP and all(leg.state.is_done for leg in trade.take_profit_legs):
        return "no take-profit step is left open"
    closing = action is Action.CLOSE_AT_MARKET and trade.state is TradeState.CLOSING
    if closing and not exit_rests_as_limit(trade):
        return "a market exit is already selling everything"
    return None


def exit_rests_as_limit(trade: SmartTrade) -> bool:
    """Whether the exit in flight is a stop loss working as a limit order (not yet fallen
    back to market): one that may never fill."""
    if trade.state is not TradeState.CLOSING or trade.exit_leg_id is None:
        return False
    leg = trade.find_leg(trade.exit_leg_id)
    stop = trade.spec.stop_loss
    return (
        leg is not None
        and leg.kind is LegKind.STOP_LOSS
        and stop is not None
        and stop.order_type is OrderType.LIMIT
        and not leg.at_market
    )


def editable_fields(trade: SmartTrade) -> list[str]:
    """The update-mask roots an edit may change now. The entry only while PENDING and while
    the entry itself has not ended (it may have been cancelled on the exchange while an Add
    Funds order keeps the trade PENDING): an ended entry is not restarted by an edit."""
    fields = EDITABLE.get(trade.state, ())
    if trade.entry_leg.state.is_done:
        fields = tuple(field for field in fields if field != "entry")
    return list(fields)


def require(trade: SmartTrade, action: Action) -> None:
    """Raise `ActionNotAllowed` unless `action` is on the menu in the trade's state."""
    if action not in ACTIONS[trade.state]:
        raise ActionNotAllowed(trade.state, action)
    why = _why_not(trade, action)
    if why is not None:
        raise ActionNotAllowed(trade.state, action, why)


def root_of(path: str) -> str:
    return path.split(".", 1)[0]
