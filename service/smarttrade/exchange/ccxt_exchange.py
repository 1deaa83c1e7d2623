"""The ccxt adapter of the Exchange port: one account on any ccxt venue, in the core's types.

This is the only module of the service that imports ccxt. Orders are placed and looked up by
our deterministic client order id (ccxt `clientOrderId`, Binance `newClientOrderId` /
`origClientOrderId`); amounts go through ccxt's `amount_to_precision` (truncates to the lot)
and prices through `price_to_precision` (rounds to the tick). Numbers leave ccxt as floats or
strings and become `Decimal(str(x))` at once; nothing here does float arithmetic.

Every ccxt error becomes a port error (`raise PortError(...) from e`). The first row that
matches wins, so the order follows ccxt's hierarchy (ccxt/base/errors.py): OrderNotFound and
DuplicateOrderId are InvalidOrders; RateLimitExceeded is NOT a DDoSProtection; OnMaintenance
is an ExchangeNotAvailable; InsufficientFunds, BadSymbol and AuthenticationError are
ExchangeErrors; NetworkError and BadResponse are OperationFaileds. "Placing" is the
create_order request itself, after which the order may exist at the venue:

    ccxt error                                      while placing         any other call
    ----------------------------------------------  --------------------  ------------------
    (cooldown after a Retry-After still running)    RateLimited           RateLimited
    DDoSProtection (418, 429), RateLimitExceeded    RateLimited           RateLimited
    InsufficientFunds                               OrderRejected(INSUFFICIENT_FUNDS)  same
    BadSymbol                                       OrderRejected(BAD_SYMBOL)          same
    AuthenticationError, PermissionDenied, ...      OrderRejected(AUTHENTICATION)      same
    OrderNotFound                                   OrderNotFound         OrderNotFound
    DuplicateOrderId, or an ExchangeError saying    AlreadyPlaced         OrderRejected
      "Duplicate order sent." (Binance spot -2010)                          (INVALID_ORDER)
      or "ClientOrderId is duplicated." (fapi -4116)
    InvalidOrder                                    OrderRejected(INVALID_ORDER)       same
    BadRequest, OperationRejected while setting     -                     OrderRejected
      leverage or margin mode (prepare_symbol)                              (INVALID_ORDER)
    OnMaintenance, InvalidNonce, CancelPending,     TransientError        TransientError
      ExchangeNotAvailable from a failed connect
    RequestTimeout (incl. Binance -1007),           OutcomeUnknown        TransientError
      ExchangeNotAvailable (5xx, dropped line),
      other NetworkError, BadResponse, other
      OperationFailed (Binance -1000, -1006)
    other ExchangeError (BadRequest, ...)           OrderRejected(INVALID_ORDER)  ExchangeError
    other ccxt error                                OutcomeUnknown        ExchangeError
    a non-ccxt exception (e.g. a parsing bug)       OutcomeUnknown        (propagates)

A Retry-After (seconds or HTTP date) on a 418/429 starts a per-instance cooldown: until it
ends, every call raises RateLimited(retry_after=remaining) without sending a request. ccxt's
own throttle (`enableRateLimit`) stays on. Messages name the operation and ccxt's error, with
the api key, secret, password and request signature blanked out.

`watch_ticker` / `watch_orders` stream through ccxt.pro when `streaming=True` and the venue
has `watchTicker` / `watchOrders`; otherwise they poll `fetch_ticker` / `fetch_open_orders`
every `poll_interval` seconds and yield only changes. A dropped stream is subscribed again on
the next watch (ccxt reconnects); one that fails STREAM_FAILURES times in a row gives way to
polling, and is tried again `stream_retry` seconds later. The Binance stub serves the spot
streams (tests/e2e/test_binance_streams.py) and the USDⓈ-M futures ones
(tests/integration/test_binance_usdm_streams.py). Futures: `prepare_symbol` sets margin mode and
leverage on linear swaps (the executor calls it before every order that opens or grows a
position), and `fetch_positions` reports a symbol's open positions (reconciliation reads them
for futures trades). The stub serves Binance USDⓈ-M too (tests/integration/test_binance_usdm.py,
and end to end tests/e2e/test_futures.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import decimal
import email.utils
import logging
import re
import socket
import time
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import aiohttp
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxt_pro

from smarttrade.domain.candles import TIMEFRAMES, Candle
from smarttrade.domain.market import Market
from smarttrade.domain.spec import MarginMode, TriggerPrice
from smarttrade.domain.values import Balance, Fill, OrderStatus, OrderType, Side
from smarttrade.exchange.port import (
    AlreadyPlaced,
    Capabilities,
    ExchangeError,
    OrderNotFound,
    OrderRejected,
    OrderReport,
    OrderRequest,
    OutcomeUnknown,
    PositionReport,
    RateLimited,
    RejectReason,
    Ticker,
    TransientError,
)

# A client order id the venue already has: Binance spot -2010 (which ccxt raises as
# InvalidOrder) and USDⓈ-M futures -4116 (InvalidOrder for ccxt's fapi hosts, a plain
# ExchangeError where ccxt does not recognise the host).
CANDLE_PAGE = 1000  # candles asked per call (Binance spot's most)
_DUPLICATE_ORDER = ("Duplicate order sent.", "ClientOrderId is duplicated.")
_SIGNATURE = re.compile(r"(signature=)[^&\s\"']+", re.IGNORECASE)
_MAX_MESSAGE = 400

_STATUSES: Mapping[str, OrderStatus] = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
    "canceling": OrderStatus.OPEN,  # Binance PENDING_CANCEL: live until the venue confirms
}


class _Redact(logging.Filter):
    """ccxt logs whole requests at DEBUG, headers included (Binance's X-MBX-APIKEY is the API
    key): every credential an adapter holds is blanked out of ccxt's log records."""

    secrets: ClassVar[set[str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        for secret in self.secrets:
            message = message.replace(secret, "***")
        record.msg, record.args = message, ()
        return True


log = logging.getLogger(__name__)
STREAM_FAILURES = 3  # consecutive failures after which a watch polls instead of streaming

_CCXT_LOG = logging.getLogger("ccxt")
_CCXT_LOG.setLevel(logging.WARNING)  # request dumps are not for our logs, whatever the root
_CCXT_LOG.addFilter(_REDACT := _Redact())
for _name in ("ccxt.base.exchange", "ccxt.async_support.base.exchange"):
    logging.getLogger(_name).addFilter(_REDACT)


class _StreamOrPoll:
    """Whether a watch streams or polls now: it streams while the stream works (a dropped
    one is subscribed again by the next call); after STREAM_FAILURES failures in a row it
    polls, and tries the stream again `retry` seconds later."""

    def __init__(self, what: str, can_stream: bool, retry: float) -> None:
        self._what = what
        self._streaming = can_stream
        self._retry = retry
        self._failures = 0
        self._retry_at: float | None = None  # time.monotonic() to stream again at

    def streaming(self) -> bool:
        if self._retry_at is not None and time.monotonic() >= self._retry_at:
            log.info("%s: trying the stream again", self._what)
            self._streaming, self._retry_at = True, None
        return self._streaming

    def succeeded(self) -> None:
        self._failures = 0

    def failed(self) -> None:
        self._failures += 1
        if self._streaming and self._failures >= STREAM_FAILURES:
            log.warning(
                "%s failed %d times: polling, and streaming again in %g s",
                self._what,
                self._failures,
                self._retry,
            )
            self._streaming, self._failures = False, 0
            self._retry_at = time.monotonic() + self._retry


def exchange_ids() -> frozenset[str]:
    """Every exchange id ccxt knows."""
    return frozenset(ccxt_async.exchanges)


class CcxtExchange:
    """One account on the ccxt venue `exchange_id` (e.g. "binance")."""

    def __init__(
        self,
        exchange_id: str,
        api_key: str,
        secret: str,
        password: str | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        urls: Mapping[str, Any] | None = None,
        sandbox: bool = False,
        streaming: bool = False,
        poll_interval: float = 1.0,
        timeout: float = 10.0,
        rate_limit_ms: int | None = None,
        stream_retry: float = 30.0,
    ) -> None:
        """`options` and `urls` are deep-merged into ccxt's (tests point `urls` at a stub);
        `timeout` is ccxt's request timeout in seconds; `rate_limit_ms` overrides ccxt's
        pause between requests (its throttle stays enabled); `stream_retry` how long a
        watch polls before it tries a failed stream again."""
        module = ccxt_pro if streaming and hasattr(ccxt_pro, exchange_id) else ccxt_async
        if not hasattr(module, exchange_id):
            raise ValueError(f"ccxt has no exchange {exchange_id!r}")
        config: dict[str, Any] = {
            "apiKey": api_key,
            "secret": secret,
            "enableRateLimit": True,
            "timeout": int(timeout * 1000),
            "options": dict(options or {}),
        }
        if password:
            config["password"] = password
        if urls:
            config["urls"] = dict(urls)
        if rate_limit_ms is not None:
            config["rateLimit"] = rate_limit_ms
        self._ccxt: Any = getattr(module, exchange_id)(config)
        if sandbox:
            self._ccxt.set_sandbox_mode(True)
        self._exchange_id = exchange_id
        self._streaming = streaming
        self._poll_interval = poll_interval
        self._stream_retry = stream_retry
        self._credentials = tuple(c for c in (api_key, secret, password) if c)
        _Redact.secrets.update(self._credentials)
        self._markets: dict[str, Market] | None = None
        self._markets_lock = asyncio.Lock()
        self._cooldown_until = 0.0  # time.monotonic() before which no request is sent
        # Closed: its watches end (their consumer opens the next on the account's current
        # adapter, say after a credentials rotation) instead of calling the venue forever.
        self._closed = False

    @property
    def exchange_id(self) -> str:
        return self._exchange_id

    @property
    def capabilities(self) -> Capabilities:
        has = self._ccxt.has
        return Capabilities(
            watch_ticker=self._streams("watchTicker"),
            watch_orders=self._streams("watchOrders"),
            futures=bool(has.get("swap")),
            extra={
                "setLeverage": bool(has.get("setLeverage")),
                "setMarginMode": bool(has.get("setMarginMode")),
            },
        )

    def _streams(self, feature: str) -> bool:
        return self._streaming and bool(self._ccxt.has.get(feature))

    # ----- markets and prices ----------------------------------------------------------

    async def load_markets(self) -> Mapping[str, Market]:
        async with self._markets_lock:
            if self._markets is None:
                with self._translated("load markets"):
                    raw = await self._ccxt.load_markets()
                markets = {
                    symbol: market
                    for symbol, entry in raw.items()
                    if (market := self._market(entry)) is not None
                }
                self._markets = markets | await self._with_leverage_tiers(markets)
            return self._markets

    async def _with_leverage_tiers(self, markets: Mapping[str, Market]) -> dict[str, Market]:
        """The linear contracts with the leverage ceiling and first-tier maintenance margin
        rate of the account's leverage tiers (Binance: /fapi/v1/leverageBracket, signed),
        which the market list leaves out. Without credentials, or when the venue does not
        answer, they stay unknown: a leverage above the ceiling is then refused by the
        venue when it is set."""
        contracts = [m.symbol for m in markets.values() if m.is_contract]
        if not contracts or not self._credentials or not self._ccxt.has.get("fetchLeverageTiers"):
            return {}
        try:
            with self._translated("fetch leverage tiers"):
                tiers = await self._ccxt.fetch_leverage_tiers(contracts)
        except ExchangeError as error:
            log.warning("leverage tiers of %s: %s", self.exchange_id, error)
            return {}
        known = {}
        for symbol in contracts:
            levels = tiers.get(symbol) or []
            ceilings = [_decimal(tier.get("maxLeverage")) for tier in levels]
            first = _decimal(levels[0].get("maintenanceMarginRate")) if levels else None
            highest = max((c for c in ceilings if c is not None), default=None)
            if highest is None and first is None:
                continue
            known[symbol] = dataclasses.replace(
                markets[symbol],
                max_leverage=highest or markets[symbol].max_leverage,
                maintenance_rate=first if first is not None else Decimal(0),
            )
        return known

    def _market(self, entry: Mapping[str, Any]) -> Market | None:
        """None for a market without precision (it cannot be traded safely), and for a
        contract that is not linear (inverse, options: nothing here runs them) or whose
        contract is not one unit of the base (OKX's DOGE-USDT-SWAP is 1,000 DOGE): a trade's
        sizes are in the base, while such a venue counts orders and fills in contracts. A
        linear contract is marked with its settle currency and the highest leverage it
        allows."""
        precision, limits = entry.get("precision") or {}, entry.get("limits") or {}
        contract = bool(entry.get("contract"))
        if contract and not entry.get("linear"):
            return None
        if contract and _decimal(entry.get("contractSize")) not in (None, Decimal(1)):
            return None
        amount_step = self._step(precision.get("amount"))
        price_tick = self._step(precision.get("price"))
        if amount_step is None or price_tick is None:
            return None
        amount_limits, cost_limits = limits.get("amount") or {}, limits.get("cost") or {}
        return Market(
            symbol=entry["symbol"],
            base=entry["base"],
            quote=entry["quote"],
            amount_step=amount_step,
            price_tick=price_tick,
            min_amount=_decimal(amount_limits.get("min")) or Decimal(0),
            min_cost=_decimal(cost_limits.get("min")) or Decimal(0),
            max_amount=_decimal(amount_limits.get("max")),
            settle=str(entry.get("settle") or entry["quote"]) if contract else None,
            max_leverage=_decimal((limits.get("leverage") or {}).get("max")) if contract else None,
        )

    def _step(self, precision: object) -> Decimal | None:
        if precision is None:
            return None
        if self._ccxt.precisionMode == ccxt_async.TICK_SIZE:
            return Decimal(str(precision)).normalize()
        # DECIMAL_PLACES: 2 means 0.01. SIGNIFICANT_DIGITS has no fixed step; read as places it
        # gives a finer grid, and create_order still goes through ccxt's own rounding.
        return Decimal(1).scaleb(-int(str(precision)))

    async def fetch_ticker(self, symbol: str) -> Ticker:
        await self.load_markets()
        with self._translated(f"fetch ticker {symbol}"):
            raw = await self._ccxt.fetch_ticker(symbol)
        last = _decimal(raw.get("last"))
        if last is None:
            raise ExchangeError(f"fetch ticker {symbol}: the venue reports no last price")
        return Ticker(
            symbol=symbol,
            last=last,
            at=_at(raw.get("timestamp")) or _now(),
            bid=_decimal(raw.get("bid")),
            ask=_decimal(raw.get("ask")),
        )

    async def fetch_price(self, symbol: str, source: TriggerPrice) -> Decimal:
        """The last price, best bid or best ask from the ticker; a perpetual's mark price
        from the venue's mark price (Binance: /fapi/v1/premiumIndex)."""
        if source is TriggerPrice.MARK:
            await self.load_markets()
            with self._translated(f"fetch mark price {symbol}"):
                raw = await self._ccxt.fetch_mark_price(symbol)
            mark = _decimal(raw.get("markPrice"))
            if mark is None:
                raise ExchangeError(f"fetch mark price {symbol}: the venue reports none")
            return mark
        ticker = await self.fetch_ticker(symbol)
        price = {
            TriggerPrice.LAST: ticker.last,
            TriggerPrice.BID: ticker.bid,
            TriggerPrice.ASK: ticker.ask,
        }[source]
        if price is None:
            raise ExchangeError(f"fetch ticker {symbol}: the venue reports no {source.value}")
        return price

    # ----- price history ---------------------------------------------------------------

    async def fetch_candles(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> Sequence[Candle]:
        """Pages of `fetch_ohlcv` from `start` until `end`: each page starts one candle after
        the last one received (venues cap a page: Binance spot at 1,000), and a page that
        brings nothing new ends the history (the venue has no more)."""
        await self.load_markets()
        step_ms = TIMEFRAMES[timeframe] * 1000
        since, until = _ms(start), _ms(end)
        candles: list[Candle] = []
        while since < until:
            with self._translated(f"fetch candles {symbol} {timeframe}"):
                rows = await self._ccxt.fetch_ohlcv(
                    symbol, timeframe, since, CANDLE_PAGE, {"until": until - 1}
                )
            page = [_candle(row) for row in rows if since <= int(row[0]) < until]
            if not page:
                break
            candles += page
            since = _ms(page[-1].time) + step_ms
        return candles

    # ----- orders ----------------------------------------------------------------------

    async def create_order(self, request: OrderRequest) -> OrderReport:
        await self.load_markets()
        what = f"create order {request.client_order_id} on {request.symbol}"
        if request.type is OrderType.LIMIT and request.price is None:
            raise OrderRejected(RejectReason.INVALID_ORDER, f"{what}: a limit order needs a price")
        with self._translated(what):
            amount = self._ccxt.amount_to_precision(request.symbol, _plain(request.amount))
            price = None
            # Never pass a price with a market order: ccxt's binance then sends quoteOrderQty =
            # amount * price (a spend in quote currency) instead of the amount.
            if request.type is OrderType.LIMIT and request.price is not None:
                price = self._ccxt.price_to_precision(request.symbol, _plain(request.price))
            params: dict[str, Any] = {"clientOrderId": request.client_order_id}
            # Spot has no position to reduce and Binance spot refuses unknown parameters.
            if request.reduce_only and self._ccxt.market(request.symbol).get("contract"):
                params["reduceOnly"] = True
        with self._translated(what, placing=True):
            raw = await self._ccxt.create_order(
                request.symbol,
                request.type.value.lower(),
                request.side.value.lower(),
                amount,
                price,
                params,
            )
        return await self._with_fills(
            self._report(raw, request.client_order_id, placed=request), request.symbol
        )

    async def cancel_order(self, symbol: str, client_order_id: str) -> OrderReport:
        await self.load_markets()
        try:
            with self._translated(f"cancel order {client_order_id} on {symbol}"):
                raw = await self._ccxt.cancel_order(
                    None, symbol, {"origClientOrderId": client_order_id}
                )
        except OrderNotFound:
            # Binance answers -2011 "Unknown order sent." also for an order that is no longer
            # open (filled, cancelled): its final report is what the caller wants then.
            report = await self.fetch_order(symbol, client_order_id)
            if report.status.is_live:
                raise
            return report
        # The cancel answer's clientOrderId is the cancel request's own id on Binance, so the
        # report takes ours.
        return await self._with_fills(self._report(raw, client_order_id), symbol)

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderReport:
        await self.load_markets()
        with self._translated(f"fetch order {client_order_id} on {symbol}"):
            raw = await self._ccxt.fetch_order(None, symbol, {"origClientOrderId": client_order_id})
        return await self._with_fills(self._report(raw, client_order_id), symbol)

    async def fetch_open_orders(self, symbol: str) -> Sequence[OrderReport]:
        await self.load_markets()
        with self._translated(f"fetch open orders on {symbol}"):
            raws = await self._ccxt.fetch_open_orders(symbol)
        return [await self._with_fills(self._report(raw), symbol) for raw in raws]

    async def _with_fills(self, report: OrderReport, symbol: str) -> OrderReport:
        """The report with the order's fills from the trade history (Binance myTrades?orderId)
        when its answer did not carry them all (a spot order's FULL answer does; a futures
        one, RESULT, has none). A report never says more is filled than its fills show: the
        trade counts fills, and an order FILLED with its fills missing would look unfilled
        and be placed again; one CANCELLED or EXPIRED with its fills missing would have its
        unfilled share sold again (a step closed at market, a stop-limit's fallback). So
        until the history has them (it may lag the order), an order the venue calls ended
        is reported OPEN with the fills found, and looked up again."""
        order_id = report.exchange_order_id
        if report.filled <= _filled(report.fills) or order_id is None:
            return report
        with self._translated(f"fetch fills of order {report.client_order_id} on {symbol}"):
            trades = await self._ccxt.fetch_my_trades(symbol, None, None, {"orderId": order_id})
        # Filtered here too: a venue may ignore the orderId parameter.
        mine = (t for t in trades if str(t.get("order") or order_id) == order_id)
        fills = _unique_fills([*report.fills, *(_fill(t, report.at) for t in mine)])
        status = report.status
        if not status.is_live and _filled(fills) < report.filled:
            status = OrderStatus.OPEN
        return dataclasses.replace(report, fills=fills, status=status)

    def _report(
        self,
        raw: Mapping[str, Any],
        client_order_id: str | None = None,
        placed: OrderRequest | None = None,
    ) -> OrderReport:
        """ccxt's order structure as a report; `placed` fills in what a terse answer omits."""
        side, order_type, status = raw.get("side"), raw.get("type"), raw.get("status")
        if placed is not None:
            side = side or placed.side.value.lower()
            order_type = order_type or placed.type.value.lower()
            status = status or "open"  # accepted, and nothing more said
        report_type = OrderType.MARKET if order_type == "market" else OrderType.LIMIT
        at = _at(raw.get("lastUpdateTimestamp") or raw.get("timestamp"))
        exchange_order_id = raw.get("id")
        amount = _decimal(raw.get("amount"))
        return OrderReport(
            client_order_id=client_order_id or str(raw.get("clientOrderId") or ""),
            exchange_order_id=None if exchange_order_id is None else str(exchange_order_id),
            symbol=str(raw.get("symbol") or (placed.symbol if placed else "")),
            side=Side.BUY if side == "buy" else Side.SELL,
            type=report_type,
            amount=amount if amount is not None else (placed.amount if placed else Decimal(0)),
            # ccxt puts a market order's average in `price`; the port's price is the limit.
            price=_decimal(raw.get("price")) if report_type is OrderType.LIMIT else None,
            status=_STATUSES.get(str(status), OrderStatus.UNKNOWN),
            filled=_decimal(raw.get("filled")) or Decimal(0),
            fills=_unique_fills(_fill(t, at) for t in raw.get("trades") or ()),
            at=at,
        )

    # ----- balances --------------------------------------------------------------------

    async def fetch_balances(self) -> Mapping[str, Balance]:
        with self._translated("fetch balances"):
            raw = await self._ccxt.fetch_balance()
        free: Mapping[str, Any] = raw.get("free") or {}
        used: Mapping[str, Any] = raw.get("used") or {}
        return {
            currency: Balance(
                currency=currency,
                free=_decimal(free.get(currency)) or Decimal(0),
                locked=_decimal(used.get(currency)) or Decimal(0),
            )
            for currency in sorted({*free, *used})
        }

    # ----- watching --------------------------------------------------------------------

    async def watch_ticker(self, symbol: str) -> AsyncGenerator[Ticker]:
        """Streamed where the venue can (ccxt.pro), polled otherwise; a stream that keeps
        failing (no websocket route, say) gives way to polling until it is tried again
        (`_StreamOrPoll`)."""
        last: Decimal | None = None
        mode = _StreamOrPoll(
            f"ticker stream of {symbol}", self._streams("watchTicker"), self._stream_retry
        )
        while not self._closed:
            streaming = mode.streaming()
            try:
                ticker = await (
                    self._streamed_ticker(symbol) if streaming else self.fetch_ticker(symbol)
                )
                mode.succeeded()
            except ExchangeError as error:  # a watch outlives blips; the consumer cancels it
                mode.failed()
                wait = error.retry_after if isinstance(error, TransientError) else None
                await asyncio.sleep(wait or self._poll_interval)
                continue
            if ticker.last != last:
                last = ticker.last
                yield ticker
            if not streaming:
                await asyncio.sleep(self._poll_interval)

    async def _streamed_ticker(self, symbol: str) -> Ticker:
        with self._translated(f"watch ticker {symbol}"):
            raw = await self._ccxt.watch_ticker(symbol)
        last = _decimal(raw.get("last"))
        if last is None:
            raise TransientError(f"watch ticker {symbol}: an update without a last price")
        return Ticker(symbol=symbol, last=last, at=_at(raw.get("timestamp")) or _now())

    async def watch_orders(self, symbol: str) -> AsyncGenerator[OrderReport]:
        """Streamed where the venue can, as `watch_ticker` is. Polled: the open orders
        first, then each change of status or fill; an order that leaves the open orders is
        looked up once for its final report.

        Streamed, the next batch is awaited while this one's fills are looked up: ccxt.pro
        hands an update only to a watch that is waiting when it arrives (one that arrives
        while none waits stays in its cache until the account's next update), so an update
        right after another (a fill after its order's NEW, an EXPIRED after a fill) comes
        at once, not with the next order."""
        known: dict[str, OrderReport] = {}
        mode = _StreamOrPoll(
            f"order stream of {symbol}", self._streams("watchOrders"), self._stream_retry
        )
        waiting: asyncio.Future[list[Any]] | None = None  # the next streamed batch
        try:
            while not self._closed:
                streaming = mode.streaming()
                try:
                    if streaming:
                        batch = waiting or asyncio.ensure_future(self._streamed_raw(symbol))
                        waiting = None
                        raws = await batch
                        waiting = asyncio.ensure_future(self._streamed_raw(symbol))
                        changes = [await self._with_fills(self._report(r), symbol) for r in raws]
                    else:
                        changes = await self._polled_order_changes(symbol, known)
                    mode.succeeded()
                except ExchangeError as error:
                    mode.failed()
                    wait = error.retry_after if isinstance(error, TransientError) else None
                    await asyncio.sleep(wait or self._poll_interval)
                    continue
                for report in changes:
                    yield report
                if not streaming:
                    await asyncio.sleep(self._poll_interval)
        finally:
            if waiting is not None:
                waiting.cancel()

    async def _streamed_raw(self, symbol: str) -> list[Any]:
        with self._translated(f"watch orders on {symbol}"):
            return list(await self._ccxt.watch_orders(symbol))

    async def _polled_order_changes(
        self, symbol: str, known: dict[str, OrderReport]
    ) -> list[OrderReport]:
        now_open = {r.client_order_id: r for r in await self.fetch_open_orders(symbol)}
        changes = [r for cid, r in now_open.items() if _state(known.get(cid)) != _state(r)]
        for client_order_id in known.keys() - now_open.keys():
            with suppress(OrderNotFound):  # gone without trace: nothing more to report
                changes.append(await self.fetch_order(symbol, client_order_id))
        known.clear()
        known.update(now_open)
        return changes

    # ----- futures ---------------------------------------------------------------------

    async def prepare_symbol(
        self, symbol: str, leverage: Decimal | None, margin_mode: MarginMode | None
    ) -> None:
        """Set margin mode and leverage before trading a linear swap
        (e.g. Binance USDⓈ-M with options {"defaultType": "swap"}); other markets need none.
        Setting what is already set succeeds. A value the venue refuses (a leverage above
        the market's, say) raises OrderRejected(INVALID_ORDER): asking again cannot help."""
        markets = await self.load_markets()
        if symbol not in markets:
            raise OrderRejected(RejectReason.BAD_SYMBOL, f"prepare {symbol}: no such market")
        entry = self._ccxt.market(symbol)
        if not (entry.get("swap") and entry.get("linear")):
            return
        if margin_mode is not None:
            # Binance answers -4046 "No need to change margin type." when it is already set.
            mode = margin_mode.value.lower()  # ccxt's "isolated" / "cross"
            what = f"set margin mode {mode} on {symbol}"
            with (
                self._translated(what, configuring=True),
                suppress(ccxt_async.MarginModeAlreadySet),
            ):
                await self._ccxt.set_margin_mode(mode, symbol)
        if leverage is not None:
            whole = leverage == leverage.to_integral_value()
            with self._translated(f"set leverage {leverage} on {symbol}", configuring=True):
                await self._ccxt.set_leverage(int(leverage) if whole else float(leverage), symbol)

    async def fetch_positions(self, symbol: str) -> Sequence[PositionReport]:
        """The open positions on `symbol` as the venue reports them (at most one in one-way
        mode; none when flat). A spot market holds none. Binance's positionRisk v3, what
        ccxt reads, has no leverage: then the symbol's settings are asked for it."""
        markets = await self.load_markets()
        if symbol not in markets:
            raise OrderRejected(
                RejectReason.BAD_SYMBOL, f"fetch positions on {symbol}: no such market"
            )
        if not self._ccxt.market(symbol).get("contract"):
            return []
        what = f"fetch positions on {symbol}"
        with self._translated(what):
            raws = await self._ccxt.fetch_positions([symbol])
        held = [raw for raw in raws if raw.get("symbol") == symbol and _is_open(raw)]
        setting: Mapping[str, Any] = {}
        if any(raw.get("leverage") is None or raw.get("marginMode") is None for raw in held):
            with self._translated(what):
                setting = await self._ccxt.fetch_leverage(symbol) or {}
        return [self._position(raw, setting, what) for raw in held]

    def _position(
        self, raw: Mapping[str, Any], setting: Mapping[str, Any], what: str
    ) -> PositionReport:
        """ccxt's position structure as a report; `setting` (ccxt's leverage structure)
        fills in the leverage and margin mode the position itself does not carry."""
        side = Side.BUY if raw["side"] == "long" else Side.SELL
        leverage = _decimal(raw.get("leverage")) or _decimal(
            setting.get("longLeverage" if side is Side.BUY else "shortLeverage")
        )
        mode = raw.get("marginMode") or setting.get("marginMode")
        entry_price = _decimal(raw.get("entryPrice"))
        if leverage is None or mode not in ("isolated", "cross") or entry_price is None:
            raise ExchangeError(f"{what}: the venue reports no leverage, margin mode or entry")
        contracts = _decimal(raw.get("contracts")) or Decimal(0)
        return PositionReport(
            symbol=str(raw["symbol"]),
            side=side,
            units=contracts * (_decimal(raw.get("contractSize")) or Decimal(1)),
            entry_price=entry_price,
            leverage=leverage,
            margin_mode=MarginMode.ISOLATED if mode == "isolated" else MarginMode.CROSS,
            liquidation_price=_decimal(raw.get("liquidationPrice")),
            unrealized_pnl=_decimal(raw.get("unrealizedPnl")) or Decimal(0),
        )

    async def close(self) -> None:
        self._closed = True
        await self._ccxt.close()

    # ----- error translation -----------------------------------------------------------

    @contextmanager
    def _translated(
        self, what: str, *, placing: bool = False, configuring: bool = False
    ) -> Iterator[None]:
        """Refuses during a rate-limit cooldown, then runs the block translating ccxt errors.

        ccxt's decimal_to_precision sets ROUND_HALF_UP and traps Underflow on the *current*
        decimal context; a local context keeps that from leaking into the core's arithmetic.
        """
        remaining = self._cooldown_until - time.monotonic()
        if remaining > 0:
            raise RateLimited(f"{what}: cooling down after a rate limit", retry_after=remaining)
        with decimal.localcontext():
            try:
                yield
            except ccxt_async.BaseError as error:
                raise self._translate(
                    error, what, placing=placing, configuring=configuring
                ) from error
            except Exception as error:
                if not placing or isinstance(error, ExchangeError):
                    raise
                raise OutcomeUnknown(self._message(what, error)) from error

    def _translate(
        self, error: Exception, what: str, *, placing: bool, configuring: bool = False
    ) -> ExchangeError:
        message = self._message(what, error)
        if isinstance(error, ccxt_async.DDoSProtection | ccxt_async.RateLimitExceeded):
            # ccxt keeps the headers of the instance's last response, set just before it
            # raises; a concurrent call could replace them in between (worst case: another
            # Retry-After, or none).
            retry_after = _retry_after(self._ccxt.last_response_headers)
            if retry_after is not None:
                until = time.monotonic() + retry_after
                self._cooldown_until = max(self._cooldown_until, until)
            return RateLimited(message, retry_after=retry_after)
        if isinstance(error, ccxt_async.InsufficientFunds):
            return OrderRejected(RejectReason.INSUFFICIENT_FUNDS, message)
        if isinstance(error, ccxt_async.BadSymbol):
            return OrderRejected(RejectReason.BAD_SYMBOL, message)
        if isinstance(error, ccxt_async.AuthenticationError):
            return OrderRejected(RejectReason.AUTHENTICATION, message)
        if isinstance(error, ccxt_async.OrderNotFound):
            return OrderNotFound(message)
        duplicate = isinstance(error, ccxt_async.DuplicateOrderId) or (
            isinstance(error, ccxt_async.ExchangeError)
            and any(text in str(error) for text in _DUPLICATE_ORDER)
        )
        if duplicate and placing:
            return AlreadyPlaced(message)
        if isinstance(error, ccxt_async.InvalidOrder):
            return OrderRejected(RejectReason.INVALID_ORDER, message)
        if configuring and isinstance(error, ccxt_async.BadRequest | ccxt_async.OperationRejected):
            # A leverage or margin mode the venue will not set (out of range, a position open).
            return OrderRejected(RejectReason.INVALID_ORDER, message)
        refused = ccxt_async.OnMaintenance | ccxt_async.InvalidNonce | ccxt_async.CancelPending
        if isinstance(error, refused) or _never_sent(error):
            return TransientError(message)
        if isinstance(error, ccxt_async.OperationFailed):  # NetworkError, BadResponse, ...
            return OutcomeUnknown(message) if placing else TransientError(message)
        if isinstance(error, ccxt_async.ExchangeError):
            return (
                OrderRejected(RejectReason.INVALID_ORDER, message)
                if placing
                else ExchangeError(message)
            )
        return OutcomeUnknown(message) if placing else ExchangeError(message)

    def _message(self, what: str, error: Exception) -> str:
        text = f"{what}: {type(error).__name__}: {error}"
        for credential in self._credentials:
            text = text.replace(credential, "***")
        text = _SIGNATURE.sub(r"\1***", text)
        return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


# ----- conversions ---------------------------------------------------------------------


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _candle(row: Sequence[Any]) -> Candle:
    """ccxt's [timestamp ms, open, high, low, close, volume], numbers as floats (read back
    through their shortest text, so 40000.01 stays 40000.01)."""
    try:
        open_, high, low, close = (Decimal(str(value)) for value in row[1:5])
        volume = Decimal(str(row[5])) if len(row) > 5 and row[5] is not None else None
        at = datetime.fromtimestamp(int(row[0]) / 1000, UTC)
    except (TypeError, ValueError, ArithmeticError, IndexError) as error:
        raise ExchangeError(f"the venue sent a candle that is not one: {row!r:.100}") from error
    return Candle(at, open_, high, low, close, volume)


def _decimal(value: object) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def _plain(value: Decimal) -> str:
    """Fixed-point text: ccxt's precision helpers read str(), and 1E-7 is not what we mean."""
    return format(value, "f")


def _at(timestamp_ms: object) -> datetime | None:
    if timestamp_ms is None:
        return None
    return datetime.fromtimestamp(int(str(timestamp_ms)) / 1000, tz=UTC)


def _now() -> datetime:
    return datetime.now(tz=UTC)


def _fill(trade: Mapping[str, Any], default_at: datetime | None) -> Fill:
    fee = trade.get("fee") or {}
    trade_id = trade.get("id")
    if trade_id is None:  # no id from the venue: one that is stable across lookups
        trade_id = f"{trade.get('order')}:{trade.get('timestamp')}:{trade.get('amount')}"
    return Fill(
        trade_id=str(trade_id),
        price=_decimal(trade.get("price")) or Decimal(0),
        amount=_decimal(trade.get("amount")) or Decimal(0),
        fee=_decimal(fee.get("cost")) or Decimal(0),
        fee_currency=str(fee.get("currency") or ""),
        at=_at(trade.get("timestamp")) or default_at or _now(),
    )


def _is_open(position: Mapping[str, Any]) -> bool:
    """Whether ccxt's position structure holds contracts on a side."""
    contracts = _decimal(position.get("contracts")) or Decimal(0)
    return contracts > 0 and position.get("side") in ("long", "short")


def _filled(fills: Sequence[Fill]) -> Decimal:
    return sum((fill.amount for fill in fills), Decimal(0))


def _unique_fills(fills: Iterable[Fill]) -> tuple[Fill, ...]:
    """One fill per trade id; a later report of a trade (from the history) wins."""
    return tuple({fill.trade_id: fill for fill in fills}.values())


def _state(report: OrderReport | None) -> tuple[OrderStatus, Decimal] | None:
    return None if report is None else (report.status, report.filled)


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    value = next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - _now()).total_seconds())


def _never_sent(error: Exception) -> bool:
    """ccxt raises ExchangeNotAvailable for a failed connect too: nothing reached the venue."""
    return isinstance(error.__cause__, aiohttp.ClientConnectorError | socket.gaierror)
