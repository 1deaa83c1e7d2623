"""The ccxt adapter on Binance USDⓈ-M futures: real ccxt `binanceusdm` (and `binance` trading
swaps) against the loopback stub's /fapi, for margin mode, leverage, shorts, reduce-only
orders and positions. The stub margins positions with the domain's own formulas
(smarttrade.domain.futures), so the liquidation prices here are the domain's, to Binance's
8 decimal places."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from smarttrade.domain.futures import FuturesPosition
from smarttrade.domain.spec import MarginMode
from smarttrade.domain.values import OrderStatus, OrderType, Side
from smarttrade.exchange.ccxt_exchange import CcxtExchange
from smarttrade.exchange.port import (
    AlreadyPlaced,
    OrderRejected,
    OrderRequest,
    PositionReport,
    RejectReason,
)
from tests.integration.exchange_contract import new_client_order_id
from tests.support.binance_stub import BinanceStub
from tests.support.binance_usdm import MAINTENANCE_RATE, MAKER_FEE, TAKER_FEE

API_KEY = "usdm-api-key-5e4d3c2b1a09"
SECRET = "usdm-secret-9a8b7c6d5e4f3a2b1c0d"
PERPETUAL = "BTC/USDT:USDT"
PRICE = Decimal(50000)
WALLET = Decimal(10000)
EIGHT_PLACES = Decimal("1e-8")


def usdm_at(
    venue: BinanceStub, exchange_id: str = "binanceusdm", **options: object
) -> CcxtExchange:
    return CcxtExchange(
        exchange_id,
        API_KEY,
        SECRET,
        urls={"api": venue.futures_urls},
        options=options,
        timeout=5.0,
        rate_limit_ms=1,
    )


@pytest.fixture
async def venue() -> AsyncIterator[BinanceStub]:
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as stub:
        await stub.set_price(PERPETUAL, PRICE)
        await stub.set_futures_balance(WALLET)
        yield stub


@pytest.fixture
async def exchange(venue: BinanceStub) -> AsyncIterator[CcxtExchange]:
    exchange = usdm_at(venue)
    yield exchange
    await exchange.close()


def market(side: Side, units: str, *, reduce_only: bool = False) -> OrderRequest:
    return OrderRequest(
        new_client_order_id("usdm"),
        PERPETUAL,
        side,
        OrderType.MARKET,
        Decimal(units),
        reduce_only=reduce_only,
    )


def short(units: Decimal, entry: Decimal, leverage: int, mode: MarginMode) -> FuturesPosition:
    """The domain's short as the stub margins it."""
    return FuturesPosition(Side.SELL, units, entry, Decimal(leverage), mode, MAINTENANCE_RATE)


