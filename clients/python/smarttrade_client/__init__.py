"""A typed Python client of the SmartTrade gRPC service (`smarttrade.v1`).

    from decimal import Decimal
    from smarttrade_client import Entry, Side, SmartTradeClient, TakeProfitStep

    with SmartTradeClient("127.0.0.1:50051", token) as client:
        trade = client.create_trade(
            account="exchangeAccounts/...", symbol="BTC/USDT", side=Side.BUY,
            entry=Entry.market(units=Decimal("0.5")),
            take_profit=[TakeProfitStep(price=Decimal(110))],
        )

`SmartTradeClient` blocks; `AsyncSmartTradeClient` is the same for asyncio. Money is
`Decimal` in and out; failures raise `SmartTradeError` subclasses carrying the service's
`ErrorInfo` reason and field violations; mutations carry an automatic `request_id`, reused by
the client's retries on UNAVAILABLE; every call has a deadline; `watch` resumes after
disconnects. The generated protobuf and gRPC code is in `smarttrade_client.v1`.
"""

from smarttrade_client.aio import AsyncSmartTradeClient
from smarttrade_client.calls import RetryPolicy, new_request_id
from smarttrade_client.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    PreconditionViolation,
    ResourceExhausted,
    SmartTradeError,
    Unauthenticated,
    Unavailable,
)
from smarttrade_client.jsonable import jsonable
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
from smarttrade_client.sync import SmartTradeClient

__version__ = "0.1.0"

__all__ = [
    "Aborted",
    "Account",
    "Action",
    "AlreadyExists",
    "AsyncSmartTradeClient",
    "Balance",
    "Cancelled",
    "Candle",
    "CandleSource",
    "CloseReason",
    "Credentials",
    "DeadlineExceeded",
    "Entry",
    "EntryType",
    "Event",
    "EventType",
    "FailedPrecondition",
    "Fill",
    "FuturesPosition",
    "Heartbeat",
    "Internal",
    "InvalidArgument",
    "Leg",
    "LegKind",
    "LegState",
    "Leverage",
    "MarginMode",
    "MarketType",
    "NotFound",
    "Order",
    "OrderStatus",
    "OrderType",
    "OutOfRange",
    "PaperSettings",
    "PermissionDenied",
    "Position",
    "PreconditionViolation",
    "ResourceExhausted",
    "RetryPolicy",
    "Share",
    "SharedSettings",
    "Side",
    "SimulatedEvent",
    "Simulation",
    "SmartTrade",
    "SmartTradeClient",
    "SmartTradeError",
    "SnapshotEnd",
    "StopLoss",
    "TakeProfitStep",
    "TradeSnapshot",
    "TradeState",
    "TriggerPrice",
    "Unauthenticated",
    "Unavailable",
    "VolumeShortfall",
    "WatchItem",
    "jsonable",
    "new_request_id",
]
