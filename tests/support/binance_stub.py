"""A loopback stub of Binance's spot REST API (`/api/v3`) for real ccxt to talk to.

It serves what ccxt's `binance` class calls for spot trading (exchangeInfo, tickers, time,
signed order, openOrders, myTrades and account endpoints), checks the HMAC-SHA256 signature
and answers errors with Binance's own JSON bodies and HTTP statuses, so ccxt maps them as it
would the real venue. MARKET orders fill at once at the stub's last price; LIMIT orders rest
(their funds locked) and fill at their price when `set_price` crosses them; one that crosses
on arrival fills at the last price. The fee is 0.1% of what is received, in that asset.

Faults a real venue has on a bad day are injected with `fail_next_create` (see `CreateFault`)
and `rate_limit_storm`. Every request is logged in `requests`, so tests can count them.

It also serves the websocket streams ccxt.pro's `binance` subscribes to for spot (point
urls['api']['ws'] at `ws_urls`): the market streams (`SUBSCRIBE` to `<symbol>@miniTicker`,
answered with the last price at once and on every `set_price`) and the WebSocket API's user
data stream (`userDataStream.subscribe.signature`, its HMAC checked as the REST one is),
which reports every order change as an `executionReport` (NEW, TRADE, CANCELED).
`subscriptions` logs what was subscribed; `drop_streams` closes every socket and, with
`refuse_for`, refuses new ones for a while, as a venue's websocket outage does.

The same account trades USDⓈ-M futures under /fapi (point ccxt's urls['api'] at
`futures_urls`): what ccxt's `binanceusdm` calls, endpoint by endpoint, with its wallet
(`set_futures_balance`), perpetuals, positions and reduce-only orders, is described in
tests/support/binance_usdm.py. `set_price` moves the perpetual of a pair with its spot
market ("BTC/USDT:USDT" moves the perpetual only).

It serves the futures websockets ccxt.pro 4.5.90 uses for linear swaps too (ccxt/pro/binance.py;
`ws_urls` has their "linear" url, which ccxt rewrites per category in get_ws_url):

    /market/ws/<n>      watch_ticker (and watch_tickers, watch_mark_price): `SUBSCRIBE` to
                        `<symbol>@miniTicker` (`@ticker`, `@markPrice@1s` alike), answered
                        with the perpetual's last price at once and on every `set_price`
    POST /fapi/v1/listenKey
                        authenticate (watch_orders): the account's listen key, sent with the
                        API key alone, no signature; PUT keeps it alive (ccxt: every 20 min),
                        DELETE closes it and its streams
    /private/ws?listenKey=<key>
                        watch_orders: no subscription; every order change of the futures
                        account comes as an ORDER_TRADE_UPDATE (NEW, TRADE with its
                        commission in USDT, CANCELED, EXPIRED for a reduce-only remainder)

`futures_subscriptions` logs the streams subscribed and "listenKey" for each user data stream
connected; `drop_streams` closes these sockets too. No ACCOUNT_UPDATE (balances, positions)
is sent, nor the WebSocket API (ws-fapi).

    async with BinanceStub(api_key="key", secret="secret") as venue:
        await venue.set_price("BTC/USDT", Decimal("50000"))
        # point ccxt's urls['api']['public'] and ['private'] at venue.url
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import WSMsgType, web

from tests.support.binance_usdm import UsdmFutures, capital_config, margin_pairs
from tests.support.binance_wire import BinanceError, Handler, Params, crosses, find_order
from tests.support.binance_wire import fmt as _fmt
from tests.support.binance_wire import missing as _missing
from tests.support.binance_wire import now_ms as _now_ms

FEE_RATE = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class SymbolRules:
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal  # also the minimum quantity
    min_notional: Decimal


DEFAULT_SYMBOLS: Mapping[str, SymbolRules] = {
    "BTCUSDT": SymbolRules("BTC", "USDT", Decimal("0.01"), Decimal("0.00001"), Decimal(5)),
    "ETHUSDT": SymbolRules("ETH", "USDT", Decimal("0.01"), Decimal("0.0001"), Decimal(5)),
}


class CreateFault(Enum):
    """What goes wrong with the next `POST /api/v3/order`."""

    ACCEPT_THEN_503 = "accept-then-503"  # placed (not queryable for `seconds`), answered 503
    ACCEPT_THEN_TIMEOUT = "accept-then-timeout"  # placed, the answer comes after `seconds`
    INVISIBLE = "invisible"  # placed and answered, but not queryable for `seconds`
    DUPLICATE = "duplicate"  # refused with -2010 "Duplicate order sent."
    # Placed (as if an earlier attempt of ours had reached the venue), answered -2010.
    PLACED_EARLIER = "placed-earlier"
    LOST = "lost"  # never placed, answered 503: the request never arrived
    HOLD = "hold"  # received, then held unanswered and never placed (the sender dies first)
    ACCEPT_THEN_HOLD = "accept-then-hold"  # placed, then the answer is held back forever
    RATE_LIMITED = "rate-limited"  # not placed: 429 with a Retry-After of `seconds`


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    method: str
    path: str
    params: Mapping[str, str]
    at: float  # time.monotonic()


@dataclass(slots=True)
class _Order:
    order_id: int
    symbol: str
    client_order_id: str
    side: str
    type: str
    quantity: Decimal
    price: Decimal  # 0 for MARKET, as Binance reports it
    created_ms: int
    visible_at: float  # time.monotonic() from which queries see it
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote_executed: Decimal = Decimal(0)
    updated_ms: int = 0

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def as_json(self) -> dict[str, Any]:
        """As GET /api/v3/order answers."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": _fmt(self.price),
            "origQty": _fmt(self.quantity),
            "executedQty": _fmt(self.executed),
            "cummulativeQuoteQty": _fmt(self.quote_executed),
            "status": self.status,
            "timeInForce": "GTC",
            "type": self.type,
            "side": self.side,
            "time": self.created_ms,
            "updateTime": self.updated_ms,
            "isWorking": True,
            "workingTime": self.created_ms,
        }


