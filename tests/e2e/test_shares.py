"""Sharing a trade's settings by link, over gRPC."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Client, Service, request_id, rich_error

BTC = "BTC/USDT"


async def shared_trade(client: Client) -> tuple[pb.SmartTrade, pb.SmartTradeShare]:
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    trade = await client.create(
        pb.SmartTrade(
            account=account,
            symbol=BTC,
            side=pb.SIDE_BUY,
            note="my private note",
            entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="0.5", limit_price="95"),
            take_profit=pb.TakeProfit(
                steps=[
                    pb.TakeProfitStep(percent="5", volume_percent="50"),
                    pb.TakeProfitStep(percent="10", volume_percent="50", trailing_percent="1"),
                ]
            ),
            stop_loss=pb.StopLoss(percent="3", move_to_breakeven=True),
        )
    )
    share = await share_of(client, trade.name)
    return trade, share


async def share_of(client: Client, name: str, ttl: Duration | None = None) -> pb.SmartTradeShare:
    response = await client.trades.ShareSmartTrade(
        trades_pb.ShareSmartTradeRequest(name=name, request_id=request_id(), ttl=ttl),
        metadata=client.metadata,
    )
    return response.share


async def resolve(client: Client, token: str) -> pb.SmartTradeShare:
    response = await client.trades.GetSmartTradeShare(
        trades_pb.GetSmartTradeShareRequest(token=token), metadata=client.metadata
    )
    return response.share


async def test_another_tenant_resolves_a_share_to_the_settings_and_nothing_else(
    service: Service,
) -> None:
    trade, share = await shared_trade(service.a)

    seen = await resolve(service.b, share.token)

    assert seen.settings.symbol == BTC
    assert seen.settings.exchange == "paper"
    assert seen.settings.entry.limit_price == "95"
    assert seen.settings.entry.WhichOneof("size") is None
    assert [s.percent for s in seen.settings.take_profit.steps] == ["5", "10"]
    assert seen.settings.stop_loss.move_to_breakeven
    assert seen.name == ""
    assert seen.token == ""
    revealed = seen.SerializeToString()
    for private in (
        trade.account,
        trade.name,
        trade.name.split("/")[1],
        "my private note",
        "tenant-a",
        "0.5",
    ):
        assert private.encode() not in revealed


async def test_a_share_creates_a_trade_with_the_callers_own_account_and_size(
    service: Service,
) -> None:
    _, share = await shared_trade(service.a)
    account = await service.b.paper_account(USDT="5000")
    await service.b.set_price(BTC, "100")

    created = await service.b.trades.CreateSmartTrade(
        trades_pb.CreateSmartTradeRequest(
            smart_trade=pb.SmartTrade(account=account, entry=pb.Entry(units="0.2")),
            share_token=share.token,
            request_id=request_id(),
        ),
        metadata=service.b.metadata,
    )

    trade = created.smart_trade
    assert trade.account == account
    assert trade.entry.units == "0.2"
    assert trade.entry.limit_price == "95"
    assert trade.note == ""
    assert len(trade.take_profit.steps) == 2


async def test_a_create_from_a_share_may_set_only_account_and_size(service: Service) -> None:
    _, share = await shared_trade(service.a)
    account = await service.b.paper_account(USDT="5000")

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.b.trades.CreateSmartTrade(
            trades_pb.CreateSmartTradeRequest(
                smart_trade=pb.SmartTrade(
                    account=account,
                    symbol="ETH/USDT",
                    entry=pb.Entry(units="0.2", limit_price="1"),
                ),
                share_token=share.token,
                request_id=request_id(),
            ),
            metadata=service.b.metadata,
        )

    error = rich_error(raised.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {"smart_trade.symbol", "smart_trade.entry.limit_price"} <= set(error.fields)


async def test_tampered_revoked_and_expired_tokens_are_refused_alike(service: Service) -> None:
    trade, share = await shared_trade(service.a)
    revoked = await share_of(service.a, trade.name)
    await service.a.trades.DeleteSmartTradeShare(
        trades_pb.DeleteSmartTradeShareRequest(name=revoked.name, request_id=request_id()),
        metadata=service.a.metadata,
    )
    expiring = await share_of(service.a, trade.name, ttl=Duration(seconds=1))
    assert (await resolve(service.b, expiring.token)).settings.symbol == BTC
    await asyncio.sleep(1.1)  # this test is about time passing
    flipped = share.token[:-1] + ("A" if share.token[-1] != "A" else "B")

    answers = []
    for token in (flipped, revoked.token, expiring.token, "never-issued"):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await resolve(service.b, token)
        answers.append((raised.value.code(), raised.value.details()))

    assert len(set(answers)) == 1
    assert answers[0][0] == grpc.StatusCode.NOT_FOUND
    assert (await resolve(service.b, share.token)).settings.symbol == BTC


async def test_only_the_owner_can_revoke_a_share(service: Service) -> None:
    _, share = await shared_trade(service.a)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await service.b.trades.DeleteSmartTradeShare(
            trades_pb.DeleteSmartTradeShareRequest(name=share.name, request_id=request_id()),
            metadata=service.b.metadata,
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await resolve(service.b, share.token)).settings.symbol == BTC


async def list_shares(
    client: Client, parent: str, page_size: int = 0, page_token: str = ""
) -> trades_pb.ListSmartTradeSharesResponse:
    return await client.trades.ListSmartTradeShares(
        trades_pb.ListSmartTradeSharesRequest(
            parent=parent, page_size=page_size, page_token=page_token
        ),
        metadata=client.metadata,
    )


async def test_the_owner_lists_a_trades_shares_newest_first_without_tokens_or_revoked_ones(
    service: Service,
) -> None:
    # Arrange: three shares of one trade, the middle one revoked.
    client = service.a
    trade, first = await shared_trade(client)
    revoked = await share_of(client, trade.name)
    last = await share_of(client, trade.name)
    await client.trades.DeleteSmartTradeShare(
        trades_pb.DeleteSmartTradeShareRequest(name=revoked.name, request_id=request_id()),
        metadata=client.metadata,
    )

    # Act: one page of one, then the rest.
    page = await list_shares(client, trade.name, page_size=1)
    rest = await list_shares(client, trade.name, page_token=page.next_page_token)

    # Assert
    listed = [*page.shares, *rest.shares]
    assert [s.name for s in listed] == [last.name, first.name]
    assert all(s.token == "" for s in listed)
    assert listed[0].settings.entry.limit_price == "95"
    assert rest.next_page_token == ""


async def test_all_of_a_tenants_shares_are_listed_and_another_tenant_sees_none(
    service: Service,
) -> None:
    (one, one_share), (_, other_share) = [await shared_trade(service.a) for _ in range(2)]

    mine = await list_shares(service.a, "smartTrades/-")
    theirs = await list_shares(service.b, "smartTrades/-")
    of_one = await list_shares(service.a, one.name)

    assert [s.name for s in mine.shares] == [other_share.name, one_share.name]
    assert list(theirs.shares) == []
    assert [s.name for s in of_one.shares] == [one_share.name]


async def test_a_page_token_of_one_trades_shares_is_refused_for_another(service: Service) -> None:
    client = service.a
    one, _ = await shared_trade(client)
    await share_of(client, one.name)
    other, _ = await shared_trade(client)
    page = await list_shares(client, one.name, page_size=1)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await list_shares(client, other.name, page_token=page.next_page_token)

    error = rich_error(refused.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.fields) == ["page_token"]


async def test_the_owner_gets_a_share_by_its_name_and_nobody_else_does(service: Service) -> None:
    _, share = await shared_trade(service.a)

    got = await service.a.trades.GetSmartTradeShare(
        trades_pb.GetSmartTradeShareRequest(name=share.name), metadata=service.a.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as other_tenant:
        await service.b.trades.GetSmartTradeShare(
            trades_pb.GetSmartTradeShareRequest(name=share.name), metadata=service.b.metadata
        )
    with pytest.raises(grpc.aio.AioRpcError) as both:
        await service.a.trades.GetSmartTradeShare(
            trades_pb.GetSmartTradeShareRequest(name=share.name, token=share.token),
            metadata=service.a.metadata,
        )

    assert got.share.name == share.name
    assert got.share.token == ""
    assert got.share.settings == share.settings
    assert other_tenant.value.code() == grpc.StatusCode.NOT_FOUND
    assert rich_error(both.value).fields.keys() == {"name"}
