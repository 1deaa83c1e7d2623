"""What the Binance stubs share on the wire: Binance's error answers, its number and time
formats, and the handler signature. Spot (`binance_stub`) and USDⓈ-M futures
(`binance_usdm`) both use them, so both answer as the same venue does."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol, TypeVar


class BinanceError(Exception):
    """An error answer in Binance's format: an HTTP status and {"code": ..., "msg": ...}."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


def fmt(value: Decimal) -> str:
    return f"{value:.8f}"


def now_ms() -> int:
    return int(time.time() * 1000)


def missing(name: str) -> BinanceError:
    msg = f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    return BinanceError(400, -1102, msg)


Params = dict[str, str]
Handler = Callable[[Params], Awaitable[Any]]


class _Named(Protocol):
    @property
    def client_order_id(self) -> str: ...


Order = TypeVar("Order", bound=_Named)


def find_order(orders: dict[int, Order], params: Params) -> Order | None:
    """The order a request names by `orderId` or `origClientOrderId`. A client order id may
    be reused once its order is closed: the latest one wins."""
    if "orderId" in params:
        return orders.get(int(params["orderId"]))
    if "origClientOrderId" in params:
        wanted = params["origClientOrderId"]
        return next((o for o in reversed(orders.values()) if o.client_order_id == wanted), None)
    msg = "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
    raise BinanceError(400, -1102, msg)


class _Resting(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def price(self) -> Decimal: ...


def crosses(order: _Resting, price: Decimal) -> bool:
    """Whether a last price fills a resting limit order (a BUY at or under its limit)."""
    if order.type != "LIMIT":
        return False
    return price <= order.price if order.side == "BUY" else price >= order.price
