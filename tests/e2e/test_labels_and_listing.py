"""Labels, a caller's own trade id and ListSmartTrades' filter and order_by over gRPC, on
paper trades (issue 15)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Client, Service, request_id, rich_error

BTC = "BTC/USDT"


def market_buy(account: str, labels: dict[str, str] | None = None) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="150", volume_percent="100")]),
        labels=labels or {},
    )


async def create(
    client: Client, trade: pb.SmartTrade, chosen: str = "", request: str = ""
) -> pb.SmartTrade:
    response = await client.trades.CreateSmartTrade(
        trades_pb.CreateSmartTradeRequest(
            smart_trade=trade, request_id=request or request_id(), smart_trade_id=chosen
        ),
        metadata=client.metadata,
    )
    return response.smart_trade


async def listed(client: Client, **fields: object) -> trades_pb.ListSmartTradesResponse:
    return await client.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(**fields),  # type: ignore[arg-type]
        metadata=client.metadata,
    )


async def close(client: Client, name: str) -> None:
    await client.trades.CloseSmartTrade(
        trades_pb.CloseSmartTradeRequest(name=name, request_id=request_id()),
        metadata=client.metadata,
    )


@pytest.fixture
async def account(service: Service) -> str:
    account = await service.a.paper_account(USDT="100000")
    await service.a.set_price(BTC, "100")
    return account


async def test_a_trade_created_with_labels_and_its_own_id_answers_to_that_name(
    service: Service, account: str
) -> None:
    client = service.a

    created = await create(client, market_buy(account, {"bot": "grid"}), chosen="signal-42")
    got = await client.get("smartTrades/signal-42")

    assert created.name == "smartTrades/signal-42"
    assert dict(created.labels) == {"bot": "grid"}
    assert got.name == "smartTrades/signal-42"
    assert got.state == pb.SMART_TRADE_STATE_ACTIVE
    assert "labels" in got.editable_fields
    await close(client, "smartTrades/signal-42")  # actions take the chosen name too
    assert (await client.get("smartTrades/signal-42")).state == pb.SMART_TRADE_STATE_CLOSED


async def test_a_retry_with_the_request_id_returns_the_first_trade_and_a_reuse_is_refused(
    service: Service, account: str
) -> None:
    client = service.a
    first_request = request_id()

    first = await create(client, market_buy(account), "signal-7", first_request)
    retry = await create(client, market_buy(account), "signal-7", first_request)
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await create(client, market_buy(account), "signal-7")
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await create(client, market_buy(account), "signal-8", first_request)

    assert retry.name == first.name == "smartTrades/signal-7"
    assert retry.etag == first.etag
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert rich_error(taken.value).reason == "ALREADY_EXISTS"
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in rich_error(reused.value).fields
    assert len((await listed(client)).smart_trades) == 1


async def test_two_tenants_may_choose_the_same_id(service: Service, account: str) -> None:
    other = await service.b.paper_account(USDT="100000")
    await service.b.set_price(BTC, "100")

    mine = await create(service.a, market_buy(account), chosen="signal-1")
    theirs = await create(service.b, market_buy(other), chosen="signal-1")

    assert mine.name == theirs.name == "smartTrades/signal-1"
    assert (await service.a.get("smartTrades/signal-1")).account == account
    assert (await service.b.get("smartTrades/signal-1")).account == other


@pytest.mark.parametrize(
    ("chosen", "labels", "field"),
    [
        ("Signal", {}, "smart_trade_id"),
        ("abc", {}, "smart_trade_id"),
        ("abcdef0123456789", {}, "smart_trade_id"),
        ("", {"Bot": "x"}, "smart_trade.labels[Bot]"),
        ("", {"bot": "X Y"}, "smart_trade.labels[bot]"),
    ],
)
async def test_a_bad_id_or_label_is_refused_naming_the_field(
    service: Service, account: str, chosen: str, labels: dict[str, str], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await create(service.a, market_buy(account, labels), chosen=chosen)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in rich_error(refused.value).fields


async def test_an_edit_replaces_the_labels_while_active_and_is_refused_once_closed(
    service: Service, account: str
) -> None:
    client = service.a
    trade = await create(client, market_buy(account, {"bot": "grid", "old": "x"}))

    def edit(labels: dict[str, str]) -> trades_pb.UpdateSmartTradeRequest:
        return trades_pb.UpdateSmartTradeRequest(
            smart_trade=pb.SmartTrade(name=trade.name, labels=labels),
            update_mask=FieldMask(paths=["labels"]),
            request_id=request_id(),
        )

    edited = await client.trades.UpdateSmartTrade(edit({"bot": "dca"}), metadata=client.metadata)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await client.trades.UpdateSmartTrade(edit({"bot": "DCA"}), metadata=client.metadata)
    await close(client, trade.name)
    with pytest.raises(grpc.aio.AioRpcError) as closed:
        await client.trades.UpdateSmartTrade(edit({"bot": "late"}), metadata=client.metadata)

    assert dict(edited.smart_trade.labels) == {"bot": "dca"}
    assert edited.smart_trade.take_profit == trade.take_profit
    assert "smart_trade.labels[bot]" in rich_error(bad.value).fields
    assert closed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert dict((await client.get(trade.name)).labels) == {"bot": "dca"}


async def test_a_list_filters_by_labels_state_and_time_and_orders_by_realized_pnl(
    service: Service, account: str
) -> None:
    client = service.a
    loser = await create(client, market_buy(account, {"bot": "grid"}), chosen="loser")
    winner = await create(client, market_buy(account, {"bot": "grid"}), chosen="winner")
    await client.set_price(BTC, "90")
    await close(client, loser.name)
    await client.set_price(BTC, "120")
    await close(client, winner.name)
    open_one = await create(client, market_buy(account, {"bot": "dca"}), chosen="still-open")

    grid = await listed(client, filter='labels.bot = "grid"', order_by="realized_pnl desc")
    closed = await listed(client, filter="state = CLOSED AND close_reason = CLOSED_AT_MARKET")
    labelled = await listed(client, filter="labels.bot:*", order_by="create_time")
    since = await listed(client, filter=f'create_time > "{winner.create_time.ToJsonString()}"')
    old_fields = await listed(client, states=[pb.SMART_TRADE_STATE_ACTIVE], filter="labels:bot")

    assert [t.name for t in grid.smart_trades] == [winner.name, loser.name]
    assert {t.name for t in closed.smart_trades} == {winner.name, loser.name}
    assert [t.name for t in labelled.smart_trades] == [loser.name, winner.name, open_one.name]
    assert [t.name for t in since.smart_trades] == [open_one.name]
    assert [t.name for t in old_fields.smart_trades] == [open_one.name]


async def test_a_page_token_works_only_with_the_filter_and_order_it_was_made_with(
    service: Service, account: str
) -> None:
    client = service.a
    for n in range(3):
        await create(client, market_buy(account, {"bot": "grid"}), chosen=f"grid-{n}")

    first = await listed(client, filter="labels.bot = grid", order_by="create_time", page_size=2)
    second = await listed(
        client,
        filter="labels.bot = grid",
        order_by="create_time",
        page_size=2,
        page_token=first.next_page_token,
    )
    with pytest.raises(grpc.aio.AioRpcError) as other_filter:
        await listed(client, filter="labels.bot:*", page_token=first.next_page_token)
    with pytest.raises(grpc.aio.AioRpcError) as other_order:
        await listed(client, filter="labels.bot = grid", page_token=first.next_page_token)

    names = [t.name for t in [*first.smart_trades, *second.smart_trades]]
    assert names == ["smartTrades/grid-0", "smartTrades/grid-1", "smartTrades/grid-2"]
    assert second.next_page_token == ""
    for refused in (other_filter, other_order):
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in rich_error(refused.value).fields


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"filter": "colour = red"}, "filter"),
        ({"filter": "state = "}, "filter"),
        ({"order_by": "symbol"}, "order_by"),
    ],
)
async def test_a_bad_filter_or_order_is_refused_naming_it(
    service: Service, fields: dict[str, str], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await listed(service.a, **fields)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in rich_error(refused.value).fields
