"""A futures trade survives `kill -9` (issue 14): the service runs as its own process and dies
with a position open at the venue. On paper futures it dies at a named point (the entry
decided and not sent, the entry filled and not recorded, the target sent); started again
on the same database, it recovers the trade without a second order, and the trade ends as
an uninterrupted run on the same price path ends. On Binance USDⓈ-M (the stub, which
outlives the service as a real venue does) it is killed with its target resting, the target
fills while it is dead, and the restarted service closes the trade there, sending nothing
more."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from decimal import Decimal
from pathlib import Path

import grpc
import pytest

from smarttrade.usecases.create import trade_id_for
from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.binance_service import (
    API_KEY,
    SECRET,
    open_usdm_account,
    stub_overrides,
    trading_on,
    usdm_overrides,
)
from tests.support.binance_stub import BinanceStub
from tests.support.service import Client, serving_process

PERP = "BTC/USDT:USDT"


def short(account: str) -> pb.SmartTrade:
    """A short of 10 at 5x isolated: a target at 90, the stop at 104, trailing 3 %."""
    return pb.SmartTrade(
        account=account,
        symbol=PERP,
        side=pb.SIDE_SELL,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="10"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="90", volume_percent="100")]),
        stop_loss=pb.StopLoss(price="104", trailing_percent="3"),
        leverage=pb.Leverage(
            market_type=pb.MARKET_TYPE_LINEAR, value="5", margin_mode=pb.MARGIN_MODE_ISOLATED
        ),
    )


async def tick(client: Client, price: str) -> None:
    await client.paper.SetPaperPrice(
        paper_pb.SetPaperPriceRequest(symbol=PERP, price=price, request_id=str(uuid.uuid4())),
        metadata=client.metadata,
    )


async def until(client: Client, name: str, state: int) -> pb.SmartTrade:
    for _ in range(300):
        trade = await client.get(name)
        if trade.state == state:
            return trade
        await asyncio.sleep(0.05)
    raise AssertionError(str(trade)[:3000])


async def create(client: Client, account: str, key: str) -> str:
    """Create the short under request id `key` (a retry of a create that died answers with
    the trade it made)."""
    response = await client.trades.CreateSmartTrade(
        trades_pb.CreateSmartTradeRequest(smart_trade=short(account), request_id=key),
        metadata=client.metadata,
    )
    return response.smart_trade.name


async def run_short(
    database_url: str, data_dir: Path, killed_at: str = ""
) -> tuple[pb.SmartTrade, str]:
    """The short through 100 (its entry), 97 (the stop trails to 97 x 1.03 = 99.91, 99.9 on
    the tick) and 99.9 (it fires); with `killed_at`, the service dies there, and the caller
    retries its create on the service started again."""
    key = str(uuid.uuid4())
    async with serving_process(database_url, data_dir, killed_at) as (server, client):
        account = await client.paper_account(USDT="10000")
        await tick(client, "100")
        if not killed_at:
            return await rest_of_path(client, await create(client, account, key), account)
        with contextlib.suppress(grpc.aio.AioRpcError):
            await create(client, account, key)
        await asyncio.wait_for(server.process.wait(), timeout=10)
        server.killed = True
    async with serving_process(database_url, data_dir) as (_, client):
        name = await create(client, account, key)
        assert name == f"smartTrades/{trade_id_for('tenant-a', key)}"
        return await rest_of_path(client, name, account)


async def rest_of_path(client: Client, name: str, account: str) -> tuple[pb.SmartTrade, str]:
    """The trade once closed, and the wallet's USDT then."""
    await until(client, name, pb.SMART_TRADE_STATE_ACTIVE)
    await tick(client, "97")
    for _ in range(200):
        if (await client.get(name)).stop_loss.trigger_price == "99.9":
            break
        await asyncio.sleep(0.05)
    await tick(client, "99.9")
    ended = await until(client, name, pb.SMART_TRADE_STATE_CLOSED)
    return ended, (await client.balances(account))["USDT"]


