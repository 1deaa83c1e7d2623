"""The CLI's commands: read the flags, make the call, print the answer."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TextIO, TypeVar

from smarttrade_client.aio import AsyncSmartTradeClient
from smarttrade_client.cli import views
from smarttrade_client.cli.connection import UsageError
from smarttrade_client.cli.live import JsonLines, LiveTable, PlainLines, WatchView
from smarttrade_client.cli.simulation import history_of, simulation_detail
from smarttrade_client.cli.trade_settings import (
    EDIT_KEYS,
    choice,
    entry,
    label_flags,
    labels,
    load_file,
    seconds,
    stop_loss,
    stop_loss_flags,
    take_profit,
    take_profit_flags,
    trade_mapping,
    trade_settings,
)
from smarttrade_client.jsonable import jsonable
from smarttrade_client.models import (
    Credentials,
    Entry,
    EntryType,
    Event,
    EventType,
    PaperSettings,
    SmartTrade,
    TradeSnapshot,
    TradeState,
    WatchItem,
)

T = TypeVar("T")
DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd])")  # \d takes any script's digits
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Output:
    """Prints answers as the flags ask: JSON, names only, or for people."""

    json: bool
    quiet: bool
    stream: TextIO = sys.stdout

    def one(self, value: T, human: Callable[[T], str], name: str) -> None:
        if self.json:
            self._print(json.dumps(jsonable(value), indent=2))
        elif self.quiet:
            self._print(name)
        else:
            self._print(human(value))

    def many(
        self, values: Sequence[T], human: Callable[[Sequence[T]], str], names: list[str]
    ) -> None:
        if self.json:
            self._print(json.dumps(jsonable(list(values)), indent=2))
        elif self.quiet:
            if names:
                self._print("\n".join(names))
        else:
            self._print(human(values))

    def data(self, value: Any, human: str) -> None:
        self._print(json.dumps(jsonable(value), indent=2) if self.json else human)

    def _print(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


Client = AsyncSmartTradeClient
Args = argparse.Namespace


# --- accounts ------------------------------------------------------------------------------


def given_credentials(args: Args) -> Credentials | None:
    """The credentials of the flags, or of SMARTTRADE_API_KEY / _API_SECRET / _API_PASSWORD."""
    api_key = args.api_key or os.environ.get("SMARTTRADE_API_KEY")
    if not api_key:
        return None
    return Credentials(
        api_key,
        args.secret or os.environ.get("SMARTTRADE_API_SECRET", ""),
        args.password or os.environ.get("SMARTTRADE_API_PASSWORD", ""),
    )


async def accounts_create(client: Client, args: Args, out: Output) -> None:
    credentials = given_credentials(args)
    paper = None
    if args.exchange == "paper":
        paper = PaperSettings(
            maker_fee_rate=args.maker_fee,
            taker_fee_rate=args.taker_fee,
            slippage_percent=args.slippage,
            partial_fills=args.partial_fills,
            initial_balances=dict(args.balance),
        )
    elif args.balance or args.maker_fee or args.taker_fee or args.slippage:
        raise UsageError("--balance, --maker-fee, --taker-fee and --slippage are for paper")
    account = await client.create_account(
        args.exchange,
        display_name=args.name,
        credentials=credentials,
        paper=paper,
        request_id=args.request_id,
    )
    out.one(account, views.account_detail, account.name)


async def accounts_list(client: Client, args: Args, out: Output) -> None:
    accounts = [account async for account in client.list_accounts()]
    out.many(accounts, views.accounts_table, [account.name for account in accounts])


async def accounts_get(client: Client, args: Args, out: Output) -> None:
    account = await client.get_account(args.name)
    out.one(account, views.account_detail, account.name)


async def accounts_update(client: Client, args: Args, out: Output) -> None:
    credentials = given_credentials(args)
    if credentials is None and args.display_name is None:
        raise UsageError("say what to change: --name, or --api-key with --secret")
    account = await client.update_account(
        args.name,
        display_name=args.display_name,
        credentials=credentials,
        etag=args.etag or "",
        request_id=args.request_id,
    )
    out.one(account, views.account_detail, account.name)


async def accounts_delete(client: Client, args: Args, out: Output) -> None:
    name = args.name if "/" in args.name else f"exchangeAccounts/{args.name}"
    await client.delete_account(name, request_id=args.request_id)
    out.data({"name": name, "deleted": True}, name if out.quiet else f"deleted {name}")


# --- trades --------------------------------------------------------------------------------


async def trades_create(client: Client, args: Args, out: Output) -> None:
    if args.from_share:
        if not args.account:
            raise UsageError("--from-share needs --account (and --units or --total)")
        trade = await client.create_trade_from_share(
            args.from_share,
            account=args.account,
            units=args.units,
            total=args.total,
            request_id=args.request_id,
        )
    else:
        settings = trade_settings(trade_mapping(args))
        trade = await client.create_trade(
            **settings, smart_trade_id=args.smart_trade_id, request_id=args.request_id
        )
    out.one(trade, views.trade_detail, trade.name)


async def trades_simulate(client: Client, args: Args, out: Output) -> None:
    settings = trade_settings(trade_mapping(args), account_required=False)
    candles, source = history_of(args)
    simulation = await client.simulate(
        **settings, candles=candles, source=source, balances=dict(args.balance) or None
    )
    out.one(
        simulation,
        lambda value: simulation_detail(value, candles),
        simulation.trade.state.value,
    )


async def trades_list(client: Client, args: Args, out: Output) -> None:
    states = [choice(TradeState, state, "--state") for state in args.state]
    trades: list[SmartTrade] = []
    listed = client.list_trades(
        states=states,
        symbol=args.symbol,
        account=args.account,
        filter=args.filter,
        order_by=args.order_by,
    )
    async for trade in listed:
        if args.limit is not None and len(trades) >= args.limit:
            break
        trades.append(trade)
    out.many(trades, views.trades_table, [trade.name for trade in trades])


async def trades_get(client: Client, args: Args, out: Output) -> None:
    trade = await client.get_trade(args.name)
    out.one(trade, views.trade_detail, trade.name)


async def trades_refresh(client: Client, args: Args, out: Output) -> None:
    trade = await client.refresh(args.name)
    out.one(trade, views.trade_detail, trade.name)


async def trades_add_funds(client: Client, args: Args, out: Output) -> None:
    trade = await client.add_funds(
        args.name,
        units=args.units,
        total=args.total,
        limit_price=args.limit_price,
        etag=args.etag,
        request_id=args.request_id,
    )
    out.one(trade, views.trade_detail, trade.name)


async def trades_reduce_funds(client: Client, args: Args, out: Output) -> None:
    trade = await client.reduce_funds(
        args.name,
        units=args.units,
        percent=args.percent,
        etag=args.etag,
        request_id=args.request_id,
    )
    out.one(trade, views.trade_detail, trade.name)


async def trades_open_now(client: Client, args: Args, out: Output) -> None:
    trade = await client.open_now(args.name, etag=args.etag, request_id=args.request_id)
    out.one(trade, views.trade_detail, trade.name)


async def trades_close(client: Client, args: Args, out: Output) -> None:
    trade = await client.close_at_market(args.name, etag=args.etag, request_id=args.request_id)
    out.one(trade, views.trade_detail, trade.name)


async def trades_close_step(client: Client, args: Args, out: Output) -> None:
    trade = await client.close_step(
        args.name, args.step, etag=args.etag, request_id=args.request_id
    )
    out.one(trade, views.trade_detail, trade.name)


async def trades_cancel(client: Client, args: Args, out: Output) -> None:
    trade = await client.cancel(args.name, etag=args.etag, request_id=args.request_id)
    out.one(trade, views.trade_detail, trade.name)


async def trades_edit(client: Client, args: Args, out: Output) -> None:
    """The update mask is what the flags and the file touch: `--tp` replaces the take-profit
    plan, any stop flag the stop loss, `--limit-price` just the entry's limit price."""
    data = load_file(args.file) if args.file else {}
    unknown = sorted(set(data) - EDIT_KEYS)
    if unknown:
        raise UsageError(f"an edit changes only {', '.join(sorted(EDIT_KEYS))}; not {unknown}")
    changes: dict[str, Any] = {}
    mask: list[str] = []
    if "entry" in data:
        changes["entry"] = entry(data["entry"])
        mask.append("entry")
    elif args.limit_price is not None or args.trigger_price is not None:
        # Only the prices named change; the entry's kind is not in the mask.
        changes["entry"] = Entry(
            type=EntryType.LIMIT, limit_price=args.limit_price, trigger_price=args.trigger_price
        )
        mask += [
            f"entry.{key}"
            for key in ("limit_price", "trigger_price")
            if getattr(args, key) is not None
        ]
    steps = take_profit_flags(args.tp, args.tp_trailing) if args.tp else data.get("take_profit")
    if steps is not None:
        changes["take_profit"] = take_profit(steps)
        mask.append("take_profit")
    stop = stop_loss_flags(args) or data.get("stop_loss")
    if args.no_sl:
        changes["remove_stop_loss"] = True
        mask.append("stop_loss")
    elif stop:
        changes["stop_loss"] = stop_loss(stop)
        mask.append("stop_loss")
    note = args.note if args.note is not None else data.get("note")
    if note is not None:
        changes["note"] = str(note)
        mask.append("note")
    given_labels = label_flags(args.label) if args.label else data.get("labels")
    if given_labels is not None:
        changes["labels"] = labels(given_labels)
        mask.append("labels")
    limit = args.time_limit if args.time_limit is not None else data.get("time_limit")
    if args.no_time_limit:
        changes["remove_time_limit"] = True
        mask.append("time_limit")
    elif limit is not None:
        changes["time_limit"] = seconds(limit, "time_limit")
        mask.append("time_limit")
    if not mask:
        raise UsageError("nothing to edit: give --tp, --sl, --no-sl, --note, --label, ...")
    trade = await client.edit_trade(
        args.name, **changes, update_mask=mask, etag=args.etag, request_id=args.request_id
    )
    out.one(trade, views.trade_detail, trade.name)


