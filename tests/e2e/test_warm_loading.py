"""Trades the price comes close to are loaded before it gets there.

After a restart every live trade is a small head, loaded from the store only when something
concerns it. A trade whose trigger the price approaches (within 1 %) is loaded in the
background, so the tick that crosses it goes straight to deciding and ordering; a trade far
from the price stays a head.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from smarttrade.v1 import smart_trade_pb2 as pb
from tests.e2e.test_walking_trade import market_buy
from tests.support.service import running_service


async def until(condition: object, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within the time allowed")


async def test_a_trade_is_loaded_once_the_price_comes_within_one_percent_of_its_stop(
    database_url: str, tmp_path: Path
) -> None:
    async with running_service(database_url, tmp_path) as service:
        account = await service.a.paper_account(USDT="100000")
        await service.a.set_price("BTC/USDT", "100")
        near = await service.a.create(market_buy(account, "1", take_profit="150", stop="95"))
        far = await service.a.create(market_buy(account, "1", take_profit="150", stop="80"))

    async with running_service(database_url, tmp_path) as service:  # a restart: heads only
        engine = service.running.engine
        near_id, far_id = near.name.split("/")[1], far.name.split("/")[1]
        assert engine.running(near_id) is None
        assert engine.running(far_id) is None

        await service.a.set_price("BTC/USDT", "96.5")  # 1.6 % above the near stop: not yet
        await asyncio.sleep(0.2)
        assert engine.running(near_id) is None

        await service.a.set_price("BTC/USDT", "95.8")  # within 1 % of it
        await until(lambda: engine.running(near_id) is not None)
        assert engine.running(far_id) is None
        loaded = engine.running(near_id)
        assert loaded is not None
        assert loaded.state.value == "ACTIVE"

        await service.a.set_price("BTC/USDT", "94.9")  # through the stop
        closed = await service.a.get(near.name)
        assert closed.state == pb.SMART_TRADE_STATE_CLOSED
        assert closed.close_reason == pb.CLOSE_REASON_STOP_LOSS
        assert engine.running(far_id) is None