def to_8_places(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(EIGHT_PLACES)


async def test_prepare_symbol_sets_margin_mode_and_leverage_and_setting_them_again_succeeds(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    assert venue.futures.setting("BTCUSDT") == (20, "CROSSED")

    await exchange.prepare_symbol(PERPETUAL, Decimal(10), MarginMode.ISOLATED)
    await exchange.prepare_symbol(PERPETUAL, Decimal(10), MarginMode.ISOLATED)

    assert venue.futures.setting("BTCUSDT") == (10, "ISOLATED")
    # Both calls asked: the second was answered -4046 "No need to change margin type."
    assert len(venue.requests_to("POST", "/fapi/v1/marginType")) == 2
    assert len(venue.requests_to("POST", "/fapi/v1/leverage")) == 2


async def test_a_leverage_the_venue_refuses_is_an_invalid_order(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    # ETHUSDT's bracket allows 100 at most: the venue answers -4028.
    with pytest.raises(OrderRejected) as refused_by_venue:
        await exchange.prepare_symbol("ETH/USDT:USDT", Decimal(110), None)
    # Above Binance's 125 ccxt refuses it itself, before any request.
    with pytest.raises(OrderRejected) as refused_by_ccxt:
        await exchange.prepare_symbol(PERPETUAL, Decimal(150), None)

    assert refused_by_venue.value.reason is RejectReason.INVALID_ORDER
    assert "set leverage 110 on ETH/USDT:USDT" in str(refused_by_venue.value)
    assert "Leverage 110 is not valid" in str(refused_by_venue.value)
    assert refused_by_ccxt.value.reason is RejectReason.INVALID_ORDER
    assert "set leverage 150 on BTC/USDT:USDT" in str(refused_by_ccxt.value)
    assert len(venue.requests_to("POST", "/fapi/v1/leverage")) == 1
    assert venue.futures.setting("ETHUSDT") == (20, "CROSSED")


async def test_a_market_short_opens_a_negative_position_liquidated_where_the_domain_says(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    await exchange.prepare_symbol(PERPETUAL, Decimal(10), MarginMode.ISOLATED)

    report = await exchange.create_order(market(Side.SELL, "0.01"))

    assert report.status is OrderStatus.FILLED
    assert report.filled == Decimal("0.01")
    risk = venue.futures.position_risk("BTCUSDT")
    assert Decimal(risk["positionAmt"]) == Decimal("-0.01")
    assert Decimal(risk["entryPrice"]) == PRICE
    expected = short(Decimal("0.01"), PRICE, 10, MarginMode.ISOLATED).liquidation_price()
    assert expected is not None
    assert Decimal(risk["liquidationPrice"]) == to_8_places(expected)
    # entry x (1 + 1/leverage) / (1 + mmr), worked by hand
    assert to_8_places(expected) == Decimal("54780.87649402")
    # The opening fee, taker, on the notional.
    assert venue.futures_wallet() == WALLET - PRICE * Decimal("0.01") * TAKER_FEE


async def test_a_filled_futures_order_is_reported_with_its_fills_from_the_trade_history(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    # A futures answer (newOrderRespType RESULT) says FILLED with no fills; the trade counts
    # fills, so without them it would place the order again.
    report = await exchange.create_order(market(Side.SELL, "0.01"))

    (fill,) = report.fills
    assert (report.status, fill.amount, fill.price) == (OrderStatus.FILLED, Decimal("0.01"), PRICE)
    assert fill.fee == PRICE * Decimal("0.01") * TAKER_FEE
    assert fill.fee_currency == "USDT"


async def test_a_filled_order_whose_fills_the_history_lacks_yet_is_reported_open(
    exchange: CcxtExchange, venue: BinanceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: the trade history lags the order (it is eventually consistent).
    async def no_trades_yet(*args: object, **kwargs: object) -> list[object]:
        return []

    monkeypatch.setattr(exchange._ccxt, "fetch_my_trades", no_trades_yet)

    # Act
    report = await exchange.create_order(market(Side.SELL, "0.01"))

    # Assert: OPEN (looked up again), never FILLED without its fills.
    assert (report.status, report.filled, report.fills) == (
        OrderStatus.OPEN,
        Decimal("0.01"),
        (),
    )


async def test_a_reduce_only_buy_closes_the_short_and_its_pnl_less_fees_reaches_the_wallet(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    await exchange.prepare_symbol(PERPETUAL, Decimal(10), MarginMode.ISOLATED)
    await exchange.create_order(market(Side.SELL, "0.01"))
    await venue.set_price(PERPETUAL, Decimal(48000))

    closed = await exchange.create_order(market(Side.BUY, "0.01", reduce_only=True))

    assert closed.status is OrderStatus.FILLED
    assert [r.params.get("reduceOnly") for r in venue.requests_to("POST", "/fapi/v1/order")] == [
        None,
        "true",
    ]
    assert Decimal(venue.futures.position_risk("BTCUSDT")["positionAmt"]) == 0
    realized = (PRICE - Decimal(48000)) * Decimal("0.01")  # 20 USDT
    fees = (PRICE + Decimal(48000)) * Decimal("0.01") * TAKER_FEE  # 0.2 + 0.192
    assert venue.futures_wallet() == WALLET + realized - fees == Decimal("10019.608")
    balances = await exchange.fetch_balances()
    assert (balances["USDT"].free, balances["USDT"].locked) == (Decimal("10019.608"), Decimal(0))
    assert await exchange.fetch_positions(PERPETUAL) == []


async def test_a_reduce_only_order_that_would_open_or_grow_a_position_is_rejected(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    with pytest.raises(OrderRejected) as opening:
        await exchange.create_order(market(Side.BUY, "0.01", reduce_only=True))
    await exchange.create_order(market(Side.SELL, "0.01"))
    with pytest.raises(OrderRejected) as growing:
        await exchange.create_order(market(Side.SELL, "0.01", reduce_only=True))

    for refusal in (opening.value, growing.value):
        assert refusal.reason is RejectReason.INVALID_ORDER
        assert "ReduceOnly Order is rejected." in str(refusal)
    assert Decimal(venue.futures.position_risk("BTCUSDT")["positionAmt"]) == Decimal("-0.01")


async def test_fetch_positions_reports_side_units_entry_leverage_margin_mode_and_liquidation(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    await exchange.prepare_symbol(PERPETUAL, Decimal(10), MarginMode.ISOLATED)
    await exchange.create_order(market(Side.SELL, "0.01"))
    await venue.set_price(PERPETUAL, Decimal(49000))

    positions = await exchange.fetch_positions(PERPETUAL)

    domain = short(Decimal("0.01"), PRICE, 10, MarginMode.ISOLATED)
    assert positions == [
        PositionReport(
            symbol=PERPETUAL,
            side=Side.SELL,
            units=Decimal("0.01"),
            entry_price=PRICE,
            leverage=Decimal(10),
            margin_mode=MarginMode.ISOLATED,
            liquidation_price=to_8_places(domain.liquidation_price()),
            unrealized_pnl=domain.unrealized_pnl(Decimal(49000)),  # +10 USDT
        )
    ]
    # ccxt reads positionRisk v3, which has no leverage: the symbol's config supplies it.
    assert len(venue.requests_to("GET", "/fapi/v3/positionRisk")) == 1
    assert len(venue.requests_to("GET", "/fapi/v1/symbolConfig")) == 1


async def test_a_cross_long_is_liquidated_where_the_domain_says_for_the_wallet(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    await venue.set_futures_balance(Decimal(2000))
    await exchange.prepare_symbol(PERPETUAL, Decimal(5), MarginMode.CROSS)

    await exchange.create_order(market(Side.BUY, "0.1"))
    (position,) = await exchange.fetch_positions(PERPETUAL)

    wallet = Decimal(2000) - PRICE * Decimal("0.1") * TAKER_FEE  # 1998 after the fee
    domain = FuturesPosition(
        Side.BUY, Decimal("0.1"), PRICE, Decimal(5), MarginMode.CROSS, MAINTENANCE_RATE
    )
    assert (position.side, position.units, position.leverage) == (
        Side.BUY,
        Decimal("0.1"),
        Decimal(5),
    )
    assert position.margin_mode is MarginMode.CROSS
    assert position.liquidation_price == to_8_places(domain.liquidation_price(wallet))


async def test_a_resting_reduce_only_limit_closes_the_short_at_its_price_with_the_maker_fee(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    await exchange.create_order(market(Side.SELL, "0.01"))
    take_profit = OrderRequest(
        new_client_order_id("tp"),
        PERPETUAL,
        Side.BUY,
        OrderType.LIMIT,
        Decimal("0.01"),
        Decimal(45000),
        reduce_only=True,
    )
    resting = await exchange.create_order(take_profit)
    assert resting.status is OrderStatus.OPEN

    await venue.set_price(PERPETUAL, Decimal("44990.5"))
    report = await exchange.fetch_order(PERPETUAL, take_profit.client_order_id)

    assert report.status is OrderStatus.FILLED
    (fill,) = report.fills
    maker_fee = Decimal(45000) * Decimal("0.01") * MAKER_FEE  # 0.09 USDT
    assert (fill.price, fill.amount, fill.fee, fill.fee_currency) == (
        Decimal(45000),
        Decimal("0.01"),
        maker_fee,
        "USDT",
    )
    taker_fee = PRICE * Decimal("0.01") * TAKER_FEE
    assert venue.futures_wallet() == WALLET + Decimal(50) - taker_fee - maker_fee
    assert await exchange.fetch_positions(PERPETUAL) == []


async def test_a_client_order_id_of_a_resting_futures_order_is_already_placed(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    request = OrderRequest(
        new_client_order_id("dup"), PERPETUAL, Side.BUY, OrderType.LIMIT, Decimal("0.01"), PRICE / 2
    )
    await exchange.create_order(request)

    # Binance fapi answers -4116 "ClientOrderId is duplicated."
    with pytest.raises(AlreadyPlaced):
        await exchange.create_order(request)


async def test_binance_trading_swaps_reaches_the_same_futures_account(venue: BinanceStub) -> None:
    exchange = usdm_at(venue, "binance", defaultType="swap", fetchMarkets={"types": ["linear"]})
    try:
        await exchange.prepare_symbol(PERPETUAL, Decimal(3), MarginMode.ISOLATED)
        await exchange.create_order(market(Side.SELL, "0.002"))
        (position,) = await exchange.fetch_positions(PERPETUAL)
        balances = await exchange.fetch_balances()
    finally:
        await exchange.close()

    assert (position.side, position.units, position.leverage) == (
        Side.SELL,
        Decimal("0.002"),
        Decimal(3),
    )
    assert position.margin_mode is MarginMode.ISOLATED
    margin = PRICE * Decimal("0.002") / 3
    assert balances["USDT"].locked == to_8_places(margin)
    assert venue.futures.setting("BTCUSDT") == (3, "ISOLATED")


async def test_a_spot_market_holds_no_positions(venue: BinanceStub) -> None:
    exchange = usdm_at(venue, "binance", fetchMarkets={"types": ["spot", "linear"]})
    try:
        assert await exchange.fetch_positions("BTC/USDT") == []
    finally:
        await exchange.close()


async def test_a_resting_futures_limit_is_listed_open_then_cancelled_by_its_client_order_id(
    exchange: CcxtExchange, venue: BinanceStub
) -> None:
    request = OrderRequest(
        new_client_order_id("rest"),
        PERPETUAL,
        Side.SELL,
        OrderType.LIMIT,
        Decimal("0.01"),
        PRICE * 2,
    )
    await exchange.create_order(request)

    listed = await exchange.fetch_open_orders(PERPETUAL)
    cancelled = await exchange.cancel_order(PERPETUAL, request.client_order_id)

    assert [r.client_order_id for r in listed] == [request.client_order_id]
    assert cancelled.status is OrderStatus.CANCELLED
    assert await exchange.fetch_open_orders(PERPETUAL) == []
    assert await exchange.fetch_positions(PERPETUAL) == []


async def test_the_perpetual_is_a_linear_contract_market_settled_in_usdt(
    exchange: CcxtExchange,
) -> None:
    markets = await exchange.load_markets()

    perpetual = markets[PERPETUAL]
    assert perpetual.is_contract
    assert perpetual.settle == "USDT"
    assert all(market.is_contract for market in markets.values())  # binanceusdm: only those


async def test_a_contract_that_is_not_one_unit_of_the_base_is_not_offered(
    exchange: CcxtExchange,
) -> None:
    # Arrange: the venue's perpetual as a venue counting in contracts of 1,000 coins would
    # describe it (OKX's DOGE-USDT-SWAP); a trade's sizes are in coins.
    raw = await exchange._ccxt.load_markets()
    raw[PERPETUAL] = raw[PERPETUAL] | {"contractSize": 1000}

    # Act
    markets = await exchange.load_markets()

    # Assert
    assert PERPETUAL not in markets
