"""Futures trades end to end over gRPC (issue 14), on paper futures and on Binance USDⓈ-M
through real ccxt (`binanceusdm`) against the stub, its prices and orders streamed by
websocket or polled: a linear perpetual's position on margin, long and short, with
take-profit steps and a trailing stop, closing at a profit and at a loss; Add and Reduce
Funds on a short; a liquidation (paper); what is refused; and the sandbox's own price for
each paper perpetual.

BTC/USDT:USDT at 100 (lot 0.001, tick 0.1, minimum notional 100 USDT, up to 125x,
maintenance margin 0.4 % on both venues); the account's margin wallet holds 10,000 USDT;
fees on the notional (paper 0.1 %; the stub 0.04 % taker, 0.02 % maker). Every trade is 10
BTC (a notional of 1,000 USDT) at 10x isolated unless it says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from smarttrade.domain.spec import TradeSpec
from smarttrade.domain.values import OrderType, Side
from smarttrade.exchange.ccxt_exchange import CcxtExchange
from smarttrade.exchange.port import OrderRequest
from smarttrade.store.trades import TradeRepository
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.binance_service import open_usdm_account, usdm_overrides
from tests.support.binance_stub import BinanceStub
from tests.support.binance_usdm import MAKER_FEE, TAKER_FEE
from tests.support.service import (
    Client,
    Service,
    eventually,
    request_id,
    rich_error,
    running_service,
)

ZERO = Decimal(0)
EIGHT_PLACES = Decimal("1e-8")

PERP = "BTC/USDT:USDT"
START = Decimal(10000)
API_KEY = "e2e-usdm-key-7f3b21"
SECRET = "e2e-usdm-secret-c94e08"


@dataclass
class Venue:
    """Where the trades run: a client, an account whose margin wallet holds 10,000 USDT,
    a way to move the perpetual's price, the wallet, and the venue's fee rates."""

    client: Client
    account: str
    set_price: Callable[[str], Awaitable[None]]
    wallet: Callable[[], Awaitable[Decimal]]
    taker: Decimal
    maker: Decimal
    stub: BinanceStub | None = None  # the Binance venue, for what a trader does by hand

    def fees(self, taker_notional: Decimal, maker_notional: Decimal = ZERO) -> Decimal:
        return self.taker * taker_notional + self.maker * maker_notional


@asynccontextmanager
async def paper(database_url: str, data_dir: Path) -> AsyncIterator[Venue]:
    async with running_service(database_url, data_dir) as service:
        client = service.a
        account = await client.paper_account(USDT=str(START))

        async def set_price(price: str) -> None:
            await client.set_price(PERP, price)

        async def wallet() -> Decimal:
            return Decimal((await client.balances(account))["USDT"])

        await set_price("100")
        yield Venue(client, account, set_price, wallet, Decimal("0.001"), Decimal("0.001"))


def binance(streaming: bool) -> Callable[[str, Path], AbstractAsyncContextManager[Venue]]:
    """Binance USDⓈ-M through real ccxt (`binanceusdm`) against the stub, with its order and
    price streams (websockets) or polled."""

    @asynccontextmanager
    async def running(database_url: str, data_dir: Path) -> AsyncIterator[Venue]:
        async with BinanceStub(api_key=API_KEY, secret=SECRET) as stub:
            await stub.set_futures_balance(START)
            await stub.set_price(PERP, Decimal(100))
            async with running_service(
                database_url,
                data_dir,
                exchange_overrides=usdm_overrides(stub, streaming=streaming, stream_retry=0.5),
                order_poll_interval=0.05,
            ) as service:
                client = service.a
                name = await open_usdm_account(client, API_KEY, SECRET)

                async def set_price(price: str) -> None:
                    await stub.set_price(PERP, Decimal(price))
                    await asyncio.sleep(0.2)  # the service polls (or is sent) the price

                async def wallet() -> Decimal:
                    return stub.futures_wallet()

                yield Venue(client, name, set_price, wallet, TAKER_FEE, MAKER_FEE, stub)

    return running


VENUES = {
    "paper": paper,
    "binance-usdm-polled": binance(streaming=False),
    "binance-usdm-streamed": binance(streaming=True),
}


@pytest.fixture(params=list(VENUES))
async def venue(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> AsyncIterator[Venue]:
    async with VENUES[request.param](database_url, tmp_path) as running:
        yield running


@pytest.fixture
async def usdm_venue(database_url: str, tmp_path: Path) -> AsyncIterator[Venue]:
    async with binance(streaming=True)(database_url, tmp_path) as running:
        yield running


@pytest.fixture
async def paper_venue(database_url: str, tmp_path: Path) -> AsyncIterator[Venue]:
    async with paper(database_url, tmp_path) as running:
        yield running


def mirrored(side: int, price: str) -> str:
    """A price as far from 100 on the other side, for a short."""
    return price if side == pb.SIDE_BUY else str(200 - Decimal(price))


def futures(
    account: str,
    side: int,
    leverage: str = "10",
    margin_mode: int = pb.MARGIN_MODE_ISOLATED,
    **settings: object,
) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=PERP,
        side=side,  # type: ignore[arg-type]
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="10"),
        leverage=pb.Leverage(
            market_type=pb.MARKET_TYPE_LINEAR,
            value=leverage,
            margin_mode=margin_mode,  # type: ignore[arg-type]
        ),
        **settings,  # type: ignore[arg-type]
    )


async def opened(client: Client, trade: pb.SmartTrade) -> pb.SmartTrade:
    created = await client.create(trade)
    return await eventually(client, created.name, lambda t: t.state == pb.SMART_TRADE_STATE_ACTIVE)


async def closed(client: Client, name: str, reason: pb.CloseReason.ValueType) -> pb.SmartTrade:
    trade = await eventually(client, name, lambda t: t.state == pb.SMART_TRADE_STATE_CLOSED)
    assert pb.CloseReason.Name(trade.close_reason) == pb.CloseReason.Name(reason)
    return trade


SIDES = pytest.mark.parametrize("side", [pb.SIDE_BUY, pb.SIDE_SELL], ids=["long", "short"])


@SIDES
async def test_a_futures_trade_takes_profit_in_steps_and_the_margin_wallet_gets_the_pnl(
    venue: Venue, side: int
) -> None:
    # Arrange: 50 % at 110 and 50 % at 120 (90 and 80 for a short), a trailing stop 5 %.
    client = venue.client
    targets = [mirrored(side, "110"), mirrored(side, "120")]
    steps = [pb.TakeProfitStep(price=price, volume_percent="50") for price in targets]
    trade = await opened(
        client,
        futures(
            venue.account,
            side,
            take_profit=pb.TakeProfit(steps=steps),
            stop_loss=pb.StopLoss(percent="5", trailing_percent="5"),
        ),
    )

    # Assert, while open: margin 1,000 / 10 = 100; at 104 (96) the PnL is 40, an ROE of
    # 40 %; the isolated liquidation price 100 x 0.9 / 0.996 (100 x 1.1 / 1.004).
    await venue.set_price(mirrored(side, "104"))
    trade = await eventually(client, trade.name, lambda t: t.futures.roe_percent == "40")
    assert (trade.futures.margin, trade.futures.unrealized_pnl) == ("100", "40")
    liquidation = "90.36144578" if side == pb.SIDE_BUY else "109.56175299"
    assert Decimal(trade.futures.liquidation_price).quantize(EIGHT_PLACES) == Decimal(liquidation)

    # Act
    for price in targets:
        await venue.set_price(price)

    # Assert: 5 x 10 + 5 x 20 = 150 less the fees on the notional (the entry's as taker,
    # the resting targets' as maker); each exit exactly 5: fees in USDT need no gross-up.
    done = await closed(client, trade.name, pb.CLOSE_REASON_TAKE_PROFIT)
    fees = venue.fees(Decimal(1000), sum((5 * Decimal(price) for price in targets), ZERO))
    assert Decimal(done.position.realized_pnl) == 150 - fees
    assert [leg.orders[0].amount for leg in done.legs if leg.id.startswith("tp")] == ["5", "5"]
    assert not done.HasField("futures")  # flat
    assert await venue.wallet() == START + 150 - fees


@SIDES
async def test_a_futures_trailing_stop_closes_at_a_loss(venue: Venue, side: int) -> None:
    # Arrange: a target at 120 (80), the stop 5 % away, trailing.
    client = venue.client
    target = pb.TakeProfitStep(price=mirrored(side, "120"), volume_percent="100")
    trade = await opened(
        client,
        futures(
            venue.account,
            side,
            take_profit=pb.TakeProfit(steps=[target]),
            stop_loss=pb.StopLoss(percent="5", trailing_percent="5"),
        ),
    )

    # Act: the best price 104 (96) moves the stop to 98.8 (100.8); the price comes to it.
    best, fired = ("104", "98.8") if side == pb.SIDE_BUY else ("96", "100.8")
    await venue.set_price(best)
    await eventually(client, trade.name, lambda t: t.stop_loss.trigger_price == fired)
    await venue.set_price(fired)

    # Assert: 10 x -1.2 (10 x -0.8) less the fees, both at market.
    done = await closed(client, trade.name, pb.CLOSE_REASON_STOP_LOSS)
    loss = Decimal(12 if side == pb.SIDE_BUY else 8)
    loss += venue.fees(Decimal(1000) + 10 * Decimal(fired))
    assert Decimal(done.position.realized_pnl) == -loss
    assert await venue.wallet() == START - loss


async def test_add_and_reduce_funds_on_a_short_move_its_margin(venue: Venue) -> None:
    # Arrange: a short of 10 with one target at 80.
    client = venue.client
    target = pb.TakeProfitStep(price="80", volume_percent="100")
    trade = await opened(
        client, futures(venue.account, pb.SIDE_SELL, take_profit=pb.TakeProfit(steps=[target]))
    )

    # Act: add 5 more at market; the short is 15, with 150 of margin.
    await client.trades.AddSmartTradeFunds(
        trades_pb.AddSmartTradeFundsRequest(name=trade.name, request_id=request_id(), units="5"),
        metadata=client.metadata,
    )
    grown = await eventually(client, trade.name, lambda t: t.position.units_held == "15")
    assert grown.futures.margin == "150"

    # Act: reduce by 8; 7 left, its target placed again for 7.
    await client.trades.ReduceSmartTradeFunds(
        trades_pb.ReduceSmartTradeFundsRequest(name=trade.name, request_id=request_id(), units="8"),
        metadata=client.metadata,
    )
    reduced = await eventually(
        client,
        trade.name,
        lambda t: (
            t.position.units_held == "7"
            and any(o.status == pb.ORDER_STATUS_OPEN and o.amount == "7" for o in t.legs[1].orders)
        ),
    )
    assert reduced.futures.margin == "70"

    # Act: close at market.
    await client.trades.CloseSmartTrade(
        trades_pb.CloseSmartTradeRequest(name=trade.name, request_id=request_id()),
        metadata=client.metadata,
    )

    # Assert: everything at 100: only the fees, at market on 1,500 in and 1,500 out.
    done = await closed(client, trade.name, pb.CLOSE_REASON_CLOSED_AT_MARKET)
    fees = venue.fees(Decimal(3000))
    assert Decimal(done.position.realized_pnl) == -fees
    assert await venue.wallet() == START - fees


@SIDES
async def test_a_paper_liquidation_ends_the_trade_liquidated_with_its_margin_lost(
    paper_venue: Venue, side: int
) -> None:
    # Arrange: a target resting at 110 (90).
    client = paper_venue.client
    target = pb.TakeProfitStep(price=mirrored(side, "110"), volume_percent="100")
    trade = await opened(
        client, futures(paper_venue.account, side, take_profit=pb.TakeProfit(steps=[target]))
    )

    # Act: past the liquidation price, 90.36 (109.56).
    await paper_venue.set_price(mirrored(side, "90"))

    # Assert: the venue closed it at its liquidation price and kept what was left of the
    # margin (the maintenance margin): the trade lost its margin (100) and the entry's fee
    # (1); its target, which the venue cancelled, was not placed again.
    done = await closed(client, trade.name, pb.CLOSE_REASON_LIQUIDATED)
    liquidation = next(leg for leg in done.legs if leg.id == "liquidation")
    assert liquidation.state == pb.LEG_STATE_FILLED
    (order,) = liquidation.orders
    expected = "90.36144578" if side == pb.SIDE_BUY else "109.56175299"
    assert Decimal(order.average_price).quantize(EIGHT_PLACES) == Decimal(expected)
    cents = Decimal("0.0001")
    assert Decimal(done.position.realized_pnl).quantize(cents) == -101
    target_leg = next(leg for leg in done.legs if leg.id == "tp1")
    assert len(target_leg.orders) == 1
    assert target_leg.state == pb.LEG_STATE_CANCELLED
    assert (await paper_venue.wallet()).quantize(cents) == START - 101


async def test_add_funds_beyond_the_margin_wallet_is_refused_by_the_venue_and_said(
    service: Service,
) -> None:
    # Arrange: a long on a wallet of 200 USDT: 99 is left free after the entry.
    client = service.a
    account = await client.paper_account(USDT="200")
    await client.set_price(PERP, "100")
    trade = await opened(client, futures(account, pb.SIDE_BUY))

    # Act: 20 more need 200 of margin.
    await client.trades.AddSmartTradeFunds(
        trades_pb.AddSmartTradeFundsRequest(name=trade.name, request_id=request_id(), units="20"),
        metadata=client.metadata,
    )

    # Assert: the leg failed with the venue's reason; the trade and its position go on.
    failed = await eventually(client, trade.name, lambda t: "insufficient" in t.last_error)
    assert failed.state == pb.SMART_TRADE_STATE_ACTIVE
    assert failed.position.units_held == "10"


async def invalid(client: Client, trade: pb.SmartTrade) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await client.create(trade)
    return raised.value


@pytest.mark.parametrize(
    ("symbol", "leverage", "field"),
    [
        ("BTC/USDT", "10", "smart_trade.symbol"),
        (PERP, "126", "smart_trade.leverage.value"),
        (PERP, "2.5", "smart_trade.leverage.value"),
    ],
    ids=["a spot market", "above the market's maximum", "not whole"],
)
async def test_a_futures_trade_the_market_cannot_run_is_invalid_argument_naming_the_field(
    paper_venue: Venue, symbol: str, leverage: str, field: str
) -> None:
    client = paper_venue.client
    await client.set_price("BTC/USDT", "100")
    trade = futures(paper_venue.account, pb.SIDE_SELL, leverage=leverage)
    trade.symbol = symbol
    before = await client.balances(paper_venue.account)

    error = rich_error(await invalid(client, trade))

    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.fields) == [field]
    assert await client.balances(paper_venue.account) == before


async def test_a_trade_of_the_other_side_on_a_live_futures_position_is_refused(
    paper_venue: Venue,
) -> None:
    # Arrange: a live long.
    client, account = paper_venue.client, paper_venue.account
    await opened(client, futures(account, pb.SIDE_BUY))

    # Act: a short on the same account and symbol would close it (one-way mode); another
    # leverage would change the long's. The same side at the same setting shares it.
    short = await invalid(client, futures(account, pb.SIDE_SELL))
    other_leverage = await invalid(client, futures(account, pb.SIDE_BUY, leverage="5"))
    more = await opened(client, futures(account, pb.SIDE_BUY))

    # Assert
    for refused in (short, other_leverage):
        assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert rich_error(refused).reason == "POSITION_SHARED"
    assert more.position.units_held == "10"


async def test_a_long_and_a_short_created_at_once_on_one_position_are_not_both_opened(
    paper_venue: Venue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange: each create's read of the live trades waits (up to 2 s) for the other's, so
    # that, unless the service serializes them, both read before either is written.
    client, account = paper_venue.client, paper_venue.account
    arrived = 0
    both = asyncio.Event()
    read_live_specs = TradeRepository.live_specs

    async def live_specs(
        self: TradeRepository, account_id: str, symbol: str
    ) -> list[tuple[str, TradeSpec]]:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(both.wait(), timeout=2)
        return await read_live_specs(self, account_id, symbol)

    monkeypatch.setattr(TradeRepository, "live_specs", live_specs)

    # Act
    answers = await asyncio.gather(
        client.create(futures(account, pb.SIDE_BUY)),
        client.create(futures(account, pb.SIDE_SELL)),
        return_exceptions=True,
    )

    # Assert: one opened, the other refused; the position is the one trade's.
    refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
    created = [a for a in answers if isinstance(a, pb.SmartTrade)]
    assert (len(refused), len(created)) == (1, 1), answers
    assert refused[0].code() == grpc.StatusCode.FAILED_PRECONDITION
    assert rich_error(refused[0]).reason == "POSITION_SHARED"
    trade = await eventually(
        client, created[0].name, lambda t: t.state == pb.SMART_TRADE_STATE_ACTIVE
    )
    assert trade.position.units_held == "10"
    assert trade.side == created[0].side


async def test_the_sandbox_prices_each_paper_perpetual_apart_from_its_spot_market(
    service: Service,
) -> None:
    client = service.a
    await client.set_price("BTC/USDT", "100000")

    await client.set_price(PERP, "100050.5")
    await client.set_price("ETH/USDT:USDT", "3500.25")

    paper = service.running.engines.venues.paper
    assert paper.last_price("tenant-a", "BTC/USDT") == Decimal(100000)
    assert paper.last_price("tenant-a", PERP) == Decimal("100050.5")
    assert paper.last_price("tenant-a", "ETH/USDT:USDT") == Decimal("3500.25")
    assert paper.last_price("tenant-b", PERP) is None


def venue_position(stub: BinanceStub) -> Decimal:
    """The account's BTCUSDT position at the venue, signed (negative: short)."""
    return Decimal(stub.futures.position_risk("BTCUSDT")["positionAmt"])


