"""What the store keeps of requests (issue 12 §7): no share token, request ids for a window
only, and edits merged by the trade's writer."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import asyncpg
from google.protobuf.field_mask_pb2 import FieldMask

from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Client, Service, request_id, running_service
from tests.support.store import pg_dump

BTC = "BTC/USDT"


def market_buy(account: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="1"),
        take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="150", volume_percent="100")]),
        stop_loss=pb.StopLoss(price="80"),
    )


async def share(client: Client, name: str, key: str) -> pb.SmartTradeShare:
    response = await client.trades.ShareSmartTrade(
        trades_pb.ShareSmartTradeRequest(name=name, request_id=key), metadata=client.metadata
    )
    return response.share


async def test_a_share_token_is_kept_nowhere_yet_a_retry_gets_it_back(
    service: Service, database_url: str
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    trade = await client.create(market_buy(account))
    key = request_id()

    first = await share(client, trade.name, key)
    again = await share(client, trade.name, key)
    dump = await pg_dump(database_url)

    assert first.token
    assert again == first
    assert first.token.encode() not in dump
    resolved = await client.trades.GetSmartTradeShare(
        trades_pb.GetSmartTradeShareRequest(token=again.token), metadata=client.metadata
    )
    assert resolved.share.settings.symbol == BTC


async def test_a_retry_of_a_share_issued_before_token_formats_gets_its_first_format_token_back(
    service: Service, database_url: str
) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    trade = await client.create(market_buy(account))
    key = request_id()
    current = await share(client, trade.name, key)
    assert current.token.startswith("st1_")
    old_token = current.token.removeprefix("st1_")
    # What the code before token formats stored: an answer with no format, the bare token's hash.
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "UPDATE idempotency_keys SET answer = answer - 'format' WHERE request_id = $1", key
        )
        await connection.execute(
            "UPDATE shares SET token_hash = $1 WHERE id = $2",
            hashlib.sha256(old_token.encode()).hexdigest(),
            current.name.rsplit("/", 1)[-1],
        )
    finally:
        await connection.close()

    again = await share(client, trade.name, key)

    assert again.token == old_token
    resolved = await client.trades.GetSmartTradeShare(
        trades_pb.GetSmartTradeShareRequest(token=again.token), metadata=client.metadata
    )
    assert resolved.share.settings.symbol == BTC


async def request_ids(database_url: str) -> set[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT request_id FROM idempotency_keys")
    finally:
        await connection.close()
    return {row["request_id"] for row in rows}


async def test_request_ids_past_their_retention_are_pruned_by_the_running_service(
    database_url: str, tmp_path: Path
) -> None:
    async with running_service(
        database_url, tmp_path, request_retention_hours=0.5 / 3600, prune_interval=0.1
    ) as service:
        client = service.a
        key = request_id()
        await client.paper.SetPaperPrice(
            paper_pb.SetPaperPriceRequest(symbol=BTC, price="100", request_id=key),
            metadata=client.metadata,
        )
        assert key in await request_ids(database_url)

        for _ in range(100):  # the pruning loop runs every 0.1 s: wait for it, with a limit
            if key not in await request_ids(database_url):
                break
            await asyncio.sleep(0.05)
        again = await client.paper.SetPaperPrice(  # a new request now: another price is fine
            paper_pb.SetPaperPriceRequest(symbol=BTC, price="101", request_id=key),
            metadata=client.metadata,
        )

    assert again.price == "101"


async def test_two_concurrent_edits_of_different_fields_both_hold(service: Service) -> None:
    client = service.a
    account = await client.paper_account(USDT="10000")
    await client.set_price(BTC, "100")
    trade = await client.create(market_buy(account))
    runner = await service.running.engine.live_runner(trade.name.split("/")[1])
    assert runner is not None

    def edit(changes: pb.SmartTrade, path: str) -> trades_pb.UpdateSmartTradeRequest:
        changes.name = trade.name
        return trades_pb.UpdateSmartTradeRequest(
            smart_trade=changes, update_mask=FieldMask(paths=[path]), request_id=request_id()
        )

    async with runner.lock:  # both edits arrive while the trade's writer is busy
        stop = asyncio.ensure_future(
            client.trades.UpdateSmartTrade(
                edit(pb.SmartTrade(stop_loss=pb.StopLoss(price="90")), "stop_loss"),
                metadata=client.metadata,
            )
        )
        note = asyncio.ensure_future(
            client.trades.UpdateSmartTrade(
                edit(pb.SmartTrade(note="breakout"), "note"), metadata=client.metadata
            )
        )
        for _ in range(200):
            if len(runner.lock._waiters or ()) == 2:
                break
            await asyncio.sleep(0.01)
    await asyncio.gather(stop, note)

    edited = await client.get(trade.name)
    assert (edited.stop_loss.price, edited.note) == ("90", "breakout")
