"""`smarttrade serve --workers N`: N replicas behind one port, kept running by the command.

The command runs as its own process, as an operator runs it; its workers are processes too.
Connections to the one port land on either worker (SO_REUSEPORT); each worker answers every
call (forwarding what it does not run to the worker that runs the caller's shard, at that
worker's own port); a worker killed with SIGKILL is replaced while the other takes over its
trades; SIGTERM stops them all.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from smarttrade.app import shard_health
from smarttrade.config import Settings
from smarttrade.store.leases import shard_of
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.workers import Supervisor
from tests.support.process import free_port
from tests.support.replicas import BTC, TENANT, TOKEN, long_with_stop, replica_environment, shares
from tests.support.service import Client

SERVING = health_pb2.HealthCheckResponse.SERVING
CONNECTIONS = 24  # all on one of two listening workers by chance: 2 x 2**-24


def workers_of(supervisor: int) -> set[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return {int(pid) for pid in children}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def owner_pid(database_url: str) -> tuple[int, str] | None:
    """The pid of the worker that holds tenant-a's shard (its replica id is host-pid) and the
    address it advertises."""
    connection = await asyncpg.connect(database_url)
    try:
        row = await connection.fetchrow(
            "SELECT holder, address FROM shard_leases"
            " WHERE shard = $1 AND expires_at > clock_timestamp()",
            shard_of(TENANT),
        )
    finally:
        await connection.close()
    return (int(row["holder"].rsplit("-", 1)[1]), row["address"]) if row else None


async def balanced(database_url: str) -> bool:
    """Two workers hold six shards each."""
    return sorted((await shares(database_url)).values()) == [6, 6]


async def until(condition: Callable[[], object], seconds: float = 30) -> None:
    """Wait until `condition()` (or what it awaits) is true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        holds = condition()
        if inspect.isawaitable(holds):
            holds = await holds
        if holds:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not within the time")


async def serve_workers(
    count: int, database_url: str, data_dir: Path, env: dict[str, str], address: str
) -> asyncio.subprocess.Process:
    """`smarttrade serve --workers count` as its own process."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smarttrade.cli",
        "serve",
        "--workers",
        str(count),
        "--listen",
        address,
        "--database-url",
        database_url,
        "--data-dir",
        str(data_dir),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@asynccontextmanager
async def workers(
    count: int, database_url: str, data_dir: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    address = f"127.0.0.1:{free_port()}"
    env = replica_environment(lease_seconds=2)
    process = await serve_workers(count, database_url, data_dir, env, address)
    try:
        yield process, address
    finally:
        if process.returncode is None:
            process.kill()
            for pid in workers_of(process.pid):
                os.kill(pid, signal.SIGKILL)
        _, errors = await process.communicate()
        print("--- workers:", errors.decode()[-4000:])  # shown when the test fails


def channels(address: str) -> list[grpc.aio.Channel]:
    """Channels with a connection each (no subchannel shared between them)."""
    return [
        grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CONNECTIONS)
    ]


async def connections_to_both(address: str) -> tuple[list[grpc.aio.Channel], list[bool]]:
    """Connections to the one port, and whether each reached the worker that runs tenant-a,
    once they reached both (a worker that is still starting is not listening yet)."""
    deadline = time.monotonic() + 30
    while True:
        opened = channels(address)
        for channel in opened:
            await channel.channel_ready()
        roles = [await runs_tenant(channel) for channel in opened]
        if sorted(set(roles)) == [False, True]:
            return opened, roles
        for channel in opened:
            await channel.close()
        assert time.monotonic() < deadline, f"connections reached one worker only: {roles}"
        await asyncio.sleep(0.2)


async def runs_tenant(channel: grpc.aio.Channel) -> bool:
    """Whether the worker at the other end runs tenant-a's trades."""
    try:
        answer = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=shard_health(shard_of(TENANT))), timeout=5
        )
    except grpc.aio.AioRpcError as error:  # never ran it: its health does not know the name
        if error.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return False
    return bool(answer.status == SERVING)