async def test_cancel_stops_managing_an_opened_futures_trade_and_leaves_its_position(
    usdm_venue: Venue,
) -> None:
    # Arrange: a short of 10 with a target resting at 80.
    client, stub = usdm_venue.client, usdm_venue.stub
    assert stub is not None
    target = pb.TakeProfitStep(price="80", volume_percent="100")
    trade = await opened(
        client,
        futures(usdm_venue.account, pb.SIDE_SELL, take_profit=pb.TakeProfit(steps=[target])),
    )

    # Act
    await client.trades.CancelSmartTrade(
        trades_pb.CancelSmartTradeRequest(name=trade.name, request_id=request_id()),
        metadata=client.metadata,
    )

    # Assert: its target cancelled at the venue, the short left there, as on spot.
    cancelled = await eventually(
        client,
        trade.name,
        lambda t: (
            t.state == pb.SMART_TRADE_STATE_CANCELLED
            and all(o.status == pb.ORDER_STATUS_CANCELLED for o in t.legs[1].orders)
        ),
    )
    assert cancelled.position.units_held == "10"
    assert venue_position(stub) == -10


async def test_refresh_finds_a_futures_position_closed_by_hand_and_ends_the_trade_externally(
    usdm_venue: Venue,
) -> None:
    # Arrange: a long of 10, refreshed while open: the venue's position (not the spot BTC
    # balance, which is 0) keeps it open, and gives it the venue's liquidation price.
    client, stub = usdm_venue.client, usdm_venue.stub
    assert stub is not None
    trade = await opened(client, futures(usdm_venue.account, pb.SIDE_BUY))
    await client.trades.RefreshSmartTrade(
        trades_pb.RefreshSmartTradeRequest(name=trade.name), metadata=client.metadata
    )
    refreshed = await client.get(trade.name)
    assert refreshed.state == pb.SMART_TRADE_STATE_ACTIVE
    reported = Decimal(stub.futures.position_risk("BTCUSDT")["liquidationPrice"])
    assert Decimal(refreshed.futures.liquidation_price) == reported
    # The trader closes it on the venue's own site.
    by_hand = CcxtExchange(
        "binanceusdm", API_KEY, SECRET, urls={"api": stub.futures_urls}, rate_limit_ms=1
    )
    try:
        await by_hand.create_order(
            OrderRequest("by-hand-1", PERP, Side.SELL, OrderType.MARKET, Decimal(10), None, True)
        )
    finally:
        await by_hand.close()
    assert venue_position(stub) == 0

    # Act
    await client.trades.RefreshSmartTrade(
        trades_pb.RefreshSmartTradeRequest(name=trade.name),
        metadata=client.metadata,
    )

    # Assert: read from the position, not a balance (a futures position is none).
    done = await closed(client, trade.name, pb.CLOSE_REASON_CLOSED_EXTERNALLY)
    assert done.position.units_held == "10"  # sold outside: not the trade's own exit
