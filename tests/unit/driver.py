"""Runs trades through the pure core against the real paper matching book, synchronously,
the way the engine does: decide, carry out the intents, feed the venue's answers back."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.decide import create, decide
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.levels import wake_levels
from smarttrade.domain.market import Market
from smarttrade.domain.messages import (
    CancelOrder,
    Decision,
    Event,
    EventType,
    Input,
    Intent,
    OrderMissing,
    OrderReported,
    PlaceOrder,
    PriceTicked,
    TimeElapsed,
)
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.spec import TradeSpec
from smarttrade.domain.values import OrderStatus
from smarttrade.exchange.paper_book import PaperBook
from smarttrade.exchange.port import OrderNotFound, OrderRejected, OrderReport, OrderRequest

BTC = Market(
    symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    amount_step=Decimal("0.00001"),
    price_tick=Decimal("0.01"),
    min_amount=Decimal("0.00001"),
    min_cost=Decimal("5"),
)
# The paper venue's perpetual (Binance's filters, up to 125x, maintenance margin 0.4 %).
PERP = Market(
    symbol="BTC/USDT:USDT",
    base="BTC",
    quote="USDT",
    amount_step=Decimal("0.001"),
    price_tick=Decimal("0.1"),
    min_amount=Decimal("0.001"),
    min_cost=Decimal("5"),
    settle="USDT",
    max_leverage=Decimal(125),
    maintenance_rate=Decimal("0.004"),
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
ACCOUNT = "acct-1"
RUNS: list[Run] = []  # every run started, for checks that hold in every test (conftest)


def d(value: str | int) -> Decimal:
    return Decimal(value)


def reported(report: OrderReport, at: datetime) -> OrderReported:
    return OrderReported(
        client_order_id=report.client_order_id,
        status=report.status,
        at=at,
        fills=report.fills,
        exchange_order_id=report.exchange_order_id,
    )


@dataclass(frozen=True, slots=True)
class Placement:
    """A PlaceOrder intent and the trade's last price when the core decided it."""

    intent: PlaceOrder
    last_price: Decimal | None


@dataclass
class Run:
    """One trade on a paper book. `now` advances with `tick` and `wait`.

    `banded`: the trade sees a tick only when the price leaves its wake band, as the engine
    delivers them (the venue fills resting orders at every tick all the same); otherwise it
    sees every tick."""

    book: PaperBook
    trade: SmartTrade
    now: datetime
    events: list[Event] = field(default_factory=list)
    intents: list[Intent] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)
    banded: bool = False

    @classmethod
    def start(
        cls,
        spec: TradeSpec,
        price: str,
        balances: dict[str, str] | None = None,
        settings: PaperSettings | None = None,
        market: Market = BTC,
        auto: bool = True,
        banded: bool = False,
    ) -> Run:
        book = PaperBook([market])
        book.open_account(ACCOUNT, settings or PaperSettings())
        for currency, amount in (balances or {"USDT": "100000"}).items():
            book.set_balance(ACCOUNT, currency, d(amount))
        book.prices[market.symbol] = d(price)
        decision = create(
            trade_id="t1",
            tenant_id="tenant",
            account_id=ACCOUNT,
            exchange_id="paper",
            spec=spec,
            market=market,
            last_price=d(price),
            at=T0,
        )
        run = cls(book=book, trade=decision.trade, now=T0, banded=banded)
        RUNS.append(run)
        run._carry(decision, auto)
        return run

    # ---- driving -------------------------------------------------------------------------

    def feed(self, input: Input, auto: bool = True) -> Decision:
        decision = decide(self.trade, input)
        self._carry(decision, auto)
        return decision

    def tick(self, price: str, seconds: float = 1) -> None:
        """The venue fills crossed limits, then the trade sees the price."""
        self.now += timedelta(seconds=seconds)
        changed = self.book.tick(self.trade.spec.symbol, d(price), self.now)
        for order in changed:
            if order.account_id == ACCOUNT:
                self.feed(reported(order.report(), self.now))
        if not self.sees(d(price)):
            return
        opening = self.trade.state is TradeState.PENDING
        self.feed(PriceTicked(d(price), self.now))
        if opening and self.trade.state is TradeState.ACTIVE:  # as the engine's runner does
            self.feed(PriceTicked(d(price), self.now))

    def sees(self, price: Decimal) -> bool:
        """Whether the trade is shown `price` (with `banded`: whether it leaves the band)."""
        if not self.banded:
            return True
        levels = wake_levels(self.trade)
        return (levels.below is not None and price <= levels.below) or (
            levels.above is not None and price >= levels.above
        )

    def wait(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.feed(TimeElapsed(self.now))

    def execute(self, intent: Intent, auto: bool = True) -> Decision:
        """Carry out one intent left pending by `feed(..., auto=False)` and feed the answer."""
        return self.feed(self.answer(intent), auto)

    def _carry(self, decision: Decision, auto: bool) -> None:
        self._record(decision)
        if not auto:
            return
        queue = deque(decision.intents)
        while queue:
            follow = decide(self.trade, self.answer(queue.popleft()))
            self._record(follow)
            queue.extend(follow.intents)

    def _record(self, decision: Decision) -> None:
        self.trade = decision.trade
        self.events.extend(decision.events)
        self.intents.extend(decision.intents)
        self.placements.extend(
            Placement(intent, decision.trade.last_price)
            for intent in decision.intents
            if isinstance(intent, PlaceOrder)
        )

    def answer(self, intent: Intent) -> Input:
        """Carry out an intent at the venue; its answer, not yet fed to the trade."""
        if isinstance(intent, PlaceOrder):
            request = OrderRequest.of(intent)
            try:
                if intent.leverage is not None or intent.margin_mode is not None:
                    # As the executor does: the symbol's leverage and margin mode first.
                    self.book.prepare(ACCOUNT, intent.symbol, intent.leverage, intent.margin_mode)
                return reported(self.book.place(ACCOUNT, request, self.now), self.now)
            except OrderRejected as error:
                return OrderReported(
                    intent.client_order_id, OrderStatus.REJECTED, self.now, error=str(error)
                )
        assert isinstance(intent, CancelOrder)
        try:
            return reported(self.book.cancel(ACCOUNT, intent.client_order_id, self.now), self.now)
        except OrderNotFound:
            return OrderMissing(intent.client_order_id, self.now)

    # ---- reading -------------------------------------------------------------------------

    def event_types(self) -> list[EventType]:
        return [event.type for event in self.events]

    def balance(self, currency: str) -> Decimal:
        balance = self.book.balances(ACCOUNT).get(currency)
        return balance.total if balance else Decimal(0)

    def placed(self) -> list[PlaceOrder]:
        return [placement.intent for placement in self.placements]
