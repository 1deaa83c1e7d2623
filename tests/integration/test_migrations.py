"""A database with live trades, at each earlier revision, migrated to head and served.

The rows are written with the columns each revision has (the ones added later take their
defaults), as a service of that revision left them: a live trade with a stop, its snapshot,
its event history and a request id. After the upgrade the service recovers the trade, a
watcher resumes from the cursor it held, and the stop still fires, its events numbered on
from the tenant's last one. The newest revision's downgrade undoes it, and its upgrade runs
again after that.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from smarttrade.domain.decide import create
from smarttrade.domain.levels import wake_levels
from smarttrade.domain.model import SmartTrade
from smarttrade.domain.position import position_of
from smarttrade.domain.spec import EntrySpec, EntryType, StopLossSpec, TradeSpec
from smarttrade.domain.values import Side
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS
from smarttrade.store.codec import market_document, spec_document, trade_document
from smarttrade.store.database import asyncpg_url
from smarttrade.store.migrate import MIGRATIONS
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import running_service

REVISIONS = ("0001", "0002", "0003", "0004", "0005")
TENANT, ACCOUNT, TRADE = "tenant-a", "00000000000000a1", "00000000000000c1"
AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BTC = next(m for m in DEFAULT_MARKETS if m.symbol == "BTC/USDT")
OLD_EVENTS = (7, 8, 9)  # numbers given by the old global sequence (other tenants had 1-6)


def held_trade() -> SmartTrade:
    """Bought 0.5 BTC at 100, stop at 95: live."""
    spec = TradeSpec(
        symbol="BTC/USDT",
        side=Side.BUY,
        entry=EntrySpec(EntryType.SKIP, units=Decimal("0.5"), average_price=Decimal(100)),
        stop_loss=StopLossSpec(price=Decimal(95)),
    )
    return create(
        trade_id=TRADE,
        tenant_id=TENANT,
        account_id=ACCOUNT,
        exchange_id="paper",
        spec=spec,
        market=BTC,
        last_price=Decimal(100),
        at=AT,
    ).trade


def config_on(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection, revision: str) -> None:
    command.upgrade(config_on(connection), revision)


def downgrade(connection: Connection, revision: str) -> None:
    command.downgrade(config_on(connection), revision)


async def migrate_to(
    database_url: str, revision: str, step: Callable[[Connection, str], None] = upgrade
) -> None:
    engine = create_async_engine(asyncpg_url(database_url))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(step, revision)
            await connection.commit()
    finally:
        await engine.dispose()


async def insert(connection: asyncpg.Connection, table: str, row: dict[str, object]) -> None:
    """Insert the columns of `row` that the table has at this revision."""
    have = {
        record["column_name"]
        for record in await connection.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table
        )
    }
    names = [name for name in row if name in have]
    values = ", ".join(f"${i + 1}" for i in range(len(names)))
    await connection.execute(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES ({values})", *(row[n] for n in names)
    )


async def a_service_of_that_revision_left(database_url: str) -> None:
    trade = held_trade()
    levels = wake_levels(trade)
    connection = await asyncpg.connect(database_url)
    try:
        await insert(
            connection,
            "exchange_accounts",
            {
                "id": ACCOUNT,
                "tenant_id": TENANT,
                "display_name": "paper",
                "exchange": "paper",
                "paper_settings": json.dumps({"maker_fee_rate": "0.001"}),
                "created_at": AT,
            },
        )
        await insert(
            connection,
            "smart_trades",
            {
                "id": TRADE,
                "tenant_id": TENANT,
                "account_id": ACCOUNT,
                "exchange": "paper",
                "symbol": "BTC/USDT",
                "side": "BUY",
                "state": trade.state.value,
                "spec": json.dumps(spec_document(trade.spec)),
                "market": json.dumps(market_document(BTC)),
                "reference_price": Decimal(100),
                "last_price": Decimal(100),
                "last_error": "",
                "version": trade.version,
                "created_at": AT,
                "updated_at": AT,
                "wake_below": levels.below,
                "wake_above": levels.above,
                "units_held": position_of(trade).units_held,
            },
        )
        await insert(
            connection,
            "trade_snapshots",
            {
                "trade_id": TRADE,
                "version": trade.version,
                "data": json.dumps(trade_document(trade)),
            },
        )
        for sequence in OLD_EVENTS:
            await insert(
                connection,
                "events",
                {
                    "sequence": sequence,
                    "tenant_id": TENANT,
                    "trade_id": TRADE,
                    "trade_version": trade.version,
                    "type": "CREATED",
                    "at": AT,
                    "facts": json.dumps({"type": "CREATED", "at": AT.isoformat()}),
                },
            )
        await insert(
            connection,
            "idempotency_keys",
            {
                "tenant_id": TENANT,
                "request_id": "r-old",
                "method": "CreateSmartTrade",
                "request_hash": "f" * 64,
                "resource": f"smartTrades/{TRADE}",
                "response": b"\x00",
                "created_at": AT,
            },
        )
        await insert(
            connection,
            "paper_balances",
            {
                "tenant_id": TENANT,
                "account_id": ACCOUNT,
                "currency": "BTC",
                "free": Decimal("0.5"),
                "locked": Decimal(0),
            },
        )
    finally:
        await connection.close()


@pytest.mark.parametrize("revision", REVISIONS)
async def test_a_database_with_a_live_trade_migrates_from_an_earlier_revision_and_runs_on(
    revision: str, database_url: str, tmp_path: Path
) -> None:
    admin = await asyncpg.connect(database_url)  # an empty database: start from nothing
    try:
        await admin.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await admin.close()
    await migrate_to(database_url, revision)
    await a_service_of_that_revision_left(database_url)

    async with running_service(database_url, tmp_path) as service:  # migrates to head
        client = service.a
        name = f"smartTrades/{TRADE}"
        before = await client.get(name)
        stream = client.trades.WatchSmartTrades(
            trades_pb.WatchSmartTradesRequest(after_sequence=OLD_EVENTS[-1]),
            metadata=client.metadata,
        )
        await client.set_price("BTC/USDT", "100")
        await client.set_price("BTC/USDT", "94")
        after = await client.get(name)
        first = await asyncio.wait_for(stream.read(), timeout=10)
        if isinstance(first, trades_pb.WatchSmartTradesResponse) and first.HasField("heartbeat"):
            first = await asyncio.wait_for(stream.read(), timeout=10)  # live, nothing yet
        stream.cancel()

    assert before.state == pb.SMART_TRADE_STATE_ACTIVE
    assert after.state == pb.SMART_TRADE_STATE_CLOSED
    assert after.close_reason == pb.CLOSE_REASON_STOP_LOSS
    assert isinstance(first, trades_pb.WatchSmartTradesResponse)
    assert first.WhichOneof("payload") == "event"
    assert first.event.sequence == OLD_EVENTS[-1] + 1


async def columns_of(database_url: str, table: str) -> list[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1"
            " ORDER BY ordinal_position",
            table,
        )
    finally:
        await connection.close()
    return [row["column_name"] for row in rows]


async def test_paper_positions_and_reduce_only_go_with_a_downgrade_to_0010_and_come_back(
    database_url: str,
) -> None:
    at_head = await columns_of(database_url, "paper_positions")
    orders_at_head = await columns_of(database_url, "paper_orders")

    await migrate_to(database_url, "0010", downgrade)
    at_0010 = await columns_of(database_url, "paper_positions")
    orders_at_0010 = await columns_of(database_url, "paper_orders")
    await migrate_to(database_url, "head")

    assert at_head == [
        "tenant_id",
        "account_id",
        "symbol",
        "side",
        "units",
        "entry",
        "margin",
        "leverage",
        "margin_mode",
    ]
    assert at_0010 == []
    assert await columns_of(database_url, "paper_positions") == at_head
    assert orders_at_head == [*orders_at_0010, "reduce_only"]
    assert await columns_of(database_url, "paper_orders") == orders_at_head
