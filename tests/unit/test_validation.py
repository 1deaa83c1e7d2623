"""Validation of a trade's settings (DESIGN §2.5): each bad field is named once, by its path.

Every case starts from valid settings (BTC/USDT at 50,000; lot 0.00001, tick 0.01, minimum
0.00001 BTC and 5 USDT) and breaks exactly one field, so the violation list must name that
field and nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from smarttrade.domain.decide import create
from smarttrade.domain.errors import InvalidSpec
from smarttrade.domain.market import Market
from smarttrade.domain.messages import Decision
from smarttrade.domain.spec import (
    EntrySpec,
    EntryType,
    LeverageSpec,
    MarginMode,
    MarketType,
    StopLossSpec,
    TradeSpec,
)
from smarttrade.domain.validation import spec_violations
from smarttrade.domain.values import OrderType, Side
from tests.unit.builders import (
    conditional_entry,
    limit_entry,
    market_entry,
    skip_entry,
    step,
    stop,
    trade_spec,
    trailing_entry,
)
from tests.unit.driver import BTC, T0

LAST = Decimal(50000)
GOOD_STEPS = (step("50", percent="2"), step("50", percent="4"))


def buy(**changes: object) -> TradeSpec:
    spec = trade_spec(Side.BUY, market_entry(), GOOD_STEPS, stop(percent="5"))
    return replace(spec, **changes)  # type: ignore[arg-type]


def sell(**changes: object) -> TradeSpec:
    spec = trade_spec(Side.SELL, market_entry(), GOOD_STEPS, stop(percent="5"))
    return replace(spec, **changes)  # type: ignore[arg-type]


def create_at_last(spec: TradeSpec, market: Market = BTC) -> Decision:
    """A new BTC/USDT trade from `spec` at the last price."""
    return create(
        trade_id="t1",
        tenant_id="tenant",
        account_id="acct",
        exchange_id="paper",
        spec=spec,
        market=market,
        last_price=LAST,
        at=T0,
    )


def fields_named(spec: TradeSpec) -> list[str]:
    return [violation.field for violation in spec_violations(spec, BTC, LAST)]


# ---- the starting points are valid -------------------------------------------------------


@pytest.mark.parametrize("spec", [buy(), sell()], ids=["buy", "sell"])
def test_the_settings_every_case_starts_from_are_valid(spec: TradeSpec) -> None:
    assert fields_named(spec) == []


def test_create_refuses_bad_settings_naming_every_bad_field_once() -> None:
    # Arrange: two bad fields at once.
    spec = buy(
        take_profit=(step("50", percent="2"), step("40", percent="4")),
        stop_loss=stop(percent="5", timeout=0),
    )

    # Act
    with pytest.raises(InvalidSpec) as refused:
        create_at_last(spec)

    # Assert
    fields = [violation.field for violation in refused.value.violations]
    assert sorted(fields) == ["stop_loss.timeout", "take_profit.steps"]


# ---- take profit -------------------------------------------------------------------------

CASES: list[tuple[str, TradeSpec, str]] = [
    # (id, bad settings, the one field named)
    (
        "a step volume of zero",
        buy(take_profit=(step("0", percent="2"), step("100", percent="4"))),
        "take_profit.steps[0].volume_percent",
    ),
    (
        "a negative step volume",
        buy(take_profit=(step("-10", percent="2"), step("110", percent="4"))),
        "take_profit.steps[0].volume_percent",
    ),
    (
        "volumes summing to 90",
        buy(take_profit=(step("50", percent="2"), step("40", percent="4"))),
        "take_profit.steps",
    ),
    (
        "volumes summing to 100.01",
        buy(take_profit=(step("50", percent="2"), step("50.01", percent="4"))),
        "take_profit.steps",
    ),
    (
        "nine steps",
        buy(
            take_profit=(
                *(step("11.12", percent=str(n)) for n in range(1, 9)),
                step("11.04", percent="9"),
            )
        ),
        "take_profit.steps",
    ),
    (
        "a step with both a price and a percent",
        buy(take_profit=(step("100", price="52000", percent="2"),)),
        "take_profit.steps[0].price",
    ),
    (
        "a step with neither a price nor a percent",
        buy(take_profit=(step("100"),)),
        "take_profit.steps[0].price",
    ),
    (
        "a trailing step that is not the last",
        buy(take_profit=(step("50", percent="2", trailing="1"), step("50", percent="4"))),
        "take_profit.steps[0].trailing_percent",
    ),
    (
        "a trailing percent of 100",
        buy(take_profit=(step("100", percent="2", trailing="100"),)),
        "take_profit.steps[0].trailing_percent",
    ),
    (
        "a BUY target below the entry",
        buy(take_profit=(step("100", price="49999.99"),)),
        "take_profit.steps[0].price",
    ),
    (
        "a BUY target at the entry",
        buy(take_profit=(step("100", price="50000"),)),
        "take_profit.steps[0].price",
    ),
    (
        "a SELL target above the entry",
        sell(take_profit=(step("100", price="50000.01"),)),
        "take_profit.steps[0].price",
    ),
    (
        "a SELL target of 100 percent",
        sell(take_profit=(step("100", percent="100"),)),
        "take_profit.steps[0].percent",
    ),
    (
        "a negative target percent",
        buy(take_profit=(step("100", percent="-2"),)),
        "take_profit.steps[0].percent",
    ),
    (
        "a BUY target below a limit entry",
        buy(entry=limit_entry("48000"), take_profit=(step("100", price="47999"),)),
        "take_profit.steps[0].price",
    ),
    (
        "a BUY target that rounds onto a limit entry",
        buy(entry=limit_entry("48000"), take_profit=(step("100", price="48000.004"),)),
        "take_profit.steps[0].price",
    ),
    (
        "a SELL target that rounds onto a limit entry",
        sell(entry=limit_entry("52000"), take_profit=(step("100", price="51999.996"),)),
        "take_profit.steps[0].price",
    ),
    # ---- stop loss
    (
        "breakeven with a single step",
        buy(take_profit=(step("100", percent="2"),), stop_loss=stop(percent="5", breakeven=True)),
        "stop_loss.move_to_breakeven",
    ),
    (
        "breakeven with no step",
        buy(take_profit=(), stop_loss=stop(percent="5", breakeven=True)),
        "stop_loss.move_to_breakeven",
    ),
    ("a BUY stop above the entry", buy(stop_loss=stop(price="50000.01")), "stop_loss.price"),
    ("a SELL stop below the entry", sell(stop_loss=stop(price="49999.99")), "stop_loss.price"),
    (
        "a stop with both a price and a percent",
        buy(stop_loss=stop(price="48000", percent="5")),
        "stop_loss.price",
    ),
    ("a stop with neither a price nor a percent", buy(stop_loss=stop()), "stop_loss.price"),
    ("a BUY stop of 100 percent", buy(stop_loss=stop(percent="100")), "stop_loss.percent"),
    (
        "a stop timeout of 1.5 seconds",
        buy(stop_loss=replace(stop(percent="5"), timeout=timedelta(seconds=1.5))),
        "stop_loss.timeout",
    ),
    (
        "a stop timeout of 0 seconds",
        buy(stop_loss=stop(percent="5", timeout=0)),
        "stop_loss.timeout",
    ),
    ("a negative stop timeout", buy(stop_loss=stop(percent="5", timeout=-30)), "stop_loss.timeout"),
    (
        "a limit stop without its price",
        buy(stop_loss=StopLossSpec(percent=Decimal(5), order_type=OrderType.LIMIT)),
        "stop_loss.limit_price",
    ),
    (
        "a market stop with a limit price",
        buy(stop_loss=StopLossSpec(percent=Decimal(5), limit_price=Decimal(47000))),
        "stop_loss.limit_price",
    ),
    (
        "a trailing stop of 0 percent",
        buy(stop_loss=stop(percent="5", trailing="0")),
        "stop_loss.trailing_percent",
    ),
    # ---- entry size
    ("zero units", buy(entry=market_entry(units="0")), "entry.units"),
    ("a negative total", buy(entry=market_entry(units=None, total="-600")), "entry.total"),
    (
        "both units and total",
        buy(entry=EntrySpec(EntryType.MARKET, units=Decimal("0.1"), total=Decimal(5000))),
        "entry.units",
    ),
    ("neither units nor total", buy(entry=EntrySpec(EntryType.MARKET)), "entry.units"),
    ("units that round down to zero", buy(entry=market_entry(units="0.000009")), "entry.units"),
    (
        "a total below the minimum cost",
        buy(entry=market_entry(units=None, total="4.99")),
        "entry.total",
    ),
    ("units below the minimum cost", buy(entry=market_entry(units="0.00009")), "entry.units"),
    # ---- entry prices, per entry type
    (
        "a limit entry without its price",
        buy(entry=EntrySpec(EntryType.LIMIT, units=Decimal("0.1"))),
        "entry.limit_price",
    ),
    ("a limit entry at a zero price", buy(entry=limit_entry("0")), "entry.limit_price"),
    (
        "a limit entry price that rounds to zero",
        buy(entry=limit_entry("0.004", units="1000")),
        "entry.limit_price",
    ),
    (
        "a limit stop price that rounds to zero",
        buy(stop_loss=stop(percent="5", limit="0.004")),
        "stop_loss.limit_price",
    ),
    (
        "a market entry with a limit price",
        buy(entry=EntrySpec(EntryType.MARKET, units=Decimal("0.1"), limit_price=Decimal(49000))),
        "entry.limit_price",
    ),
    (
        "a conditional entry without its trigger",
        buy(entry=EntrySpec(EntryType.CONDITIONAL, units=Decimal("0.1"))),
        "entry.trigger_price",
    ),
    (
        "a market entry with a trigger",
        buy(entry=EntrySpec(EntryType.MARKET, units=Decimal("0.1"), trigger_price=Decimal(49000))),
        "entry.trigger_price",
    ),
    (
        "a conditional limit entry without its price",
        buy(
            entry=EntrySpec(
                EntryType.CONDITIONAL,
                units=Decimal("0.1"),
                trigger_price=Decimal(49000),
                order_type=OrderType.LIMIT,
            )
        ),
        "entry.limit_price",
    ),
    (
        "a conditional market entry with a limit price",
        buy(
            entry=EntrySpec(
                EntryType.CONDITIONAL,
                units=Decimal("0.1"),
                trigger_price=Decimal(49000),
                limit_price=Decimal(49000),
            )
        ),
        "entry.limit_price",
    ),
    (
        "a skipped entry without its average price",
        buy(entry=EntrySpec(EntryType.SKIP, units=Decimal("0.1"))),
        "entry.average_price",
    ),
    (
        "a market entry with an average price",
        buy(entry=EntrySpec(EntryType.MARKET, units=Decimal("0.1"), average_price=Decimal(49000))),
        "entry.average_price",
    ),
    (
        "a trailing limit entry",
        buy(
            entry=EntrySpec(
                EntryType.LIMIT,
                units=Decimal("0.1"),
                limit_price=Decimal(49000),
                trailing_percent=Decimal(1),
            )
        ),
        "entry.trailing_percent",
    ),
    ("a trailing entry of 0 percent", buy(entry=trailing_entry("0")), "entry.trailing_percent"),
    (
        "a trailing skipped entry",
        buy(entry=replace(skip_entry("49000"), trailing_percent=Decimal(1))),
        "entry.trailing_percent",
    ),
    ("a trigger at a zero price", buy(entry=conditional_entry("0")), "entry.trigger_price"),
]


@pytest.mark.parametrize(("spec", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_field_is_named_once_and_alone(spec: TradeSpec, field: str) -> None:
    # Act
    fields = fields_named(spec)

    # Assert
    assert fields == [field]


def test_eight_steps_are_allowed() -> None:
    steps = tuple(step("12.5", percent=str(n)) for n in range(1, 9))
    assert fields_named(buy(take_profit=steps)) == []


def test_the_last_step_may_trail() -> None:
    steps = (step("50", percent="2"), step("50", percent="4", trailing="1"))
    assert fields_named(buy(take_profit=steps)) == []


def test_a_stop_timeout_of_whole_seconds_is_allowed() -> None:
    assert fields_named(buy(stop_loss=stop(percent="5", timeout=30))) == []


@pytest.mark.parametrize("side", list(Side), ids=lambda side: side.value)
def test_targets_are_checked_against_the_skipped_entrys_average_price(side: Side) -> None:
    # A BUY bought at 40,000 may take profit at 45,000 even while the price is 50,000.
    average, target = ("40000", "45000") if side is Side.BUY else ("60000", "55000")
    spec = trade_spec(side, skip_entry(average), (step("100", price=target),))
    assert fields_named(spec) == []


PERPETUAL = dataclasses.replace(
    BTC,
    symbol="BTC/USDT:USDT",
    settle="USDT",
    max_leverage=Decimal(125),
    maintenance_rate=Decimal("0.004"),
)


def linear(value: str | None = "3", mode: MarginMode | None = MarginMode.ISOLATED) -> LeverageSpec:
    return LeverageSpec(MarketType.LINEAR, Decimal(value) if value else None, mode)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"symbol": BTC.symbol}, "symbol"),
        ({"leverage": linear("0")}, "leverage.value"),
        ({"leverage": linear("126")}, "leverage.value"),
        ({"leverage": linear("2.5")}, "leverage.value"),
        ({"entry": skip_entry("50000")}, "entry.type"),
    ],
    ids=["on a spot market", "leverage 0", "above the maximum", "not whole", "a skip entry"],
)
def test_a_futures_trade_the_market_cannot_run_is_refused_naming_the_field(
    changes: dict[str, object], field: str
) -> None:
    # Arrange: otherwise valid settings, for either side.
    for spec in (buy(leverage=linear()), sell(leverage=linear())):
        spec = replace(spec, **({"symbol": PERPETUAL.symbol} | changes))  # type: ignore[arg-type]
        market = BTC if spec.symbol == BTC.symbol else PERPETUAL

        # Act
        with pytest.raises(InvalidSpec) as refused:
            create_at_last(spec, market)

        # Assert
        assert [violation.field for violation in refused.value.violations] == [field]


def test_a_leverage_whose_margin_is_not_above_maintenance_is_refused() -> None:
    # 1 / 125 = 0.8 % of margin against a maintenance margin of 1 %.
    risky = dataclasses.replace(PERPETUAL, maintenance_rate=Decimal("0.01"))
    spec = buy(symbol=risky.symbol, leverage=linear("125"))
    with pytest.raises(InvalidSpec) as refused:
        create_at_last(spec, risky)
    (violation,) = refused.value.violations
    assert violation.field == "leverage.value"
    assert "maintenance" in violation.description


def test_a_futures_trade_on_a_perpetual_runs_isolated_at_leverage_one_when_not_told() -> None:
    for spec in (buy(leverage=linear(None, None)), sell(leverage=linear(None, None))):
        decision = create_at_last(replace(spec, symbol=PERPETUAL.symbol), PERPETUAL)
        assert decision.trade.spec.leverage == linear("1", MarginMode.ISOLATED)


def test_a_spot_trade_on_a_perpetual_contract_is_refused_naming_the_symbol() -> None:
    # A venue's perpetual (ccxt's BTC/USDT:USDT), as the ccxt adapter marks it.
    perpetual = dataclasses.replace(
        BTC, symbol="BTC/USDT:USDT", settle="USDT", max_leverage=Decimal(125)
    )
    for spec in (buy(symbol=perpetual.symbol), sell(symbol=perpetual.symbol)):
        with pytest.raises(InvalidSpec) as refused:
            create_at_last(spec, perpetual)

        (violation,) = refused.value.violations
        assert violation.field == "symbol"
        assert "perpetual contract: set leverage.market_type LINEAR" in violation.description


def test_a_spot_trade_may_say_its_leverage_is_one_and_name_a_margin_mode() -> None:
    # The contract: a margin mode is ignored for spot.
    spot = LeverageSpec(MarketType.SPOT, Decimal(1), MarginMode.CROSS)
    decision = create_at_last(buy(leverage=spot))
    assert decision.trade.spec.leverage == spot
