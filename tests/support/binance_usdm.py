"""Binance USDⓈ-M futures (`/fapi`) for the Binance stub: one account's USDT wallet, its
perpetual positions in one-way mode, and their orders, as ccxt's `binanceusdm` (or `binance`
with options {"defaultType": "swap"}) sees them.

The endpoints are those ccxt 4.5.90 calls (ccxt/async_support/binance.py), each with the ccxt
method that calls it; the BinanceStub serves them under /fapi, signed ones with the spot API's
HMAC, timestamp and recvWindow checks:

    GET    /fapi/v1/exchangeInfo        fetch_markets ('linear' in options fetchMarkets.types;
                                        binanceusdm's default), so load_markets
    GET    /fapi/v1/time                fetch_time (defaultType swap)
    GET    /fapi/v1/ticker/24hr         fetch_ticker, fetch_tickers (linear markets)
    GET    /fapi/v1/premiumIndex        fetch_mark_price, fetch_funding_rate
    GET    /fapi/v1/leverageBracket     load_leverage_brackets, which fetch_positions (and
                                        fetch_leverages) call first; signed
    POST   /fapi/v1/leverage            set_leverage (ccxt itself refuses < 1 and > 125)
    POST   /fapi/v1/marginType          set_margin_mode (-4046 "No need to change margin
                                        type." is raised as MarginModeAlreadySet)
    GET    /fapi/v1/symbolConfig        fetch_leverages / fetch_leverage, fetch_margin_mode
    POST   /fapi/v1/order               create_order (newOrderRespType RESULT; reduceOnly
                                        passed through as "true")
    GET    /fapi/v1/order               fetch_order (orderId or origClientOrderId)
    DELETE /fapi/v1/order               cancel_order
    GET    /fapi/v1/openOrders          fetch_open_orders
    GET    /fapi/v1/userTrades          fetch_my_trades
    GET    /fapi/v3/account             fetch_balance (linear; /fapi/v2/account with useV2)
    GET    /fapi/v3/positionRisk        fetch_positions (method "positionRisk", the default;
                                        /fapi/v2/positionRisk with useV2)
    GET    /sapi/v1/capital/config/getall
                                        fetch_currencies, which load_markets calls when the
                                        option fetchCurrencies is on (binanceusdm's default)
    GET    /sapi/v1/margin/allPairs     fetch_currencies too, when the option fetchMargins
                                        is on (the default); with spot markets also
                                        fetch_markets, with /sapi/v1/margin/isolated/allPairs

What parse_position_risk reads: symbol, positionAmt (its absolute value: contracts),
notional (its sign: the side), entryPrice (positions at 0 are dropped), unRealizedProfit,
liquidationPrice ("0" reads as none), markPrice, isolatedMargin (the collateral; "0" reads
as cross margin when no marginType is given), isolatedWallet, positionSide ("BOTH": not
hedged), updateTime, and leverage and marginType, which only v2 has: v3, what ccxt calls,
leaves the leverage unknown (/fapi/v1/symbolConfig has it).

The account's USDT wallet (`wallet`) pays a fee on the notional of every fill (taker 0.04%:
market orders and limits that cross on arrival; maker 0.02%: resting limits that fill on a
price move) and receives the PnL a fill realizes. MARKET orders fill at once at the mark
(the stub's last price); LIMIT orders rest and fill at their price when `set_mark` crosses
them. A reduce-only order must face an opposite position (or -2022); it never opens one:
when it fills it is cut to the position, and what it cannot reduce expires. Positions are
margined with `smarttrade.domain.futures.FuturesPosition`, one bracket with maintenance
rate 0.4% (maintenance amount 0), so the liquidation prices are the domain's: an isolated
position's margin is its notional / leverage at its entry (Binance keeps what was deposited
when the leverage is raised afterwards; the stub recomputes it), a cross one is backed by
the wallet less the isolated margins and the maintenance of the other positions. Nothing
is liquidated, and there is no funding.

Every order change is also an ORDER_TRADE_UPDATE event (`_FuturesOrder.update_event`),
told to `on_update`, which the BinanceStub sends to the user data streams; `market_event` is
what the market streams send for the last price. `fill_in_parts` fills a resting order in
several executions.

Errors answer as Binance's fapi does (HTTP 400, {"code": -NNNN, "msg": ...}). ccxt picks its
per-market error maps by the venue's hostname, so against a loopback url only its common
map applies: -4028 and -4046 are BadRequest and OperationRejected (the marginType message
is matched first), -2022, -2019 and -4116 plain ExchangeErrors.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from smarttrade.domain.futures import FuturesPosition
from smarttrade.domain.spec import MarginMode
from smarttrade.domain.values import Side
from tests.support.binance_wire import (
    BinanceError,
    Handler,
    Params,
    crosses,
    find_order,
    fmt,
    missing,
    now_ms,
)

TAKER_FEE = Decimal("0.0004")
MAKER_FEE = Decimal("0.0002")
MAINTENANCE_RATE = Decimal("0.004")
DEFAULT_LEVERAGE = 20  # Binance's initial leverage for a symbol never set
NOTIONAL_CAP = Decimal(1_000_000_000)  # the one bracket's ceiling
PERPETUAL_DELIVERY = 4133404800000  # what Binance gives a perpetual as its delivery date
ZERO = Decimal(0)
ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]


@dataclass(frozen=True, slots=True)
class PerpetualRules:
    base: str
    quote: str  # also the margin asset: USDⓈ-M contracts are linear
    tick_size: Decimal
    step_size: Decimal  # also the minimum quantity
    min_notional: Decimal  # waived for reduce-only orders, as Binance does
    max_leverage: int


DEFAULT_PERPETUALS: Mapping[str, PerpetualRules] = {
    "BTCUSDT": PerpetualRules("BTC", "USDT", Decimal("0.1"), Decimal("0.001"), Decimal(100), 125),
    "ETHUSDT": PerpetualRules("ETH", "USDT", Decimal("0.01"), Decimal("0.001"), Decimal(20), 100),
}


@dataclass(slots=True)
class _Setting:
    """A symbol's leverage and margin type, as POST leverage / marginType leave them."""

    leverage: int = DEFAULT_LEVERAGE
    margin_type: str = "CROSSED"  # or "ISOLATED"

    @property
    def margin_mode(self) -> MarginMode:
        return MarginMode.ISOLATED if self.margin_type == "ISOLATED" else MarginMode.CROSS


