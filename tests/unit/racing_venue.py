"""The paper book with a network in between, for property tests.

Intents wait in a queue until the venue gets to them (in the order they were decided, as
the engine sends them), and the venue's answers wait in an outbox until they are delivered,
in any order and as often as a test likes: a report may arrive late, twice, or after a newer
one. Nothing here decides anything; it only carries intents out and answers back.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from smarttrade.domain.account import PaperSettings
from smarttrade.domain.market import Market
from smarttrade.domain.messages import CancelOrder, Input, Intent, OrderMissing, OrderReported
from smarttrade.domain.values import OrderStatus
from smarttrade.exchange.paper_book import PaperBook
from smarttrade.exchange.port import OrderNotFound, OrderRejected, OrderRequest, RejectReason
from tests.unit.driver import ACCOUNT, reported


@dataclass
class RacingVenue:
    book: PaperBook
    market: Market
    queue: deque[Intent] = field(default_factory=deque)
    outbox: list[Input] = field(default_factory=list)
    history: list[OrderReported] = field(default_factory=list)
    refusing: int = 0  # how many of the next orders are refused, as for insufficient funds

    @classmethod
    def open(
        cls, market: Market, price: Decimal, settings: PaperSettings, balances: dict[str, str]
    ) -> RacingVenue:
        book = PaperBook([market])
        book.open_account(ACCOUNT, settings)
        for currency, amount in balances.items():
            book.set_balance(ACCOUNT, currency, Decimal(amount))
        book.prices[market.symbol] = price
        return cls(book=book, market=market)

    def send(self, intents: tuple[Intent, ...]) -> None:
        self.queue.extend(intents)

    def tick(self, price: Decimal, at: datetime) -> None:
        for order in self.book.tick(self.market.symbol, price, at):
            self._answer(reported(order.report(), at))

    def work(self, count: int, at: datetime) -> None:
        """Carry out up to `count` queued intents, oldest first."""
        for _ in range(min(count, len(self.queue))):
            intent = self.queue.popleft()
            if isinstance(intent, CancelOrder):
                try:
                    report = self.book.cancel(ACCOUNT, intent.client_order_id, at)
                except OrderNotFound:
                    self.outbox.append(OrderMissing(intent.client_order_id, at))
                    continue
                self._answer(reported(report, at))
                continue
            request = OrderRequest.of(intent)
            try:
                if self.refusing:
                    self.refusing -= 1
                    raise OrderRejected(RejectReason.INSUFFICIENT_FUNDS, "insufficient funds")
                self._answer(reported(self.book.place(ACCOUNT, request, at), at))
            except OrderRejected as error:
                refused = OrderReported(
                    intent.client_order_id, OrderStatus.REJECTED, at, error=str(error)
                )
                self._answer(refused)

    def cancel_by_hand(self, client_order_id: str, at: datetime) -> None:
        """The trader cancels an order on the exchange's own site: the service did not ask."""
        self._answer(reported(self.book.cancel(ACCOUNT, client_order_id, at), at))

    def open_orders(self) -> list[str]:
        return [
            report.client_order_id for report in self.book.open_orders(ACCOUNT, self.market.symbol)
        ]

    def take(self, index: int) -> Input:
        return self.outbox.pop(index)

    def _answer(self, report: OrderReported) -> None:
        self.outbox.append(report)
        self.history.append(report)
