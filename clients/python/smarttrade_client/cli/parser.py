"""The command line: `smarttrade accounts|trades|paper|watch ...` (and `serve`, which the
service's own command handles)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from smarttrade_client.cli import commands
from smarttrade_client.cli.connection import DEFAULT_SERVER, DEFAULT_TIMEOUT
from smarttrade_client.cli.trade_settings import amount, decimal

SUPPRESS = argparse.SUPPRESS

EPILOG = """\
connection: --server (SMARTTRADE_SERVER, default 127.0.0.1:50051), --token (SMARTTRADE_TOKEN,
default: the local token in $SMARTTRADE_DATA_DIR/local-token, else
~/.local/share/smarttrade/local-token), --tls / --ca-cert (SMARTTRADE_TLS=1,
SMARTTRADE_CA_CERT). Money and sizes are decimal numbers; names are smartTrades/{id} and
exchangeAccounts/{id} (a bare id works too).

exit codes: 0 ok, 1 other error, 2 usage, 3 invalid argument, 4 not found,
5 failed precondition (not allowed now, exchange refused), 6 unavailable (after retries) or
deadline exceeded, 7 unauthenticated or permission denied, 8 aborted (the trade changed: etag),
130 interrupted.
"""


def common_options() -> argparse.ArgumentParser:
    """Options every command takes, before or after the subcommand (defaults applied later,
    so a value given at either place is kept)."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection and output")
    group.add_argument(
        "--server", metavar="HOST:PORT", default=SUPPRESS, help=f"default {DEFAULT_SERVER}"
    )
    group.add_argument("--token", default=SUPPRESS, help="the bearer token")
    group.add_argument("--tls", action="store_true", default=SUPPRESS, help="connect with TLS")
    group.add_argument(
        "--ca-cert", metavar="PEM", default=SUPPRESS, help="trust this CA (implies --tls)"
    )
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=SUPPRESS,
        help=f"deadline of each call (default {DEFAULT_TIMEOUT:g})",
    )
    group.add_argument(
        "--json", action="store_true", default=SUPPRESS, help="print JSON, for scripts"
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=SUPPRESS,
        help="print only resource names (a share: its token)",
    )
    return parent


class Builder:
    """Adds leaf commands that all take the common options."""

    def __init__(self, common: argparse.ArgumentParser) -> None:
        self.common = common

    def group(
        self, parent: Any, name: str, help_text: str
    ) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        parser: argparse.ArgumentParser = parent.add_parser(
            name, help=help_text, description=help_text
        )
        return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")

    def leaf(
        self, parent: Any, name: str, handler: Callable[..., Any], help_text: str
    ) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = parent.add_parser(
            name, help=help_text, description=help_text, parents=[self.common]
        )
        parser.set_defaults(handler=handler)
        return parser


def mutation(parser: argparse.ArgumentParser, etag: bool = True) -> None:
    parser.add_argument(
        "--request-id", help="idempotency key: a retry with the same id makes no second effect"
    )
    if etag:
        parser.add_argument("--etag", help="refuse (exit 8) if it changed since this etag")


