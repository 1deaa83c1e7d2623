"""What the CLI prints for people (`--json` prints `jsonable` values instead)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from smarttrade_client.convert import text
from smarttrade_client.models import (
    Account,
    Action,
    Balance,
    EntryType,
    Event,
    FuturesPosition,
    Leg,
    Leverage,
    MarginMode,
    MarketType,
    Share,
    SharedSettings,
    SmartTrade,
    StopLoss,
    TakeProfitStep,
    TriggerPrice,
)

# The CLI command of each menu action, so `actions:` reads as what you can type next.
COMMANDS = {
    Action.REFRESH: "refresh",
    Action.ADD_FUNDS: "add-funds",
    Action.REDUCE_FUNDS: "reduce-funds",
    Action.OPEN_NOW: "open-now",
    Action.CLOSE_AT_MARKET: "close",
    Action.EDIT: "edit",
    Action.SHARE: "share",
    Action.CANCEL: "cancel",
    Action.CLOSE_STEP: "close-step",
}


def number(value: Decimal | None) -> str:
    return "-" if value is None else text(value)


def moment(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def clock(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%H:%M:%S")


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart."""
    lines = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def fields(pairs: Sequence[tuple[str, str]]) -> str:
    """`label:  value` lines, values aligned."""
    width = max(len(label) for label, _ in pairs) + 2
    return "\n".join(f"{label + ':':<{width}}{value}".rstrip() for label, value in pairs)


def currencies(symbol: str) -> tuple[str, str]:
    """(base, quote) of a unified symbol: BTC/USDT, or BTC/USDT:USDT for futures."""
    base, _, quote = symbol.partition("/")
    return base, quote.partition(":")[0]


def settle_currency(symbol: str) -> str:
    """The currency a perpetual's margin and PnL are in: USDT for BTC/USDT:USDT."""
    _, quote = currencies(symbol)
    return symbol.partition(":")[2] or quote


# --- trades ----------------------------------------------------------------------------------


def entry_text(trade: SmartTrade | SharedSettings) -> str:
    """`limit 1 BTC at 95`, `conditional 500 USDT when 105 then limit 104`, ..."""
    entry = trade.entry
    base, quote = currencies(trade.symbol)
    parts = [entry.type.value.lower()]
    if entry.units is not None:
        parts.append(f"{text(entry.units)} {base}")
    if entry.total is not None:
        parts.append(f"{text(entry.total)} {quote}")
    if entry.type is EntryType.LIMIT:
        parts.append(f"at {number(entry.limit_price)}")
    elif entry.type is EntryType.CONDITIONAL:
        parts.append(f"when {number(entry.trigger_price)}")
        if entry.limit_price is not None:
            parts.append(f"then limit {number(entry.limit_price)}")
    elif entry.type is EntryType.SKIP:
        parts.append(f"held at {number(entry.average_price)}")
    if entry.trailing_percent is not None:
        parts.append(f"trailing {text(entry.trailing_percent)}%")
    return " ".join(parts)


def step_text(step: TakeProfitStep) -> str:
    if step.price is not None:
        target = text(step.price)
    else:
        target = f"+{number(step.percent)}%"
        if step.target_price is not None:
            target += f" = {text(step.target_price)}"
    words = f"{target} ({text(step.volume_percent)}%)"
    if step.trailing_percent is not None:
        words += f" trailing {text(step.trailing_percent)}%"
    return words


def stop_text(stop: StopLoss | None) -> str:
    if stop is None:
        return "none"
    words = text(stop.price) if stop.price is not None else f"-{number(stop.percent)}%"
    if stop.trigger_price is not None and stop.trigger_price != stop.price:
        words += f" (now {text(stop.trigger_price)})"
    if stop.limit_price is not None:
        words += f", limit {text(stop.limit_price)}"
    if stop.trailing_percent is not None:
        words += f", trailing {text(stop.trailing_percent)}%"
    if stop.timeout is not None:
        words += f", after {stop.timeout.total_seconds():g}s"
    if stop.move_to_breakeven:
        words += ", to breakeven after tp1"
    return words


