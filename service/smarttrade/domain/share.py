"""What a shared link reveals of a trade (DESIGN §2.7, Share): its settings, and nothing of
the account, the owner, the size, the balances or any secret, so that anyone may start the
same trade with their own account and size."""

from __future__ import annotations

from dataclasses import dataclass, replace

from smarttrade.domain.model import SmartTrade
from smarttrade.domain.spec import (
    EntrySpec,
    LeverageSpec,
    StopLossSpec,
    TakeProfitStepSpec,
)
from smarttrade.domain.values import Side


@dataclass(frozen=True, slots=True)
class SharedSettings:
    exchange_id: str
    symbol: str
    side: Side
    # Without what belongs to the sharer's position: the size (`units`, `total`) and the
    # price a skipped entry's coins were bought at (`average_price`).
    entry: EntrySpec
    take_profit: tuple[TakeProfitStepSpec, ...]
    stop_loss: StopLossSpec | None
    leverage: LeverageSpec


def shared_settings(trade: SmartTrade) -> SharedSettings:
    spec = trade.spec
    return SharedSettings(
        exchange_id=trade.exchange_id,
        symbol=spec.symbol,
        side=spec.side,
        entry=replace(spec.entry, units=None, total=None, average_price=None),
        take_profit=spec.take_profit,
        stop_loss=spec.stop_loss,
        leverage=spec.leverage,
    )