def fills(trade: pb.SmartTrade) -> list[tuple[str, str, str]]:
    """What reached the venue: each leg's fills (an order never sent is placed again under
    its next generation, which is the same order to the venue)."""
    return [
        (leg.id, fill.price, fill.amount)
        for leg in trade.legs
        for order in leg.orders
        for fill in order.fills
    ]


def venue_orders(trade: pb.SmartTrade) -> list[str]:
    return [leg.id for leg in trade.legs for order in leg.orders if order.exchange_order_id]


@pytest.mark.parametrize(
    "killed_at",
    ["order:entry-0:before-send", "order:entry-0:after-send", "order:tp1-0:after-send"],
    ids=["entry decided, not sent", "entry filled, not recorded", "position open, target sent"],
)
async def test_a_futures_short_killed_with_its_position_at_the_venue_ends_as_if_never_killed(
    database_url: str, reference_database_url: str, tmp_path: Path, killed_at: str
) -> None:
    uninterrupted, wallet_uninterrupted = await run_short(
        reference_database_url, tmp_path / "reference"
    )
    killed, wallet = await run_short(database_url, tmp_path / "killed", killed_at)

    # Assert: one entry, one target, one stop order at the venue, the same fills, PnL and
    # wallet: 0.1 x 10 - fees (1 + 0.999) = -0.999.
    assert killed.close_reason == uninterrupted.close_reason == pb.CLOSE_REASON_STOP_LOSS
    assert fills(killed) == fills(uninterrupted)
    assert venue_orders(killed) == venue_orders(uninterrupted) == ["entry", "tp1", "sl"]
    assert killed.position.realized_pnl == uninterrupted.position.realized_pnl == "-0.999"
    assert wallet == wallet_uninterrupted == "9999.001"


def usdm_settings(venue: BinanceStub) -> dict[str, str]:
    """The test settings of a service on the stub, with `binanceusdm` pointed at it too."""
    overrides = stub_overrides(venue, poll_interval=0.1, timeout=1.0)
    overrides |= usdm_overrides(venue, poll_interval=0.1, timeout=1.0, streaming=True)
    return {"SMARTTRADE_EXCHANGE_OVERRIDES": json.dumps(overrides)}


def long_with_target(account: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=PERP,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="10"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="110", volume_percent="100")]),
        stop_loss=pb.StopLoss(price="95"),
        leverage=pb.Leverage(market_type=pb.MARKET_TYPE_LINEAR, value="10"),
    )


def target_resting(trade: pb.SmartTrade) -> bool:
    target = next(leg for leg in trade.legs if leg.id == "tp1")
    return any(order.status == pb.ORDER_STATUS_OPEN for order in target.orders)


async def test_a_futures_long_killed_while_the_venue_fills_its_target_closes_there_once(
    database_url: str, tmp_path: Path
) -> None:
    # Arrange: Binance USDⓈ-M (the stub) outlives the service, as a real venue does.
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as venue:
        await venue.set_futures_balance(Decimal(10000))
        await venue.set_price(PERP, Decimal(100))
        settings = usdm_settings(venue)
        async with trading_on(venue, database_url, tmp_path, env=settings) as first:
            account = await open_usdm_account(first.client)
            trade = await first.create(long_with_target(account), str(uuid.uuid4()))
            await first.eventually(trade.name, target_resting)
            first.server.kill()  # SIGKILL, a position open and its target resting

        # Act: the target fills while nothing watches; the service starts again.
        await venue.set_price(PERP, Decimal(110))
        async with trading_on(venue, database_url, tmp_path, first.account, settings) as second:
            done = await second.eventually(
                trade.name, lambda t: t.state == pb.SMART_TRADE_STATE_CLOSED
            )

        # Assert: closed at its target; one entry and one target order ever sent; the
        # position flat and the wallet up 10 x 10 less fees (0.4 taker in, 0.22 maker out).
        assert done.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
        sent = [r.params["newClientOrderId"] for r in venue.requests_to("POST", "/fapi/v1/order")]
        assert [order.rsplit("-", 2)[1] for order in sent] == ["entry", "tp1"]
        assert Decimal(venue.futures.position_risk("BTCUSDT")["positionAmt"]) == 0
        assert venue.futures_wallet() == Decimal(10000) + 100 - Decimal("0.62")
