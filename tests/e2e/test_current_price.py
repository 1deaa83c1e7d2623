"""Over gRPC on the paper venue: a trade decides at the current price even when its resting
orders fill at ticks it was not shown before (issue 12, §4; DESIGN §2.3, §2.4). The engine
shows a trade only the ticks that leave its wake band, and the paper venue reports a fill
before the tick that made it."""

from __future__ import annotations

from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.service import Client, Service, request_id

BTC = "BTC/USDT"


async def paper_account(client: Client, maker: str, taker: str, **balances: str) -> str:
    response = await client.accounts.CreateExchangeAccount(
        accounts_pb.CreateExchangeAccountRequest(
            exchange_account=accounts_pb.ExchangeAccount(
                display_name="paper",
                exchange="paper",
                paper_settings=accounts_pb.PaperAccountSettings(
                    maker_fee_rate=maker, taker_fee_rate=taker, initial_balances=balances
                ),
            ),
            request_id=request_id(),
        ),
        metadata=client.metadata,
    )
    return response.exchange_account.name


async def test_a_trailing_stop_after_a_resting_sell_entry_trails_from_the_fill_on(
    service: Service,
) -> None:
    # Arrange: a SELL limit at 10,920 created at 10,918.90; the stop trails 0.26 %.
    client = service.a
    account = await client.paper_account(BTC="1", USDT="1000")
    await client.set_price(BTC, "10918.90")
    created = await client.create(
        pb.SmartTrade(
            account=account,
            symbol=BTC,
            side=pb.SIDE_SELL,
            entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="0.01", limit_price="10920"),
            stop_loss=pb.StopLoss(percent="1", trailing_percent="0.26"),
        )
    )

    # Act: 10,922.60 fills the entry; then 10,947.30.
    await client.set_price(BTC, "10922.60")
    await client.set_price(BTC, "10947.30")

    # Assert: trailing from 10,922.60, the stop is 10,951 (not 10,947.29), so it holds.
    trade = await client.get(created.name)
    assert trade.state == pb.SMART_TRADE_STATE_ACTIVE
    assert trade.stop_loss.trigger_price == "10951"
    await client.set_price(BTC, "10951")
    stopped = await client.get(created.name)
    assert stopped.close_reason == pb.CLOSE_REASON_STOP_LOSS


async def test_a_gap_that_leaves_only_dust_owed_closes_the_trade_as_take_profit(
    service: Service,
) -> None:
    # Arrange: 0.0999 BTC sold at 60,000 without a fee; the buy-back at 48,000 pays 0.1 %
    # in BTC, so 0.0000999 stays owed: tradable at 60,000, not at the price of the gap.
    client = service.a
    account = await paper_account(client, "0.001", "0", BTC="1", USDT="1000")
    await client.set_price(BTC, "60000")
    created = await client.create(
        pb.SmartTrade(
            account=account,
            symbol=BTC,
            side=pb.SIDE_SELL,
            entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.0999"),
            take_profit=pb.TakeProfit(
                steps=[pb.TakeProfitStep(price="48000", volume_percent="100")]
            ),
            stop_loss=pb.StopLoss(percent="10"),
        )
    )

    # Act: the price gaps to 47,000 and fills the target.
    await client.set_price(BTC, "47000")

    # Assert
    trade = await client.get(created.name)
    assert trade.position.units_held == "0.0000999"
    assert trade.state == pb.SMART_TRADE_STATE_CLOSED
    assert trade.close_reason == pb.CLOSE_REASON_TAKE_PROFIT
