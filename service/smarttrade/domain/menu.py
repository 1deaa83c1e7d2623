"""The trade-management menu (DESIGN §2.7): which actions and edits each state allows."""

from __future__ import annotations

from smarttrade.domain.errors import ActionNotAllowed
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.model import Action, SmartTrade

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
        }
    ),
    TradeState.CLOSING: frozenset({Action.REFRESH, Action.SHARE}),
    TradeState.CLOSED: frozenset({Action.REFRESH, Action.SHARE}),
    TradeState.CANCELLED: frozenset({Action.REFRESH, Action.SHARE}),
    TradeState.FAILED: frozenset({Action.REFRESH, Action.SHARE}),
}

# The update-mask roots an edit may touch, by state. Sub-paths ("stop_loss.price") follow
# their root. Everything else (account, symbol, side, leverage) is fixed at creation.
EDITABLE: dict[TradeState, tuple[str, ...]] = {
    TradeState.PENDING: ("entry", "take_profit", "stop_loss", "note", "labels"),
    TradeState.ACTIVE: ("take_profit", "stop_loss", "note", "labels"),
}
EDITABLE_ROOTS = frozenset(EDITABLE[TradeState.PENDING])


def available_actions(trade: SmartTrade) -> list[Action]:
    allowed = ACTIONS[trade.state]
    return [action for action in Action if action in allowed]


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


def root_of(path: str) -> str:
    return path.split(".", 1)[0]
