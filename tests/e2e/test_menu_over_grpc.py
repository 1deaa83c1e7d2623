"""Every action of the trade-management menu in every state (DESIGN §2.7), over gRPC on the
paper venue: allowed ones take effect at the venue, refused ones are FAILED_PRECONDITION
naming the state and the action."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Client, Service, request_id, rich_error

BTC = "BTC/USDT"
STATES = ["PENDING", "ACTIVE", "CLOSING", "CLOSED", "CANCELLED", "FAILED"]
ACTIONS = [
    "REFRESH",
    "ADD_FUNDS",
    "REDUCE_FUNDS",
    "OPEN_NOW",
    "CLOSE_AT_MARKET",
    "EDIT",
    "SHARE",
    "CANCEL",
    "CLOSE_STEP",
]
ALLOWED = {
    "PENDING": {"REFRESH", "ADD_FUNDS", "OPEN_NOW", "EDIT", "SHARE", "CANCEL"},
    "ACTIVE": {
        "REFRESH",
        "ADD_FUNDS",
        "REDUCE_FUNDS",
        "CLOSE_AT_MARKET",
        "EDIT",
        "SHARE",
        "CANCEL",
        "CLOSE_STEP",
    },
    # A market close in flight: Cancel abandons it, a second close is refused (issue 15).
    "CLOSING": {"REFRESH", "SHARE", "CANCEL"},
    "CLOSED": {"REFRESH", "SHARE"},
    "CANCELLED": {"REFRESH", "SHARE"},
    "FAILED": {"REFRESH", "SHARE"},
}


class Venue:
    def __init__(self, client: Client, account: str) -> None:
        self.client, self.account = client, account

    async def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        response = await self.client.paper.GetPaperBalances(
            paper_pb.GetPaperBalancesRequest(account=self.account), metadata=self.client.metadata
        )
        return {b.currency: (Decimal(b.free), Decimal(b.locked)) for b in response.balances}


async def paper_account(client: Client, usdt: str, partial: bool = False) -> str:
    response = await client.accounts.CreateExchangeAccount(
        accounts_pb.CreateExchangeAccountRequest(
            exchange_account=accounts_pb.ExchangeAccount(
                exchange="paper",
                paper_settings=accounts_pb.PaperAccountSettings(
                    partial_fills=partial, initial_balances={"USDT": usdt}
                ),
            ),
            request_id=request_id(),
        ),
        metadata=client.metadata,
    )
    return response.exchange_account.name


def trade(account: str, entry: pb.Entry) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=entry,
        take_profit=pb.TakeProfit(
            steps=[
                pb.TakeProfitStep(price="120", volume_percent="50"),
                pb.TakeProfitStep(price="130", volume_percent="50"),
            ]
        ),
        stop_loss=pb.StopLoss(price="80"),
    )


async def in_state(client: Client, state: str) -> tuple[pb.SmartTrade, Venue]:
    """A trade in `state`, on its own paper account."""
    partial = state == "CLOSING"
    account = await paper_account(client, "50" if state == "FAILED" else "100000", partial)
    await client.set_price(BTC, "100")
    limit = pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="1", limit_price="95")
    market = pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="1")
    if state in ("PENDING", "CANCELLED", "FAILED"):
        created = await client.create(trade(account, limit))
    else:
        created = await client.create(trade(account, market))
        if partial:
            await client.set_price(BTC, "100")  # the entry's second half
    name = created.name
    if state == "CANCELLED":
        await client.trades.CancelSmartTrade(
            trades_pb.CancelSmartTradeRequest(name=name, request_id=request_id()),
            metadata=client.metadata,
        )
    elif state == "CLOSED":
        await client.set_price(BTC, "131")
    elif state == "CLOSING":
        await client.trades.CloseSmartTrade(
            trades_pb.CloseSmartTradeRequest(name=name, request_id=request_id()),
            metadata=client.metadata,
        )
    now = await client.get(name)
    assert pb.SmartTradeState.Name(now.state) == f"SMART_TRADE_STATE_{state}", now
    return now, Venue(client, account)


Call = Callable[[Client, pb.SmartTrade], Awaitable[Any]]


def action_call(action: str) -> Call:
    async def call(c: Client, t: pb.SmartTrade) -> Any:
        m, rid = c.metadata, request_id()
        s = c.trades
        if action == "REFRESH":
            return await s.RefreshSmartTrade(
                trades_pb.RefreshSmartTradeRequest(name=t.name), metadata=m
            )
        if action == "ADD_FUNDS":
            return await s.AddSmartTradeFunds(
                trades_pb.AddSmartTradeFundsRequest(name=t.name, units="0.5", request_id=rid),
                metadata=m,
            )
        if action == "REDUCE_FUNDS":
            return await s.ReduceSmartTradeFunds(
                trades_pb.ReduceSmartTradeFundsRequest(name=t.name, percent="40", request_id=rid),
                metadata=m,
            )
        if action == "OPEN_NOW":
            return await s.OpenSmartTrade(
                trades_pb.OpenSmartTradeRequest(name=t.name, request_id=rid), metadata=m
            )
        if action == "CLOSE_AT_MARKET":
            return await s.CloseSmartTrade(
                trades_pb.CloseSmartTradeRequest(name=t.name, request_id=rid), metadata=m
            )
        if action == "EDIT":
            edited = pb.SmartTrade(name=t.name)
            edited.stop_loss.CopyFrom(pb.StopLoss(price="85"))
            return await s.UpdateSmartTrade(
                trades_pb.UpdateSmartTradeRequest(
                    smart_trade=edited, update_mask=FieldMask(paths=["stop_loss"]), request_id=rid
                ),
                metadata=m,
            )
        if action == "SHARE":
            return await s.ShareSmartTrade(
                trades_pb.ShareSmartTradeRequest(name=t.name, request_id=rid), metadata=m
            )
        if action == "CLOSE_STEP":
            return await s.CloseSmartTradeStep(
                trades_pb.CloseSmartTradeStepRequest(name=t.name, step=1, request_id=rid),
                metadata=m,
            )
        assert action == "CANCEL"
        return await s.CancelSmartTrade(
            trades_pb.CancelSmartTradeRequest(name=t.name, request_id=rid), metadata=m
        )

    return call


async def check_effect(
    action: str,
    state: str,
    before: pb.SmartTrade,
    after: pb.SmartTrade,
    venue: Venue,
    response: Any,
    start: dict[str, tuple[Decimal, Decimal]],
) -> None:
    """What the action must have done, at the venue where it acts there."""
    end = await venue.balances()
    btc = sum(end.get("BTC", (Decimal(0), Decimal(0))))
    btc_before = sum(start.get("BTC", (Decimal(0), Decimal(0))))
    if action in ("REFRESH", "SHARE"):
        assert after.state == before.state
        assert end == start
        if action == "SHARE":
            assert response.share.token
    elif action == "ADD_FUNDS":
        add = next(leg for leg in after.legs if leg.kind == pb.LEG_KIND_ADD_FUNDS)
        assert add.orders[0].amount == "0.5"
        if state == "ACTIVE":
            assert btc == btc_before + Decimal("0.5") - Decimal("0.0005")  # filled, fee in BTC
        else:
            assert end["USDT"][1] > start["USDT"][1] or btc > btc_before
    elif action == "REDUCE_FUNDS":
        assert btc < btc_before
        assert Decimal(after.position.units_held) < Decimal(before.position.units_held)
    elif action == "OPEN_NOW":
        assert after.state == pb.SMART_TRADE_STATE_ACTIVE
        assert btc == Decimal("0.999")
        assert end["USDT"][1] == 0  # the limit order's lock is gone
    elif action == "CLOSE_AT_MARKET":
        assert after.state == pb.SMART_TRADE_STATE_CLOSED
        assert after.close_reason == pb.CLOSE_REASON_CLOSED_AT_MARKET
        assert btc < Decimal("0.00001")
    elif action == "EDIT":
        assert after.stop_loss.price == "85"
    elif action == "CLOSE_STEP":
        tp1 = next(leg for leg in after.legs if leg.id == "tp1")
        assert tp1.state == pb.LEG_STATE_FILLED
        assert tp1.orders[-1].type == pb.ORDER_TYPE_MARKET
        assert btc < btc_before
    elif action == "CANCEL":
        assert after.state == pb.SMART_TRADE_STATE_CANCELLED
        live = [o for leg in after.legs for o in leg.orders if o.status == pb.ORDER_STATUS_OPEN]
        assert live == []
        if state == "PENDING":
            assert end["USDT"] == (Decimal(100000), Decimal(0))  # nothing bought or sold
        else:
            assert btc == btc_before  # the coins stay on the exchange


@pytest.mark.parametrize(("state", "action"), [(s, a) for s in STATES for a in ACTIONS])
async def test_each_action_in_each_state_does_what_the_menu_says(
    service: Service, state: str, action: str
) -> None:
    client = service.a
    before, venue = await in_state(client, state)
    start = await venue.balances()
    call = action_call(action)

    if action in ALLOWED[state]:
        response = await call(client, before)
        after = await client.get(before.name)
        await check_effect(action, state, before, after, venue, response, start)
        return

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(client, before)
    error = rich_error(raised.value)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "ACTION_NOT_ALLOWED"
    assert error.metadata == {"state": state, "action": action}
    assert error.preconditions == [f"{action} in {state}"]
    assert await venue.balances() == start
    assert (await client.get(before.name)).state == before.state


async def test_an_active_trade_shows_how_much_reduce_funds_accepts_and_it_does(
    service: Service,
) -> None:
    # Arrange: an ACTIVE trade, and a PENDING one (Reduce Funds is not on its menu).
    client = service.a
    active, _ = await in_state(client, "ACTIVE")
    pending, _ = await in_state(client, "PENDING")
    reducible, held = Decimal(active.reducible_units), Decimal(active.position.units_held)
    assert Decimal(0) < reducible < held
    assert pending.reducible_units == ""

    async def reduce(units: Decimal) -> pb.SmartTrade:
        response = await client.trades.ReduceSmartTradeFunds(
            trades_pb.ReduceSmartTradeFundsRequest(
                name=active.name, units=str(units), request_id=request_id()
            ),
            metadata=client.metadata,
        )
        return response.smart_trade

    # Act and assert: all that is held is refused, naming the field; the reducible units are
    # accepted, and what is left is the market's minimum, which cannot be reduced further.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await reduce(held)
    error = rich_error(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.fields) == ["units"]
    await reduce(reducible)
    after = await client.get(active.name)
    assert Decimal(after.position.units_held) == held - reducible
    assert after.reducible_units == ""
