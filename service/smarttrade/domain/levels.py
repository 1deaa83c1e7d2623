"""Where a trade's interest in the price lies: the band outside which a tick can change it.

`wake_levels(trade)` says: the trade needs a price when `last <= below` or `last >= above`,
and the clock at `at`. Inside the band a tick changes nothing (it only updates the last
price shown), so the engine may skip it: that is how a tick costs O(log n + triggered)
rather than O(trades). The levels mirror the watchers in `watch.py` and must stay a
superset of what they react to; a property test holds the two together.

Per state (written for BUY; SELL mirrors, which `_Band` does):
- a conditional entry not yet reached: its trigger, on the side it is approached from;
- a trailing entry: a new extreme (it moves) and the release level;
- a stop loss: its trigger; while a timeout runs, the way back inside (it interrupts), and
  the moment the timeout completes; with trailing, a new extreme (the stop moves);
- a trailing take profit: its target until reached, then a new extreme and the fire level;
- every resting limit order: its price (a BUY limit when `last <= limit`, a SELL limit when
  `last >= limit`), so the trade sees the tick at which the venue may fill it, and knows
  the current price when the fill comes (DESIGN §2.4);
- once every take-profit step is done: the price below which what is left is dust;
- the time limit: the moment the position has been open that long;
- while CLOSING with a stop-limit resting (and a fallback set): the price that far past
  its limit, and the moment it has rested that long;
- the next tick, whatever its price, when the trade awaits the current price (a resting
  order filled at a tick not yet seen) or its trailing stop has no extreme yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from smarttrade.domain.fsm import LegState, TradeState
from smarttrade.domain.model import ZERO, SmartTrade
from smarttrade.domain.plan import all_steps_done
from smarttrade.domain.position import position_of
from smarttrade.domain.prices import offset, stop_trigger, take_profit_target
from smarttrade.domain.spec import EntryType
from smarttrade.domain.values import OrderType, Side
from smarttrade.domain.watch import fallback_level, stop_limit_fallback

EVERY_PRICE = Decimal(0)


@dataclass(frozen=True, slots=True)
class WakeLevels:
    below: Decimal | None = None
    above: Decimal | None = None
    at: datetime | None = None


class _Band:
    def __init__(self, side: Side) -> None:
        self._side = side
        self.below: Decimal | None = None
        self.above: Decimal | None = None

    def low(self, level: Decimal) -> None:
        """Wake when the price falls to `level` (BUY terms)."""
        if self._side is Side.BUY:
            self.below = level if self.below is None else max(self.below, level)
        else:
            self.above = level if self.above is None else min(self.above, level)

    def high(self, level: Decimal) -> None:
        """Wake when the price rises to `level` (BUY terms)."""
        if self._side is Side.BUY:
            self.above = level if self.above is None else min(self.above, level)
        else:
            self.below = level if self.below is None else max(self.below, level)

    def every_tick(self) -> None:
        """Wake on the next price, whatever it is (every price is at or above 0)."""
        self.above = EVERY_PRICE


def wake_levels(trade: SmartTrade) -> WakeLevels:
    if trade.state is TradeState.CLOSING:
        return _stop_limit_fallback(trade)
    if trade.state not in (TradeState.PENDING, TradeState.ACTIVE):
        return WakeLevels()
    side = trade.spec.side
    band = _Band(side)
    _entry(trade, band)
    _resting_orders(trade, band)
    at = None
    if trade.state is TradeState.ACTIVE:
        at = _earliest(_stop_loss(trade, band), trade.time_limit_at)
        _trailing_take_profit(trade, band)
        _dust(trade, band)
    if trade.awaiting_price:
        band.every_tick()
    return WakeLevels(band.below, band.above, at)


def _earliest(*times: datetime | None) -> datetime | None:
    known = [time for time in times if time is not None]
    return min(known) if known else None


def _stop_limit_fallback(trade: SmartTrade) -> WakeLevels:
    """CLOSING: only a stop-limit's fallback is watched (see `watch.stop_limit_fallback`)."""
    found = stop_limit_fallback(trade)
    if found is None:
        return WakeLevels()
    order, stop = found
    band = _Band(trade.spec.side)
    level = fallback_level(trade, order, stop)
    if level is not None:
        band.low(level)
    at = order.created_at + stop.fallback_after if stop.fallback_after is not None else None
    return WakeLevels(band.below, band.above, at)


