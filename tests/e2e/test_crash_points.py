"""The crash-point suite (issue 12 §8): `smarttrade serve` killed with SIGKILL at each point
where a crash matters, restarted on the same database, and compared with an uninterrupted
run of the same scenario on the same price path: the same final state, close reason, legs,
fills, position and balances.

Each point is a named failpoint (smarttrade/failpoints.py) armed in the interrupted run, so
it is hit on every run, and the test fails if it is not (the process must have died by it);
on the Binance stub, a fill made while the service is down is the harness's own kill. See
tests/support/crash_points.py for how a run is played and what is compared.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.binance_service import binance_venue, open_binance_account, stub_settings
from tests.support.crash_points import (
    KILLED_BEFORE,
    Outcome,
    Played,
    Run,
    Scenario,
    Step,
    add_funds,
    close_at_market,
    create,
    paper_account,
    play,
    reduce_funds,
    tick,
    venue_price,
)

BTC = "BTC/USDT"


def steps(*prices: str, percent: bool = False) -> pb.TakeProfit:
    """Take-profit steps sharing the volume equally, at absolute prices (or percents)."""
    share = str(100 // len(prices))
    last = str(100 - int(share) * (len(prices) - 1))
    volumes = [share] * (len(prices) - 1) + [last]
    return pb.TakeProfit(
        steps=[
            pb.TakeProfitStep(percent=p, volume_percent=v)
            if percent
            else pb.TakeProfitStep(price=p, volume_percent=v)
            for p, v in zip(prices, volumes, strict=True)
        ]
    )


def trade(
    side: pb.Side.ValueType, units: str, take_profit: pb.TakeProfit, stop: str
) -> Callable[[Run], pb.SmartTrade]:
    def settings(run: Run) -> pb.SmartTrade:
        return pb.SmartTrade(
            account=run.world["account"],
            symbol=BTC,
            side=side,
            entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units=units),
            take_profit=take_profit,
            stop_loss=pb.StopLoss(price=stop),
        )

    return settings


def limit_entry_with_breakeven(run: Run) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=run.world["account"],
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="1", limit_price="95"),
        take_profit=steps("110", "120"),
        stop_loss=pb.StopLoss(price="90", move_to_breakeven=True),
    )


trailing_take_profit = pb.TakeProfit(
    steps=[pb.TakeProfitStep(price="110", volume_percent="100", trailing_percent="1")]
)


def binance_account() -> Step:
    async def act(run: Run, key: str) -> None:
        run.world["account"] = await open_binance_account(run.service, key)

    return Step("binance account", act)


def active_with_take_profit_open(t: pb.SmartTrade) -> bool:
    return t.state == pb.SMART_TRADE_STATE_ACTIVE and any(
        o.status == pb.ORDER_STATUS_OPEN for leg in t.legs if leg.id == "tp1" for o in leg.orders
    )


def closed(t: pb.SmartTrade) -> bool:
    return t.state == pb.SMART_TRADE_STATE_CLOSED


SCENARIOS = {
    s.name: s
    for s in (
        # A BUY stopped out: the stop cancels the take profit, then sells at market.
        Scenario(
            "buy-stopped",
            [
                paper_account(USDT="10000"),
                tick(BTC, "100"),
                create(trade(pb.SIDE_BUY, "1", steps("150"), stop="95")),
                tick(BTC, "97"),
                tick(BTC, "94"),
            ],
        ),
        # A BUY's take profit in two limit steps, each filled by a tick.
        Scenario(
            "buy-take-profit-steps",
            [
                paper_account(USDT="10000"),
                tick(BTC, "100"),
                create(trade(pb.SIDE_BUY, "1", steps("120", "150"), stop="90")),
                tick(BTC, "125"),
                tick(BTC, "155"),
            ],
        ),
        # Add Funds moves the average: the percent take profit is cancelled and replaced for
        # the whole position, which the last tick fills.
        Scenario(
            "buy-add-funds",
            [
                paper_account(USDT="10000"),
                tick(BTC, "100"),
                create(trade(pb.SIDE_BUY, "1", steps("40", percent=True), stop="90")),
                tick(BTC, "110"),
                add_funds("1"),
                tick(BTC, "160"),
            ],
        ),
        # Close at Market: the take profit is cancelled, everything sold at market.
        Scenario(
            "buy-closed-at-market",
            [
                paper_account(USDT="10000"),
                tick(BTC, "100"),
                create(trade(pb.SIDE_BUY, "1", steps("150"), stop="90")),
                tick(BTC, "110"),
                close_at_market(),
            ],
        ),
        # Reduce Funds sells half at market and shrinks both steps, then both fill.
        Scenario(
            "buy-reduced",
            [
                paper_account(USDT="10000"),
                tick(BTC, "100"),
                create(trade(pb.SIDE_BUY, "2", steps("120", "150"), stop="90")),
                tick(BTC, "105"),
                reduce_funds("50"),
                tick(BTC, "125"),
                tick(BTC, "155"),
            ],
        ),
        # A SELL (short of coins held) closed at market: the exit buys back, fee grossed up.
        Scenario(
            "sell-closed-at-market",
            [
                paper_account(BTC="2", USDT="1000"),
                tick(BTC, "100"),
                create(trade(pb.SIDE_SELL, "1", steps("80"), stop="110")),
                tick(BTC, "95"),
                close_at_market(),
            ],
        ),
        # A SELL's take profit and stop buy back, the fee in base grossed up.
        Scenario(
            "sell-stopped",
            [
                paper_account(BTC="2", USDT="1000"),
                tick(BTC, "100"),
                create(trade(pb.SIDE_SELL, "1", steps("85", "70"), stop="105")),
                tick(BTC, "84"),
                tick(BTC, "106"),
            ],
        ),
        # A BUY limit entry filled by a tick; the first step's fill moves the stop to
        # breakeven, where it fires.
        Scenario(
            "buy-limit-entry-breakeven",
            [
                paper_account(USDT="10000"),
                tick(BTC, "100"),
                create(limit_entry_with_breakeven),
                tick(BTC, "94"),
                tick(BTC, "111"),
                tick(BTC, "95"),
            ],
        ),
        # A trailing take profit: activated at its target, it sells at market (CLOSING) once
        # the price falls back 1 % from the highest.
        Scenario(
            "buy-trailing-take-profit",
            [
                paper_account(USDT="10000"),
                tick(BTC, "100"),
                create(trade(pb.SIDE_BUY, "1", trailing_take_profit, stop="90")),
                tick(BTC, "111"),
                tick(BTC, "115"),
                tick(BTC, "113"),
            ],
        ),
        # On the Binance stub (real ccxt): a BUY stopped out by the venue's price.
        Scenario(
            "binance-buy-stopped",
            [
                binance_account(),
                create(trade(pb.SIDE_BUY, "0.1", steps("120"), stop="90")),
                venue_price(BTC, "100", active_with_take_profit_open),
                venue_price(BTC, "85", closed),
            ],
            venue="binance",
        ),
        # On the Binance stub: the take profit fills at the venue.
        Scenario(
            "binance-take-profit",
            [
                binance_account(),
                create(trade(pb.SIDE_BUY, "0.1", steps("120"), stop="90")),
                venue_price(BTC, "100", active_with_take_profit_open),
                venue_price(BTC, "125", closed),
            ],
            venue="binance",
        ),
    )
}


# (scenario, point): issue 12 §8's points, each in the scenario where it matters, run by
# `make test`. The long variant (SMARTTRADE_CRASH_POINTS=all) crashes each scenario at every
# point its uninterrupted run reaches.
POINTS = [
    # (a) after an intent commits and before the send: an entry, a stop's market sell
    ("buy-stopped", "order:entry-0:before-send"),
    ("buy-stopped", "order:sl-0:before-send"),
    ("binance-buy-stopped", "order:entry-0:before-send"),
    ("binance-buy-stopped", "order:sl-0:before-send"),
    ("sell-stopped", "order:sl-0:before-send"),
    # (b) after the venue accepted and before its answer commits
    ("buy-stopped", "order:entry-0:after-send"),
    ("buy-stopped", "order:sl-0:after-send"),
    # (c) after a fill exists at the venue and before it is applied
    ("buy-limit-entry-breakeven", "paper-fill:entry-0:before-applied"),
    ("buy-take-profit-steps", "paper-fill:tp1-0:before-applied"),
    ("buy-take-profit-steps", "paper-fill:tp2-0:before-applied"),
    ("binance-take-profit", f"{KILLED_BEFORE}venue price 125"),
    # (d) during a cancel-and-replace of a take profit after Add Funds
    ("buy-add-funds", "order:add1-0:after-send"),
    ("buy-add-funds", "cancel:tp1-0:before-send"),
    ("buy-add-funds", "cancel:tp1-0:after-send"),
    ("buy-add-funds", "order:tp1-1:before-send"),
    # (e) in CLOSING, with the exit order in flight
    ("buy-closed-at-market", "cancel:tp1-0:before-send"),
    ("buy-closed-at-market", "order:close-0:before-send"),
    ("buy-closed-at-market", "order:close-0:after-send"),
    ("sell-closed-at-market", "order:close-0:after-send"),
    ("buy-trailing-take-profit", "order:tp1-0:after-send"),
    # (f) during Reduce Funds
    ("buy-reduced", "order:reduce1-0:before-send"),
    ("buy-reduced", "order:reduce1-0:after-send"),
    ("buy-reduced", "order:tp2-1:before-send"),
]
LONG = os.environ.get("SMARTTRADE_CRASH_POINTS") == "all"


@pytest.fixture
async def new_database(
    postgres_server: str, migrated_template: str
) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Fresh migrated databases (an uninterrupted run and an interrupted one each need one)."""
    made: list[str] = []

    async def new() -> str:
        name = f"smarttrade_crash_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(postgres_server)
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
        finally:
            await admin.close()
        made.append(name)
        return make_url(postgres_server).set(database=name).render_as_string(False)

    yield new
    admin = await asyncpg.connect(postgres_server)
    try:
        for name in made:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def played(
    scenario: Scenario, database: str, data_dir: Path, point: str = "", trace: bool = False
) -> Played:
    if scenario.venue == "paper":
        return await play(scenario, database, data_dir, point=point, trace=trace)
    async with binance_venue() as venue:
        env = stub_settings(venue)
        return await play(
            scenario, database, data_dir, point=point, env=env, venue=venue, trace=trace
        )