@dataclass(slots=True)
class _Position:
    """One symbol's position in one-way mode: `amount` is signed (negative: short)."""

    amount: Decimal = ZERO
    entry: Decimal = ZERO
    updated_ms: int = 0

    @property
    def units(self) -> Decimal:
        return abs(self.amount)


@dataclass(slots=True)
class _FuturesOrder:
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal  # 0 for MARKET
    reduce_only: bool
    time_in_force: str
    created_ms: int
    status: str = "NEW"
    executed: Decimal = ZERO
    quote_executed: Decimal = ZERO
    updated_ms: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def sign(self) -> int:
        return 1 if self.side == "BUY" else -1

    def as_json(self) -> dict[str, Any]:
        """As GET /fapi/v1/order answers (POST answers the same with newOrderRespType RESULT)."""
        average = self.quote_executed / self.executed if self.executed else ZERO
        return {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "status": self.status,
            "clientOrderId": self.client_order_id,
            "price": fmt(self.price),
            "avgPrice": fmt(average),
            "origQty": fmt(self.quantity),
            "executedQty": fmt(self.executed),
            "cumQty": fmt(self.executed),
            "cumQuote": fmt(self.quote_executed),
            "timeInForce": self.time_in_force,
            "type": self.type,
            "reduceOnly": self.reduce_only,
            "closePosition": False,
            "side": self.side,
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": self.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "time": self.created_ms,
            "updateTime": self.updated_ms,
        }

    def update_event(self, execution: str, **fields: Any) -> dict[str, Any]:
        """The user data stream's ORDER_TRADE_UPDATE of this order as it is now, after an
        `execution` (NEW, TRADE, CANCELED, EXPIRED); a TRADE's `fields` give its fill: l, L,
        n, N (the commission, only sent with one), t, m and rp. `ps` is what tells ccxt the
        order is a contract's, not spot's."""
        now = now_ms()
        average = self.quote_executed / self.executed if self.executed else ZERO
        order = {
            "s": self.symbol,
            "c": self.client_order_id,
            "S": self.side,
            "o": self.type,
            "f": self.time_in_force,
            "q": fmt(self.quantity),
            "p": fmt(self.price),
            "ap": fmt(average),
            "sp": "0",
            "x": execution,
            "X": self.status,
            "i": self.order_id,
            "l": "0",
            "z": fmt(self.executed),
            "L": "0",
            "T": now,
            "t": 0,
            "b": "0",
            "a": "0",
            "m": False,
            "R": self.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": self.type,
            "ps": "BOTH",
            "cp": False,
            "rp": "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
        } | fields
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": order}


def _reduce_only(params: Params) -> bool:
    return params.get("reduceOnly", "false").lower() == "true"


def _places(step: Decimal) -> int:
    """The decimal places of a step: 0.001 has 3."""
    return max(0, -step.normalize().adjusted())


