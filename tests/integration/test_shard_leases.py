"""Shard leases on a real PostgreSQL (store/leases.py): one holder per shard, a fencing
number per holding, renewal, loss, release, and the replicas counted by their heartbeats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smarttrade.store.database import Database, open_database
from smarttrade.store.leases import NONE_HELD, SHARDS, ShardLeases, shard_of


@pytest.fixture
async def database(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    opened = await open_database(database_url, tmp_path)
    yield opened
    await opened.close()


def leases(database: Database, name: str, seconds: float = 30) -> ShardLeases:
    return ShardLeases(database, name, f"{name}:50051", seconds)


def test_a_tenants_shard_is_fixed_by_its_id_whatever_the_process() -> None:
    # Replicas of different versions must agree: these values may never change.
    assert [shard_of(t) for t in ("tenant-a", "tenant-c", "local", "bench")] == [9, 0, 4, 0]
    assert {shard_of(f"tenant-{i}") for i in range(200)} == set(range(SHARDS))


async def test_a_shard_is_held_by_one_replica_at_a_time_each_holding_with_its_own_fence(
    database: Database,
) -> None:
    a, b = leases(database, "a"), leases(database, "b")

    assert await a.acquire(3)
    assert not await b.acquire(3)  # held
    assert await b.acquire(4)

    assert a.held() == [3]
    assert b.held() == [4]
    assert a.fence(3) != b.fence(4)  # one sequence for every shard
    assert b.fence(3) == NONE_HELD
    view = await a.view()
    assert {s: o.holder for s, o in view.owners.items()} == {3: "a", 4: "b"}


async def test_a_replica_that_did_not_renew_in_time_loses_the_shard_to_another(
    database: Database,
) -> None:
    a, b = leases(database, "a", seconds=0.2), leases(database, "b")
    assert await a.acquire(5)
    first = a.fence(5)
    await asyncio.sleep(0.3)  # a's lease lapsed by the database's clock
    assert not a.holds(5)  # and by a's own, which sends nothing more
    assert await b.acquire(5)

    lost = await a.renew()

    assert lost == [5]
    assert a.held() == []
    assert b.fence(5) > first


async def test_a_released_shard_is_free_at_once_and_a_leaving_replica_is_not_counted(
    database: Database,
) -> None:
    a, b = leases(database, "a"), leases(database, "b")
    assert await a.acquire(1)
    assert await a.acquire(2)
    await a.renew()  # heartbeats
    await b.renew()
    assert (await b.view()).members == 2
    a.leaving(1)
    assert not a.holds(1)  # giving it up: nothing more is sent for it
    assert a.fence(1) != NONE_HELD  # while what it was doing is still written

    await a.leave()

    assert await b.acquire(1)
    assert await b.acquire(2)
    assert (await b.view()).members == 1
