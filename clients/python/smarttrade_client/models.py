"""The client's values, in the trader's language: frozen dataclasses with `Decimal` money.

Settings you send (`Entry`, `TakeProfitStep`, `StopLoss`, `Leverage`, `PaperSettings`,
`Credentials`) and what the service answers (`SmartTrade`, `Leg`, `Order`, `Position`,
`FuturesPosition`, `Account`, `Balance`, `Share`, `Event`, ...). Prices are in the quote
currency, sizes in base units, percentages as numbers ("5" for 5%). A field that is `None` was
not set (or, on output, does not apply yet, like `average_entry_price` before the first fill).
Times are aware UTC `datetime`s. Enum values are the contract's names without their prefix
(`Side.BUY` is `SIDE_BUY`); output enums have an `UNRECOGNIZED` member for a value a newer
server sends that this client does not know yet (as protobuf's Java and Go runtimes name it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    """The direction of a trade. Price rules are written for BUY; SELL mirrors them."""

    BUY = "BUY"  # a long position: buy first, sell to take profit
    SELL = "SELL"  # a short position: sell first, buy back to take profit


class EntryType(StrEnum):
    """How the entry is executed."""

    MARKET = "MARKET"  # at once (or a trailing entry, with `trailing_percent`)
    LIMIT = "LIMIT"  # a limit order at `limit_price`
    CONDITIONAL = "CONDITIONAL"  # held by the service until the price reaches `trigger_price`
    SKIP = "SKIP"  # no entry order: the coins are already held, at `average_price`


class OrderType(StrEnum):
    """The kind of exchange order."""

    MARKET = "MARKET"
    LIMIT = "LIMIT"


class MarketType(StrEnum):
    SPOT = "SPOT"
    # USDT-margined perpetual futures, on the perpetual's symbol ("BTC/USDT:USDT"): the entry
    # opens a position on margin (a SELL is a short) and every exit is reduce-only.
    LINEAR = "LINEAR"


class MarginMode(StrEnum):
    ISOLATED = "ISOLATED"
    CROSS = "CROSS"


class TriggerPrice(StrEnum):
    """Which of the exchange's prices the trade's triggers (conditions, trailing, stop) watch."""

    LAST = "LAST"
    BID = "BID"  # the best bid (polled)
    ASK = "ASK"  # the best ask (polled)
    MARK = "MARK"  # a perpetual's mark price (polled); futures only
    UNRECOGNIZED = "UNRECOGNIZED"  # a newer service's


class TradeState(StrEnum):
    """The lifecycle state of a SmartTrade."""

    PENDING = "PENDING"  # waiting for the entry
    ACTIVE = "ACTIVE"  # entered; take profit and stop loss working
    CLOSING = "CLOSING"  # a market exit is in flight
    CLOSED = "CLOSED"  # fully exited; see `close_reason`
    CANCELLED = "CANCELLED"  # the user cancelled
    FAILED = "FAILED"  # the exchange finally refused
    UNRECOGNIZED = "UNRECOGNIZED"

    @property
    def is_terminal(self) -> bool:
        """True once the service manages nothing of the trade any more."""
        return self in (TradeState.CLOSED, TradeState.CANCELLED, TradeState.FAILED)


class CloseReason(StrEnum):
    TAKE_PROFIT = "TAKE_PROFIT"
    STOP_LOSS = "STOP_LOSS"
    CLOSED_AT_MARKET = "CLOSED_AT_MARKET"
    CLOSED_EXTERNALLY = "CLOSED_EXTERNALLY"
    LIQUIDATED = "LIQUIDATED"  # futures: the exchange closed the position at its liquidation
    TIME_LIMIT = "TIME_LIMIT"  # the trade's time_limit ran out: sold at market
    UNRECOGNIZED = "UNRECOGNIZED"


class Action(StrEnum):
    """The trade-management menu; `SmartTrade.available_actions` lists what is allowed now."""

    REFRESH = "REFRESH"
    ADD_FUNDS = "ADD_FUNDS"
    REDUCE_FUNDS = "REDUCE_FUNDS"
    OPEN_NOW = "OPEN_NOW"
    CLOSE_AT_MARKET = "CLOSE_AT_MARKET"
    EDIT = "EDIT"
    SHARE = "SHARE"
    CANCEL = "CANCEL"
    CLOSE_STEP = "CLOSE_STEP"  # one take-profit step at market now (`close_step`)
    UNRECOGNIZED = "UNRECOGNIZED"


class LegKind(StrEnum):
    ENTRY = "ENTRY"
    TAKE_PROFIT = "TAKE_PROFIT"
    STOP_LOSS = "STOP_LOSS"
    ADD_FUNDS = "ADD_FUNDS"
    REDUCE_FUNDS = "REDUCE_FUNDS"
    CLOSE = "CLOSE"
    UNRECOGNIZED = "UNRECOGNIZED"


class LegState(StrEnum):
    IDLE = "IDLE"
    WAITING = "WAITING"
    ORDER_PLACED = "ORDER_PLACED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    UNRECOGNIZED = "UNRECOGNIZED"


class OrderStatus(StrEnum):
    PENDING = "PENDING"  # recorded by the service, not yet confirmed by the exchange
    UNKNOWN = "UNKNOWN"  # sent, but the answer was lost: being looked up by client order id
    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REJECTED = "REJECTED"
    UNRECOGNIZED = "UNRECOGNIZED"


class EventType(StrEnum):
    """What happened to a trade (past tense: each is a recorded fact)."""

    CREATED = "CREATED"
    STATE_CHANGED = "STATE_CHANGED"
    LEG_STATE_CHANGED = "LEG_STATE_CHANGED"
    ORDER_PLACED = "ORDER_PLACED"
    ORDER_PARTIALLY_FILLED = "ORDER_PARTIALLY_FILLED"
    ORDER_FILLED = "ORDER_FILLED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    ORDER_FAILED = "ORDER_FAILED"
    TRAILING_ACTIVATED = "TRAILING_ACTIVATED"
    STOP_MOVED = "STOP_MOVED"
    PRICE_TRIGGERED = "PRICE_TRIGGERED"
    SETTINGS_UPDATED = "SETTINGS_UPDATED"
    ERROR_CHANGED = "ERROR_CHANGED"
    TARGET_MOVED = "TARGET_MOVED"
    UNRECOGNIZED = "UNRECOGNIZED"


@dataclass(frozen=True, kw_only=True)
class Entry:
    """The entry of a trade. Give exactly one size: `units` (base) or `total` (quote).

    The class methods build the four kinds: `Entry.market(units=Decimal("0.5"))`,
    `Entry.limit(Decimal("95"), units=...)`, `Entry.conditional(Decimal("105"), total=...)`,
    `Entry.skip(Decimal("98"), units=...)`.
    """

    type: EntryType
    units: Decimal | None = None
    total: Decimal | None = None
    limit_price: Decimal | None = None  # LIMIT; CONDITIONAL with order_type LIMIT
    trigger_price: Decimal | None = None  # CONDITIONAL
    order_type: OrderType | None = None  # CONDITIONAL: the order placed when triggered
    trailing_percent: Decimal | None = None  # MARKET / CONDITIONAL: a trailing entry
    average_price: Decimal | None = None  # SKIP: the price the coins were bought at

    @classmethod
    def market(
        cls,
        *,
        units: Decimal | None = None,
        total: Decimal | None = None,
        trailing_percent: Decimal | None = None,
    ) -> Entry:
        """A market entry, sent at once (trailing from now with `trailing_percent`)."""
        return cls(
            type=EntryType.MARKET, units=units, total=total, trailing_percent=trailing_percent
        )

    @classmethod
    def limit(
        cls, price: Decimal, *, units: Decimal | None = None, total: Decimal | None = None
    ) -> Entry:
        """A limit order resting on the exchange at `price`."""
        return cls(type=EntryType.LIMIT, units=units, total=total, limit_price=price)

    @classmethod
    def conditional(
        cls,
        trigger_price: Decimal,
        *,
        units: Decimal | None = None,
        total: Decimal | None = None,
        order_type: OrderType | None = None,
        limit_price: Decimal | None = None,
        trailing_percent: Decimal | None = None,
    ) -> Entry:
        """Held by the service until the last price reaches `trigger_price`."""
        return cls(
            type=EntryType.CONDITIONAL,
            units=units,
            total=total,
            trigger_price=trigger_price,
            order_type=order_type,
            limit_price=limit_price,
            trailing_percent=trailing_percent,
        )

    @classmethod
    def skip(cls, average_price: Decimal, *, units: Decimal) -> Entry:
        """No entry order: `units` are already held, bought at `average_price`."""
        return cls(type=EntryType.SKIP, units=units, average_price=average_price)


@dataclass(frozen=True, kw_only=True)
class TakeProfitStep:
    """One take-profit step: a target (`price`, or `percent` beyond the average entry) and
    the share of the position it exits. Volumes of all steps sum to 100; only the last step
    may trail. `target_price` is output only: the absolute target in force now."""

    price: Decimal | None = None
    percent: Decimal | None = None
    volume_percent: Decimal = Decimal(100)
    trailing_percent: Decimal | None = None
    target_price: Decimal | None = None


@dataclass(frozen=True, kw_only=True)
class StopLoss:
    """The stop loss, held by the service until it fires: a trigger `price`, or `percent`
    beyond the average entry on the losing side. `trigger_price` is output only: the trigger
    in force now (after trailing, breakeven and Add Funds)."""

    price: Decimal | None = None
    percent: Decimal | None = None
    order_type: OrderType | None = None  # default MARKET
    limit_price: Decimal | None = None  # for order_type LIMIT
    timeout: timedelta | None = None  # fire only after the price stayed beyond this long
    trailing_percent: Decimal | None = None
    move_to_breakeven: bool = False  # after the first take-profit fill (needs 2+ steps)
    trigger_price: Decimal | None = None
    # A LIMIT stop's way out when its limit does not fill: after resting this long, or once
    # the price runs this many percent past the limit, it is cancelled and the rest sold at
    # market (whole seconds; a percent between 0 and 100).
    fallback_after: timedelta | None = None
    fallback_percent: Decimal | None = None


@dataclass(frozen=True, kw_only=True)
class Leverage:
    """The market kind, and for futures (LINEAR) the leverage and margin mode. A spot trade
    has no leverage (a value other than 1 is refused) and ignores the margin mode."""

    market_type: MarketType | None = None  # default SPOT
    value: Decimal | None = None  # LINEAR: a whole multiplier up to the market's maximum
    margin_mode: MarginMode | None = None  # default ISOLATED for futures


@dataclass(frozen=True)
class Fill:
    """One execution of an order."""

    trade_id: str
    price: Decimal
    amount: Decimal
    fee: Decimal
    fee_currency: str
    time: datetime | None


@dataclass(frozen=True)
class Order:
    """One exchange order of a leg."""

    client_order_id: str
    exchange_order_id: str
    side: Side
    type: OrderType
    price: Decimal | None  # None for market orders
    amount: Decimal
    filled: Decimal
    average_price: Decimal | None  # None before any fill
    status: OrderStatus
    fills: tuple[Fill, ...]
    create_time: datetime | None
    update_time: datetime | None
    error: str


@dataclass(frozen=True)
class Leg:
    """A part of a trade with its own state and orders: "entry", "tp1", "sl", "add1", ..."""

    id: str
    kind: LegKind
    state: LegState
    price: Decimal | None
    amount: Decimal | None
    filled: Decimal
    orders: tuple[Order, ...]
    trailing_extreme: Decimal | None


@dataclass(frozen=True)
class Position:
    """The position figures of a trade."""

    units_bought: Decimal
    cost: Decimal
    average_entry_price: Decimal | None
    units_sold: Decimal
    proceeds: Decimal
    units_held: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal | None
    last_price: Decimal | None
    fees: Mapping[str, Decimal]  # currency -> fees paid in it
    # Base a spot SELL's buy-backs brought in beyond the position (rounded up to the lot
    # to cover their base fee); left in the account. 0 from a service that predates it.
    surplus: Decimal = Decimal(0)


@dataclass(frozen=True)
class FuturesPosition:
    """A futures trade's open position: its margin and risk at `Position.last_price`, in the
    settle currency (USDT)."""

    margin: Decimal  # the initial margin: average entry price x units held / leverage
    unrealized_pnl: Decimal  # the same as `Position.unrealized_pnl`
    roe_percent: Decimal  # return on margin: unrealized_pnl / margin x 100
    # The exchange's liquidation price when it reports one, else (isolated margin) computed
    # with its one-tier formula; None when unknown (cross margin before it reports one).
    liquidation_price: Decimal | None


@dataclass(frozen=True)
class SmartTrade:
    """A SmartTrade as the service reports it: its settings, state, legs and position.

    Pass `etag` back to a mutation to have it refused (`Aborted`) if the trade changed since.
    """

    name: str  # smartTrades/{id}
    account: str  # exchangeAccounts/{id}
    symbol: str
    side: Side
    entry: Entry
    take_profit: tuple[TakeProfitStep, ...]
    stop_loss: StopLoss | None
    leverage: Leverage | None
    note: str
    state: TradeState
    close_reason: CloseReason | None
    legs: tuple[Leg, ...]
    position: Position
    available_actions: tuple[Action, ...]
    editable_fields: tuple[str, ...]
    last_error: str
    create_time: datetime | None
    update_time: datetime | None
    end_time: datetime | None
    etag: str
    # The most Reduce Funds accepts now (base units); None when it is not available.
    reducible_units: Decimal | None = None
    # Futures (LINEAR): the open position's margin, ROE and liquidation price; None on spot
    # and while no position is open.
    futures: FuturesPosition | None = None
    # The caller's labels: lowercase keys and values (see `SmartTradeClient.create_trade`).
    labels: Mapping[str, str] = field(default_factory=dict)
    # Close at market once the position has been open this long (close reason TIME_LIMIT),
    # and when that is, while ACTIVE.
    time_limit: timedelta | None = None
    time_limit_expire_time: datetime | None = None
    trigger_price: TriggerPrice = TriggerPrice.LAST

    def leg(self, leg_id: str) -> Leg:
        """The leg with this id ("entry", "tp1", "sl", ...); KeyError if there is none."""
        for leg in self.legs:
            if leg.id == leg_id:
                return leg
        raise KeyError(leg_id)


@dataclass(frozen=True)
class SharedSettings:
    """What a share reveals: the settings, without account, owner, size or secrets."""

    exchange: str
    symbol: str
    side: Side
    entry: Entry
    take_profit: tuple[TakeProfitStep, ...]
    stop_loss: StopLoss | None
    leverage: Leverage | None


@dataclass(frozen=True)
class Share:
    """A link to a trade's settings. `name` is shown to the owner only; `token` only once,
    in the answer of `share`."""

    name: str
    token: str
    settings: SharedSettings
    create_time: datetime | None
    expire_time: datetime | None


@dataclass(frozen=True)
class Credentials:
    """API credentials of a real exchange account (sent, never returned)."""

    api_key: str
    secret: str = field(repr=False)
    password: str = field(default="", repr=False)


@dataclass(frozen=True, kw_only=True)
class PaperSettings:
    """How the paper venue fills a paper account's orders. `None` takes the service's
    default (fees 0.001, no slippage); `initial_balances` is input only (default 10000 USDT)."""

    maker_fee_rate: Decimal | None = None
    taker_fee_rate: Decimal | None = None
    slippage_percent: Decimal | None = None
    partial_fills: bool = False
    initial_balances: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Account:
    """An exchange account (credentials are never returned, only `has_credentials`)."""

    name: str  # exchangeAccounts/{id}
    display_name: str
    exchange: str
    has_credentials: bool
    paper_settings: PaperSettings | None
    create_time: datetime | None
    etag: str = ""  # pass back to `update_account` to refuse a change made meanwhile


@dataclass(frozen=True)
class Balance:
    """A paper account's balance of one currency."""

    currency: str
    free: Decimal
    locked: Decimal
    total: Decimal