def leverage_text(leverage: Leverage | None, symbol: str) -> str | None:
    """`5x isolated, USDT-margined perpetual`; None for a spot trade, which has none."""
    if leverage is None or leverage.market_type is not MarketType.LINEAR:
        return None
    # Unset on a futures trade means what the service runs it at: 1x, isolated margin.
    value = leverage.value if leverage.value is not None else Decimal(1)
    margin = leverage.margin_mode or MarginMode.ISOLATED
    return f"{text(value)}x {margin.value.lower()}, {settle_currency(symbol)}-margined perpetual"


def futures_text(futures: FuturesPosition, symbol: str) -> str:
    """`margin 100 USDT, ROE 40%, liquidation 90.36144578`."""
    liquidation = (
        "unknown" if futures.liquidation_price is None else text(futures.liquidation_price)
    )
    return (
        f"margin {text(futures.margin)} {settle_currency(symbol)}, "
        f"ROE {text(futures.roe_percent)}%, liquidation {liquidation}"
    )


def state_text(trade: SmartTrade) -> str:
    if trade.close_reason is not None:
        return f"{trade.state.value} ({trade.close_reason.value})"
    return trade.state.value


def leg_row(leg: Leg) -> list[str]:
    progress = f"{text(leg.filled)} of {number(leg.amount)}" if leg.amount is not None else ""
    at = f"at {text(leg.price)}" if leg.price is not None else ""
    return [leg.id, leg.state.value, " ".join(part for part in (progress, at) if part)]


def trade_detail(trade: SmartTrade) -> str:
    base, quote = currencies(trade.symbol)
    position = trade.position
    pairs = [
        ("name", trade.name),
        ("state", state_text(trade)),
        ("symbol", f"{trade.symbol} {trade.side.value}"),
    ]
    leverage = leverage_text(trade.leverage, trade.symbol)
    if leverage is not None:
        pairs.append(("leverage", leverage))
    if trade.trigger_price not in (TriggerPrice.LAST, TriggerPrice.UNRECOGNIZED):
        pairs.append(("triggers on", f"the {trade.trigger_price.value.lower()} price"))
    pairs += [
        ("account", trade.account),
        ("entry", entry_text(trade)),
        ("take profit", ", ".join(step_text(step) for step in trade.take_profit) or "none"),
        ("stop loss", stop_text(trade.stop_loss)),
    ]
    if position.average_entry_price is not None:
        pairs.append(
            (
                "position",
                f"{text(position.units_held)} {base} at {number(position.average_entry_price)}",
            )
        )
        pnl = f"realized {text(position.realized_pnl)} {quote}"
        if position.unrealized_pnl is not None and position.units_held:
            pnl += f", unrealized {text(position.unrealized_pnl)} {quote}"
        pairs.append(("pnl", pnl))
    if trade.futures is not None:
        pairs.append(("futures", futures_text(trade.futures, trade.symbol)))
    if position.fees:
        pairs.append(("fees", ", ".join(f"{text(a)} {c}" for c, a in position.fees.items())))
    if trade.note:
        pairs.append(("note", trade.note))
    if trade.labels:
        pairs.append(("labels", ", ".join(f"{k}={v}" for k, v in sorted(trade.labels.items()))))
    if trade.last_error:
        pairs.append(("error", trade.last_error))
    actions = [COMMANDS.get(action, action.value.lower()) for action in trade.available_actions]
    pairs.append(("actions", ", ".join(actions)))
    pairs.append(("etag", trade.etag))
    legs = table(["LEG", "STATE", "FILLED"], [leg_row(leg) for leg in trade.legs])
    return fields(pairs) + "\n" + legs


