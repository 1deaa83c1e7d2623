"""Checks that hold in every unit test that runs a trade on the paper book."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit import driver
from tests.unit.builders import dust_orders


@pytest.fixture(autouse=True)
def no_rule_ever_sends_a_zero_or_dust_order() -> Iterator[None]:
    """Every order sent in the test is on the lot and tick grid and meets the market's
    minimum amount and cost at the price of the moment."""
    driver.RUNS.clear()
    yield
    for run in driver.RUNS:
        assert dust_orders(run.placements) == []
    driver.RUNS.clear()