def trade_settings_flags(parser: argparse.ArgumentParser, create: bool) -> None:
    parser.add_argument("--file", "-f", help="settings from a YAML or JSON file (- for stdin)")
    if create:
        parser.add_argument("--account", help="the exchange account, exchangeAccounts/{id}")
        parser.add_argument("--symbol", help="the market, e.g. BTC/USDT (futures: BTC/USDT:USDT)")
        parser.add_argument("--side", type=str.lower, choices=["buy", "sell"])
        parser.add_argument(
            "--trigger-on",
            dest="trigger_source",
            type=str.lower,
            choices=["last", "bid", "ask", "mark"],
            help="the price the triggers watch (default last; mark: futures)",
        )
        size = parser.add_mutually_exclusive_group()
        size.add_argument("--units", type=decimal, help="size in base units, e.g. 0.5 (BTC)")
        size.add_argument("--total", type=decimal, help="size in quote, e.g. 1000 (USDT)")
        parser.add_argument(
            "--entry",
            type=str.lower,
            choices=["market", "limit", "conditional", "skip"],
            help="entry kind (default: from the prices given, else market)",
        )
        parser.add_argument("--trailing", type=decimal, metavar="PCT", help="trailing entry")
        parser.add_argument(
            "--entry-order", type=str.lower, choices=["market", "limit"], help="conditional"
        )
        parser.add_argument("--average-price", type=decimal, help="skip: the price paid")
        market = parser.add_mutually_exclusive_group()
        market.add_argument(
            "--futures",
            dest="market",
            action="store_const",
            const="linear",
            help="a USDT-margined perpetual futures trade (leverage.market_type LINEAR); "
            "--symbol names the perpetual, e.g. BTC/USDT:USDT",
        )
        # The contract's spelling, from before --futures; kept for the scripts that pass it.
        market.add_argument("--market", type=str.lower, choices=["spot", "linear"], help=SUPPRESS)
        parser.add_argument(
            "--leverage",
            type=decimal,
            metavar="N",
            help="with --futures: the leverage, a whole number up to the market's maximum "
            "(default 1)",
        )
        parser.add_argument(
            "--margin",
            type=str.lower,
            choices=["isolated", "cross"],
            help="with --futures: the margin mode (default isolated)",
        )
    parser.add_argument("--limit-price", type=decimal, help="limit entry price")
    parser.add_argument("--trigger-price", type=decimal, help="conditional entry trigger")
    parser.add_argument(
        "--tp",
        action="append",
        default=[],
        metavar="TARGET[:VOLUME]",
        help="a take-profit step: a price (110) or a percent (5%%), and the percent of the "
        "position it exits (default: an even share); repeat for more steps",
    )
    parser.add_argument("--tp-trailing", type=decimal, metavar="PCT", help="trail the last step")
    parser.add_argument("--sl", metavar="PRICE|PCT%", help="stop loss trigger: 90 or 3%%")
    parser.add_argument("--sl-limit", type=decimal, metavar="PRICE", help="stop with a limit")
    parser.add_argument("--sl-trailing", type=decimal, metavar="PCT", help="trailing stop")
    parser.add_argument("--sl-timeout", type=decimal, metavar="SECONDS", help="fire after")
    parser.add_argument(
        "--sl-fallback-after",
        type=decimal,
        metavar="SECONDS",
        help="with --sl-limit: sell at market if the limit rests this long unfilled",
    )
    parser.add_argument(
        "--sl-fallback-percent",
        type=decimal,
        metavar="PCT",
        help="with --sl-limit: sell at market once the price runs this far past the limit",
    )
    parser.add_argument(
        "--time-limit",
        type=decimal,
        metavar="SECONDS",
        help="close at market once the position has been open this long",
    )
    parser.add_argument("--breakeven", action="store_true", help="stop to entry after tp1")
    parser.add_argument("--note", help="a note of yours")
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label (repeat for more); an edit's labels replace them all",
    )