def duration(text: str) -> timedelta:
    """90s, 30m, 12h, 7d, or 1h30m."""
    parts = DURATION.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise UsageError(f"--ttl takes a duration such as 90s, 30m, 12h or 7d, not {text!r}")
    return timedelta(seconds=sum(float(number) * UNITS[unit] for number, unit in parts))


async def trades_share(client: Client, args: Args, out: Output) -> None:
    ttl = duration(args.ttl) if args.ttl else None
    share = await client.share(args.name, ttl=ttl, request_id=args.request_id)
    out.one(share, views.share_detail, share.token)


async def trades_resolve_share(client: Client, args: Args, out: Output) -> None:
    share = await client.resolve_share(args.share_token)
    out.one(share, views.share_detail, share.settings.symbol)


async def trades_shares(client: Client, args: Args, out: Output) -> None:
    shares = [share async for share in client.list_shares(args.name)]
    out.many(shares, views.shares_table, [share.name for share in shares])


async def trades_revoke_share(client: Client, args: Args, out: Output) -> None:
    await client.revoke_share(args.name, request_id=args.request_id)
    out.data({"name": args.name, "revoked": True}, f"revoked {args.name}")


# --- the paper market ------------------------------------------------------------------------


async def paper_price(client: Client, args: Args, out: Output) -> None:
    price = await client.set_price(args.symbol, args.price, request_id=args.request_id)
    out.data({"symbol": args.symbol, "price": price}, f"{args.symbol} {views.number(price)}")