_uninterrupted: dict[str, Outcome] = {}


async def uninterrupted(
    scenario: Scenario, new_database: Callable[[], Awaitable[str]], data_dir: Path
) -> Outcome:
    """The scenario's uninterrupted run, played once per session."""
    if scenario.name not in _uninterrupted:
        run = await played(scenario, await new_database(), data_dir)
        assert run.crashes == []
        _uninterrupted[scenario.name] = run.outcome
    return _uninterrupted[scenario.name]


def compare(outcome: Outcome, expected: Outcome) -> None:
    assert outcome == expected


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "point"), POINTS)
async def test_a_crash_at_the_point_ends_as_the_uninterrupted_run(
    scenario: str,
    point: str,
    new_database: Callable[[], Awaitable[str]],
    tmp_path: Path,
) -> None:
    # Arrange, Act: the uninterrupted run (once per scenario) alongside the interrupted one;
    # they share nothing but the machine, and each waits on conditions, not on time.
    chosen = SCENARIOS[scenario]
    expected, run = await asyncio.gather(
        uninterrupted(chosen, new_database, tmp_path / "uninterrupted"),
        played(chosen, await new_database(), tmp_path / "crashed", point),
    )

    # Assert
    assert run.crashes == [point], "the point was never reached"
    compare(run.outcome, expected)


