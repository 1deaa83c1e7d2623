"""The crash-point harness: a scenario played by `smarttrade serve` as a real process, once
uninterrupted and once killed at a named point, and what each run ends with.

A scenario is a list of steps: calls to the service (create a trade, a tick, an action) and
moves of a venue that outlives the service (the Binance stub). Each step's calls carry a
request id fixed by the scenario, so a call cut off by a crash is made again after the
restart with the same id, as the Python client retries; moves of the venue are made again
as they are (setting the same price twice is one move).

The interrupted run arms one failpoint (`SMARTTRADE_FAILPOINTS`, see
smarttrade/failpoints.py): when the process dies by it (SIGKILL, nobody else kills it), the
harness starts the service again on the same database and data directory, unarmed, makes the
cut-off step again and carries on with the rest of the path. Or, for a venue that changes
while the service is down, the harness kills the service itself before one step
(`KILLED_BEFORE`) and starts it after. After every step the harness waits until the trade
is settled (no order being placed or looked up, nothing in CLOSING), so both runs present
each step to the same trade at the same price.

`Outcome` is what the two runs are compared on: the trade's state, close reason and last
error, every leg's state, amount and filled amount, the orders that reached the venue and
their fills (multisets: an order confirmed missing is placed again under a new client order
id, so ids differ), the position, and the venue's balances.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import grpc

from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.binance_stub import BinanceStub
from tests.support.process import ServerProcess, serve_process
from tests.support.service import Client, pb_account

# An order left unsent by a crash is looked up, found missing after this grace, and placed
# again: half a second.
ENV = {
    "SMARTTRADE_TOKENS": "tenant-a:token-a",
    "SMARTTRADE_LOG_LEVEL": "WARNING",
    "SMARTTRADE_UNKNOWN_ORDER_GRACE": "0.5",
}
KILLED_BEFORE = "killed-before:"  # a point the harness makes: SIGKILL before the named step
SETTLE_SECONDS = 15.0
UNSETTLED_ORDERS = (pb.ORDER_STATUS_PENDING, pb.ORDER_STATUS_UNKNOWN)


class ServiceDied(Exception):
    """The service process ended while a step was waiting on it."""


@dataclass
class Run:
    """One run of a scenario: the running service, its client, the venue when it lives
    outside the service, and what the set-up steps made (`world`: account, trade)."""

    database_url: str
    data_dir: Path
    env: Mapping[str, str]
    venue: BinanceStub | None = None
    world: dict[str, str] = field(default_factory=dict)
    crashes: list[str] = field(default_factory=list)
    server: ServerProcess | None = None
    client: Client | None = None
    _stack: AsyncExitStack | None = None

    @property
    def service(self) -> Client:
        assert self.client is not None, "the service is not running"
        return self.client

    @property
    def trade(self) -> str:
        return self.world["trade"]

    async def start(self, failpoint: str = "") -> None:
        env = dict(self.env) | ({"SMARTTRADE_FAILPOINTS": failpoint} if failpoint else {})
        stack = AsyncExitStack()
        self.server = await stack.enter_async_context(
            serve_process(self.data_dir, database_url=self.database_url, env=env)
        )
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(self.server.address))
        self.client = Client(channel, "token-a")
        self._stack = stack

    async def stop(self) -> None:
        if self._stack is not None:
            stack, self._stack, self.client = self._stack, None, None
            await stack.aclose()

    async def kill(self) -> None:
        """SIGKILL, as a crash: the harness's own kill (the venue moves while it is down)."""
        assert self.server is not None
        self.server.kill()
        await self.server.process.wait()
        await self.stop()

    async def died_by_failpoint(self) -> bool:
        """Whether the process has ended, killed by its own failpoint (the only SIGKILL that
        the harness did not send). Any other exit fails the run, with its log."""
        assert self.server is not None
        process = self.server.process
        try:
            await asyncio.wait_for(process.wait(), timeout=5)
        except TimeoutError:
            return False
        self.server.killed = True
        if process.returncode != -signal.SIGKILL:
            assert process.stderr is not None
            log = (await process.stderr.read()).decode()[-3000:]
            raise AssertionError(f"the service exited with {process.returncode}:\n{log}")
        return True

    async def get(self) -> pb.SmartTrade:
        return await self.service.get(self.trade)

    async def until(self, check: Callable[[pb.SmartTrade], bool], what: str) -> pb.SmartTrade:
        """Poll the trade until `check` holds; ServiceDied when the process ends first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_SECONDS
        while True:
            assert self.server is not None
            if self.server.process.returncode is not None:
                raise ServiceDied
            trade = await self.get()
            if check(trade):
                return trade
            if loop.time() > deadline:
                raise AssertionError(f"not {what} within {SETTLE_SECONDS} s: {trade}")
            await asyncio.sleep(0.05)

    async def settled(self) -> pb.SmartTrade:
        return await self.until(settled, "settled")


def settled(trade: pb.SmartTrade) -> bool:
    """Nothing in flight: no order being placed or looked up, no market exit under way."""
    if trade.state == pb.SMART_TRADE_STATE_CLOSING:
        return False
    return all(o.status not in UNSETTLED_ORDERS for leg in trade.legs for o in leg.orders)


Act = Callable[[Run, str], Awaitable[None]]


@dataclass(frozen=True)
class Step:
    """One step of a path: `act(run, request_id)`, then (on a venue outside the service)
    wait until the trade shows `until`; then until it is settled."""

    name: str
    act: Act
    until: Callable[[pb.SmartTrade], bool] | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: Sequence[Step]
    venue: str = "paper"  # or "binance": the stub, outside the service

    def request_id(self, step: int) -> str:
        """The step's request id: the same in every run (a retry after a crash reuses it)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"crash-points/{self.name}/{step}"))


