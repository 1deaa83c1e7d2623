"""One trade walked through a price history on a private paper book, synchronously: what the
trade would have done. Nothing is stored and nothing is sent anywhere.

It is the engine's loop without its I/O, so a simulation and a live paper trade agree fill
for fill on the same ticks (tests/e2e/test_simulation_equals_paper.py holds them together):
- each tick, the book first fills the resting orders it crosses and the trade hears of the
  fills; then the trade sees the tick if it leaves the trade's wake band (`wake_levels`),
  as the trigger index delivers ticks; a tick that opened the position is seen once more,
  as the runner does, so a price that gapped through the stop stops out at once;
- every intent is carried out on the book at once and its answer fed back;
- a stop-loss timeout completes at its moment, before the first tick after it.

The trade is created at the first tick (the first candle's open, at its time) and walks every
tick after it (`domain/candles.py` says how a candle becomes ticks). It is cheap because most
ticks change nothing: a candle whose whole range lies inside the band, with no timeout
running, is passed over with two comparisons, and a tick inside the band costs one more. The
band here also holds every live order of the trade (a CLOSING trade's stop-limit, a market
order filling in parts), since the book may fill those whatever the trade watches.

Futures too (a perpetual of the paper venue or of the account's venue): the book sets the
symbol's leverage and margin mode before each order that opens or grows the position, as
the executor has the venue do, and judges liquidation at every tick. A liquidation reaches
the trade as it does live, through what reconciliation would tell it (`_liquidated`): the
fills of its orders first, then its position gone with its share of the venue's order,
then the ends of the exits the venue cancelled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.candles import (
    Candle,
    VolumeShortfall,
    check_candles,
    length_of,
    ticks_of,
    volume_shortfalls,
)
from smarttrade.domain.decide import create, decide
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.levels import WakeLevels, wake_levels
from smarttrade.domain.market import Market
from smarttrade.domain.messages import (
    CancelOrder,
    Decision,
    Event,
    Input,
    Intent,
    OrderMissing,
    OrderReported,
    PlaceOrder,
    PositionSeen,
    PriceTicked,
    TimeElapsed,
)
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.position import position_of
from smarttrade.domain.spec import TradeSpec, TriggerPrice
from smarttrade.domain.values import Balance, OrderStatus, OrderType, Side
from smarttrade.engine.executor import reported
from smarttrade.engine.reconcile import ENDED, BalanceSeen, verdicts
from smarttrade.errors import PreconditionFailed
from smarttrade.exchange.paper_book import PaperBook, PaperOrder, is_liquidation
from smarttrade.exchange.port import OrderNotFound, OrderRejected, OrderReport, OrderRequest

ACCOUNT = "simulation"
# "Enough for the trade" when no balances are given: more of the base and the quote than
# any trade can spend, so only the market's own rules can refuse an order.
ENOUGH = Decimal(10) ** 15
# A bound on the CPU one simulation may take: 50,000 decisions took 15.4 s with a trailing
# stop lifted on every candle, and a decision of a trade with three targets costs up to
# about 0.9 ms, so about 45 s at the most. A year of one-minute candles of an ordinary path
# takes about a thousand (bench/bench_simulate.py).
MAX_DECISIONS = 50_000
NEVER_BELOW = Decimal(-1)  # no price is at or below it
NEVER_ABOVE = Decimal("Infinity")


@dataclass(frozen=True, slots=True)
class Simulation:
    """The trade as the history left it, every event it recorded, and how the walk went."""

    trade: SmartTrade
    events: tuple[Event, ...]
    balances: Mapping[str, Balance]
    candle_count: int
    ticks: int  # ticks walked (the first, at which the trade was created, included)
    decided: int  # inputs the trade decided on (ticks seen, fills, answers, the clock)
    # The candles in which the trade filled more than their volume (candles with one).
    volume_shortfalls: tuple[VolumeShortfall, ...] = ()


def simulate(
    spec: TradeSpec,
    market: Market,
    candles: Sequence[Candle],
    settings: PaperSettings | None = None,
    balances: Mapping[str, Decimal] | None = None,
    *,
    trade_id: str = "simulation",
    tenant_id: str = "",
    exchange_id: str = "paper",
    max_decisions: int = MAX_DECISIONS,
) -> Simulation:
    """Walk `spec` through `candles` on `market` with a paper account of `settings` and
    `balances` (unset: enough of the base and the quote, or on a perpetual of the margin
    wallet's currency). Raises `InvalidSpec` for a bad history or bad settings, naming the
    field, and `PreconditionFailed` once the trade has decided `max_decisions` times (a
    shorter history is asked for)."""
    check_candles(candles)
    if spec.trigger_price is not TriggerPrice.LAST:
        # Candles are one price: a bid or an ask the history does not have is not invented.
        message = "candles hold last prices: only LAST triggers can be simulated"
        raise InvalidSpec([FieldViolation("trigger_price", message)])
    walk = _Walk(market, settings or PaperSettings(), balances, max_decisions)
    first = candles[0]
    walk.book.prices[market.symbol] = first.open
    walk.start(
        create(
            trade_id=trade_id,
            tenant_id=tenant_id,
            account_id=ACCOUNT,
            exchange_id=exchange_id,
            spec=spec,
            market=market,
            last_price=first.open,
            at=first.time,
        )
    )
    walk.run(candles)
    last = len(candles) - 1
    walk.read_position(candles[last].time + length_of(candles, last) * 3 / 4)  # the last tick
    return walk.result(candles)


@dataclass
class _Walk:
    market: Market
    settings: PaperSettings
    given_balances: Mapping[str, Decimal] | None
    max_decisions: int
    book: PaperBook = field(init=False)
    trade: SmartTrade = field(init=False)
    events: list[Event] = field(default_factory=list)
    ticks: int = 0
    decided: int = 0
    latest: Decimal = Decimal(0)  # the last tick's price, seen by the trade or not
    # The band outside which a tick may change something, and when the clock next does.
    below: Decimal = NEVER_BELOW
    above: Decimal = NEVER_ABOVE
    due: datetime | None = None
    levels: WakeLevels = field(default_factory=WakeLevels)
    finished: bool = False

    def __post_init__(self) -> None:
        self.book = PaperBook([self.market])
        self.book.open_account(ACCOUNT, self.settings)
        given = self.given_balances
        if given is None:  # a perpetual's margin wallet is its settlement currency
            market = self.market
            given = {market.settle: ENOUGH} if market.settle else {}
            given = given or {market.base: ENOUGH, market.quote: ENOUGH}
        for currency, amount in given.items():
            self.book.set_balance(ACCOUNT, currency, amount)

    # ---- the walk ------------------------------------------------------------------------

    def start(self, decision: Decision) -> None:
        self.trade = decision.trade
        self.latest = decision.trade.last_price or Decimal(0)
        self.ticks = 1  # the first open, at which the trade was created
        self._carry(decision, decision.trade.created_at)

    def run(self, candles: Sequence[Candle]) -> None:
        symbol = self.market.symbol
        for index, candle in enumerate(candles):
            if self.finished:
                break
            self.ticks = 4 * (index + 1)
            if self.due is None and self.below < candle.low and candle.high < self.above:
                self.latest = candle.close  # the whole candle inside the band: nothing moves
                continue
            prices = ticks_of(candle)
            quarter = length_of(candles, index) / 4
            for part in range(0 if index else 1, 4):  # the first open created the trade
                self._tick(symbol, prices[part], candle.time + quarter * part)

    def _tick(self, symbol: str, price: Decimal, at: datetime) -> None:
        while self.due is not None and self.due <= at:
            due = self.due
            self.book.prices[symbol] = self.latest
            self._feed(TimeElapsed(due))
            if self.due == due:  # nothing came of it: the clock has no more to say
                break
        self.latest = price
        if self.below < price < self.above:
            return
        changed = self.book.tick(symbol, price, at)
        liquidation = next((o for o in changed if is_liquidation(o.client_order_id)), None)
        if liquidation is not None:
            self._liquidated(liquidation.report(), changed, price, at)
        else:
            for order in changed:
                self._feed(reported(order.report(), at))
        levels = self.levels
        if (levels.below is None or price > levels.below) and (
            levels.above is None or price < levels.above
        ):
            return
        opening = self.trade.state is TradeState.PENDING
        self._feed(PriceTicked(price, at))
        if opening and self.trade.state is TradeState.ACTIVE:
            self._feed(PriceTicked(price, at))

    def _liquidated(
        self, liquidation: OrderReport, changed: list[PaperOrder], price: Decimal, at: datetime
    ) -> None:
        """The venue liquidated the account's position: the trade is told what the engine's
        paper path has reconciliation tell it (engine.py `apply_paper_price`, reconcile.py
        `group`), in its order: the position as the venue shows it now (when the trade held
        one), the fills of its orders, the verdict on the position, then the ends of the
        orders the venue cancelled."""
        seen = self._position_seen(price) if position_of(self.trade).units_held else None
        ends = []
        for order in changed:
            report = order.report()
            if is_liquidation(report.client_order_id):
                continue
            if report.status in ENDED:
                ends.append(report)
                if not report.fills:
                    continue
                report = replace(report, status=OrderStatus.OPEN)  # its end comes later
            self._feed(reported(report, at))
        held = position_of(self.trade).units_held
        if seen is not None and held:
            for _, verdict in verdicts(seen, [(self.trade.id, held)], (), liquidation, at):
                self._feed(verdict)
        for report in ends:
            self._feed(reported(report, at))

    def _position_seen(self, price: Decimal) -> BalanceSeen:
        """The book's position on the trade's side, as reconciliation reads a venue's."""
        have, liquidation_price = Decimal(0), None
        for position in self.book.positions(ACCOUNT, self.market.symbol):
            if position.side is self.trade.spec.side and position.units:
                have, liquidation_price = position.units, position.liquidation_price
        held = position_of(self.trade).units_held
        return BalanceSeen(have, held, self.market, price, liquidation_price)

    # ---- deciding and carrying out -------------------------------------------------------

    def _feed(self, input: Input) -> None:
        self._carry(decide(self.trade, input), input.at)

    def _carry(self, decision: Decision, at: datetime) -> None:
        self._record(decision)
        queue = deque(decision.intents)
        while queue:
            follow = decide(self.trade, self._answer(queue.popleft(), at))
            self._record(follow)
            queue.extend(follow.intents)
        self._rearm()

    def _record(self, decision: Decision) -> None:
        self.decided += 1
        if self.decided > self.max_decisions:
            raise PreconditionFailed(
                "SIMULATION_TOO_LONG",
                f"the trade decided more than {self.max_decisions:,} times on this history"
                f" (by {self.trade.updated_at.isoformat()}): simulate a shorter one",
            )
        self.trade = decision.trade
        self.events.extend(decision.events)

    def _answer(self, intent: Intent, at: datetime) -> Input:
        if isinstance(intent, PlaceOrder):
            try:
                if intent.leverage is not None or intent.margin_mode is not None:
                    self.book.prepare(ACCOUNT, intent.symbol, intent.leverage, intent.margin_mode)
                return reported(self.book.place(ACCOUNT, OrderRequest.of(intent), at), at)
            except OrderRejected as error:
                return OrderReported(
                    intent.client_order_id, OrderStatus.REJECTED, at, error=str(error)
                )
        assert isinstance(intent, CancelOrder)
        try:
            return reported(self.book.cancel(ACCOUNT, intent.client_order_id, at), at)
        except OrderNotFound:
            return OrderMissing(intent.client_order_id, at)

    def _rearm(self) -> None:
        """The band after a decision: the trade's wake levels, the price of every live order
        of the trade (the book may fill it whatever the trade's state) and a perpetual's
        liquidation price."""
        trade = self.trade
        levels = wake_levels(trade)
        below = levels.below if levels.below is not None else NEVER_BELOW
        above = levels.above if levels.above is not None else NEVER_ABOVE
        live = False
        for leg in trade.legs:
            for order in leg.live_orders:
                live = True
                if order.type is not OrderType.LIMIT or order.price is None:
                    below, above = NEVER_BELOW, Decimal(0)  # it fills at the next tick
                elif order.side is Side.BUY:
                    below = max(below, order.price)
                else:
                    above = min(above, order.price)
        if self.market.is_contract:  # the book liquidates a position whatever the trade does
            for position in self.book.positions(ACCOUNT, self.market.symbol):
                if position.units and position.liquidation_price is not None:
                    if position.side is Side.BUY:
                        below = max(below, position.liquidation_price)
                    else:
                        above = min(above, position.liquidation_price)
        self.levels, self.below, self.above, self.due = levels, below, above, levels.at
        self.finished = trade.state.is_terminal and not live

    def read_position(self, at: datetime) -> None:
        """A futures position still open at the end shows the book's liquidation price, as
        a live one shows its venue's once reconciliation has read it (display only)."""
        trade = self.trade
        if (
            self.market.is_contract
            and not trade.state.is_terminal
            and position_of(trade).units_held
        ):
            seen = self._position_seen(self.latest)
            self._feed(PositionSeen(seen.liquidation_price, at))

    def result(self, candles: Sequence[Candle]) -> Simulation:
        trade = self.trade
        if not trade.state.is_terminal and trade.last_price != self.latest:
            # Shown at the history's last price, as a live trade is read at the venue's.
            trade = replace(trade, last_price=self.latest)
        return Simulation(
            trade=trade,
            events=tuple(self.events),
            balances=self.book.balances(ACCOUNT),
            candle_count=len(candles),
            ticks=self.ticks,
            decided=self.decided,
            volume_shortfalls=tuple(
                volume_shortfalls(
                    candles,
                    (fill for leg in trade.legs for order in leg.orders for fill in order.fills),
                )
            ),
        )
