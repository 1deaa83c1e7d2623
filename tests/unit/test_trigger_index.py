"""The trigger index wakes exactly the trades a price concerns."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from smarttrade.engine.triggers import TriggerIndex

KEY = ("paper/t", "BTC/USDT")


def test_a_price_wakes_the_trades_whose_band_it_leaves_and_no_other() -> None:
    index = TriggerIndex()
    index.register(KEY, "stop-at-90", Decimal(90), None)
    index.register(KEY, "target-at-110", None, Decimal(110))
    index.register(KEY, "band-95-105", Decimal(95), Decimal(105))

    assert index.crossed(KEY, Decimal(100)) == set()
    assert index.crossed(KEY, Decimal(94)) == {"band-95-105"}
    assert index.crossed(KEY, Decimal(89)) == {"stop-at-90"}
    assert index.crossed(KEY, Decimal(110)) == {"target-at-110"}


def test_a_woken_trade_is_not_woken_again_until_it_registers_again() -> None:
    index = TriggerIndex()
    index.register(KEY, "t", Decimal(95), Decimal(105))

    assert index.crossed(KEY, Decimal(106)) == {"t"}
    assert index.crossed(KEY, Decimal(90)) == set()  # its below-side entry was retired
    index.register(KEY, "t", Decimal(100), None)
    assert index.crossed(KEY, Decimal(90)) == {"t"}


def test_re_registering_replaces_the_band_and_compacting_drops_the_old_entries() -> None:
    index = TriggerIndex()
    for level in range(100, 80, -1):
        index.register(KEY, "trailing", Decimal(level), None)
    index.compact(KEY)

    assert index.size(KEY) == 1
    assert index.crossed(KEY, Decimal(95)) == set()
    assert index.crossed(KEY, Decimal(81)) == {"trailing"}


def test_a_removed_trade_is_never_woken() -> None:
    index = TriggerIndex()
    index.register(KEY, "gone", Decimal(95), None)
    index.remove("gone")
    assert index.crossed(KEY, Decimal(1)) == set()


bands = st.lists(
    st.tuples(
        st.none() | st.integers(1, 200).map(Decimal),
        st.none() | st.integers(1, 200).map(Decimal),
    ),
    min_size=1,
    max_size=60,
)


@given(bands, st.integers(1, 200).map(Decimal))
def test_the_index_agrees_with_checking_every_trade(
    registered: list[tuple[Decimal | None, Decimal | None]], price: Decimal
) -> None:
    index = TriggerIndex()
    for number, (below, above) in enumerate(registered):
        index.register(KEY, f"t{number}", below, above)

    expected = {
        f"t{number}"
        for number, (below, above) in enumerate(registered)
        if (below is not None and price <= below) or (above is not None and price >= above)
    }
    assert index.crossed(KEY, price) == expected