@dataclass(frozen=True)
class Outcome:
    state: str
    close_reason: str
    last_error: str
    legs: tuple[tuple[str, ...], ...]  # (id, kind, state, amount, filled)
    # The orders the venue got (those with the venue's id: an order confirmed missing never
    # reached it), and their fills: multisets, sorted.
    orders: tuple[tuple[str, ...], ...]  # (leg, side, type, price, amount, status)
    fills: tuple[tuple[str, ...], ...]  # (leg, side, price, amount, fee, fee currency)
    position: tuple[tuple[str, str], ...]
    balances: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Played:
    outcome: Outcome
    crashes: list[str]  # the points it was killed at
    reached: list[str]  # the failpoints it reached, in order, each once (when traced)


async def play(
    scenario: Scenario,
    database_url: str,
    data_dir: Path,
    *,
    point: str = "",
    env: Mapping[str, str] | None = None,
    venue: BinanceStub | None = None,
    trace: bool = False,
) -> Played:
    """Play the scenario, killed at `point` if given. `env`: settings for the service (the
    harness's own `ENV` wins); `trace`: learn which failpoints the run reaches."""
    settings = dict(env or {}) | ENV
    traced = data_dir.parent / f"{data_dir.name}.failpoints"
    if trace:
        settings["SMARTTRADE_FAILPOINTS_TRACE"] = str(traced)
    run = Run(database_url, data_dir, settings, venue)
    failpoint = "" if point.startswith(KILLED_BEFORE) else point
    await run.start(failpoint)
    try:
        for index, step in enumerate(scenario.steps):
            if point == f"{KILLED_BEFORE}{step.name}":
                await run.kill()
                run.crashes.append(point)
                await perform(run, step, scenario.request_id(index), down=True)
                continue
            await perform(run, step, scenario.request_id(index), point=failpoint)
        final = await run.settled()
        outcome = await outcome_of(run, final)
    finally:
        await run.stop()
    reached = list(dict.fromkeys(traced.read_text().split())) if trace else []
    return Played(outcome, run.crashes, reached)


async def perform(run: Run, step: Step, key: str, *, point: str = "", down: bool = False) -> None:
    """One step; when the service dies by its failpoint on the way, start it again and make
    the step again (the same request id). `down`: the service is not running; the step
    moves the venue, then the service starts."""
    if down:
        await step.act(run, key)
        await run.start()
    for _ in range(2):
        try:
            if not down:
                await step.act(run, key)
            if step.until is not None:
                await run.until(step.until, step.name)
            if "trade" in run.world:
                await run.settled()
            return
        except (grpc.aio.AioRpcError, ServiceDied):
            if not await run.died_by_failpoint():
                raise
        run.crashes.append(point)
        await run.stop()
        await run.start()
        down = False
    raise AssertionError(f"the service died twice in step {step.name}")


