"""Domain values -> response messages.

Enums map by name (the domain's `BUY` is the contract's `SIDE_BUY`), so a value added on one
side and not the other fails loudly in tests rather than silently. Decimals are rendered as
plain strings without exponent; derived figures (averages, PnL) are rounded to 12 decimals,
facts (prices, sizes the venue reported) are shown exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import Enum
from functools import cache
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from smarttrade.domain.account import ExchangeAccount
from smarttrade.domain.actions import reducible_units
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.futures import figures_of
from smarttrade.domain.menu import available_actions, editable_fields
from smarttrade.domain.messages import Event, StoredEvent
from smarttrade.domain.model import Leg, Order, SmartTrade
from smarttrade.domain.position import position_of
from smarttrade.domain.prices import stop_trigger, take_profit_target
from smarttrade.domain.spec import EntrySpec, EntryType, LeverageSpec, StopLossSpec, TradeSpec
from smarttrade.domain.values import Balance
from smarttrade.usecases.accounts import etag_of
from smarttrade.usecases.shares import SharedTrade
from smarttrade.usecases.simulate import Simulation
from smarttrade.usecases.watch import Heartbeat, SnapshotEnd, SnapshotTrade, StreamItem
from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as service_pb

DERIVED = Decimal("1e-12")


def text(value: Decimal | None) -> str:
    if value is None:
        return ""
    return format((value + 0).normalize(), "f")  # "+ 0" turns -0 into 0


def derived(value: Decimal | None) -> str:
    if value is None:
        return ""
    return text(value.quantize(DERIVED, rounding=ROUND_HALF_EVEN))


@cache
def number(enum_type: Any, prefix: str, value: Enum | None) -> Any:
    """The contract's number for a domain enum value (UNSPECIFIED for None), looked up once
    per value. Typed loosely: mypy-protobuf gives each enum its own wrapper type."""
    name = f"{prefix}_UNSPECIFIED" if value is None else f"{prefix}_{value.value}"
    return enum_type.Value(name)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(at: datetime | None) -> Timestamp | None:
    """`Timestamp.FromDatetime`, in a third of its time (a trade's answer has several)."""
    if at is None:
        return None
    since = (at if at.tzinfo is not None else at.replace(tzinfo=UTC)) - EPOCH
    return Timestamp(seconds=since.days * 86400 + since.seconds, nanos=since.microseconds * 1000)


def entry(spec: EntrySpec) -> pb.Entry:
    message = pb.Entry(
        type=number(pb.EntryType, "ENTRY_TYPE", spec.type),
        limit_price=text(spec.limit_price),
        trigger_price=text(spec.trigger_price),
        # The order a CONDITIONAL entry places once triggered; other entries have none.
        order_type=number(
            pb.OrderType,
            "ORDER_TYPE",
            spec.order_type if spec.type is EntryType.CONDITIONAL else None,
        ),
        trailing_percent=text(spec.trailing_percent),
        average_price=text(spec.average_price),
    )
    if spec.units is not None:
        message.units = text(spec.units)
    elif spec.total is not None:
        message.total = text(spec.total)
    return message


def stop_loss(spec: StopLossSpec, trigger: Decimal | None) -> pb.StopLoss:
    message = pb.StopLoss(
        order_type=number(pb.OrderType, "ORDER_TYPE", spec.order_type),
        limit_price=text(spec.limit_price),
        trailing_percent=text(spec.trailing_percent),
        move_to_breakeven=spec.move_to_breakeven,
        trigger_price=text(trigger),
    )
    if spec.price is not None:
        message.price = text(spec.price)
    elif spec.percent is not None:
        message.percent = text(spec.percent)
    if spec.timeout is not None:
        message.timeout.CopyFrom(Duration(seconds=int(spec.timeout.total_seconds())))
    if spec.fallback_after is not None:
        message.fallback_after.CopyFrom(seconds(spec.fallback_after))
    message.fallback_percent = text(spec.fallback_percent)
    return message


def seconds(value: timedelta) -> Duration:
    return Duration(seconds=int(value.total_seconds()))


def leverage(spec: LeverageSpec) -> pb.Leverage:
    return pb.Leverage(
        market_type=number(pb.MarketType, "MARKET_TYPE", spec.market_type),
        value=text(spec.value),
        margin_mode=number(pb.MarginMode, "MARGIN_MODE", spec.margin_mode),
    )


def settings_into(message: pb.SmartTrade, spec: TradeSpec, trade: SmartTrade | None) -> None:
    """The settings fields of a SmartTrade message; with `trade`, also the prices in force."""
    average = position_of(trade).average_entry_price if trade is not None else None
    message.symbol = spec.symbol
    message.side = number(pb.Side, "SIDE", spec.side)
    message.entry.CopyFrom(entry(spec.entry))
    for step in spec.take_profit:
        item = message.take_profit.steps.add(
            volume_percent=text(step.volume_percent),
            trailing_percent=text(step.trailing_percent),
        )
        if step.price is not None:
            item.price = text(step.price)
        elif step.percent is not None:
            item.percent = text(step.percent)
        if trade is not None:
            item.target_price = text(take_profit_target(trade, step, average))
    if spec.stop_loss is not None:
        trigger = stop_trigger(trade, average) if trade is not None else None
        message.stop_loss.CopyFrom(stop_loss(spec.stop_loss, trigger))
    message.leverage.CopyFrom(leverage(spec.leverage))
    message.note = spec.note
    message.labels.clear()
    message.labels.update(spec.labels)
    if spec.time_limit is not None:
        message.time_limit.CopyFrom(seconds(spec.time_limit))
    message.trigger_price = number(pb.TriggerPrice, "TRIGGER_PRICE", spec.trigger_price)


def order(value: Order) -> pb.Order:
    return pb.Order(
        client_order_id=value.client_order_id,
        exchange_order_id=value.exchange_order_id or "",
        side=number(pb.Side, "SIDE", value.side),
        type=number(pb.OrderType, "ORDER_TYPE", value.type),
        price=text(value.price),
        amount=text(value.amount),
        filled=text(value.filled),
        average_price=derived(value.average_price),
        status=number(pb.OrderStatus, "ORDER_STATUS", value.status),
        fills=[
            pb.Fill(
                trade_id=fill.trade_id,
                price=text(fill.price),
                amount=text(fill.amount),
                fee=text(fill.fee),
                fee_currency=fill.fee_currency,
                time=timestamp(fill.at),
            )
            for fill in value.fills
        ],
        create_time=timestamp(value.created_at),
        update_time=timestamp(value.updated_at),
        error=value.error,
    )


def leg(value: Leg) -> pb.Leg:
    return pb.Leg(
        id=value.id,
        kind=number(pb.LegKind, "LEG_KIND", value.kind),
        state=number(pb.LegState, "LEG_STATE", value.state),
        price=text(value.price),
        amount=text(value.amount) if value.amount else "",  # unknown until the leg is sized
        filled=text(value.filled),
        orders=[order(item) for item in value.orders],
        trailing_extreme=text(value.trailing_extreme),
    )


def smart_trade(trade: SmartTrade) -> pb.SmartTrade:
    position = position_of(trade)
    message = pb.SmartTrade(
        name=f"smartTrades/{trade.resource_id}",
        account=f"exchangeAccounts/{trade.account_id}",
        state=number(pb.SmartTradeState, "SMART_TRADE_STATE", trade.state),
        close_reason=number(pb.CloseReason, "CLOSE_REASON", trade.close_reason),
        legs=[leg(item) for item in trade.legs],
        available_actions=[
            number(pb.SmartTradeAction, "SMART_TRADE_ACTION", action)
            for action in available_actions(trade)
        ],
        editable_fields=editable_fields(trade),
        last_error=trade.last_error,
        create_time=timestamp(trade.created_at),
        update_time=timestamp(trade.updated_at),
        end_time=timestamp(trade.ended_at),
        etag=trade.etag,
        reducible_units=text(reducible_units(trade)),
        time_limit_expire_time=timestamp(
            trade.time_limit_at if trade.state is TradeState.ACTIVE else None
        ),
        position=pb.Position(
            units_bought=text(position.units_bought),
            cost=text(position.cost),
            average_entry_price=derived(position.average_entry_price),
            units_sold=text(position.units_sold),
            proceeds=text(position.proceeds),
            units_held=text(position.units_held),
            realized_pnl=derived(position.realized_pnl),
            unrealized_pnl=derived(position.unrealized_pnl(trade.last_price)),
            last_price=text(trade.last_price),
            fees=[pb.FeeTotal(currency=c, amount=text(a)) for c, a in position.fees],
            surplus=text(position.surplus),
        ),
    )
    figures = figures_of(trade, trade.last_price)
    if figures is not None:
        message.futures.CopyFrom(
            pb.FuturesPosition(
                margin=derived(figures.margin),
                unrealized_pnl=derived(figures.unrealized_pnl),
                roe_percent=derived(figures.roe_percent),
                liquidation_price=derived(figures.liquidation_price),
            )
        )
    settings_into(message, trade.spec, trade)
    return message


def event(stored: StoredEvent) -> pb.SmartTradeEvent:
    message = _event(stored.sequence, f"smartTrades/{stored.trade.resource_id}", stored.event)
    message.smart_trade.CopyFrom(smart_trade(stored.trade))
    return message


def simulation(result: Simulation, account: str) -> service_pb.SimulateSmartTradeResponse:
    """A simulation's answer: the trade as a live one is shown, with nothing to act on (no
    actions, no editable fields, no etag), and its events numbered from 1."""
    trade = smart_trade(result.trade)
    trade.account = account
    del trade.available_actions[:]
    del trade.editable_fields[:]
    trade.etag = ""
    return service_pb.SimulateSmartTradeResponse(
        smart_trade=trade,
        events=[
            _event(sequence, trade.name, fact)
            for sequence, fact in enumerate(result.events, start=1)
        ],
        balances={c: text(b.free + b.locked) for c, b in result.balances.items()},
        candle_count=result.candle_count,
        tick_count=result.ticks,
        volume_shortfalls=[
            service_pb.VolumeShortfall(
                candle_time=timestamp(shortfall.candle_time),
                volume=text(shortfall.volume),
                filled=text(shortfall.filled),
            )
            for shortfall in result.volume_shortfalls
        ],
    )


def _event(sequence: int, trade_name: str, fact: Event) -> pb.SmartTradeEvent:
    return pb.SmartTradeEvent(
        sequence=sequence,
        type=number(pb.SmartTradeEventType, "SMART_TRADE_EVENT_TYPE", fact.type),
        time=timestamp(fact.at),
        smart_trade_name=trade_name,
        leg_id=fact.leg_id,
        client_order_id=fact.client_order_id,
        state=number(pb.SmartTradeState, "SMART_TRADE_STATE", fact.state),
        leg_state=number(pb.LegState, "LEG_STATE", fact.leg_state),
        price=derived(fact.price),
        amount=text(fact.amount),
        message=fact.message,
    )


def stream_item(item: StreamItem) -> service_pb.WatchSmartTradesResponse:
    if isinstance(item, SnapshotTrade):
        return service_pb.WatchSmartTradesResponse(snapshot=smart_trade(item.trade))
    if isinstance(item, SnapshotEnd):
        return service_pb.WatchSmartTradesResponse(
            snapshot_end=service_pb.SnapshotEnd(sequence=item.sequence)
        )
    if isinstance(item, Heartbeat):
        return service_pb.WatchSmartTradesResponse(
            heartbeat=service_pb.Heartbeat(sequence=item.sequence, time=timestamp(item.at))
        )
    return service_pb.WatchSmartTradesResponse(event=event(item))


def exchange_account(account: ExchangeAccount) -> accounts_pb.ExchangeAccount:
    message = accounts_pb.ExchangeAccount(
        name=f"exchangeAccounts/{account.id}",
        display_name=account.display_name,
        exchange=account.exchange,
        has_credentials=account.sealed_credentials is not None,
        create_time=timestamp(account.created_at),
        etag=etag_of(account),
    )
    settings = account.paper_settings
    if settings is not None:
        message.paper_settings.CopyFrom(
            accounts_pb.PaperAccountSettings(
                maker_fee_rate=text(settings.maker_fee_rate),
                taker_fee_rate=text(settings.taker_fee_rate),
                slippage_percent=text(settings.slippage_percent),
                partial_fills=settings.partial_fills,
            )
        )
    return message


def balances(values: dict[str, Balance]) -> list[paper_pb.Balance]:
    return [
        paper_pb.Balance(
            currency=balance.currency,
            free=text(balance.free),
            locked=text(balance.locked),
            total=text(balance.total),
        )
        for balance in values.values()
    ]


def share(shared: SharedTrade, for_owner: bool) -> pb.SmartTradeShare:
    """The share as the contract shows it: the owner sees its name (and, once, its token);
    anyone else only the settings."""
    full = pb.SmartTrade()
    settings_into(full, shared.spec, None)
    settings = pb.SharedSettings(
        exchange=shared.exchange,
        symbol=full.symbol,
        side=full.side,
        entry=full.entry,
        take_profit=full.take_profit,
        leverage=full.leverage,
        trigger_price=full.trigger_price,
    )
    if full.HasField("stop_loss"):
        settings.stop_loss.CopyFrom(full.stop_loss)
    if full.HasField("time_limit"):
        settings.time_limit.CopyFrom(full.time_limit)
    return pb.SmartTradeShare(
        name=f"smartTrades/{shared.trade_id}/shares/{shared.share_id}" if for_owner else "",
        token=shared.token,
        settings=settings,
        create_time=timestamp(shared.created_at),
        expire_time=timestamp(shared.expires_at),
    )