async def paper_balances(client: Client, args: Args, out: Output) -> None:
    if args.totals:
        balances = await client.set_balances(
            args.account, dict(args.totals), request_id=args.request_id
        )
    else:
        balances = await client.get_balances(args.account)
    out.data(balances, views.balances_table(balances))


# --- watching --------------------------------------------------------------------------------


def finished(item: WatchItem) -> bool:
    """The watched trade reached a terminal state. An event's `trade` already shows the state
    after its whole decision, so an event ends the watch only once the STATE_CHANGED event
    itself has been shown."""
    if isinstance(item, TradeSnapshot):
        return item.trade.state.is_terminal
    if isinstance(item, Event) and item.type is EventType.STATE_CHANGED:
        return item.state is not None and item.state.is_terminal
    return False


async def watch(client: Client, args: Args, out: Output) -> None:
    if args.until_done and not args.name:
        raise UsageError("--until-done needs a trade name")
    view: WatchView
    if out.json:
        view = JsonLines(out.stream)
    elif out.stream.isatty():
        view = LiveTable(out.stream, f"watching {args.name or 'all your trades'}")
    else:
        view = PlainLines(out.stream)
    items = client.watch(
        args.name, after_sequence=args.after, heartbeats=isinstance(view, LiveTable)
    )
    try:
        async for item in items:
            view.show(item)
            if args.until_done and finished(item):
                return
    finally:
        await items.aclose()
