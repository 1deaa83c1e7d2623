"""`smarttrade serve --workers N`: N replicas of the service on one host, behind one port.

A Python process uses one core. With `--workers N` this process (the supervisor) runs N
`smarttrade serve` processes, the workers, each a replica with leases (DESIGN §4) on the same
database. They all listen on the one `--listen` port (SO_REUSEPORT, which grpc sets: the
kernel spreads the connections over them), and each also on a port of its own on the same
host (`SMARTTRADE_INTERNAL_LISTEN`, port 0: any), which it advertises for the calls the
others forward to it.

The supervisor starts the embedded PostgreSQL when no database URL is given (the workers
share it), checks the settings a worker checks at its start and makes the local token and
the master keys before any worker reads them, restarts a worker that exits (it crashed, or
lost the lease: exit 3) a second later (backing off to 30 s while it keeps exiting at once),
and on SIGTERM or SIGINT stops them all (SIGTERM, then SIGKILL after the shutdown grace and
10 s more) and exits 0; it stops them all with status 2 if a worker refuses its settings.
A worker's metrics, when on, are on the metrics port plus its index.

What N workers buy today: a standby on the same host that takes over within the lease, and
workers restarted when they die. Not speed: the worker that holds the lease runs every
trade, and the others serve reads from the store, watches through PostgreSQL and forward
the rest, one hop more (bench_cluster measured two workers slower than one process on every
measure, see the README), until replicas share the trades.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence

from smarttrade.config import Settings, master_keys, tls_credentials, token_entries

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 5.0  # workers are replicas: a lease they take over within
RESTART_DELAY = 1.0  # seconds before a worker that exited is started again
MAX_RESTART_DELAY = 30.0
STEADY_SECONDS = 10.0  # a worker that ran this long before exiting is restarted at once
USAGE = 2  # the status of `smarttrade serve` refusing its settings
SERVE = (sys.executable, "-m", "smarttrade.cli", "serve")  # a worker


def worker_environment(
    settings: Settings, database_url: str, index: int, base: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The environment of worker `index`: the supervisor's, with its settings made explicit
    (flags included) and each worker's own."""
    environment = dict(base)
    environment.update(
        SMARTTRADE_LISTEN=settings.listen,
        SMARTTRADE_DATABASE_URL=database_url,
        SMARTTRADE_DATA_DIR=str(settings.data_dir),
        SMARTTRADE_LEASE_SECONDS=str(settings.lease_seconds or DEFAULT_LEASE_SECONDS),
        SMARTTRADE_INTERNAL_LISTEN=f"{_bind_host(settings.listen)}:0",
        SMARTTRADE_WORKERS="1",
        SMARTTRADE_LOG_FORMAT=settings.log_format,
    )
    if "SMARTTRADE_REPLICA_ID" in base or settings.replica_id != Settings().replica_id:
        environment["SMARTTRADE_REPLICA_ID"] = f"{settings.replica_id}-{index}"
    else:  # each worker's own default (host and pid)
        environment.pop("SMARTTRADE_REPLICA_ID", None)
    if settings.metrics_listen:
        host, _, port = settings.metrics_listen.rpartition(":")
        environment["SMARTTRADE_METRICS_LISTEN"] = f"{host}:{int(port) + index}"
    return environment


def _bind_host(listen: str) -> str:
    return listen.rsplit(":", 1)[0]


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        database_url: str,
        command: Sequence[str] = SERVE,
        restart_delay: float = RESTART_DELAY,
        steady_seconds: float = STEADY_SECONDS,
    ) -> None:
        self._settings = settings
        self._database_url = database_url
        self._command = command
        self._restart_delay = restart_delay
        self._steady_seconds = steady_seconds
        self._stopping = asyncio.Event()
        self.processes: list[asyncio.subprocess.Process | None] = [None] * settings.workers
        self.status = 0  # what the command exits with

    async def run(self) -> None:
        """Run the workers until `stop`, then stop them."""
        keepers = [asyncio.create_task(self._keep(index)) for index in range(len(self.processes))]
        await self._stopping.wait()
        await self._stop_workers()
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)

    def stop(self) -> None:
        self._stopping.set()

    async def _keep(self, index: int) -> None:
        """Worker `index`, restarted whenever it exits, until the supervisor stops: a second
        later, doubling (up to MAX_RESTART_DELAY) while it keeps exiting within
        STEADY_SECONDS of its start. A worker that refuses its settings (status 2, as
        `smarttrade serve` does) would refuse them again: the supervisor stops, with 2."""
        environment = worker_environment(self._settings, self._database_url, index)
        delay = self._restart_delay
        while not self._stopping.is_set():
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(*self._command, env=environment)
            self.processes[index] = process
            status = await process.wait()
            if self._stopping.is_set():
                return
            if status == USAGE:
                log.error("worker %d refused its settings (status 2); stopping", index)
                self.status = USAGE
                self.stop()
                return
            if time.monotonic() - started >= self._steady_seconds:
                delay = self._restart_delay
            log.warning("worker %d exited (status %d); restarting it in %g s", index, status, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, MAX_RESTART_DELAY)  # for the next exit, unless steady

    async def _stop_workers(self) -> None:
        running = [p for p in self.processes if p is not None and p.returncode is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(p.wait() for p in running)), self._settings.shutdown_grace + 10
            )
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    process.kill()
            await asyncio.gather(*(p.wait() for p in running))


async def supervise(settings: Settings) -> int:
    """Run `settings.workers` workers until SIGTERM or SIGINT (0 once they all stopped), or
    until one refuses its settings (2)."""
    # What a worker checks at its start, checked once here: a bad setting stops the command
    # before any worker runs. The local token and master keys are made here, once.
    _, local_token = token_entries(settings)
    master_keys(settings)
    tls_credentials(settings)
    embedded = None
    database_url = settings.database_url
    if database_url is None:
        from smarttrade.store.database import start_embedded

        database_url, embedded = await start_embedded(settings.data_dir)
    supervisor = Supervisor(settings, database_url)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, supervisor.stop)
    print(
        f"smarttrade: {settings.workers} workers serving on {settings.listen}"
        + (
            f"; local token (tenant 'local'):\n  authorization: Bearer {local_token}"
            if local_token
            else ""
        ),
        flush=True,
    )
    try:
        await supervisor.run()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.cleanup)
    log.info("all workers stopped")
    return supervisor.status
