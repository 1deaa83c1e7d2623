"""`smarttrade serve` as a separate process, as users and operators run it."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    address: str
    data_dir: Path
    process: asyncio.subprocess.Process
    killed: bool = False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (the crash the recovery tests are about)."""
        self.killed = True
        self.process.send_signal(signal.SIGKILL)


async def wait_serving(address: str, process: asyncio.subprocess.Process) -> None:
    """Poll health until SERVING (the service says so only after recovering its trades)."""
    deadline = asyncio.get_running_loop().time() + 60
    async with grpc.aio.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            assert process.returncode is None, "smarttrade serve exited early"
            try:
                answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            assert asyncio.get_running_loop().time() < deadline, "not SERVING within 60 s"
            await asyncio.sleep(0.05)


@asynccontextmanager
async def serve_process(
    data_dir: Path,
    *,
    database_url: str | None = None,
    env: Mapping[str, str] | None = None,
    address: str | None = None,
) -> AsyncIterator[ServerProcess]:
    """Run `smarttrade serve` until the block ends (then SIGTERM, expecting exit 0), unless
    the block killed it."""
    address = address or f"127.0.0.1:{free_port()}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SMARTTRADE_")}
    environment.update(env or {})
    arguments = ["serve", "--data-dir", str(data_dir), "--listen", address]
    if database_url:
        arguments += ["--database-url", database_url]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "smarttrade.cli",
        *arguments,
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    running = ServerProcess(address, data_dir, process)
    try:
        await wait_serving(address, process)
        yield running
    finally:
        if not running.killed and process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, errors = await asyncio.wait_for(process.communicate(), timeout=30)
        # A killed process's status may be reaped by another waiter (asyncio then says 255).
        if not running.killed:
            assert process.returncode == 0, errors.decode()[-3000:]
