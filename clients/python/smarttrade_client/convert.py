"""The one place that knows both the protobuf messages and the client's models.

Decimals travel as plain strings without exponent (the contract's rule); an empty string is
"not set" (`None`), except for figures the service always reports, which read as 0 when empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from smarttrade_client.models import (
    Account,
    Action,
    Balance,
    Candle,
    CandleSource,
    CloseReason,
    Credentials,
    Entry,
    EntryType,
    Event,
    EventType,
    Fill,
    FuturesPosition,
    Heartbeat,
    Leg,
    LegKind,
    LegState,
    Leverage,
    MarginMode,
    MarketType,
    Order,
    OrderStatus,
    OrderType,
    PaperSettings,
    Position,
    Share,
    SharedSettings,
    Side,
    SimulatedEvent,
    Simulation,
    SmartTrade,
    SnapshotEnd,
    StopLoss,
    TakeProfitStep,
    TradeSnapshot,
    TradeState,
    TriggerPrice,
    VolumeShortfall,
    WatchItem,
)
from smarttrade_client.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade_client.v1 import paper_market_service_pb2 as paper_pb
from smarttrade_client.v1 import smart_trade_pb2 as pb
from smarttrade_client.v1 import smart_trade_service_pb2 as trades_pb

E = TypeVar("E", bound=StrEnum)


# --- scalars -------------------------------------------------------------------------------


def text(value: Decimal | None) -> str:
    """A decimal as the contract writes it: no exponent, no trailing zeros; None is ""."""
    if value is None:
        return ""
    if not isinstance(value, Decimal):
        # Floats are refused on purpose: 0.1 is not one tenth in binary.
        raise TypeError(f"expected a Decimal, got {type(value).__name__} {value!r}")
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite decimal")
    normalized = value.normalize()
    return format(normalized + 0, "f")  # "+ 0" turns -0 into 0


def optional(value: str) -> Decimal | None:
    return Decimal(value) if value else None


def figure(value: str) -> Decimal:
    return Decimal(value) if value else Decimal(0)


def time(stamp: Timestamp, present: bool = True) -> datetime | None:
    if not present:
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def duration(value: timedelta) -> Duration:
    message = Duration()
    message.FromTimedelta(value)
    return message


def timestamp(value: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(value)
    return message


def named(kind: type[E], prefix: str, enum: EnumDescriptor, number: int) -> E | None:
    """The model enum member for a contract enum number: None for UNSPECIFIED (0),
    UNRECOGNIZED for a number this client does not know (a newer server)."""
    if number == 0:
        return None
    value = enum.values_by_number.get(number)
    if value is None:
        return kind("UNRECOGNIZED")
    return kind(value.name.removeprefix(prefix))


def required(kind: type[E], prefix: str, enum: EnumDescriptor, number: int) -> E:
    value = named(kind, prefix, enum, number)
    if value is None:
        raise ValueError(f"the service sent no {kind.__name__}")
    return value


def trade_state(number: int) -> TradeState:
    return required(TradeState, "SMART_TRADE_STATE_", pb.SmartTradeState.DESCRIPTOR, number)


def trade_states(values: Iterable[TradeState]) -> list[pb.SmartTradeState.ValueType]:
    return [pb.SmartTradeState.Value(f"SMART_TRADE_STATE_{state.value}") for state in values]


def order_type_number(value: OrderType | None) -> pb.OrderType.ValueType:
    return pb.OrderType.Value(f"ORDER_TYPE_{value.value}" if value else "ORDER_TYPE_UNSPECIFIED")


# --- settings: model -> message ------------------------------------------------------------


def one_of(owner: str, **given: Decimal | None) -> None:
    """A oneof keeps only the last field set: refuse two rather than drop one silently."""
    named_ = [name for name, value in given.items() if value is not None]
    if len(named_) > 1:
        raise ValueError(f"{owner}: give one of {' or '.join(given)}, not both")


def entry_message(entry: Entry) -> pb.Entry:
    one_of("entry", units=entry.units, total=entry.total)
    message = pb.Entry(
        type=pb.EntryType.Value(f"ENTRY_TYPE_{entry.type.value}"),
        limit_price=text(entry.limit_price),
        trigger_price=text(entry.trigger_price),
        order_type=order_type_number(entry.order_type),
        trailing_percent=text(entry.trailing_percent),
        average_price=text(entry.average_price),
    )
    if entry.units is not None:
        message.units = text(entry.units)
    if entry.total is not None:
        message.total = text(entry.total)
    return message


def take_profit_message(steps: Iterable[TakeProfitStep]) -> pb.TakeProfit:
    message = pb.TakeProfit()
    for step in steps:
        one_of("take-profit step", price=step.price, percent=step.percent)
        item = message.steps.add(
            volume_percent=text(step.volume_percent),
            trailing_percent=text(step.trailing_percent),
        )
        if step.price is not None:
            item.price = text(step.price)
        if step.percent is not None:
            item.percent = text(step.percent)
    return message


def stop_loss_message(stop: StopLoss) -> pb.StopLoss:
    one_of("stop loss", price=stop.price, percent=stop.percent)
    message = pb.StopLoss(
        order_type=order_type_number(stop.order_type),
        limit_price=text(stop.limit_price),
        trailing_percent=text(stop.trailing_percent),
        move_to_breakeven=stop.move_to_breakeven,
    )
    if stop.price is not None:
        message.price = text(stop.price)
    if stop.percent is not None:
        message.percent = text(stop.percent)
    if stop.timeout is not None:
        message.timeout.CopyFrom(duration(stop.timeout))
    if stop.fallback_after is not None:
        message.fallback_after.CopyFrom(duration(stop.fallback_after))
    message.fallback_percent = text(stop.fallback_percent)
    return message


def leverage_message(leverage: Leverage) -> pb.Leverage:
    return pb.Leverage(
        market_type=pb.MarketType.Value(
            f"MARKET_TYPE_{leverage.market_type.value}"
            if leverage.market_type
            else "MARKET_TYPE_UNSPECIFIED"
        ),
        value=text(leverage.value),
        margin_mode=pb.MarginMode.Value(
            f"MARGIN_MODE_{leverage.margin_mode.value}"
            if leverage.margin_mode
            else "MARGIN_MODE_UNSPECIFIED"
        ),
    )


def trade_message(
    *,
    name: str = "",
    account: str = "",
    symbol: str = "",
    side: Side | None = None,
    entry: Entry | None = None,
    take_profit: Iterable[TakeProfitStep] | None = None,
    stop_loss: StopLoss | None = None,
    leverage: Leverage | None = None,
    note: str = "",
    etag: str = "",
    labels: Mapping[str, str] | None = None,
    time_limit: timedelta | None = None,
    trigger_price: TriggerPrice | None = None,
) -> pb.SmartTrade:
    message = pb.SmartTrade(name=name, account=account, symbol=symbol, note=note, etag=etag)
    message.labels.update(labels or {})
    if time_limit is not None:
        message.time_limit.CopyFrom(duration(time_limit))
    if trigger_price is not None:
        message.trigger_price = pb.TriggerPrice.Value(f"TRIGGER_PRICE_{trigger_price.value}")
    if side is not None:
        message.side = pb.Side.Value(f"SIDE_{side.value}")
    if entry is not None:
        message.entry.CopyFrom(entry_message(entry))
    if take_profit is not None:
        message.take_profit.CopyFrom(take_profit_message(take_profit))
    if stop_loss is not None:
        message.stop_loss.CopyFrom(stop_loss_message(stop_loss))
    if leverage is not None:
        message.leverage.CopyFrom(leverage_message(leverage))
    return message


def credentials_message(credentials: Credentials) -> accounts_pb.ExchangeCredentials:
    return accounts_pb.ExchangeCredentials(
        api_key=credentials.api_key, secret=credentials.secret, password=credentials.password
    )


def account_message(
    exchange: str,
    display_name: str,
    credentials: Credentials | None,
    paper: PaperSettings | None,
) -> accounts_pb.ExchangeAccount:
    message = accounts_pb.ExchangeAccount(exchange=exchange, display_name=display_name)
    if credentials is not None:
        message.credentials.CopyFrom(credentials_message(credentials))
    if paper is not None:
        message.paper_settings.CopyFrom(
            accounts_pb.PaperAccountSettings(
                maker_fee_rate=text(paper.maker_fee_rate),
                taker_fee_rate=text(paper.taker_fee_rate),
                slippage_percent=text(paper.slippage_percent),
                partial_fills=paper.partial_fills,
                initial_balances={c: text(a) for c, a in paper.initial_balances.items()},
            )
        )
    return message


def balance_messages(totals: Mapping[str, Decimal]) -> list[paper_pb.Balance]:
    return [paper_pb.Balance(currency=c, total=text(total)) for c, total in totals.items()]


# --- answers: message -> model -------------------------------------------------------------


def entry(message: pb.Entry) -> Entry:
    size = message.WhichOneof("size")
    return Entry(
        type=required(EntryType, "ENTRY_TYPE_", pb.EntryType.DESCRIPTOR, message.type),
        units=optional(message.units) if size == "units" else None,
        total=optional(message.total) if size == "total" else None,
        limit_price=optional(message.limit_price),
        trigger_price=optional(message.trigger_price),
        order_type=named(OrderType, "ORDER_TYPE_", pb.OrderType.DESCRIPTOR, message.order_type),
        trailing_percent=optional(message.trailing_percent),
        average_price=optional(message.average_price),
    )


def take_profit(message: pb.TakeProfit) -> tuple[TakeProfitStep, ...]:
    return tuple(
        TakeProfitStep(
            price=optional(step.price) if step.WhichOneof("target") == "price" else None,
            percent=optional(step.percent) if step.WhichOneof("target") == "percent" else None,
            volume_percent=figure(step.volume_percent),
            trailing_percent=optional(step.trailing_percent),
            target_price=optional(step.target_price),
        )
        for step in message.steps
    )


def stop_loss(message: pb.StopLoss) -> StopLoss:
    trigger = message.WhichOneof("trigger")
    return StopLoss(
        price=optional(message.price) if trigger == "price" else None,
        percent=optional(message.percent) if trigger == "percent" else None,
        order_type=named(OrderType, "ORDER_TYPE_", pb.OrderType.DESCRIPTOR, message.order_type),
        limit_price=optional(message.limit_price),
        timeout=message.timeout.ToTimedelta() if message.HasField("timeout") else None,
        trailing_percent=optional(message.trailing_percent),
        move_to_breakeven=message.move_to_breakeven,
        trigger_price=optional(message.trigger_price),
        fallback_after=message.fallback_after.ToTimedelta()
        if message.HasField("fallback_after")
        else None,
        fallback_percent=optional(message.fallback_percent),
    )


def leverage(message: pb.Leverage) -> Leverage:
    return Leverage(
        market_type=named(
            MarketType, "MARKET_TYPE_", pb.MarketType.DESCRIPTOR, message.market_type
        ),
        value=optional(message.value),
        margin_mode=named(
            MarginMode, "MARGIN_MODE_", pb.MarginMode.DESCRIPTOR, message.margin_mode
        ),
    )


def order(message: pb.Order) -> Order:
    return Order(
        client_order_id=message.client_order_id,
        exchange_order_id=message.exchange_order_id,
        side=required(Side, "SIDE_", pb.Side.DESCRIPTOR, message.side),
        type=required(OrderType, "ORDER_TYPE_", pb.OrderType.DESCRIPTOR, message.type),
        price=optional(message.price),
        amount=figure(message.amount),
        filled=figure(message.filled),
        average_price=optional(message.average_price),
        status=required(OrderStatus, "ORDER_STATUS_", pb.OrderStatus.DESCRIPTOR, message.status),
        fills=tuple(
            Fill(
                trade_id=fill.trade_id,
                price=figure(fill.price),
                amount=figure(fill.amount),
                fee=figure(fill.fee),
                fee_currency=fill.fee_currency,
                time=time(fill.time, fill.HasField("time")),
            )
            for fill in message.fills
        ),
        create_time=time(message.create_time, message.HasField("create_time")),
        update_time=time(message.update_time, message.HasField("update_time")),
        error=message.error,
    )


def leg(message: pb.Leg) -> Leg:
    return Leg(
        id=message.id,
        kind=required(LegKind, "LEG_KIND_", pb.LegKind.DESCRIPTOR, message.kind),
        state=required(LegState, "LEG_STATE_", pb.LegState.DESCRIPTOR, message.state),
        price=optional(message.price),
        amount=optional(message.amount),
        filled=figure(message.filled),
        orders=tuple(order(item) for item in message.orders),
        trailing_extreme=optional(message.trailing_extreme),
    )


def position(message: pb.Position) -> Position:
    return Position(
        units_bought=figure(message.units_bought),
        cost=figure(message.cost),
        average_entry_price=optional(message.average_entry_price),
        units_sold=figure(message.units_sold),
        proceeds=figure(message.proceeds),
        units_held=figure(message.units_held),
        realized_pnl=figure(message.realized_pnl),
        unrealized_pnl=optional(message.unrealized_pnl),
        last_price=optional(message.last_price),
        fees={fee.currency: figure(fee.amount) for fee in message.fees},
        surplus=figure(message.surplus),
    )


def futures_position(message: pb.FuturesPosition) -> FuturesPosition:
    return FuturesPosition(
        margin=figure(message.margin),
        unrealized_pnl=figure(message.unrealized_pnl),
        roe_percent=figure(message.roe_percent),
        liquidation_price=optional(message.liquidation_price),
    )


def smart_trade(message: pb.SmartTrade) -> SmartTrade:
    return SmartTrade(
        name=message.name,
        account=message.account,
        symbol=message.symbol,
        side=required(Side, "SIDE_", pb.Side.DESCRIPTOR, message.side),
        entry=entry(message.entry),
        take_profit=take_profit(message.take_profit),
        stop_loss=stop_loss(message.stop_loss) if message.HasField("stop_loss") else None,
        leverage=leverage(message.leverage) if message.HasField("leverage") else None,
        note=message.note,
        state=trade_state(message.state),
        close_reason=named(
            CloseReason, "CLOSE_REASON_", pb.CloseReason.DESCRIPTOR, message.close_reason
        ),
        legs=tuple(leg(item) for item in message.legs),
        position=position(message.position),
        available_actions=tuple(
            required(Action, "SMART_TRADE_ACTION_", pb.SmartTradeAction.DESCRIPTOR, number)
            for number in message.available_actions
        ),
        editable_fields=tuple(message.editable_fields),
        last_error=message.last_error,
        create_time=time(message.create_time, message.HasField("create_time")),
        update_time=time(message.update_time, message.HasField("update_time")),
        end_time=time(message.end_time, message.HasField("end_time")),
        etag=message.etag,
        reducible_units=optional(message.reducible_units),
        futures=futures_position(message.futures) if message.HasField("futures") else None,
        labels=dict(message.labels),
        time_limit=message.time_limit.ToTimedelta() if message.HasField("time_limit") else None,
        time_limit_expire_time=time(
            message.time_limit_expire_time, message.HasField("time_limit_expire_time")
        ),
        trigger_price=named(
            TriggerPrice, "TRIGGER_PRICE_", pb.TriggerPrice.DESCRIPTOR, message.trigger_price
        )
        or TriggerPrice.LAST,
    )


def share(message: pb.SmartTradeShare) -> Share:
    settings = message.settings
    return Share(
        name=message.name,
        token=message.token,
        settings=SharedSettings(
            exchange=settings.exchange,
            symbol=settings.symbol,
            side=required(Side, "SIDE_", pb.Side.DESCRIPTOR, settings.side),
            entry=entry(settings.entry),
            take_profit=take_profit(settings.take_profit),
            stop_loss=stop_loss(settings.stop_loss) if settings.HasField("stop_loss") else None,
            leverage=leverage(settings.leverage) if settings.HasField("leverage") else None,
        ),
        create_time=time(message.create_time, message.HasField("create_time")),
        expire_time=time(message.expire_time, message.HasField("expire_time")),
    )


def account(message: accounts_pb.ExchangeAccount) -> Account:
    paper = None
    if message.HasField("paper_settings"):
        given = message.paper_settings
        paper = PaperSettings(
            maker_fee_rate=optional(given.maker_fee_rate),
            taker_fee_rate=optional(given.taker_fee_rate),
            slippage_percent=optional(given.slippage_percent),
            partial_fills=given.partial_fills,
        )
    return Account(
        name=message.name,
        display_name=message.display_name,
        exchange=message.exchange,
        has_credentials=message.has_credentials,
        paper_settings=paper,
        create_time=time(message.create_time, message.HasField("create_time")),
        etag=message.etag,
    )


def balances(messages: Iterable[paper_pb.Balance]) -> dict[str, Balance]:
    return {
        item.currency: Balance(
            currency=item.currency,
            free=figure(item.free),
            locked=figure(item.locked),
            total=figure(item.total),
        )
        for item in messages
    }


def event(message: pb.SmartTradeEvent) -> Event:
    return Event(
        sequence=message.sequence,
        type=required(
            EventType, "SMART_TRADE_EVENT_TYPE_", pb.SmartTradeEventType.DESCRIPTOR, message.type
        ),
        time=time(message.time, message.HasField("time")),
        trade_name=message.smart_trade_name,
        leg_id=message.leg_id,
        client_order_id=message.client_order_id,
        state=named(TradeState, "SMART_TRADE_STATE_", pb.SmartTradeState.DESCRIPTOR, message.state),
        leg_state=named(LegState, "LEG_STATE_", pb.LegState.DESCRIPTOR, message.leg_state),
        price=optional(message.price),
        amount=optional(message.amount),
        message=message.message,
        trade=smart_trade(message.smart_trade),
    )


def candle_message(candle: Candle) -> trades_pb.Candle:
    return trades_pb.Candle(
        time=timestamp(candle.time),
        open=text(candle.open),
        high=text(candle.high),
        low=text(candle.low),
        close=text(candle.close),
        volume=text(candle.volume),
    )


def candle_source_message(source: CandleSource) -> trades_pb.CandleSource:
    return trades_pb.CandleSource(
        exchange=source.exchange,
        timeframe=source.timeframe,
        start_time=timestamp(source.start),
        end_time=timestamp(source.end),
    )


def simulation(message: trades_pb.SimulateSmartTradeResponse) -> Simulation:
    return Simulation(
        trade=smart_trade(message.smart_trade),
        events=tuple(simulated_event(event) for event in message.events),
        balances={currency: figure(amount) for currency, amount in message.balances.items()},
        candle_count=message.candle_count,
        tick_count=message.tick_count,
        volume_shortfalls=tuple(
            VolumeShortfall(
                candle_time=shortfall.candle_time.ToDatetime(tzinfo=UTC),
                volume=figure(shortfall.volume),
                filled=figure(shortfall.filled),
            )
            for shortfall in message.volume_shortfalls
        ),
    )


def simulated_event(message: pb.SmartTradeEvent) -> SimulatedEvent:
    return SimulatedEvent(
        sequence=message.sequence,
        type=required(
            EventType, "SMART_TRADE_EVENT_TYPE_", pb.SmartTradeEventType.DESCRIPTOR, message.type
        ),
        time=time(message.time, message.HasField("time")),
        leg_id=message.leg_id,
        client_order_id=message.client_order_id,
        state=named(TradeState, "SMART_TRADE_STATE_", pb.SmartTradeState.DESCRIPTOR, message.state),
        leg_state=named(LegState, "LEG_STATE_", pb.LegState.DESCRIPTOR, message.leg_state),
        price=optional(message.price),
        amount=optional(message.amount),
        message=message.message,
    )


def watch_item(message: trades_pb.WatchSmartTradesResponse) -> WatchItem | None:
    """The model of one stream message; None for a payload this client does not know."""
    kind = message.WhichOneof("payload")
    if kind == "snapshot":
        return TradeSnapshot(smart_trade(message.snapshot))
    if kind == "snapshot_end":
        return SnapshotEnd(message.snapshot_end.sequence)
    if kind == "event":
        return event(message.event)
    if kind == "heartbeat":
        beat = message.heartbeat
        return Heartbeat(beat.sequence, time(beat.time, beat.HasField("time")))
    return None