def _side(amount: Decimal) -> Side:
    return Side.BUY if amount > 0 else Side.SELL


@dataclass
class UsdmFutures:
    """The USDⓈ-M futures side of one Binance account: wallet, settings, positions, orders."""

    rules: Mapping[str, PerpetualRules] = field(default_factory=lambda: dict(DEFAULT_PERPETUALS))
    wallet: Decimal = ZERO  # USDT
    # The mark price of a symbol ("BTCUSDT") less its last price (default 0: the same).
    mark_offsets: dict[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._marks: dict[str, Decimal] = {s: Decimal(100) for s in self.rules}
        self._settings: dict[str, _Setting] = {s: _Setting() for s in self.rules}
        self._positions: dict[str, _Position] = {s: _Position() for s in self.rules}
        self._orders: dict[int, _FuturesOrder] = {}
        self._trades: list[dict[str, Any]] = []  # as userTrades returns them
        self._ids = itertools.count(1_000_000)
        # Told every ORDER_TRADE_UPDATE, in order: the BinanceStub sends them to the user
        # data streams.
        self.on_update: Callable[[dict[str, Any]], None] = lambda event: None

    def routes(self) -> dict[tuple[str, str], tuple[Handler, bool]]:
        """(method, path under /fapi) -> (handler, signed)."""
        return {
            ("GET", "v1/time"): (self._time, False),
            ("GET", "v1/exchangeInfo"): (self._exchange_info, False),
            ("GET", "v1/ticker/24hr"): (self._ticker_24hr, False),
            ("GET", "v1/premiumIndex"): (self._premium_index, False),
            ("GET", "v1/leverageBracket"): (self._leverage_bracket, True),
            ("POST", "v1/leverage"): (self._set_leverage, True),
            ("POST", "v1/marginType"): (self._set_margin_type, True),
            ("GET", "v1/symbolConfig"): (self._symbol_config, True),
            ("POST", "v1/order"): (self._create_order, True),
            ("GET", "v1/order"): (self._get_order, True),
            ("DELETE", "v1/order"): (self._cancel_order, True),
            ("GET", "v1/openOrders"): (self._open_orders, True),
            ("GET", "v1/userTrades"): (self._user_trades, True),
            ("GET", "v2/account"): (self._account, True),
            ("GET", "v3/account"): (self._account, True),
            ("GET", "v2/positionRisk"): (self._position_risk_v2, True),
            ("GET", "v3/positionRisk"): (self._position_risk_v3, True),
        }

    # ----- test API ------------------------------------------------------------------------

    def set_mark(self, symbol_id: str, price: Decimal) -> None:
        """Move the last (and mark) price; resting limits it crosses fill at their price."""
        self._marks[symbol_id] = price
        for order in list(self._orders.values()):
            if order.symbol == symbol_id and order.is_open and crosses(order, price):
                self._fill(order, order.price, maker=True)

    def fill_in_parts(self, client_order_id: str, parts: list[Decimal]) -> None:
        """Fill an open limit order at its price (maker) in several executions."""
        order = next(
            o for o in self._orders.values() if o.client_order_id == client_order_id and o.is_open
        )
        for part in parts:
            self._fill(order, order.price, maker=True, part=part)

    def market_event(self, symbol_id: str, channel: str) -> dict[str, Any] | None:
        """What the market stream `<symbol>@<channel>` sends for the last price: a
        24hrMiniTicker (`miniTicker`, what ccxt's watch_ticker subscribes to), a 24hrTicker
        (`ticker`) or a markPriceUpdate (`markPrice`, `markPrice@1s`); None for a stream the
        stub does not serve."""
        last, now = fmt(self._marks[symbol_id]), now_ms()
        if channel == "miniTicker":
            prices = dict.fromkeys(("c", "o", "h", "l"), last)
            return {"e": "24hrMiniTicker", "E": now, "s": symbol_id, **prices, "v": "0", "q": "0"}
        if channel == "ticker":
            prices = dict.fromkeys(("c", "o", "h", "l", "w"), last)
            counts = {"p": "0", "P": "0", "Q": "0", "v": "0", "q": "0", "n": 0}
            window = {"O": now - 86_400_000, "C": now}
            return {"e": "24hrTicker", "E": now, "s": symbol_id, **prices, **counts, **window}
        if channel in ("markPrice", "markPrice@1s"):
            prices = dict.fromkeys(("p", "i", "P"), last)
            funding = {"r": "0", "T": now + 8 * 3_600_000}
            return {"e": "markPriceUpdate", "E": now, "s": symbol_id, **prices, **funding}
        return None

    def position(self, symbol_id: str) -> FuturesPosition | None:
        """The open position of `symbol_id` in the domain's terms (None when flat)."""
        held = self._positions[symbol_id]
        if not held.amount:
            return None
        setting = self._settings[symbol_id]
        return FuturesPosition(
            side=_side(held.amount),
            units=held.units,
            entry_price=held.entry,
            leverage=Decimal(setting.leverage),
            margin_mode=setting.margin_mode,
            maintenance_rate=MAINTENANCE_RATE,
        )

    def setting(self, symbol_id: str) -> tuple[int, str]:
        """The symbol's (leverage, margin type), e.g. (10, "ISOLATED")."""
        setting = self._settings[symbol_id]
        return setting.leverage, setting.margin_type

    def position_risk(self, symbol_id: str) -> dict[str, Any]:
        """The symbol's position as GET /fapi/v2/positionRisk reports it (zeros when flat)."""
        return self._position_v2(symbol_id)

    def trades(self, symbol_id: str) -> list[dict[str, Any]]:
        """The account's fills of `symbol_id`, as userTrades reports them."""
        return [t for t in self._trades if t["symbol"] == symbol_id]

    # ----- public endpoints ----------------------------------------------------------------

    async def _time(self, params: Params) -> Any:
        return {"serverTime": now_ms()}

    async def _exchange_info(self, params: Params) -> Any:
        return {
            "timezone": "UTC",
            "serverTime": now_ms(),
            "futuresType": "U_MARGINED",
            "rateLimits": [],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [self._symbol_info(s, rules) for s, rules in self.rules.items()],
        }

    @staticmethod
    def _symbol_info(symbol_id: str, rules: PerpetualRules) -> dict[str, Any]:
        tick, step = fmt(rules.tick_size), fmt(rules.step_size)
        return {
            "symbol": symbol_id,
            "pair": symbol_id,
            "contractType": "PERPETUAL",
            "deliveryDate": PERPETUAL_DELIVERY,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": rules.base,
            "quoteAsset": rules.quote,
            "marginAsset": rules.quote,
            "pricePrecision": _places(rules.tick_size),
            "quantityPrecision": _places(rules.step_size),
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": tick,
                    "maxPrice": "4529764",
                    "tickSize": tick,
                },
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "1000", "stepSize": step},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": step,
                    "maxQty": "120",
                    "stepSize": step,
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MIN_NOTIONAL", "notional": fmt(rules.min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.0500",
                    "multiplierDown": "0.9500",
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": ORDER_TYPES,
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        }

    async def _ticker_24hr(self, params: Params) -> Any:
        if "symbol" in params:
            return self._ticker(self._known(params["symbol"]))
        return [self._ticker(s) for s in self.rules]

    def _ticker(self, symbol_id: str) -> dict[str, Any]:
        last, now = fmt(self._marks[symbol_id]), now_ms()
        prices = ("lastPrice", "openPrice", "highPrice", "lowPrice", "weightedAvgPrice")
        return {"symbol": symbol_id, **dict.fromkeys(prices, last)} | {
            "priceChange": "0",
            "priceChangePercent": "0",
            "lastQty": "0",
            "volume": "0",
            "quoteVolume": "0",
            "openTime": now - 86_400_000,
            "closeTime": now,
            "count": 0,
        }

    async def _premium_index(self, params: Params) -> Any:
        if "symbol" in params:
            return self._premium(self._known(params["symbol"]))
        return [self._premium(s) for s in self.rules]

    def _premium(self, symbol_id: str) -> dict[str, Any]:
        # The mark price is the last one, moved by `mark_offsets` (a premium, say).
        mark = fmt(self._marks[symbol_id] + self.mark_offsets.get(symbol_id, ZERO))
        return {
            "symbol": symbol_id,
            "markPrice": mark,
            "indexPrice": mark,
            "estimatedSettlePrice": mark,
            "lastFundingRate": "0",
            "interestRate": "0",
            "nextFundingTime": now_ms() + 8 * 3_600_000,
            "time": now_ms(),
        }

    def _known(self, symbol_id: str) -> str:
        if symbol_id not in self.rules:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return symbol_id

    def _required_symbol(self, params: Params) -> str:
        if "symbol" not in params:
            raise missing("symbol")
        return self._known(params["symbol"])

    # ----- leverage and margin type --------------------------------------------------------

    async def _leverage_bracket(self, params: Params) -> Any:
        """One bracket per symbol: the domain's formulas are those of one tier."""
        if "symbol" in params:
            return self._brackets(self._known(params["symbol"]))
        return [self._brackets(s) for s in self.rules]

    def _brackets(self, symbol_id: str) -> dict[str, Any]:
        bracket = {
            "bracket": 1,
            "initialLeverage": self.rules[symbol_id].max_leverage,
            "notionalCap": int(NOTIONAL_CAP),
            "notionalFloor": 0,
            "maintMarginRatio": float(MAINTENANCE_RATE),  # Binance sends a JSON number
            "cum": 0.0,
        }
        return {"symbol": symbol_id, "notionalCoef": 1.0, "brackets": [bracket]}

    async def _set_leverage(self, params: Params) -> Any:
        symbol_id = self._required_symbol(params)
        if "leverage" not in params:
            raise missing("leverage")
        try:
            leverage = int(params["leverage"])
        except ValueError:
            msg = "Illegal characters found in parameter 'leverage'"
            raise BinanceError(400, -1102, msg) from None
        if not 1 <= leverage <= self.rules[symbol_id].max_leverage:
            raise BinanceError(400, -4028, f"Leverage {params['leverage']} is not valid")
        setting = self._settings[symbol_id]
        held = self._positions[symbol_id]
        if setting.margin_type == "ISOLATED" and held.amount and leverage < setting.leverage:
            msg = "Leverage reduction is not supported in Isolated Margin Mode with open positions."
            raise BinanceError(400, -4161, msg)
        setting.leverage = leverage
        return {
            "symbol": symbol_id,
            "leverage": leverage,
            "maxNotionalValue": str(int(NOTIONAL_CAP)),
        }

    async def _set_margin_type(self, params: Params) -> Any:
        symbol_id = self._required_symbol(params)
        margin_type = params.get("marginType", "").upper()
        if margin_type not in ("ISOLATED", "CROSSED"):
            raise BinanceError(400, -4044, "The margin type is invalid.")
        setting = self._settings[symbol_id]
        if margin_type == setting.margin_type:
            raise BinanceError(400, -4046, "No need to change margin type.")
        if self._positions[symbol_id].amount:
            msg = "Margin type cannot be changed if there exists position."
            raise BinanceError(400, -4048, msg)
        if any(o.symbol == symbol_id and o.is_open for o in self._orders.values()):
            msg = "Margin type cannot be changed if there exists open orders."
            raise BinanceError(400, -4047, msg)
        setting.margin_type = margin_type
        return {"code": 200, "msg": "success"}

    async def _symbol_config(self, params: Params) -> Any:
        symbols = [self._known(params["symbol"])] if "symbol" in params else list(self.rules)
        return [
            {
                "symbol": s,
                "marginType": self._settings[s].margin_type,
                "isAutoAddMargin": "false",
                "leverage": self._settings[s].leverage,
                "maxNotionalValue": str(int(NOTIONAL_CAP)),
            }
            for s in symbols
        ]

    # ----- orders --------------------------------------------------------------------------

    async def _create_order(self, params: Params) -> Any:
        order = self._checked_order(params)
        self._orders[order.order_id] = order
        self.on_update(order.update_event("NEW"))
        mark = self._marks[order.symbol]
        if order.type == "MARKET" or crosses(order, mark):
            self._fill(order, mark, maker=False)
        return order.as_json()

    def _checked_order(self, params: Params) -> _FuturesOrder:
        """The order `params` ask for, or Binance's refusal, checked in Binance's order:
        syntax, filters, position side and reduce-only, notional, then margin."""
        symbol_id = self._required_symbol(params)
        side, order_type = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL"):
            raise missing("side")
        if order_type not in ("LIMIT", "MARKET"):
            raise BinanceError(400, -1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH") != "BOTH":
            msg = "Order's position side does not match user's setting."
            raise BinanceError(400, -4061, msg)
        client_order_id = params.get("newClientOrderId") or f"stub-{next(self._ids)}"
        if any(o.client_order_id == client_order_id and o.is_open for o in self._orders.values()):
            raise BinanceError(400, -4116, "ClientOrderId is duplicated.")
        quantity = self._quantity(symbol_id, params)
        price = self._limit_price(symbol_id, params) if order_type == "LIMIT" else ZERO
        order = _FuturesOrder(
            order_id=next(self._ids),
            symbol=symbol_id,
            client_order_id=client_order_id,
            side=side,
            type=order_type,
            quantity=quantity,
            price=price,
            reduce_only=_reduce_only(params),
            time_in_force=params.get("timeInForce", "GTC"),
            created_ms=now_ms(),
            updated_ms=now_ms(),
        )
        if order.reduce_only:
            if not self._reduces(order):
                raise BinanceError(400, -2022, "ReduceOnly Order is rejected.")
        else:
            self._check_notional_and_margin(order)
        return order

    def _quantity(self, symbol_id: str, params: Params) -> Decimal:
        if "quantity" not in params:
            raise missing("quantity")
        quantity, step = Decimal(params["quantity"]), self.rules[symbol_id].step_size
        if quantity <= 0:
            raise BinanceError(400, -4003, "Quantity less than or equal to zero.")
        if quantity % step:
            raise BinanceError(400, -1111, "Precision is over the maximum defined for this asset.")
        if quantity < step:
            raise BinanceError(400, -4004, "Quantity less than min quantity.")
        return quantity

    def _limit_price(self, symbol_id: str, params: Params) -> Decimal:
        for name in ("price", "timeInForce"):
            if name not in params:
                raise missing(name)
        price = Decimal(params["price"])
        if price <= 0:
            raise BinanceError(400, -4001, "Price less than 0.")
        if price % self.rules[symbol_id].tick_size:
            raise BinanceError(400, -4014, "Price not increased by tick size.")
        return price

    def _reduces(self, order: _FuturesOrder) -> bool:
        """Whether `order` faces an opposite position, which it can only reduce."""
        held = self._positions[order.symbol].amount
        return held * order.sign < 0

    def _check_notional_and_margin(self, order: _FuturesOrder) -> None:
        rules = self.rules[order.symbol]
        price = order.price or self._marks[order.symbol]
        if order.quantity * price < rules.min_notional:
            msg = (
                f"Order's notional must be no smaller than {rules.min_notional.normalize()} "
                "(unless you choose reduce only)."
            )
            raise BinanceError(400, -4164, msg)
        if self._opening_margin(order, price) > self._available():
            raise BinanceError(400, -2019, "Margin is insufficient.")

    def _opening_margin(self, order: _FuturesOrder, price: Decimal) -> Decimal:
        """The initial margin of what `order` opens or adds (what it closes needs none)."""
        held = self._positions[order.symbol].amount
        closing = min(order.quantity, abs(held)) if held * order.sign < 0 else ZERO
        leverage = self._settings[order.symbol].leverage
        return (order.quantity - closing) * price / leverage

    async def _get_order(self, params: Params) -> Any:
        order = self._find(params)
        if order is None:
            raise BinanceError(400, -2013, "Order does not exist.")
        return order.as_json()

    async def _cancel_order(self, params: Params) -> Any:
        order = self._find(params)
        if order is None or not order.is_open:
            raise BinanceError(400, -2011, "Unknown order sent.")
        order.status, order.updated_ms = "CANCELED", now_ms()
        self.on_update(order.update_event("CANCELED"))
        return order.as_json()

    async def _open_orders(self, params: Params) -> Any:
        symbol_id = self._known(params["symbol"]) if "symbol" in params else None
        return [
            o.as_json()
            for o in self._orders.values()
            if o.is_open and symbol_id in (None, o.symbol)
        ]

    async def _user_trades(self, params: Params) -> Any:
        symbol_id = self._required_symbol(params)
        order_id = int(params["orderId"]) if "orderId" in params else None
        return [t for t in self.trades(symbol_id) if order_id in (None, t["orderId"])]

    def _find(self, params: Params) -> _FuturesOrder | None:
        self._required_symbol(params)
        return find_order(self._orders, params)

    # ----- matching and bookkeeping --------------------------------------------------------

    def _fill(
        self, order: _FuturesOrder, price: Decimal, *, maker: bool, part: Decimal | None = None
    ) -> None:
        """Fill `part` (default: what remains) of `order` at `price`; a reduce-only one only
        up to the position, what it cannot reduce expiring. The wallet pays the fee and gets
        the realized PnL; the fill and the expiry are each an ORDER_TRADE_UPDATE."""
        wanted = part if part is not None else order.quantity - order.executed
        quantity = wanted
        if order.reduce_only:
            held = self._positions[order.symbol]
            quantity = min(wanted, held.units) if self._reduces(order) else ZERO
        if quantity:
            self._execute(order, quantity, price, maker)
        if quantity < wanted:
            order.status, order.updated_ms = "EXPIRED", now_ms()
            self.on_update(order.update_event("EXPIRED"))

    def _execute(
        self, order: _FuturesOrder, quantity: Decimal, price: Decimal, maker: bool
    ) -> None:
        """One execution of `quantity` of `order` at `price`: position, wallet, trade
        history, the order's status, and its TRADE update (with the commission in USDT)."""
        realized = self._trade(order.symbol, order.sign, quantity, price)
        fee = price * quantity * (MAKER_FEE if maker else TAKER_FEE)
        self.wallet += realized - fee
        trade = self._record(order, quantity, price, realized, fee, maker)
        order.executed += quantity
        order.quote_executed += quantity * price
        order.status = "FILLED" if order.executed >= order.quantity else "PARTIALLY_FILLED"
        order.updated_ms = now_ms()
        fill = {"l": fmt(quantity), "L": fmt(price), "n": fmt(fee), "N": trade["commissionAsset"]}
        self.on_update(
            order.update_event(
                "TRADE", **fill, t=trade["id"], T=trade["time"], m=maker, rp=fmt(realized)
            )
        )

    def _trade(self, symbol_id: str, sign: int, quantity: Decimal, price: Decimal) -> Decimal:
        """Move the position by `sign` x `quantity` at `price`; the PnL it realizes."""
        held = self._positions[symbol_id]
        held.updated_ms = now_ms()
        if held.amount * sign >= 0:  # opens or adds: the entry is the average
            units = held.units + quantity
            held.entry = (held.units * held.entry + quantity * price) / units
            held.amount += sign * quantity
            return ZERO
        closed = min(quantity, held.units)
        realized = (price - held.entry) * closed * (1 if held.amount > 0 else -1)
        held.amount += sign * quantity
        if not held.amount:
            held.entry = ZERO
        elif held.amount * sign > 0:  # went through zero: the rest opens at this price
            held.entry = price
        return realized

    def _record(
        self,
        order: _FuturesOrder,
        quantity: Decimal,
        price: Decimal,
        realized: Decimal,
        fee: Decimal,
        maker: bool,
    ) -> dict[str, Any]:
        """The trade as userTrades lists it, recorded."""
        self._trades.append(
            {
                "symbol": order.symbol,
                "id": next(self._ids),
                "orderId": order.order_id,
                "side": order.side,
                "price": fmt(price),
                "qty": fmt(quantity),
                "realizedPnl": fmt(realized),
                "quoteQty": fmt(price * quantity),
                "commission": fmt(fee),
                "commissionAsset": self.rules[order.symbol].quote,
                "time": now_ms(),
                "positionSide": "BOTH",
                "buyer": order.side == "BUY",
                "maker": maker,
            }
        )
        return self._trades[-1]

    # ----- account and positions -----------------------------------------------------------

    def _open(self) -> dict[str, FuturesPosition]:
        return {s: p for s in self.rules if (p := self.position(s)) is not None}

    def _isolated_margin(self, symbol_id: str) -> Decimal:
        """The margin set aside for an isolated position (0 for a cross one, or none)."""
        position = self.position(symbol_id)
        if position is None or position.margin_mode is not MarginMode.ISOLATED:
            return ZERO
        return position.initial_margin

    def _order_margin(self) -> Decimal:
        """What open orders that would open positions hold back."""
        return sum(
            (
                (o.quantity - o.executed) * o.price / self._settings[o.symbol].leverage
                for o in self._orders.values()
                if o.is_open and not o.reduce_only
            ),
            ZERO,
        )

    def _unrealized(self) -> Decimal:
        return sum((p.unrealized_pnl(self._marks[s]) for s, p in self._open().items()), ZERO)

    def _available(self) -> Decimal:
        used = sum((p.initial_margin for p in self._open().values()), ZERO)
        return self.wallet + self._unrealized() - used - self._order_margin()

    def _liquidation_price(self, symbol_id: str, position: FuturesPosition) -> Decimal | None:
        """The domain's: isolated from its own margin; cross from the wallet less the
        isolated margins and the maintenance of the other positions."""
        if position.margin_mode is MarginMode.ISOLATED:
            return position.liquidation_price()
        others = {s: p for s, p in self._open().items() if s != symbol_id}
        backing = self.wallet - sum(
            (
                self._isolated_margin(s) + p.maintenance_margin(self._marks[s])
                for s, p in others.items()
            ),
            ZERO,
        )
        return position.liquidation_price(backing)

    async def _account(self, params: Params) -> Any:
        """GET /fapi/v3/account (v2 alike): the USDT wallet and what is margined on it."""
        open_positions = self._open()
        position_margin = sum((p.initial_margin for p in open_positions.values()), ZERO)
        order_margin = self._order_margin()
        unrealized = self._unrealized()
        maintenance = sum(
            (p.maintenance_margin(self._marks[s]) for s, p in open_positions.items()), ZERO
        )
        isolated = sum((self._isolated_margin(s) for s in open_positions), ZERO)
        margin_balance = self.wallet + unrealized
        available = margin_balance - position_margin - order_margin
        asset = {
            "asset": "USDT",
            "walletBalance": fmt(self.wallet),
            "unrealizedProfit": fmt(unrealized),
            "marginBalance": fmt(margin_balance),
            "maintMargin": fmt(maintenance),
            "initialMargin": fmt(position_margin + order_margin),
            "positionInitialMargin": fmt(position_margin),
            "openOrderInitialMargin": fmt(order_margin),
            "crossWalletBalance": fmt(self.wallet - isolated),
            "crossUnPnl": fmt(unrealized),
            "availableBalance": fmt(available),
            "maxWithdrawAmount": fmt(available),
            "updateTime": now_ms(),  # ccxt skips an asset whose updateTime is 0
        }
        totals = {
            "totalInitialMargin": asset["initialMargin"],
            "totalMaintMargin": asset["maintMargin"],
            "totalWalletBalance": asset["walletBalance"],
            "totalUnrealizedProfit": asset["unrealizedProfit"],
            "totalMarginBalance": asset["marginBalance"],
            "totalPositionInitialMargin": asset["positionInitialMargin"],
            "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"],
            "totalCrossWalletBalance": asset["crossWalletBalance"],
            "totalCrossUnPnl": asset["crossUnPnl"],
            "availableBalance": asset["availableBalance"],
            "maxWithdrawAmount": asset["maxWithdrawAmount"],
        }
        positions = [self._position_common(s) for s in open_positions]
        return totals | {"assets": [asset], "positions": positions}

    async def _position_risk_v3(self, params: Params) -> Any:
        """v3 lists the symbols with a position only, and has no leverage or marginType."""
        symbols = self._risk_symbols(params)
        return [self._position_v3(s) for s in symbols if self._positions[s].amount]

    async def _position_risk_v2(self, params: Params) -> Any:
        """v2 lists every symbol asked for, flat ones with zeros, leverage and marginType
        included."""
        return [self._position_v2(s) for s in self._risk_symbols(params)]

    def _risk_symbols(self, params: Params) -> list[str]:
        return [self._known(params["symbol"])] if "symbol" in params else list(self.rules)

    def _position_common(self, symbol_id: str) -> dict[str, Any]:
        held, mark = self._positions[symbol_id], self._marks[symbol_id]
        position = self.position(symbol_id)
        unrealized = position.unrealized_pnl(mark) if position else ZERO
        liquidation = self._liquidation_price(symbol_id, position) if position else None
        isolated_wallet = self._isolated_margin(symbol_id)
        return {
            "symbol": symbol_id,
            "positionSide": "BOTH",
            "positionAmt": fmt(held.amount),
            "entryPrice": fmt(held.entry),
            "breakEvenPrice": fmt(held.entry),
            "markPrice": fmt(mark),
            "unRealizedProfit": fmt(unrealized),
            "liquidationPrice": fmt(liquidation or ZERO),
            "isolatedMargin": fmt(isolated_wallet + unrealized if isolated_wallet else ZERO),
            "notional": fmt(held.amount * mark),
            "isolatedWallet": fmt(isolated_wallet),
            "updateTime": held.updated_ms,
        }

    def _position_v3(self, symbol_id: str) -> dict[str, Any]:
        common = self._position_common(symbol_id)
        position = self.position(symbol_id)
        mark = self._marks[symbol_id]
        initial = position.units * mark / position.leverage if position else ZERO
        maintenance = position.maintenance_margin(mark) if position else ZERO
        return common | {
            "marginAsset": self.rules[symbol_id].quote,
            "initialMargin": fmt(initial),
            "maintMargin": fmt(maintenance),
            "positionInitialMargin": fmt(initial),
            "openOrderInitialMargin": "0",
            "adl": 0,
            "bidNotional": "0",
            "askNotional": "0",
        }

    def _position_v2(self, symbol_id: str) -> dict[str, Any]:
        setting = self._settings[symbol_id]
        isolated = setting.margin_type == "ISOLATED"
        return self._position_common(symbol_id) | {
            "leverage": str(setting.leverage),
            "maxNotionalValue": str(int(NOTIONAL_CAP)),
            "marginType": "isolated" if isolated else "cross",
            "isAutoAddMargin": "false",
            "isolated": isolated,
            "adlQuantile": 0,
        }


async def capital_config(params: Params) -> Any:
    """GET /sapi/v1/capital/config/getall, which ccxt's load_markets calls (fetch_currencies)
    when its option fetchCurrencies is on: the coins the stub knows, without networks."""
    return [
        {"coin": coin, "name": coin, "trading": True, "isLegalMoney": False, "networkList": []}
        for coin in ("BTC", "ETH", "USDT")
    ]


async def margin_pairs(params: Params) -> Any:
    """GET /sapi/v1/margin/allPairs and isolated/allPairs, which ccxt calls when the option
    fetchMargins is on (the default): the stub's account has no margin trading."""
    return []