@dataclass(frozen=True)
class Event:
    """One event of a trade, in the global order of `sequence`; `trade` is the whole trade
    right after it."""

    sequence: int
    type: EventType
    time: datetime | None
    trade_name: str
    leg_id: str
    client_order_id: str
    state: TradeState | None  # for STATE_CHANGED
    leg_state: LegState | None  # for LEG_STATE_CHANGED
    price: Decimal | None
    amount: Decimal | None
    message: str
    trade: SmartTrade


@dataclass(frozen=True)
class TradeSnapshot:
    """Part of the initial snapshot of a watch: one trade as it is now."""

    trade: SmartTrade


@dataclass(frozen=True)
class SnapshotEnd:
    """The snapshot is complete; it reflects every event up to `sequence`."""

    sequence: int


@dataclass(frozen=True)
class Heartbeat:
    """The stream is alive; nothing happened since `sequence`."""

    sequence: int
    time: datetime | None


WatchItem = TradeSnapshot | SnapshotEnd | Event | Heartbeat


@dataclass(frozen=True)
class Candle:
    """One period of a price history: its start and its prices (quote currency)."""

    time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal | None = None


@dataclass(frozen=True)
class CandleSource:
    """A history the service fetches from a venue's public market data: candles of
    `timeframe` (1m, 5m, 15m, 1h, 4h, 1d) starting in [start, end)."""

    exchange: str  # a ccxt id, e.g. "binance"
    timeframe: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class SimulatedEvent:
    """One event of a simulated trade, numbered from 1 within the simulation."""

    sequence: int
    type: EventType
    time: datetime | None
    leg_id: str
    client_order_id: str
    state: TradeState | None  # for STATE_CHANGED
    leg_state: LegState | None  # for LEG_STATE_CHANGED
    price: Decimal | None
    amount: Decimal | None
    message: str


@dataclass(frozen=True)
class VolumeShortfall:
    """A candle in which the simulated trade filled more of the base than was traded: the
    history could not have filled that much, so the outcome is kinder there than a venue's."""

    candle_time: datetime
    volume: Decimal
    filled: Decimal


@dataclass(frozen=True)
class Simulation:
    """What a trade would have done over a history: the trade as it ended (nothing stored,
    nothing to act on), its events, the simulated account's balances (totals) at the end."""

    trade: SmartTrade
    events: tuple[SimulatedEvent, ...]
    balances: Mapping[str, Decimal]
    candle_count: int
    tick_count: int
    # The candles (with a volume) in which the trade filled more than their volume.
    volume_shortfalls: tuple[VolumeShortfall, ...] = ()
