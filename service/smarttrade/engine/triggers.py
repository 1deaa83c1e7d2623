"""The trigger index: which trades a new price concerns, in O(log n + triggered).

Each trade registers the band outside which a price matters to it (see the core's
`wake_levels`): wake it when price <= `below` or price >= `above`. The index keeps, per
feed and symbol, a max-heap of `below` levels and a min-heap of `above` levels. A tick pops
the levels it crosses (a trade is woken once even if both cross) and the woken trades
register their new band after deciding. A trade's older entries are skipped lazily: each
registration bumps the trade's generation, and popped entries of an older one are dropped.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(slots=True)
class _Book:
    below: list[tuple[Decimal, int, str]] = field(default_factory=list)  # (-level, gen, trade)
    above: list[tuple[Decimal, int, str]] = field(default_factory=list)  # (level, gen, trade)


class TriggerIndex:
    def __init__(self) -> None:
        self._books: dict[tuple[str, str], _Book] = {}
        self._generation: dict[str, int] = {}
        self._next = 0

    def register(
        self, key: tuple[str, str], trade_id: str, below: Decimal | None, above: Decimal | None
    ) -> None:
        """Replace the trade's band (None: no level on that side)."""
        self._next += 1
        generation = self._next
        self._generation[trade_id] = generation
        book = self._books.setdefault(key, _Book())
        if below is not None:
            heapq.heappush(book.below, (-below, generation, trade_id))
        if above is not None:
            heapq.heappush(book.above, (above, generation, trade_id))

    def remove(self, trade_id: str) -> None:
        self._generation.pop(trade_id, None)

    def crossed(self, key: tuple[str, str], price: Decimal) -> set[str]:
        """The trades whose band `price` leaves. Their entries are consumed: they register
        again once they have seen the price."""
        book = self._books.get(key)
        if book is None:
            return set()
        woken: set[str] = set()
        while book.below and -book.below[0][0] >= price:
            _, generation, trade_id = heapq.heappop(book.below)
            if self._generation.get(trade_id) == generation:
                woken.add(trade_id)
        while book.above and book.above[0][0] <= price:
            _, generation, trade_id = heapq.heappop(book.above)
            if self._generation.get(trade_id) == generation:
                woken.add(trade_id)
        for trade_id in woken:
            # Both sides were registered under one generation: retire the other side too.
            self._generation[trade_id] = -1
        return woken

    def size(self, key: tuple[str, str]) -> int:
        book = self._books.get(key)
        return len(book.below) + len(book.above) if book else 0

    def compact(self, key: tuple[str, str]) -> None:
        """Drop stale entries (after many re-registrations) so the heaps stay O(live)."""
        book = self._books.get(key)
        if book is None:
            return
        book.below = [e for e in book.below if self._generation.get(e[2]) == e[1]]
        book.above = [e for e in book.above if self._generation.get(e[2]) == e[1]]
        heapq.heapify(book.below)
        heapq.heapify(book.above)