@dataclass
class BinanceStub:
    api_key: str
    secret: str
    symbols: Mapping[str, SymbolRules] = field(default_factory=lambda: dict(DEFAULT_SYMBOLS))
    requests: list[LoggedRequest] = field(default_factory=list, init=False)
    newest_first: bool = False  # myTrades lists the newest execution first
    # The same account's USDⓈ-M futures (/fapi): see tests/support/binance_usdm.py.
    futures: UsdmFutures = field(default_factory=UsdmFutures)
    # Spot: the bid-ask spread of a symbol ("BTCUSDT"), around the last price (default none).
    spreads: dict[str, Decimal] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._prices: dict[str, Decimal] = {s: Decimal(100) for s in self.symbols}
        # symbol id -> one-minute candles as /api/v3/klines rows (open time first), in order
        self._candles: dict[str, list[list[Any]]] = {}
        self._free: dict[str, Decimal] = {}
        self._locked: dict[str, Decimal] = {}
        self._orders: dict[int, _Order] = {}
        self._trades: list[dict[str, Any]] = []  # as myTrades returns them
        self._ids = itertools.count(1)
        self._create_faults: list[tuple[CreateFault, float]] = []
        self._throttled: list[tuple[int, int]] = []  # (HTTP status, Retry-After) to answer next
        self._slow: dict[tuple[str, str], float] = {}  # (method, path) -> seconds to wait
        # (method, path) -> what happens at the venue as the next such request arrives
        self._on_next: dict[tuple[str, str], Callable[[], Awaitable[None]]] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0
        # Websockets: every open one, those subscribed to a symbol's miniTicker, and those
        # subscribed to the user data stream (with their subscription id).
        self._sockets: set[web.WebSocketResponse] = set()
        self._tickers: dict[str, set[web.WebSocketResponse]] = {}
        self._user_streams: dict[web.WebSocketResponse, int] = {}
        # The futures market streams, by (symbol, channel), and the futures user data
        # streams, with the listen key each connected with (one key: the account's).
        self._futures_markets: dict[tuple[str, str], set[web.WebSocketResponse]] = {}
        self._futures_user_streams: dict[web.WebSocketResponse, str] = {}
        self._listen_key: str | None = None
        self.futures.on_update = self._report_futures
        # Order events not sent yet, in order: (True for a futures one, the event).
        self._outbox: list[tuple[bool, dict[str, Any]]] = []
        self._sending = asyncio.Lock()
        self._senders: set[asyncio.Task[None]] = set()
        self._refused_until = 0.0  # time.monotonic() before which websockets are refused
        self.subscriptions: list[str] = []  # "btcusdt@miniTicker", "userDataStream", ...
        # "btcusdt@miniTicker", "listenKey" (a user data stream connected), ...
        self.futures_subscriptions: list[str] = []

    # ----- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        routes: dict[tuple[str, str], tuple[Handler, bool]] = {  # (handler, signed)
            ("GET", "time"): (self._time, False),
            ("GET", "exchangeInfo"): (self._exchange_info, False),
            ("GET", "ticker/24hr"): (self._ticker_24hr, False),
            ("GET", "ticker/price"): (self._ticker_price, False),
            ("GET", "klines"): (self._klines, False),
            ("POST", "order"): (self._create_order, True),
            ("GET", "order"): (self._get_order, True),
            ("DELETE", "order"): (self._cancel_order, True),
            ("GET", "openOrders"): (self._open_orders, True),
            ("GET", "myTrades"): (self._my_trades, True),
            ("GET", "account"): (self._account, True),
        }
        app = web.Application(middlewares=[self._middleware])
        for (method, path), (handler, signed) in routes.items():
            app.router.add_route(method, f"/api/v3/{path}", self._endpoint(handler, signed))
        for (method, path), (handler, signed) in self.futures.routes().items():
            app.router.add_route(method, f"/fapi/{path}", self._endpoint(handler, signed))
        app.router.add_get("/sapi/v1/capital/config/getall", self._endpoint(capital_config, True))
        for pairs in ("allPairs", "isolated/allPairs"):
            app.router.add_get(f"/sapi/v1/margin/{pairs}", self._endpoint(margin_pairs, True))
        listen_key = {
            "POST": self._new_listen_key,
            "PUT": self._keep_listen_key_alive,
            "DELETE": self._close_listen_key,
        }
        for method, handler in listen_key.items():
            app.router.add_route(method, "/fapi/v1/listenKey", self._keyed_endpoint(handler))
        app.router.add_get("/stream/ws/{index}", self._market_stream)
        app.router.add_get("/ws-api/v3", self._websocket_api)
        for category in ("market", "public"):
            app.router.add_get(f"/{category}/ws/{{index}}", self._futures_market_stream)
        app.router.add_get("/private/ws", self._futures_user_stream)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self._closing.set()  # releases a handler that delays its answer
        await self.drop_streams()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BinanceStub:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """What to put in ccxt's urls['api']['public'] and ['private']."""
        return f"http://127.0.0.1:{self._port}/api/v3"

    @property
    def futures_urls(self) -> dict[str, str]:
        """What to put in ccxt's urls['api'] for `binanceusdm` (or `binance` trading swaps):
        the fapi sections, sapi (fetch_currencies) and spot's public and private."""
        base = f"http://127.0.0.1:{self._port}"
        fapi = {
            f"fapi{access}{version.upper() if version != 'v1' else ''}": f"{base}/fapi/{version}"
            for access in ("Public", "Private")
            for version in ("v1", "v2", "v3")
        }
        return fapi | {"sapi": f"{base}/sapi/v1", "public": self.url, "private": self.url}

    @property
    def ws_urls(self) -> dict[str, Any]:
        """What to put in ccxt's urls['api']['ws'], spot and USDⓈ-M futures alike. The spot
        market streams' path holds `/stream`, which ccxt.pro reads as "spot" when a symbol
        is also a contract's. The futures one ("linear") ends in `/ws`, as Binance's
        fstream.binance.com/ws does: ccxt.pro puts a category before it, /market/ws/<n>
        for tickers and mark prices, /private/ws?listenKey=<key> for the user data."""
        base = f"ws://127.0.0.1:{self._port}"
        return {
            "spot": f"{base}/stream/ws",
            "linear": f"{base}/ws",
            "ws-api": {"spot": f"{base}/ws-api/v3"},
        }

    # ----- test API ------------------------------------------------------------------------

    async def set_price(self, symbol: str, price: Decimal) -> None:
        """Move the last price of `symbol` ("BTC/USDT" or "BTCUSDT"; "BTC/USDT:USDT" moves
        the perpetual only); limits it crosses fill, spot and futures alike."""
        symbol_id, settle, _ = symbol.replace("/", "").partition(":")
        if symbol_id in self.futures.rules:
            self.futures.set_mark(symbol_id, price)
            await self._send_futures_markets(symbol_id)
        if settle:
            return
        self._prices[symbol_id] = price
        for order in list(self._orders.values()):
            if order.symbol == symbol_id and order.is_open and crosses(order, price):
                self._fill(order, order.price, resting=True)
        for socket in list(self._tickers.get(symbol_id, ())):
            await self._send_ticker(socket, symbol_id)

    def set_candles(
        self, symbol: str, candles: Iterable[tuple[int, str, str, str, str, str]]
    ) -> None:
        """`symbol`'s one-minute history: (open time ms, open, high, low, close, volume)."""
        self._candles[symbol.replace("/", "")] = [
            [at, open_, high, low, close, volume, at + 59_999, "0", 1, "0", "0", "0"]
            for at, open_, high, low, close, volume in candles
        ]

    async def set_balance(self, asset: str, amount: Decimal) -> None:
        """Set the free balance of `asset`."""
        self._free[asset] = amount

    async def set_futures_balance(self, amount: Decimal) -> None:
        """Set the USDT wallet balance of the futures account."""
        self.futures.wallet = amount

    def futures_wallet(self) -> Decimal:
        """The futures account's USDT wallet balance: deposits, less fees, plus realized PnL."""
        return self.futures.wallet

    def balance(self, asset: str) -> tuple[Decimal, Decimal]:
        """(free, locked) of `asset`."""
        return self._free.get(asset, Decimal(0)), self._locked.get(asset, Decimal(0))

    async def drop_streams(self, refuse_for: float = 0.0) -> None:
        """Close every websocket, spot and futures (ccxt sees the venue hang up), and refuse
        new ones for `refuse_for` seconds. A futures listen key outlives its sockets, as
        Binance's does: ccxt connects again with the same one."""
        self._refused_until = time.monotonic() + refuse_for
        for socket in list(self._sockets):
            await socket.close()

    def requests_to(self, method: str, path: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path)]

    def fail_next_create(self, kind: CreateFault, *, seconds: float = 0.0) -> None:
        """Make the next order placement go wrong; `seconds` for ACCEPT_THEN_TIMEOUT/INVISIBLE."""
        self._create_faults.append((kind, seconds))

    def rate_limit_storm(
        self, *, requests: int, retry_after: int, ban_retry_after: int | None = None
    ) -> None:
        """The next `requests` requests, whatever they are, answer 429 with Retry-After:
        `retry_after`; then, if `ban_retry_after` is set, one more answers 418 (IP banned)."""
        self._throttled = [(429, retry_after)] * requests
        if ban_retry_after is not None:
            self._throttled.append((418, ban_retry_after))

    def slow_answers(self, method: str, path: str, seconds: float) -> None:
        """Answer every `method` request to /api/v3/`path` only after `seconds`."""
        self._slow[(method, path)] = seconds

    def on_next_request(
        self, method: str, path: str, happening: Callable[[], Awaitable[None]]
    ) -> None:
        """Run `happening` (a change at the venue: a fill, a cancel) when the next `method`
        request to /api/v3/`path` arrives, before answering it: the change lands exactly as
        the client asks, whatever it asked before."""
        self._on_next[(method, path)] = happening

    # ----- HTTP plumbing -------------------------------------------------------------------

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.text() if request.can_read_body else ""
        params = dict(request.query) | dict(parse_qsl(body, keep_blank_values=True))
        self.requests.append(LoggedRequest(request.method, request.path, params, time.monotonic()))
        if self._throttled:
            status, retry_after = self._throttled.pop(0)
            if status == 418:
                msg = f"Way too many requests; IP banned until {_now_ms() + retry_after * 1000}."
            else:
                msg = "Too many requests; current limit is 6000 request weight per 1 MINUTE."
            headers = {"Retry-After": str(retry_after)}
            return web.json_response({"code": -1003, "msg": msg}, status=status, headers=headers)
        route = (request.method, request.path.removeprefix("/api/v3/"))
        happening = self._on_next.pop(route, None)
        if happening is not None:
            await happening()
        delay = self._slow.get(route)
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
        try:
            return await handler(request)
        except BinanceError as error:
            return web.json_response({"code": error.code, "msg": error.msg}, status=error.status)

    def _endpoint(
        self, handler: Handler, signed: bool
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            params = await self._verified_params(request) if signed else dict(request.query)
            answer = await handler(params)
            return answer if isinstance(answer, web.StreamResponse) else web.json_response(answer)

        return endpoint

    def _keyed_endpoint(
        self, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """An endpoint that wants the API key but no signature, as Binance's listenKey ones
        (ccxt sends them only the X-MBX-APIKEY header)."""

        async def endpoint(request: web.Request) -> web.StreamResponse:
            self._check_api_key(request)
            body = await request.text() if request.can_read_body else ""
            params = dict(request.query) | dict(parse_qsl(body, keep_blank_values=True))
            return web.json_response(await handler(params))

        return endpoint

    def _check_api_key(self, request: web.Request) -> None:
        api_key = request.headers.get("X-MBX-APIKEY")
        if not api_key:
            raise BinanceError(401, -2014, "API-key format invalid.")
        if not hmac.compare_digest(api_key, self.api_key):
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")

    async def _verified_params(self, request: web.Request) -> Params:
        self._check_api_key(request)
        # The signature covers the query string as sent (GET, DELETE) or the form body (POST).
        if request.method in ("GET", "DELETE"):
            raw = request.rel_url.raw_query_string
        else:
            raw = await request.text()
        payload, separator, signature = raw.rpartition("&signature=")
        if not separator:
            raise _missing("signature")
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(payload, keep_blank_values=True))
        timestamp, recv_window = int(params["timestamp"]), int(params.get("recvWindow", 5000))
        if abs(_now_ms() - timestamp) > recv_window:
            msg = "Timestamp for this request is outside of the recvWindow."
            raise BinanceError(400, -1021, msg)
        return params

    # ----- websockets ----------------------------------------------------------------------

    async def _websocket(
        self,
        request: web.Request,
        method: str | None,
        answer: Callable[[web.WebSocketResponse, dict[str, Any]], Awaitable[None]] | None = None,
        opened: Callable[[web.WebSocketResponse], None] | None = None,
    ) -> web.StreamResponse:
        """A websocket whose requests of `method` get `answer`ed (others are ignored), and
        that `opened` registers as it opens; refused while `drop_streams` says so."""
        if time.monotonic() < self._refused_until:
            return web.Response(status=503, text="Service Unavailable")
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.add(socket)
        if opened is not None:
            opened(socket)
        try:
            async for message in socket:
                if message.type is WSMsgType.TEXT and answer is not None:
                    data = json.loads(message.data)
                    if data.get("method") == method:
                        await answer(socket, data)
        finally:
            self._forget(socket)
        return socket

    def _forget(self, socket: web.WebSocketResponse) -> None:
        """A closed socket leaves every stream it was subscribed to."""
        self._sockets.discard(socket)
        self._user_streams.pop(socket, None)
        self._futures_user_streams.pop(socket, None)
        for subscribed in (*self._tickers.values(), *self._futures_markets.values()):
            subscribed.discard(socket)

    async def _market_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._websocket(request, "SUBSCRIBE", self._subscribe)

    async def _subscribe(self, socket: web.WebSocketResponse, data: dict[str, Any]) -> None:
        """`SUBSCRIBE` to `<symbol>@miniTicker` streams; each gets the last price at once
        (Binance sends one every second) and at every `set_price`."""
        await socket.send_json({"result": None, "id": data.get("id")})
        for stream in data.get("params", []):
            self.subscriptions.append(stream)
            name, _, channel = stream.partition("@")
            symbol_id = name.upper()
            if channel == "miniTicker" and symbol_id in self.symbols:
                self._tickers.setdefault(symbol_id, set()).add(socket)
                await self._send_ticker(socket, symbol_id)

    async def _send_ticker(self, socket: web.WebSocketResponse, symbol_id: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):  # closing under our feet
            await socket.send_json(
                {"e": "24hrMiniTicker", "E": _now_ms(), "s": symbol_id}
                | {"c": _fmt(self._prices[symbol_id])}
            )

    async def _websocket_api(self, request: web.Request) -> web.StreamResponse:
        return await self._websocket(
            request, "userDataStream.subscribe.signature", self._subscribe_user_data
        )

    async def _subscribe_user_data(
        self, socket: web.WebSocketResponse, data: dict[str, Any]
    ) -> None:
        """The WebSocket API's `userDataStream.subscribe.signature`: its parameters signed as
        a REST request's query; then this socket gets every order change."""
        try:
            self._verified_ws_params(data.get("params", {}))
        except BinanceError as error:
            await socket.send_json(
                {"id": data.get("id"), "status": error.status}
                | {"error": {"code": error.code, "msg": error.msg}}
            )
            return
        subscription = next(self._ids)
        self._user_streams[socket] = subscription
        self.subscriptions.append("userDataStream")
        await socket.send_json(
            {"id": data.get("id"), "status": 200, "result": {"subscriptionId": subscription}}
        )

    def _verified_ws_params(self, params: Mapping[str, Any]) -> None:
        if not hmac.compare_digest(str(params.get("apiKey", "")), self.api_key):
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        signed = {k: v for k, v in params.items() if k != "signature"}
        payload = urlencode(sorted(signed.items()))
        expected = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(params.get("signature", ""))):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")

    # ----- USDⓈ-M futures websockets ------------------------------------------------------

    async def _new_listen_key(self, params: Params) -> Any:
        """POST /fapi/v1/listenKey (ccxt's authenticate for linear): the account's listen
        key, a new one unless one is open (Binance then answers that one, extended)."""
        if self._listen_key is None:
            self._listen_key = secrets.token_hex(32)
        return {"listenKey": self._listen_key}

    async def _keep_listen_key_alive(self, params: Params) -> Any:
        """PUT /fapi/v1/listenKey (ccxt's keep_alive_listen_key, every 20 minutes)."""
        if self._listen_key is None:
            raise BinanceError(400, -1125, "This listenKey does not exist.")
        return {"listenKey": self._listen_key}

    async def _close_listen_key(self, params: Params) -> Any:
        """DELETE /fapi/v1/listenKey: the key is gone, and its user data streams close."""
        self._listen_key = None
        for socket in list(self._futures_user_streams):
            await socket.close()
        return {}

    async def _futures_market_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._websocket(request, "SUBSCRIBE", self._subscribe_futures)

    async def _subscribe_futures(self, socket: web.WebSocketResponse, data: dict[str, Any]) -> None:
        """`SUBSCRIBE` to a perpetual's `<symbol>@miniTicker` (ticker, markPrice) stream:
        it gets the last price at once and at every `set_price`."""
        await socket.send_json({"result": None, "id": data.get("id")})
        for stream in data.get("params", []):
            self.futures_subscriptions.append(stream)
            name, _, channel = stream.partition("@")
            symbol_id = name.upper()
            if symbol_id in self.futures.rules and self.futures.market_event(symbol_id, channel):
                self._futures_markets.setdefault((symbol_id, channel), set()).add(socket)
                await self._send_futures_market(socket, symbol_id, channel)

    async def _send_futures_markets(self, symbol_id: str) -> None:
        for (subscribed, channel), sockets in list(self._futures_markets.items()):
            if subscribed == symbol_id:
                for socket in list(sockets):
                    await self._send_futures_market(socket, symbol_id, channel)

    async def _send_futures_market(
        self, socket: web.WebSocketResponse, symbol_id: str, channel: str
    ) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):  # closing under our feet
            await socket.send_json(self.futures.market_event(symbol_id, channel))

    async def _futures_user_stream(self, request: web.Request) -> web.StreamResponse:
        """/private/ws?listenKey=<key>: every order change of the futures account, as
        ORDER_TRADE_UPDATE events; nothing to subscribe to. A key that is not the open one
        is refused (-1125), as Binance refuses an expired key."""
        key = request.query.get("listenKey", "")
        if self._listen_key is None or not hmac.compare_digest(key, self._listen_key):
            body = {"code": -1125, "msg": "This listenKey does not exist."}
            return web.json_response(body, status=400)
        return await self._websocket(request, None, opened=self._open_futures_user_stream)

    def _open_futures_user_stream(self, socket: web.WebSocketResponse) -> None:
        self._futures_user_streams[socket] = self._listen_key or ""
        self.futures_subscriptions.append("listenKey")

    def _report_futures(self, event: dict[str, Any]) -> None:
        """An ORDER_TRADE_UPDATE (from UsdmFutures) to every futures user data stream."""
        if self._futures_user_streams:
            self._outbox.append((True, event))
            self._send_soon()

    # ----- order reports -------------------------------------------------------------------

    def _report(self, order: _Order, execution: str, **fields: Any) -> None:
        """An `executionReport` of `order` as it is now, to every user data stream."""
        if not self._user_streams:
            return
        now = _now_ms()
        event = {
            "e": "executionReport",
            "E": now,
            "s": order.symbol,
            "c": order.client_order_id,
            "S": order.side,
            "o": order.type,
            "f": "GTC",
            "q": _fmt(order.quantity),
            "p": _fmt(order.price),
            "P": _fmt(Decimal(0)),
            "C": "",
            "x": execution,
            "X": order.status,
            "i": order.order_id,
            "l": _fmt(Decimal(0)),
            "z": _fmt(order.executed),
            "L": _fmt(Decimal(0)),
            "n": "0",
            "N": None,
            "T": now,
            "t": -1,
            "O": order.created_ms,
            "Z": _fmt(order.quote_executed),
        } | fields
        self._outbox.append((False, event))
        self._send_soon()

    def _send_soon(self) -> None:
        sender = asyncio.get_running_loop().create_task(self._send_reports())
        self._senders.add(sender)
        sender.add_done_callback(self._senders.discard)

    async def _send_reports(self) -> None:
        async with self._sending:  # one sender at a time: the events go out in order
            while self._outbox:
                futures, event = self._outbox.pop(0)
                for socket, framed in self._recipients(futures, event):
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await socket.send_json(framed)

    def _recipients(
        self, futures: bool, event: dict[str, Any]
    ) -> list[tuple[web.WebSocketResponse, dict[str, Any]]]:
        """Who gets an order event, as what: a futures one as it is, to the listen key's
        streams; a spot one inside its WebSocket API subscription."""
        if futures:
            return [(socket, event) for socket in self._futures_user_streams]
        return [
            (socket, {"subscriptionId": subscription, "event": event})
            for socket, subscription in self._user_streams.items()
        ]

    # ----- public endpoints ----------------------------------------------------------------

    async def _time(self, params: Params) -> Any:
        return {"serverTime": _now_ms()}

    async def _exchange_info(self, params: Params) -> Any:
        return {
            "timezone": "UTC",
            "serverTime": _now_ms(),
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(s, rules) for s, rules in self.symbols.items()],
        }

    @staticmethod
    def _symbol_info(symbol_id: str, rules: SymbolRules) -> dict[str, Any]:
        tick, step = _fmt(rules.tick_size), _fmt(rules.step_size)
        return {
            "symbol": symbol_id,
            "status": "TRADING",
            "baseAsset": rules.base,
            "baseAssetPrecision": 8,
            "quoteAsset": rules.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": tick,
                    "maxPrice": "1000000.00000000",
                    "tickSize": tick,
                },
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000", "stepSize": step},
                {"filterType": "NOTIONAL", "minNotional": _fmt(rules.min_notional)},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
        }

    async def _ticker_24hr(self, params: Params) -> Any:
        if "symbol" in params:
            return self._ticker(self._known_symbol(params["symbol"]))
        return [self._ticker(s) for s in self.symbols]

    async def _ticker_price(self, params: Params) -> Any:
        if "symbol" in params:
            symbol_id = self._known_symbol(params["symbol"])
            return {"symbol": symbol_id, "price": _fmt(self._prices[symbol_id])}
        return [{"symbol": s, "price": _fmt(p)} for s, p in self._prices.items()]

    async def _klines(self, params: Params) -> Any:
        """As Binance answers: the candles opening in [startTime, endTime], oldest first, at
        most `limit` (default 500, at most 1,000); only one-minute candles are kept here."""
        symbol_id = self._known_symbol(params["symbol"])
        if params.get("interval") != "1m":
            raise BinanceError(400, -1120, "Invalid interval.")
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", 2**62))
        limit = min(int(params.get("limit", 500)), 1000)
        rows = [row for row in self._candles.get(symbol_id, []) if start <= row[0] <= end]
        return rows[:limit]

    def _ticker(self, symbol_id: str) -> dict[str, Any]:
        price, now = self._prices[symbol_id], _now_ms()
        last, half = _fmt(price), self.spreads.get(symbol_id, Decimal(0)) / 2
        prices = ("lastPrice", "openPrice", "highPrice", "lowPrice")
        book = {"bidPrice": _fmt(price - half), "askPrice": _fmt(price + half)}
        return {"symbol": symbol_id, **dict.fromkeys(prices, last), **book} | {
            "volume": "0",
            "quoteVolume": "0",
            "openTime": now - 86_400_000,
            "closeTime": now,
        }

    def _known_symbol(self, symbol_id: str) -> str:
        if symbol_id not in self.symbols:
            raise BinanceError(400, -1121, "Invalid symbol.")
        return symbol_id

    # ----- signed endpoints ----------------------------------------------------------------

    async def _create_order(self, params: Params) -> Any:
        fault, seconds = self._create_faults.pop(0) if self._create_faults else (None, 0.0)
        if fault is CreateFault.DUPLICATE:
            raise BinanceError(400, -2010, "Duplicate order sent.")
        if fault is CreateFault.LOST:
            return web.Response(status=503, text="Service Unavailable", content_type="text/html")
        if fault is CreateFault.RATE_LIMITED:
            msg = "Too many requests; current limit is 6000 request weight per 1 MINUTE."
            headers = {"Retry-After": str(int(seconds))}
            return web.json_response({"code": -1003, "msg": msg}, status=429, headers=headers)
        if fault is CreateFault.HOLD:
            await self._closing.wait()  # until the stub stops; the sender is gone by then
            return web.Response(status=503, text="Service Unavailable", content_type="text/html")
        hidden = fault in (CreateFault.INVISIBLE, CreateFault.ACCEPT_THEN_503)
        order = self._place(params, visible_in=seconds if hidden else 0)
        if fault is CreateFault.PLACED_EARLIER:
            raise BinanceError(400, -2010, "Duplicate order sent.")
        if fault is CreateFault.ACCEPT_THEN_HOLD:
            await self._closing.wait()
        if fault is CreateFault.ACCEPT_THEN_503:
            return web.Response(status=503, text="Service Unavailable", content_type="text/html")
        if fault is CreateFault.ACCEPT_THEN_TIMEOUT:
            with contextlib.suppress(TimeoutError):  # answers late, or at once when stopping
                await asyncio.wait_for(self._closing.wait(), timeout=seconds)
        # Always the FULL answer (with fills): the newOrderRespType ccxt asks for.
        return order.as_json() | {
            "transactTime": order.created_ms,
            "fills": [
                {k: t[k] for k in ("price", "qty", "commission", "commissionAsset")}
                | {"tradeId": t["id"]}
                for t in self._trades
                if t["orderId"] == order.order_id
            ],
        }

    def _place(self, params: Params, visible_in: float) -> _Order:
        symbol_id = self._known_symbol(params.get("symbol", ""))
        rules = self.symbols[symbol_id]
        side, order_type = params.get("side"), params.get("type")
        if side not in ("BUY", "SELL"):
            raise _missing("side")
        if order_type not in ("LIMIT", "MARKET"):
            raise BinanceError(400, -1116, "Invalid orderType.")
        client_order_id = params.get("newClientOrderId") or f"stub-{next(self._ids)}"
        # Binance refuses a client order id only while an order that has it is open.
        if any(o.client_order_id == client_order_id and o.is_open for o in self._orders.values()):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        if "quantity" not in params:
            raise _missing("quantity")
        quantity = Decimal(params["quantity"])
        if quantity < rules.step_size or quantity % rules.step_size:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        last, price = self._prices[symbol_id], Decimal(0)
        if order_type == "LIMIT":
            for name in ("price", "timeInForce"):
                if name not in params:
                    raise _missing(name)
            price = Decimal(params["price"])
            if price <= 0 or price % rules.tick_size:
                raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        if quantity * (price or last) < rules.min_notional:
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
        pays, needed = (
            (rules.quote, quantity * (price or last)) if side == "BUY" else (rules.base, quantity)
        )
        if self._free.get(pays, Decimal(0)) < needed:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        order = _Order(
            order_id=next(self._ids),
            symbol=symbol_id,
            client_order_id=client_order_id,
            side=side,
            type=order_type,
            quantity=quantity,
            price=price,
            created_ms=_now_ms(),
            updated_ms=_now_ms(),
            visible_at=time.monotonic() + visible_in,
        )
        self._orders[order.order_id] = order
        self._report(order, "NEW")
        if order_type == "MARKET" or crosses(order, last):
            self._fill(order, last, resting=False)
        else:
            self._move(pays, free=-needed, locked=needed)
        return order

    async def _get_order(self, params: Params) -> Any:
        order = self._find(params)
        if order is None or not self._visible(order):
            raise BinanceError(400, -2013, "Order does not exist.")
        return order.as_json()

    async def cancel_by_hand(self, client_order_id: str) -> None:
        """What a trader does on the venue's own website: cancel an order."""
        await self._cancel_order({"origClientOrderId": client_order_id})

    async def fill_in_parts(self, client_order_id: str, parts: list[Decimal]) -> None:
        """Fill an open limit order at its price in several executions (several trade ids)."""
        order = next(o for o in self._orders.values() if o.client_order_id == client_order_id)
        for part in parts:
            self._fill(order, order.price, resting=True, part=part)

    async def fill_after_cancel(self, client_order_id: str) -> None:
        """The fill that raced a cancel: the venue answered the cancel (CANCELED), then
        reports the order FILLED after all, at its price, paid with what the cancel freed."""
        order = self._find({"origClientOrderId": client_order_id})
        assert order is not None, client_order_id
        assert order.status == "CANCELED", order.status
        self._fill(order, order.price, resting=False)

    def holds(self, client_order_id: str) -> bool:
        """Whether the venue has an order with this client order id (in any state)."""
        return any(o.client_order_id == client_order_id for o in self._orders.values())

    async def _cancel_order(self, params: Params) -> Any:
        order = self._find(params)
        if order is None or not order.is_open:  # Binance says the same for a closed order
            raise BinanceError(400, -2011, "Unknown order sent.")
        rules = self.symbols[order.symbol]
        remaining = order.quantity - order.executed
        if order.side == "BUY":
            self._move(rules.quote, free=remaining * order.price, locked=-remaining * order.price)
        else:
            self._move(rules.base, free=remaining, locked=-remaining)
        order.status, order.updated_ms = "CANCELED", _now_ms()
        cancel_id = params.get("newClientOrderId") or f"cancel-{next(self._ids)}"
        # Binance's answer carries the *cancel's* own id in clientOrderId, the order's in
        # origClientOrderId; its executionReport the cancel's in c, the order's in C.
        self._report(order, "CANCELED", c=cancel_id, C=order.client_order_id)
        return order.as_json() | {
            "origClientOrderId": order.client_order_id,
            "clientOrderId": cancel_id,
            "transactTime": order.updated_ms,
        }

    async def _open_orders(self, params: Params) -> Any:
        symbol_id = self._known_symbol(params["symbol"]) if "symbol" in params else None
        return [
            o.as_json()
            for o in self._orders.values()
            if o.is_open and self._visible(o) and symbol_id in (None, o.symbol)
        ]

    async def _my_trades(self, params: Params) -> Any:
        if "symbol" not in params:
            raise _missing("symbol")
        symbol_id = self._known_symbol(params["symbol"])
        order_id = int(params["orderId"]) if "orderId" in params else None
        trades = [
            t
            for t in self._trades
            if t["symbol"] == symbol_id
            and order_id in (None, t["orderId"])
            and self._visible(self._orders[t["orderId"]])
        ]
        return list(reversed(trades)) if self.newest_first else trades

    async def _account(self, params: Params) -> Any:
        balances = []
        for asset in sorted(set(self._free) | set(self._locked)):
            free, locked = self.balance(asset)
            balances.append({"asset": asset, "free": _fmt(free), "locked": _fmt(locked)})
        return {
            "canTrade": True,
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
        }

    # ----- matching and bookkeeping --------------------------------------------------------

    def _fill(
        self, order: _Order, price: Decimal, *, resting: bool, part: Decimal | None = None
    ) -> None:
        """Fill `part` (default: what remains) of `order` at `price`; the fee is taken from
        what it receives."""
        rules = self.symbols[order.symbol]
        qty = part if part is not None else order.quantity - order.executed
        cost = qty * price
        if order.side == "BUY":
            pays, paid, gets, got = rules.quote, cost, rules.base, qty
        else:
            pays, paid, gets, got = rules.base, qty, rules.quote, cost
        fee = (got * FEE_RATE).quantize(Decimal("1e-8"), rounding=ROUND_DOWN)
        if resting:  # its funds were locked at its limit price, which is `price`
            self._move(pays, locked=-paid)
        else:
            self._move(pays, free=-paid)
        self._move(gets, free=got - fee)
        self._trades.append(
            {
                "symbol": order.symbol,
                "id": next(self._ids),
                "orderId": order.order_id,
                "orderListId": -1,
                "price": _fmt(price),
                "qty": _fmt(qty),
                "quoteQty": _fmt(cost),
                "commission": _fmt(fee),
                "commissionAsset": gets,
                "time": _now_ms(),
                "isBuyer": order.side == "BUY",
                "isMaker": resting,
                "isBestMatch": True,
            }
        )
        order.executed += qty
        order.quote_executed += cost
        order.status = "FILLED" if order.executed >= order.quantity else "PARTIALLY_FILLED"
        order.updated_ms = _now_ms()
        trade = self._trades[-1]
        self._report(
            order,
            "TRADE",
            l=_fmt(qty),
            L=_fmt(price),
            n=_fmt(fee),
            N=gets,
            t=trade["id"],
            T=trade["time"],
        )

    def _move(
        self, asset: str, *, free: Decimal = Decimal(0), locked: Decimal = Decimal(0)
    ) -> None:
        self._free[asset] = self._free.get(asset, Decimal(0)) + free
        self._locked[asset] = self._locked.get(asset, Decimal(0)) + locked

    def _find(self, params: Params) -> _Order | None:
        return find_order(self._orders, params)

    @staticmethod
    def _visible(order: _Order) -> bool:
        return time.monotonic() >= order.visible_at
