"""Turns (usecases/requests.py): one holder at a time per key, handed on early on request."""

from __future__ import annotations

import asyncio

import pytest

from smarttrade.usecases.requests import Turns


async def test_a_second_holder_of_a_key_waits_until_the_first_hands_the_turn_on() -> None:
    turns = Turns()
    log: list[str] = []
    handed = asyncio.Event()
    finish = asyncio.Event()

    async def first() -> None:
        async with turns.turn("k") as hand_on:
            log.append("first in")
            await asyncio.sleep(0)
            hand_on()
            handed.set()
            await finish.wait()  # still working, the turn handed on
            log.append("first done")

    async def second() -> None:
        await asyncio.sleep(0)  # the first is in
        async with turns.turn("k"):
            log.append("second in")
        finish.set()

    await asyncio.gather(first(), second())

    assert log == ["first in", "second in", "first done"]
    assert len(turns) == 0  # nothing kept once nobody holds or waits


async def test_holders_of_different_keys_do_not_wait_for_each_other() -> None:
    turns = Turns()
    async with turns.turn("a"), turns.turn("b"):
        assert len(turns) == 2
    assert len(turns) == 0


async def test_a_holder_that_fails_gives_the_turn_up() -> None:
    turns = Turns()

    with pytest.raises(RuntimeError):
        async with turns.turn("k"):
            raise RuntimeError("boom")

    async with asyncio.timeout(1), turns.turn("k") as hand_on:
        hand_on()
        hand_on()  # handing on twice is once
    assert len(turns) == 0


async def test_a_waiter_cancelled_while_waiting_leaves_no_trace() -> None:
    turns = Turns()
    async with turns.turn("k"):
        waiting = asyncio.create_task(turns.turn("k").__aenter__())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert len(turns) == 1
    assert len(turns) == 0
