"""Validation of the trader's inputs on a live trade: Add Funds, Reduce Funds and edits.

The trade: 0.1 BTC bought at 50,000, 0.0999 held after the 0.1% fee paid in BTC, average
entry 5,000 / 0.0999 = 50,050.05...; targets +2% and +4%; stop 5% below.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from smarttrade.domain.decide import decide
from smarttrade.domain.errors import InvalidSpec
from smarttrade.domain.messages import AddFunds, Edit, ReduceFunds
from smarttrade.domain.values import OrderType
from tests.unit.builders import active_trade, step
from tests.unit.driver import T0

# ---- the trader's inputs on a live trade -------------------------------------------------


def refused_fields(input: object) -> list[str]:
    run = active_trade()
    with pytest.raises(InvalidSpec) as refused:
        decide(run.trade, input)  # type: ignore[arg-type]
    return [violation.field for violation in refused.value.violations]


ACTION_CASES = [
    (
        "add funds with units and total",
        AddFunds(T0, units=Decimal("0.1"), total=Decimal(5000)),
        "units",
    ),
    ("add funds with neither units nor total", AddFunds(T0), "units"),
    ("add funds of zero units", AddFunds(T0, units=Decimal(0)), "units"),
    ("add funds below the minimum cost", AddFunds(T0, total=Decimal("4.99")), "total"),
    (
        "add funds as a limit without its price",
        AddFunds(T0, OrderType.LIMIT, units=Decimal("0.1")),
        "limit_price",
    ),
    (
        "add funds at a limit price that rounds to zero",
        AddFunds(T0, OrderType.LIMIT, Decimal("0.004"), units=Decimal("0.1")),
        "limit_price",
    ),
    (
        "add funds at market with a limit price",
        AddFunds(T0, limit_price=Decimal(49000), units=Decimal("0.1")),
        "limit_price",
    ),
    (
        "reduce funds with units and percent",
        ReduceFunds(T0, units=Decimal("0.01"), percent=Decimal(10)),
        "units",
    ),
    ("reduce funds by a negative percent", ReduceFunds(T0, percent=Decimal(-10)), "percent"),
    ("reduce funds by 100 percent", ReduceFunds(T0, percent=Decimal(100)), "percent"),
    ("reduce funds below the minimum cost", ReduceFunds(T0, units=Decimal("0.00009")), "units"),
    ("reduce funds leaving dust", ReduceFunds(T0, units=Decimal("0.09985")), "units"),
    ("reduce funds by more than is held", ReduceFunds(T0, units=Decimal(1)), "units"),
]


@pytest.mark.parametrize(
    ("input", "field"), [c[1:] for c in ACTION_CASES], ids=[c[0] for c in ACTION_CASES]
)
def test_a_bad_action_input_is_refused_naming_its_field(input: object, field: str) -> None:
    assert refused_fields(input) == [field]


def test_an_edit_cannot_change_a_step_that_has_filled() -> None:
    # Arrange: 0.1 bought at 50,000 (0.0999 held after the fee); step 1 (+2% of 50,050.05 =
    # 51,051.05) fills at 51,100.
    run = active_trade()
    run.tick("51100")
    moved = (step("50", percent="3"), step("50", percent="4"))

    # Act
    with pytest.raises(InvalidSpec) as refused:
        decide(
            run.trade,
            Edit(run.now, replace(run.trade.spec, take_profit=moved), frozenset({"take_profit"})),
        )

    # Assert
    assert [v.field for v in refused.value.violations] == ["take_profit.steps[0]"]


def test_an_edit_of_an_active_trade_checks_targets_against_the_average_entry() -> None:
    # Arrange: average entry 50,050.05 (5,000 USDT for 0.0999 BTC net of the fee).
    run = active_trade()
    below = (step("100", price="50050"),)

    # Act
    with pytest.raises(InvalidSpec) as refused:
        decide(
            run.trade,
            Edit(run.now, replace(run.trade.spec, take_profit=below), frozenset({"take_profit"})),
        )

    # Assert
    assert [v.field for v in refused.value.violations] == ["take_profit.steps[0].price"]


def test_an_edit_naming_a_field_that_does_not_exist_is_refused_on_the_update_mask() -> None:
    run = active_trade()
    with pytest.raises(InvalidSpec) as refused:
        decide(run.trade, Edit(run.now, run.trade.spec, frozenset({"symbol"})))
    assert [v.field for v in refused.value.violations] == ["update_mask"]