def _resting_orders(trade: SmartTrade, band: _Band) -> None:
    """The price of every live limit order: the venue fills it at a tick beyond it."""
    for leg in trade.legs:
        for order in leg.live_orders:
            if order.type is not OrderType.LIMIT or order.price is None:
                continue
            if leg.kind.is_entry_side:
                band.low(order.price)  # BUY terms: a buy limit fills when last <= limit
            else:
                band.high(order.price)


def _dust(trade: SmartTrade, band: _Band) -> None:
    """Every step done, a tradable remainder left: it becomes dust (and the trade closes)
    once `remainder x last` is below the market's minimum cost, on either side."""
    if not all_steps_done(trade):
        return
    market = trade.market
    held = market.round_amount(max(position_of(trade).units_held, ZERO))
    if held > 0 and market.min_cost > 0:
        _raw_low(band, trade.spec.side, market.min_cost / held)


def _entry(trade: SmartTrade, band: _Band) -> None:
    leg = trade.entry_leg
    spec = trade.spec.entry
    if leg.state is not LegState.WAITING or leg.released:
        return
    side = trade.spec.side
    if spec.type is EntryType.CONDITIONAL and not leg.triggered:
        assert spec.trigger_price is not None
        # Approached from the side of the reference price: upward means last >= trigger.
        if spec.trigger_price >= trade.reference_price:
            _raw_high(band, side, spec.trigger_price)
        else:
            _raw_low(band, side, spec.trigger_price)
        return
    if leg.trailing_active and leg.trailing_extreme is not None:
        assert spec.trailing_percent is not None
        band.low(leg.trailing_extreme)  # a new extreme (lowest for BUY) moves the level
        band.high(offset(side, leg.trailing_extreme, spec.trailing_percent))


def _stop_loss(trade: SmartTrade, band: _Band) -> datetime | None:
    leg = trade.stop_loss_leg
    spec = trade.spec.stop_loss
    if leg is None or spec is None or leg.state is not LegState.WAITING:
        return None
    trigger = stop_trigger(trade, position_of(trade).average_entry_price)
    if trigger is not None:
        band.low(trigger)
    if spec.trailing_percent is not None:
        if leg.trailing_extreme is None:
            band.every_tick()  # the first price since the position opened starts it
        else:
            band.high(leg.trailing_extreme)  # a new best price moves the stop
    if leg.breach_since is not None and spec.timeout is not None and trigger is not None:
        band.high(trigger)  # going back inside interrupts the timeout
        return leg.breach_since + spec.timeout
    return None


def _trailing_take_profit(trade: SmartTrade, band: _Band) -> None:
    trailing = trade.waiting_trailing_step()
    if trailing is None:
        return
    leg, spec, trailing_percent = trailing
    side = trade.spec.side
    if not leg.trailing_active:
        target = take_profit_target(trade, spec, position_of(trade).average_entry_price)
        if target is not None:
            band.high(target)
        return
    assert leg.trailing_extreme is not None
    band.high(leg.trailing_extreme)
    band.low(offset(side, leg.trailing_extreme, -trailing_percent))


def _raw_high(band: _Band, side: Side, level: Decimal) -> None:
    """A level on the upward side in absolute terms, whatever the trade's side."""
    if side is Side.BUY:
        band.high(level)
    else:
        band.low(level)


def _raw_low(band: _Band, side: Side, level: Decimal) -> None:
    if side is Side.BUY:
        band.low(level)
    else:
        band.high(level)