async def outcome_of(run: Run, trade: pb.SmartTrade) -> Outcome:
    states = pb.LegState.Name
    legs = tuple(
        (leg.id, pb.LegKind.Name(leg.kind), states(leg.state), leg.amount, leg.filled)
        for leg in trade.legs
    )
    orders = sorted(
        (
            leg.id,
            pb.Side.Name(order.side),
            pb.OrderType.Name(order.type),
            order.price,
            order.amount,
            pb.OrderStatus.Name(order.status),
        )
        for leg in trade.legs
        for order in leg.orders
        if order.exchange_order_id
    )
    fills = sorted(
        (leg.id, pb.Side.Name(order.side), f.price, f.amount, f.fee, f.fee_currency)
        for leg in trade.legs
        for order in leg.orders
        for f in order.fills
    )
    position = trade.position
    kept = [
        (name.name, str(getattr(position, name.name)))
        for name in position.DESCRIPTOR.fields
        if name.name not in ("fees", "unrealized_pnl")
    ]
    kept += [(f"fee {fee.currency}", fee.amount) for fee in position.fees]
    return Outcome(
        state=pb.SmartTradeState.Name(trade.state),
        close_reason=pb.CloseReason.Name(trade.close_reason),
        last_error=trade.last_error,
        legs=legs,
        orders=tuple(orders),
        fills=tuple(fills),
        position=tuple(kept),
        balances=tuple(sorted((await balances(run)).items())),
    )


async def balances(run: Run) -> dict[str, str]:
    if run.venue is not None:
        held = {}
        for asset in ("BTC", "USDT"):
            free, locked = run.venue.balance(asset)
            held[asset] = str(free + locked)
        return held
    response = await run.service.paper.GetPaperBalances(
        paper_pb.GetPaperBalancesRequest(account=run.world["account"]),
        metadata=run.service.metadata,
    )
    return {b.currency: b.total for b in response.balances}


# ---- steps ---------------------------------------------------------------------------------


def paper_account(**balances: str) -> Step:
    async def act(run: Run, key: str) -> None:
        response = await run.service.accounts.CreateExchangeAccount(
            accounts_pb.CreateExchangeAccountRequest(
                exchange_account=pb_account(balances), request_id=key
            ),
            metadata=run.service.metadata,
        )
        run.world["account"] = response.exchange_account.name

    return Step("paper account", act)


def tick(symbol: str, price: str) -> Step:
    """SetPaperPrice: returns once the venue and the trades reacted."""

    async def act(run: Run, key: str) -> None:
        await run.service.paper.SetPaperPrice(
            paper_pb.SetPaperPriceRequest(symbol=symbol, price=price, request_id=key),
            metadata=run.service.metadata,
        )

    return Step(f"tick {price}", act)


def venue_price(symbol: str, price: str, until: Callable[[pb.SmartTrade], bool]) -> Step:
    """The Binance stub's price moves (limits it crosses fill); the service sees it by
    polling, so the step waits until the trade shows `until`."""

    async def act(run: Run, key: str) -> None:
        assert run.venue is not None
        await run.venue.set_price(symbol, Decimal(price))

    return Step(f"venue price {price}", act, until)


def create(settings: Callable[[Run], pb.SmartTrade]) -> Step:
    async def act(run: Run, key: str) -> None:
        response = await run.service.trades.CreateSmartTrade(
            trades_pb.CreateSmartTradeRequest(smart_trade=settings(run), request_id=key),
            metadata=run.service.metadata,
        )
        run.world["trade"] = response.smart_trade.name

    return Step("create", act)


def add_funds(units: str) -> Step:
    async def act(run: Run, key: str) -> None:
        await run.service.trades.AddSmartTradeFunds(
            trades_pb.AddSmartTradeFundsRequest(name=run.trade, units=units, request_id=key),
            metadata=run.service.metadata,
        )

    return Step(f"add {units}", act)


def reduce_funds(percent: str) -> Step:
    async def act(run: Run, key: str) -> None:
        await run.service.trades.ReduceSmartTradeFunds(
            trades_pb.ReduceSmartTradeFundsRequest(name=run.trade, percent=percent, request_id=key),
            metadata=run.service.metadata,
        )

    return Step(f"reduce {percent} %", act)


def close_at_market() -> Step:
    async def act(run: Run, key: str) -> None:
        await run.service.trades.CloseSmartTrade(
            trades_pb.CloseSmartTradeRequest(name=run.trade, request_id=key),
            metadata=run.service.metadata,
        )

    return Step("close at market", act)
