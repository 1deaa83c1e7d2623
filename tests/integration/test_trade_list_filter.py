"""ListSmartTrades' filter and order on real PostgreSQL: each term of the filter as SQL, the
combinations, the orders and keyset paging with a filter (store/trade_query.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from smarttrade.domain.decide import create
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.messages import Decision
from smarttrade.domain.model import CloseReason
from smarttrade.domain.spec import EntrySpec, EntryType, TradeSpec
from smarttrade.domain.trade_query import Order, SortKey, order_by, parse_filter
from smarttrade.domain.values import Side
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS
from smarttrade.store.database import Database, open_database
from smarttrade.store.trades import TradeFilter
from smarttrade.store.unit_of_work import UnitOfWorkFactory
from tests.support.store import Published

MARKETS = {m.symbol: m for m in DEFAULT_MARKETS}
TENANT, OTHER, ACCOUNT, ACCOUNT_2 = "tenant-a", "tenant-b", "00000000000000a1", "00000000000000a2"
AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def database(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    opened = await open_database(database_url, tmp_path)
    async with opened.pool.acquire() as connection:
        for account, tenant in ((ACCOUNT, TENANT), (ACCOUNT_2, TENANT), ("00b1", OTHER)):
            await connection.execute(
                "INSERT INTO exchange_accounts (id, tenant_id, display_name, exchange,"
                " paper_settings, created_at) VALUES ($1, $2, 'paper', 'paper', '{}', $3)",
                account,
                tenant,
                AT,
            )
    yield opened
    await opened.close()


@pytest.fixture
def uow(database: Database) -> UnitOfWorkFactory:
    return UnitOfWorkFactory(database, Published())


def a_trade(
    trade_id: str,
    *,
    minutes: int = 0,
    symbol: str = "BTC/USDT",
    side: Side = Side.BUY,
    labels: dict[str, str] | None = None,
    closed: CloseReason | None = None,
    tenant: str = TENANT,
    account: str = ACCOUNT,
) -> Decision:
    """A trade holding 0.1 coins bought at 100 (SKIP), created `minutes` after AT; CLOSED
    with `closed` an hour after its creation, when given."""
    spec = TradeSpec(
        symbol=symbol,
        side=side,
        entry=EntrySpec(EntryType.SKIP, units=Decimal("0.1"), average_price=Decimal(100)),
        labels=labels or {},
    )
    at = AT + timedelta(minutes=minutes)
    decision = create(
        trade_id=trade_id,
        tenant_id=tenant,
        account_id=account,
        exchange_id="paper",
        spec=spec,
        market=MARKETS[symbol],
        last_price=Decimal(100),
        at=at,
    )
    if closed is not None:  # the store records what it is given: a closed trade's row
        trade = decision.trade
        trade.state, trade.close_reason = TradeState.CLOSED, closed
        trade.ended_at = trade.updated_at = at + timedelta(hours=1)
    return decision


async def record(uow: UnitOfWorkFactory, *decisions: Decision) -> None:
    for decision in decisions:
        async with uow() as unit:
            unit.trades.record(decision, None)
            await unit.commit()


async def listed(
    uow: UnitOfWorkFactory, text: str = "", order: Order | None = None, tenant: str = TENANT
) -> list[str]:
    async with uow() as unit:
        found = await unit.trades.page(
            tenant, TradeFilter(expression=parse_filter(text)), None, 100, order or order_by("")
        )
    return [trade.id for trade, _ in found]


@pytest.fixture
async def trades(uow: UnitOfWorkFactory) -> None:
    """t1..t5 of tenant-a, t1 oldest; one trade of tenant-b labelled like t1."""
    await record(
        uow,
        a_trade("t1", minutes=1, labels={"bot": "grid", "signal": "s-1"}),
        a_trade("t2", minutes=2, symbol="ETH/USDT", labels={"bot": "dca"}),
        a_trade("t3", minutes=3, side=Side.SELL, closed=CloseReason.STOP_LOSS),
        a_trade("t4", minutes=4, closed=CloseReason.TAKE_PROFIT, account=ACCOUNT_2),
        a_trade("t5", minutes=5, labels={"bot": "grid"}),
        a_trade("x1", minutes=1, labels={"bot": "grid"}, tenant=OTHER, account="00b1"),
    )


pytestmark = pytest.mark.usefixtures("trades")


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("state = ACTIVE", ["t5", "t2", "t1"]),
        ("state != ACTIVE", ["t4", "t3"]),
        ("state = SMART_TRADE_STATE_CLOSED", ["t4", "t3"]),
        ("side = SELL", ["t3"]),
        ('symbol = "ETH/USDT"', ["t2"]),
        (f"account = exchangeAccounts/{ACCOUNT_2}", ["t4"]),
        ("close_reason = STOP_LOSS", ["t3"]),
        ("close_reason != STOP_LOSS", ["t5", "t4", "t2", "t1"]),
        ('labels.bot = "grid"', ["t5", "t1"]),
        ("labels.bot != grid", ["t4", "t3", "t2"]),
        ("labels.signal:*", ["t1"]),
        ("labels:bot", ["t5", "t2", "t1"]),
        ('create_time >= "2026-12-01T12:04:00Z"', ["t5", "t4"]),
        ('create_time < "2026-12-01T12:02:00Z"', ["t1"]),
        ('create_time = "2026-12-01T13:03:00+01:00"', ["t3"]),
        ('end_time > "2026-12-01T13:03:30Z"', ["t4"]),
        ('end_time <= "2026-12-01T13:03:00Z"', ["t3"]),
        ('end_time != "2026-12-01T13:03:00Z"', ["t5", "t4", "t2", "t1"]),
    ],
)
async def test_each_filter_term_selects_its_trades_of_the_tenant(
    uow: UnitOfWorkFactory, text: str, ids: list[str]
) -> None:
    assert await listed(uow, text) == ids


async def test_terms_combine_with_and_or_not_and_parentheses(uow: UnitOfWorkFactory) -> None:
    assert await listed(uow, "labels.bot = grid AND NOT labels.signal:*") == ["t5"]
    assert await listed(uow, "side = SELL OR symbol = ETH/USDT") == ["t3", "t2"]
    assert await listed(uow, "state = ACTIVE (labels.bot = dca OR labels.signal:*)") == [
        "t2",
        "t1",
    ]
    assert await listed(uow, "-(state = ACTIVE OR side = SELL)") == ["t4"]


async def test_a_label_filter_never_finds_another_tenants_trades(uow: UnitOfWorkFactory) -> None:
    assert await listed(uow, "labels.bot = grid", tenant=OTHER) == ["x1"]
    assert "x1" not in await listed(uow, "labels.bot = grid")


async def test_a_label_value_is_a_bound_value_not_sql(uow: UnitOfWorkFactory) -> None:
    assert await listed(uow, "labels.bot = \"grid' OR '1'='1\"") == []


async def test_the_orders_by_create_and_update_time_either_way(uow: UnitOfWorkFactory) -> None:
    assert await listed(uow, order=order_by("create_time")) == ["t1", "t2", "t3", "t4", "t5"]
    assert await listed(uow) == ["t5", "t4", "t3", "t2", "t1"]
    # t3 and t4 were updated an hour after they were created, after t5's creation
    assert await listed(uow, order=order_by("update_time desc")) == ["t4", "t3", "t5", "t2", "t1"]


async def test_the_order_by_realized_pnl_reads_the_column_and_ties_by_id(
    uow: UnitOfWorkFactory, database: Database
) -> None:
    async with database.pool.acquire() as connection:
        for trade_id, pnl in (("t1", "5"), ("t2", "-3"), ("t3", "12.5"), ("t4", None)):
            await connection.execute(
                "UPDATE smart_trades SET realized_pnl = $2 WHERE id = $1",
                trade_id,
                Decimal(pnl) if pnl is not None else None,
            )

    by_pnl = await listed(uow, order=order_by("realized_pnl"))
    by_pnl_desc = await listed(uow, order=Order(SortKey.REALIZED_PNL, descending=True))

    assert by_pnl == ["t2", "t4", "t5", "t1", "t3"]  # NULL (t4) counts as 0, as t5's
    assert by_pnl_desc == ["t3", "t1", "t5", "t4", "t2"]


async def test_a_new_trade_row_carries_its_realized_pnl(database: Database) -> None:
    async with database.pool.acquire() as connection:
        value = await connection.fetchval("SELECT realized_pnl FROM smart_trades WHERE id = 't1'")
    assert value == 0


@pytest.mark.parametrize("order", ["create_time", "create_time desc", "realized_pnl desc"])
async def test_pages_of_a_filtered_list_follow_each_other_without_gaps_or_repeats(
    uow: UnitOfWorkFactory, order: str
) -> None:
    where = TradeFilter(expression=parse_filter("labels:bot OR state = CLOSED"))
    seen: list[str] = []
    after = None
    async with uow() as unit:
        while True:
            page = await unit.trades.page(TENANT, where, after, 2, order_by(order))
            seen += [trade.id for trade, _ in page]
            if len(page) < 2:
                break
            after = (page[-1][1], page[-1][0].id)

    assert sorted(seen) == ["t1", "t2", "t3", "t4", "t5"]
    assert seen == await listed(uow, "labels:bot OR state = CLOSED", order_by(order))


async def test_the_old_request_fields_still_combine_with_a_filter(uow: UnitOfWorkFactory) -> None:
    where = replace(
        TradeFilter(expression=parse_filter("labels.bot = grid")),
        states=(TradeState.ACTIVE,),
        created_from=AT + timedelta(minutes=2),
    )
    async with uow() as unit:
        found = await unit.trades.page(TENANT, where, None, 10, order_by(""))
    assert [trade.id for trade, _ in found] == ["t5"]
