"""The `smarttrade` command line for people and scripts (every subcommand but `serve`).

    smarttrade accounts create --exchange paper --name demo --balance USDT=10000
    smarttrade paper price BTC/USDT 100
    smarttrade trades create --account exchangeAccounts/... --symbol BTC/USDT --side buy \\
        --units 0.5 --tp 110 --sl 95
    smarttrade trades create --account exchangeAccounts/... --symbol BTC/USDT:USDT \\
        --side sell --units 0.01 --futures --leverage 5 --margin isolated --tp 95 --sl 102
    smarttrade trades list --json
    smarttrade watch

Answers go to standard output (`--json` for scripts, `-q` for names only); errors go to
standard error as one readable message (JSON with `--json`), never a traceback, with an exit
code that says what went wrong:

    0    ok
    1    another error (INTERNAL, UNKNOWN, ...)
    2    usage: bad flags, unreadable trade file
    3    invalid argument (the service names each bad field)
    4    not found
    5    failed precondition: not allowed in the trade's state, or the exchange refused
    6    unavailable (after the client's retries) or deadline exceeded
    7    unauthenticated or permission denied
    8    aborted: the trade changed since the --etag you gave
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

import grpc

from smarttrade_client.aio import AsyncSmartTradeClient
from smarttrade_client.cli import parser as cli_parser
from smarttrade_client.cli.commands import Output
from smarttrade_client.cli.connection import Connection, UsageError, resolve
from smarttrade_client.errors import SmartTradeError

OK, OTHER, USAGE = 0, 1, 2
INTERRUPTED = 130
EXIT_CODES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 3,
    grpc.StatusCode.OUT_OF_RANGE: 3,
    grpc.StatusCode.NOT_FOUND: 4,
    grpc.StatusCode.FAILED_PRECONDITION: 5,
    grpc.StatusCode.UNAVAILABLE: 6,
    grpc.StatusCode.DEADLINE_EXCEEDED: 6,
    grpc.StatusCode.UNAUTHENTICATED: 7,
    grpc.StatusCode.PERMISSION_DENIED: 7,
    grpc.StatusCode.ABORTED: 8,
}


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "smarttrade-client",
    serve_help: str | None = None,
) -> int:
    """Run one command; returns the exit code. `serve_help` lists a `serve` command in the
    help (the service's `smarttrade` handles `serve` itself and hands everything else here)."""
    arguments = cli_parser.build(prog, serve_help).parse_args(argv)  # exits 2 on bad usage
    output = Output(
        json=getattr(arguments, "json", False), quiet=getattr(arguments, "quiet", False)
    )
    server = "?"
    try:
        connection = resolve(arguments)
        server = connection.server
        return asyncio.run(_run(arguments, connection, output))
    except UsageError as error:
        return _fail(output, USAGE, f"{prog}: {error}", {"code": "USAGE", "message": str(error)})
    except SmartTradeError as error:
        return _fail(
            output,
            EXIT_CODES.get(error.code, OTHER),
            _describe(prog, error, server),
            {
                "code": error.code.name,
                "reason": error.reason,
                "message": error.message,
                "metadata": error.metadata,
                "field_violations": error.field_violations,
            },
        )
    except KeyboardInterrupt:
        return INTERRUPTED


async def _run(arguments: argparse.Namespace, connection: Connection, output: Output) -> int:
    async with AsyncSmartTradeClient(
        connection.server,
        connection.token,
        tls=connection.tls,
        root_certificates=connection.root_certificates,
        timeout=connection.timeout,
    ) as client:
        await arguments.handler(client, arguments, output)
    return OK


def _describe(prog: str, error: SmartTradeError, server: str) -> str:
    """`smarttrade: not found (NOT_FOUND): smart trade smartTrades/... not found`, then one
    line per bad field."""
    label = error.code.name.lower().replace("_", " ")
    if error.reason:
        label += f" ({error.reason})"
    lines = [f"{prog}: {label}"]
    if error.field_violations:
        lines += [f"  {field}: {text}" for field, text in error.field_violations.items()]
    elif error.message:
        lines[0] += f": {error.message}"
    hint = _hint(error, server)
    if hint:
        lines.append(f"  {hint}")
    return "\n".join(lines)


def _hint(error: SmartTradeError, server: str) -> str:
    if error.code == grpc.StatusCode.UNAVAILABLE and not error.reason:
        return f"is the service running at {server}? (--server, SMARTTRADE_SERVER)"
    if error.code == grpc.StatusCode.UNAUTHENTICATED:
        return (
            "give a token: --token, SMARTTRADE_TOKEN, or the local token file "
            "(SMARTTRADE_DATA_DIR/local-token)"
        )
    return ""


def _fail(output: Output, code: int, text: str, data: dict[str, object]) -> int:
    sys.stderr.write((json.dumps({"error": data}) if output.json else text) + "\n")
    sys.stderr.flush()
    return code