@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="the long variant: SMARTTRADE_CRASH_POINTS=all")
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_a_crash_at_every_point_a_scenario_reaches_ends_as_the_uninterrupted_run(
    scenario: str, new_database: Callable[[], Awaitable[str]], tmp_path: Path
) -> None:
    # Arrange: every failpoint the uninterrupted run reaches (each mutating call's write,
    # each order and cancel, each paper fill), and on the stub each move of the venue made
    # while the service is down.
    chosen = SCENARIOS[scenario]
    baseline = await played(chosen, await new_database(), tmp_path / "uninterrupted", trace=True)
    points = baseline.reached + [
        f"{KILLED_BEFORE}{step.name}" for step in chosen.steps if step.until is not None
    ]

    # Act: two runs at a time (each waits on conditions, not on time)
    differing: dict[str, str] = {}
    two_at_a_time = asyncio.Semaphore(2)

    async def crash_at(n: int, point: str) -> None:
        async with two_at_a_time:
            run = await played(chosen, await new_database(), tmp_path / f"crashed-{n}", point)
        try:
            assert run.crashes == [point], "the point was never reached"
            compare(run.outcome, baseline.outcome)
        except AssertionError as error:
            differing[point] = str(error)

    await asyncio.gather(*(crash_at(n, point) for n, point in enumerate(points)))

    # Assert
    assert differing == {}