def trades_table(trades: Iterable[SmartTrade]) -> str:
    return table(
        ["NAME", "SYMBOL", "SIDE", "STATE", "HELD", "AVG ENTRY", "REALIZED PNL"],
        [
            [
                trade.name,
                trade.symbol,
                trade.side.value,
                state_text(trade),
                text(trade.position.units_held),
                number(trade.position.average_entry_price),
                text(trade.position.realized_pnl),
            ]
            for trade in trades
        ],
    )


def share_detail(share: Share) -> str:
    settings = share.settings
    pairs = []
    if share.name:
        pairs.append(("name", share.name))
    if share.token:
        pairs.append(("token", share.token))
    pairs += [
        ("expires", share.expire_time.isoformat() if share.expire_time else "never"),
        ("exchange", settings.exchange),
        ("symbol", f"{settings.symbol} {settings.side.value}"),
    ]
    leverage = leverage_text(settings.leverage, settings.symbol)
    if leverage is not None:
        pairs.append(("leverage", leverage))
    pairs += [
        ("entry", entry_text(settings)),
        ("take profit", ", ".join(step_text(s) for s in settings.take_profit) or "none"),
        ("stop loss", stop_text(settings.stop_loss)),
    ]
    return fields(pairs)


# --- accounts and the paper market -----------------------------------------------------------


def account_detail(account: Account) -> str:
    pairs = [
        ("name", account.name),
        ("exchange", account.exchange),
        ("display name", account.display_name or "-"),
        ("credentials", "stored" if account.has_credentials else "none"),
    ]
    paper = account.paper_settings
    if paper is not None:
        fills = (
            f"maker fee {number(paper.maker_fee_rate)}, taker fee {number(paper.taker_fee_rate)}, "
            f"slippage {number(paper.slippage_percent)}%"
        )
        pairs.append(("paper fills", fills + (", partial fills" if paper.partial_fills else "")))
    if account.etag:
        pairs.append(("etag", account.etag))
    return fields(pairs)


def shares_table(shares: Iterable[Share]) -> str:
    return table(
        ["NAME", "SYMBOL", "SIDE", "CREATED", "EXPIRES"],
        [
            [
                share.name,
                share.settings.symbol,
                share.settings.side.value,
                moment(share.create_time),
                moment(share.expire_time) if share.expire_time else "never",
            ]
            for share in shares
        ],
    )


def accounts_table(accounts: Iterable[Account]) -> str:
    return table(
        ["NAME", "EXCHANGE", "DISPLAY NAME"],
        [[account.name, account.exchange, account.display_name or "-"] for account in accounts],
    )


def balances_table(balances: Mapping[str, Balance]) -> str:
    return table(
        ["CURRENCY", "FREE", "LOCKED", "TOTAL"],
        [
            [b.currency, text(b.free), text(b.locked), text(b.total)]
            for b in sorted(balances.values(), key=lambda b: b.currency)
        ],
    )


# --- watching --------------------------------------------------------------------------------


def event_text(event: Event) -> str:
    """What happened, in a few words: `tp1 ORDER_FILLED 0.999 at 110`."""
    parts = [event.type.value]
    if event.leg_id:
        parts.insert(0, event.leg_id)
    if event.state is not None:
        parts.append(event.state.value)
    if event.leg_state is not None:
        parts.append(event.leg_state.value)
    if event.amount is not None:
        parts.append(text(event.amount))
    if event.price is not None:
        parts.append(f"at {text(event.price)}")
    if event.message:
        parts.append(f"- {event.message}")
    return " ".join(parts)


def event_line(event: Event) -> str:
    return f"#{event.sequence} {clock(event.time)} {event.trade_name} {event_text(event)}"


def snapshot_line(trade: SmartTrade) -> str:
    return (
        f"snapshot {trade.name} {trade.symbol} {trade.side.value} {state_text(trade)}"
        f" held {text(trade.position.units_held)}"
    )
