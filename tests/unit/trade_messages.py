"""SmartTrade messages as the service answers them, built by hand for the client's and the
CLI's tests (no server).

The futures trade: 10 BTC long on BTC/USDT:USDT at 100, 10x isolated, last price 104,
maintenance margin 0.4 %: margin 1,000 / 10 = 100, PnL 40 (ROE 40 %), liquidation
100 x 0.9 / 0.996 = 90.361445783133 (the service's 12 places).
"""

from __future__ import annotations

from smarttrade_client.v1 import smart_trade_pb2 as pb

LIQUIDATION = "90.361445783133"


def futures_trade() -> pb.SmartTrade:
    return pb.SmartTrade(
        name="smartTrades/0123456789abcdef",
        account="exchangeAccounts/fedcba9876543210",
        symbol="BTC/USDT:USDT",
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="10"),
        take_profit=pb.TakeProfit(
            steps=[pb.TakeProfitStep(price="110", volume_percent="100", target_price="110")]
        ),
        stop_loss=pb.StopLoss(price="95", trigger_price="95"),
        leverage=pb.Leverage(
            market_type=pb.MARKET_TYPE_LINEAR, value="10", margin_mode=pb.MARGIN_MODE_ISOLATED
        ),
        state=pb.SMART_TRADE_STATE_ACTIVE,
        legs=[
            pb.Leg(
                id="entry",
                kind=pb.LEG_KIND_ENTRY,
                state=pb.LEG_STATE_FILLED,
                amount="10",
                filled="10",
                price="100",
            )
        ],
        position=pb.Position(
            units_bought="10",
            cost="1000",
            average_entry_price="100",
            units_held="10",
            realized_pnl="0",
            unrealized_pnl="40",
            last_price="104",
            fees=[pb.FeeTotal(currency="USDT", amount="0.4")],
        ),
        futures=pb.FuturesPosition(
            margin="100", unrealized_pnl="40", roe_percent="40", liquidation_price=LIQUIDATION
        ),
        available_actions=[pb.SMART_TRADE_ACTION_REFRESH, pb.SMART_TRADE_ACTION_CLOSE_AT_MARKET],
        etag="v2",
    )


def liquidated(message: pb.SmartTrade) -> pb.SmartTrade:
    """The trade after the exchange liquidated it at 90.4: flat, so no futures figures."""
    message.state = pb.SMART_TRADE_STATE_CLOSED
    message.close_reason = pb.CLOSE_REASON_LIQUIDATED
    message.position.units_sold = "10"
    message.position.proceeds = "904"
    message.position.units_held = "0"
    message.position.realized_pnl = "-96"
    message.position.ClearField("unrealized_pnl")
    message.ClearField("futures")
    message.ClearField("available_actions")
    return message


def spot_trade() -> pb.SmartTrade:
    """The same trade on the spot market, as the service echoes it: `leverage` SPOT."""
    message = futures_trade()
    message.symbol = "BTC/USDT"
    message.leverage.CopyFrom(pb.Leverage(market_type=pb.MARKET_TYPE_SPOT))
    message.ClearField("futures")
    return message