def build(prog: str, serve_help: str | None) -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run and manage SmartTrades on a SmartTrade service.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    make = Builder(common)
    if serve_help:
        top.add_parser("serve", help=serve_help, add_help=False)

    accounts = make.group(top, "accounts", "exchange accounts")
    create = make.leaf(accounts, "create", commands.accounts_create, "create an account")
    create.add_argument("--exchange", default="paper", help="ccxt id, or paper (default)")
    create.add_argument("--name", default="", help="a display name")
    create.add_argument(
        "--balance",
        type=amount,
        action="append",
        default=[],
        metavar="CUR=AMOUNT",
        help="paper: a starting balance (default USDT=10000); repeat for more",
    )
    create.add_argument("--maker-fee", type=decimal, metavar="RATE", help="paper, e.g. 0.001")
    create.add_argument("--taker-fee", type=decimal, metavar="RATE", help="paper, e.g. 0.001")
    create.add_argument("--slippage", type=decimal, metavar="PCT", help="paper market orders")
    create.add_argument("--partial-fills", action="store_true", help="paper: fill in parts")
    create.add_argument(
        "--api-key", help="real exchanges (or SMARTTRADE_API_KEY / _API_SECRET / _API_PASSWORD)"
    )
    create.add_argument("--secret")
    create.add_argument("--password")
    mutation(create, etag=False)
    make.leaf(accounts, "list", commands.accounts_list, "list your accounts")
    make.leaf(accounts, "get", commands.accounts_get, "show an account").add_argument("name")
    change = make.leaf(
        accounts, "update", commands.accounts_update, "rename, or rotate the credentials"
    )
    change.add_argument("name")
    change.add_argument("--name", dest="display_name", help="a new display name")
    change.add_argument(
        "--api-key", help="new credentials (or SMARTTRADE_API_KEY / _API_SECRET / _API_PASSWORD)"
    )
    change.add_argument("--secret")
    change.add_argument("--password")
    mutation(change)
    delete = make.leaf(accounts, "delete", commands.accounts_delete, "delete an account")
    delete.add_argument("name")
    mutation(delete, etag=False)

    trades = make.group(top, "trades", "SmartTrades")
    create = make.leaf(trades, "create", commands.trades_create, "create a trade")
    trade_settings_flags(create, create=True)
    create.add_argument("--from-share", metavar="TOKEN", help="a shared trade's settings")
    create.add_argument(
        "--id",
        dest="smart_trade_id",
        default="",
        help="your own id for the trade (4-63 lowercase letters, digits, hyphens)",
    )
    mutation(create, etag=False)
    simulate = make.leaf(
        trades,
        "simulate",
        commands.trades_simulate,
        "what a trade would have done over a price history (nothing is sent or stored)",
    )
    trade_settings_flags(simulate, create=True)  # --account optional: a paper account's fees
    simulate.add_argument(
        "--candles",
        metavar="CSV",
        help="the history: rows time,open,high,low,close[,volume] (at most 50,000)",
    )
    simulate.add_argument(
        "--from-exchange",
        metavar="EXCHANGE",
        help="instead of --candles: the history the service fetches from this venue's public"
        " market data (a ccxt id, e.g. binance), with --start and --end",
    )
    simulate.add_argument(
        "--timeframe",
        choices=["1m", "5m", "15m", "1h", "4h", "1d"],
        help="the fetched candles' length (default 1m)",
    )
    simulate.add_argument(
        "--start",
        metavar="TIME",
        help="the first fetched candle's start: ISO 8601 (UTC unless it says otherwise) or a"
        " Unix time in seconds or milliseconds",
    )
    simulate.add_argument("--end", metavar="TIME", help="the fetched history's end, exclusive")
    simulate.add_argument(
        "--balance",
        type=amount,
        action="append",
        default=[],
        metavar="CUR=AMOUNT",
        help="a starting balance of the simulated account (default: enough for the trade;"
        " a cross-margin position is then never liquidated)",
    )
    listing = make.leaf(trades, "list", commands.trades_list, "list your trades, newest first")
    listing.add_argument("--state", action="append", default=[], type=str.upper)
    listing.add_argument("--symbol", default="")
    listing.add_argument("--account", default="")
    listing.add_argument(
        "--filter",
        default="",
        metavar="EXPR",
        help="AIP-160, e.g. 'state = ACTIVE AND labels.bot = \"grid\"'",
    )
    listing.add_argument(
        "--order-by",
        default="",
        metavar="FIELD",
        help="create_time, update_time or realized_pnl, with ' desc' for descending",
    )
    listing.add_argument("--limit", type=int, help="at most this many")
    make.leaf(trades, "get", commands.trades_get, "show a trade").add_argument("name")
    refresh = make.leaf(trades, "refresh", commands.trades_refresh, "sync with the exchange")
    refresh.add_argument("name")
    add = make.leaf(trades, "add-funds", commands.trades_add_funds, "buy more (averages in)")
    add.add_argument("name")
    size = add.add_mutually_exclusive_group(required=True)
    size.add_argument("--units", type=decimal)
    size.add_argument("--total", type=decimal)
    add.add_argument("--limit-price", type=decimal, help="a limit order (default market)")
    mutation(add)
    reduce = make.leaf(trades, "reduce-funds", commands.trades_reduce_funds, "sell a part")
    reduce.add_argument("name")
    part = reduce.add_mutually_exclusive_group(required=True)
    part.add_argument("--units", type=decimal)
    part.add_argument("--percent", type=decimal)
    mutation(reduce)
    for name, handler, help_text in (
        ("open-now", commands.trades_open_now, "enter at market now (PENDING)"),
        ("close", commands.trades_close, "close at market (ACTIVE, or a stop-limit resting)"),
        ("cancel", commands.trades_cancel, "stop managing the trade"),
    ):
        action = make.leaf(trades, name, handler, help_text)
        action.add_argument("name")
        mutation(action)
    close_step = make.leaf(
        trades, "close-step", commands.trades_close_step, "sell one take-profit step at market"
    )
    close_step.add_argument("name")
    close_step.add_argument("--step", type=int, required=True, help="the step, from 1")
    mutation(close_step)
    edit = make.leaf(trades, "edit", commands.trades_edit, "change take profit, stop, entry")
    edit.add_argument("name")
    trade_settings_flags(edit, create=False)
    edit.add_argument("--no-sl", action="store_true", help="remove the stop loss")
    edit.add_argument("--no-time-limit", action="store_true", help="remove the time limit")
    mutation(edit)
    share = make.leaf(trades, "share", commands.trades_share, "share the trade's settings")
    share.add_argument("name")
    share.add_argument("--ttl", metavar="DURATION", help="expire after, e.g. 90s, 30m, 12h, 7d")
    mutation(share, etag=False)
    resolve = make.leaf(trades, "resolve-share", commands.trades_resolve_share, "read a share")
    # not `token`: that is --token. Tokens start with "st1_"; one of the first format that
    # starts with "-" goes after "--" (resolve-share -- -TOKEN).
    resolve.add_argument("share_token", metavar="TOKEN", help='after "--" if it starts with "-"')
    shares = make.leaf(trades, "shares", commands.trades_shares, "list your shares")
    shares.add_argument("name", nargs="?", help="of one trade (default: of all your trades)")
    revoke = make.leaf(trades, "revoke-share", commands.trades_revoke_share, "revoke a share")
    revoke.add_argument("name", help="smartTrades/{id}/shares/{share}")
    mutation(revoke, etag=False)

    paper = make.group(top, "paper", "the paper market (sandbox)")
    price = make.leaf(paper, "price", commands.paper_price, "push a last price (a tick)")
    price.add_argument("symbol")
    price.add_argument("price", type=decimal)
    mutation(price, etag=False)
    balances = make.leaf(paper, "balances", commands.paper_balances, "show or set balances")
    balances.add_argument("account")
    balances.add_argument(
        "--set", type=amount, action="append", default=[], metavar="CUR=AMOUNT", dest="totals"
    )
    mutation(balances, etag=False)

    watch = make.leaf(top, "watch", commands.watch, "follow trades live")
    watch.add_argument("name", nargs="?", help="one trade (default: all of yours)")
    watch.add_argument("--after", type=int, default=0, metavar="SEQUENCE", help="resume after")
    watch.add_argument(
        "--until-done",
        action="store_true",
        help="with a trade name: stop once it is CLOSED, CANCELLED or FAILED",
    )
    return parser
