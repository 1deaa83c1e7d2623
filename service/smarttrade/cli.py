"""The `smarttrade` command. `smarttrade serve` runs the service."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from typing import TYPE_CHECKING

# The service is imported only for `serve`: the client's commands start without loading it.
if TYPE_CHECKING:
    from smarttrade.config import Settings


def event_loop_runner() -> asyncio.Runner:
    """The event loop the service runs on: uvloop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay portable anyway
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def settle_memory() -> None:
    """Once started: what was built at startup lives as long as the process, so keep it out
    of the cyclic collector's way, and collect the young generation less often (a long-lived
    service allocates many short-lived objects per message; pauses show up as latency)."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


async def serve(settings: Settings) -> int:
    from smarttrade import app

    running = await app.start(settings)
    settle_memory()
    if running.local_token is not None:
        print(
            f"smarttrade: serving on {settings.listen}; local token (tenant 'local'):\n"
            f"  authorization: Bearer {running.local_token}",
            flush=True,
        )
    else:
        print(f"smarttrade: serving on {settings.listen}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    logging.getLogger("smarttrade").info("shutting down")
    await app.stop(running, settings.shutdown_grace)
    return 0


def client_command(argv: list[str]) -> int:
    """Every subcommand but `serve` (accounts, trades, paper, watch) is the client package's
    CLI, `smarttrade_client.cli`, which also prints `smarttrade --help`."""
    try:
        from smarttrade_client.cli import main as client_main
    except ModuleNotFoundError as error:
        if error.name != "smarttrade_client":
            raise
        print(
            "smarttrade: only `serve` is available here; the other commands need the client "
            "package (pip install -e clients/python)",
            file=sys.stderr,
        )
        return 2
    return client_main(argv, prog="smarttrade", serve_help="run the gRPC service")


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] != ["serve"]:
        return client_command(arguments)
    from smarttrade.config import ConfigError, add_serve_flags, from_environment, with_flags

    parser = argparse.ArgumentParser(prog="smarttrade", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the gRPC service")
    add_serve_flags(serve_parser)
    args = parser.parse_args(arguments)
    try:
        settings = with_flags(from_environment(), args)
    except ConfigError as error:
        print(f"smarttrade: {error}", file=sys.stderr)
        return 2
    from smarttrade.logs import configure

    configure(settings.log_level, settings.log_format, settings.replica_id)
    try:
        with event_loop_runner() as runner:
            if settings.workers > 1:
                from smarttrade.workers import supervise

                return runner.run(supervise(settings))
            return runner.run(serve(settings))
    except ConfigError as error:
        print(f"smarttrade: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
