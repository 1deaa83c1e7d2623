"""Every decision is made at the current price (DESIGN §2.3, §2.4), also when the trade sees
only the ticks that leave its wake band, as the engine delivers them (`banded` runs).

A resting limit order fills at the venue on a tick the trade may not have seen yet (on the
paper venue the fill is reported before the tick): the trade must not judge at the price it
had before. The examples are the two outcomes a reference run on real price paths found
wrong (issue 12, §4).

BTC/USDT, lot 0.00001 BTC, tick 0.01, minimum 5 USDT.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.levels import wake_levels
from smarttrade.domain.messages import OrderReported
from smarttrade.domain.model import CloseReason
from smarttrade.domain.position import position_of
from smarttrade.domain.spec import TradeSpec
from smarttrade.domain.values import Side
from smarttrade.exchange.paper_book import PaperOrder
from tests.unit.builders import limit_entry, market_entry, step, stop, trade_spec, wallet
from tests.unit.driver import Run, reported
from tests.unit.strategies import START, trade_specs

D = Decimal


def test_a_trailing_stop_after_a_resting_entry_trails_from_the_prices_since_the_fill() -> None:
    # Arrange: a SELL limit at 10,920 created at 10,918.90; the stop trails 0.26 % above the
    # lowest price since the position opened.
    spec = trade_spec(
        Side.SELL, limit_entry("10920", units="0.01"), (), stop(percent="1", trailing="0.26")
    )
    run = Run.start(spec, "10918.90", balances=wallet(Side.SELL), banded=True)

    # Act: 10,922.60 fills the entry; the lowest since is 10,922.60 (not 10,918.90, a price
    # from before the position existed).
    run.tick("10922.60")
    run.tick("10947.30")

    # Assert: the stop is 10,922.60 x 1.0026 = 10,951.00, so 10,947.30 does not fire it
    # (from 10,918.90 it would have been 10,947.29).
    assert run.trade.state is TradeState.ACTIVE
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.trailing_extreme == D("10922.60")
    assert run.trade.stop_loss_leg.price == D("10951.00")
    run.tick("10951")
    assert run.trade.close_reason is CloseReason.STOP_LOSS


def test_a_remainder_that_cannot_be_traded_at_the_current_price_closes_the_trade() -> None:
    # Arrange: 0.0999 BTC sold at 60,000, one target at 48,000. The venue charges no fee on
    # the sale and 0.1 % in BTC on the buy-back, which the trade could not foresee: the
    # buy-back of 0.0999 brings 0.0998001, and 0.0000999 stays owed. As an order at the
    # target it is below the minimum (0.0001 x 48,000 = 4.80), at 60,000 it is not
    # (0.00009 x 60,000 = 5.40).
    settings = PaperSettings(maker_fee_rate=D("0.001"), taker_fee_rate=D(0))
    spec = trade_spec(
        Side.SELL, market_entry("0.0999"), (step("100", price="48000"),), stop(percent="10")
    )
    run = Run.start(spec, "60000", balances=wallet(Side.SELL), settings=settings, banded=True)

    # Act: the price gaps to 47,000; the target fills.
    run.tick("47000")

    # Assert: at 47,000 what is owed cannot be traded: dust, the trade is done.
    assert position_of(run.trade).units_held == D("0.0000999")
    assert run.trade.state is TradeState.CLOSED
    assert run.trade.close_reason is CloseReason.TAKE_PROFIT


def test_a_pending_trade_wakes_when_the_price_reaches_its_resting_limit_entry() -> None:
    # Arrange: a BUY limit at 49,000 resting while the price is 50,000.
    spec = trade_spec(Side.BUY, limit_entry("49000"), (step("100", percent="2"),), stop("45000"))
    run = Run.start(spec, "50000", banded=True)

    # Act
    levels = wake_levels(run.trade)

    # Assert: the tick that may fill it reaches the trade.
    assert levels.below == D(49000)
    run.tick("49500")
    assert run.trade.last_price == D(50000)  # inside the band: not shown
    run.tick("49000")
    assert run.trade.state is TradeState.ACTIVE
    assert run.trade.last_price == D(49000)


def test_a_fill_the_trade_has_not_seen_the_price_of_makes_it_wait_for_the_next_tick() -> None:
    # Arrange: a BUY limit at 49,000 with a trailing stop; the trade last saw 50,000.
    spec = trade_spec(Side.BUY, limit_entry("49000"), (), stop(percent="5", trailing="2"))
    run = Run.start(spec, "50000", banded=True)
    order = run.trade.entry_leg.orders[0]
    changed = run.book.tick("BTC/USDT", D(48000), run.now)  # the venue fills it first

    # Act: the venue's report of the fill, before the tick.
    run.feed(_report_of(run, changed, order.client_order_id))

    # Assert: open, its best price not yet known, and every next price is wanted.
    assert run.trade.state is TradeState.ACTIVE
    assert run.trade.awaiting_price
    assert run.trade.stop_loss_leg is not None
    assert run.trade.stop_loss_leg.trailing_extreme is None
    assert wake_levels(run.trade).above == 0
    run.tick("48000")
    assert not run.trade.awaiting_price
    assert run.trade.stop_loss_leg.trailing_extreme == D(48000)


def _report_of(run: Run, changed: list[PaperOrder], client_order_id: str) -> OrderReported:
    order = next(o for o in changed if o.client_order_id == client_order_id)
    return reported(order.report(), run.now)


# Around the strategies' starting price: from half of it to one and a half times it.
prices = st.integers(min_value=5_000, max_value=15_000).map(lambda n: START * n / 10_000)


def _outcome(run: Run) -> tuple[object, ...]:
    trade = run.trade
    position = position_of(trade)
    orders = [
        (p.intent.leg_id, p.intent.type, p.intent.amount, p.intent.price) for p in run.placements
    ]
    return (trade.state, trade.close_reason, position.units_held, position.realized_pnl, orders)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trade_specs(), st.lists(prices, max_size=14))
def test_a_trade_shown_only_the_ticks_that_leave_its_band_ends_as_one_shown_every_tick(
    spec: TradeSpec, path: list[Decimal]
) -> None:
    # Arrange: the same trade twice on the same venue; stop timeouts, time limits and a
    # stop-limit's time fallback aside (the engine completes them on a timer, not on the
    # next tick).
    stop = spec.stop_loss
    assume(stop is None or (stop.timeout is None and stop.fallback_after is None))
    assume(spec.time_limit is None)
    balances = {"USDT": "1000000", "BTC": "1000"}
    every = Run.start(spec, str(START), balances=balances)
    banded = Run.start(spec, str(START), balances=balances, banded=True)

    # Act
    for price in path:
        every.tick(str(price))
        banded.tick(str(price))

    # Assert: the same orders, the same end.
    assert _outcome(banded) == _outcome(every)