async def test_two_workers_share_one_port_answer_every_call_and_are_replaced_when_killed(
    database_url: str, tmp_path: Path
) -> None:
    async with workers(2, database_url, tmp_path) as (supervisor, address):
        await until(lambda: len(workers_of(supervisor.pid)) == 2)
        await until(lambda: balanced(database_url))
        started = workers_of(supervisor.pid)
        leader = await owner_pid(database_url)
        assert leader is not None
        assert leader[0] in started
        assert leader[1] != address  # reached at a port of its own, not the shared one

        opened, roles = await connections_to_both(address)
        other = Client(opened[roles.index(False)], TOKEN)
        running = Client(opened[roles.index(True)], TOKEN)
        account = await other.paper_account(USDT="1000")  # forwarded to tenant-a's worker
        await other.set_price(BTC, "100")
        trade = await other.create(long_with_stop(account))
        assert trade.state == pb.SMART_TRADE_STATE_ACTIVE
        assert await other.get(trade.name) == await running.get(trade.name)
        for channel in opened:
            await channel.close()

        os.kill(leader[0], signal.SIGKILL)
        killed = time.monotonic()

        async def taken_over() -> bool:
            """Another worker holds tenant-a's shard and has recovered its trades."""
            now = await owner_pid(database_url)
            if now is None or now[0] == leader[0]:
                return False
            async with grpc.aio.insecure_channel(now[1]) as channel:  # its own address
                return await runs_tenant(channel)

        await until(taken_over)
        took_over = time.monotonic() - killed
        await until(lambda: len(workers_of(supervisor.pid) - {leader[0]}) == 2)  # a new one
        await until(lambda: balanced(database_url))  # which takes its share ...
        await until(taken_over)  # ... maybe tenant-a's shard: wait until it runs there
        async with grpc.aio.insecure_channel(address) as channel:
            client = Client(channel, TOKEN)
            await client.set_price(BTC, "89")  # under the stop: tenant-a's worker sells

            async def closed() -> bool:
                return (await client.get(trade.name)).state == pb.SMART_TRADE_STATE_CLOSED

            await until(closed)
            ended = await client.get(trade.name)
        live_workers = workers_of(supervisor.pid)

        supervisor.send_signal(signal.SIGTERM)
        status = await asyncio.wait_for(supervisor.wait(), 30)

    assert took_over < 2.0 + 2.0  # the lease, plus 2 s
    assert ended.close_reason == pb.CLOSE_REASON_STOP_LOSS
    assert status == 0
    assert not [pid for pid in live_workers if alive(pid)]  # every worker stopped with it


def exits(status: int, log: Path) -> list[str]:
    """A worker that notes when it started, then exits with `status` at once."""
    script = (
        f"import sys, time; open({str(log)!r}, 'a').write(f'{{time.monotonic()}}\\n'); "
        f"sys.exit({status})"
    )
    return [sys.executable, "-c", script]


async def test_a_worker_that_keeps_exiting_is_restarted_later_each_time(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    settings = Settings(workers=1)
    supervisor = Supervisor(
        settings, "postgresql://unused", exits(1, starts), restart_delay=0.1, steady_seconds=60
    )
    running = asyncio.create_task(supervisor.run())
    await until(lambda: starts.exists() and len(starts.read_text().split()) >= 5, seconds=30)
    supervisor.stop()
    await running

    times = [float(line) for line in starts.read_text().split()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[:5])]
    for gap, delay in zip(gaps, [0.1, 0.2, 0.4, 0.8], strict=True):  # doubling
        assert gap >= delay
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps))
    assert supervisor.status == 0


async def test_a_worker_that_refuses_its_settings_stops_the_command_with_status_2(
    tmp_path: Path,
) -> None:
    starts = tmp_path / "starts"
    supervisor = Supervisor(Settings(workers=2), "postgresql://unused", exits(2, starts))

    await asyncio.wait_for(supervisor.run(), 30)

    assert supervisor.status == 2
    assert len(starts.read_text().split()) <= 2  # each started once at most, never again


async def test_serve_with_workers_refuses_bad_settings_before_starting_any(
    database_url: str, tmp_path: Path
) -> None:
    env = replica_environment(lease_seconds=2, SMARTTRADE_TLS_CERT=str(tmp_path / "cert.pem"))
    address = f"127.0.0.1:{free_port()}"
    process = await serve_workers(2, database_url, tmp_path, env, address)
    output, errors = await asyncio.wait_for(process.communicate(), 30)

    assert process.returncode == 2
    assert "SMARTTRADE_TLS_CERT and SMARTTRADE_TLS_KEY" in errors.decode()
    assert b"workers serving" not in output
