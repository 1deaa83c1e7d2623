"""The Python client (`smarttrade_client`), async and sync, against the real service: trades
end to end, typed errors, safe retries, and a watch that survives the server ending it."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smarttrade_client import (
    AlreadyExists,
    AsyncSmartTradeClient,
    Candle,
    Entry,
    Event,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    RetryPolicy,
    Side,
    SmartTrade,
    SmartTradeClient,
    SnapshotEnd,
    StopLoss,
    TakeProfitStep,
    TradeSnapshot,
    TradeState,
    Unauthenticated,
    WatchItem,
)
from tests.support.service import Service, running_service

BTC = "BTC/USDT"
FAST_RETRY = RetryPolicy(attempts=6, initial_backoff=0.05, max_backoff=0.2)


def client_of(service: Service, **options: Any) -> AsyncSmartTradeClient:
    return AsyncSmartTradeClient(service.address, "token-a", retry=FAST_RETRY, **options)


async def market_buy(client: AsyncSmartTradeClient, account: str) -> SmartTrade:
    return await client.create_trade(
        account=account,
        symbol=BTC,
        side=Side.BUY,
        entry=Entry.market(units=Decimal(1)),
        take_profit=[TakeProfitStep(price=Decimal(110))],
        stop_loss=StopLoss(price=Decimal(90)),
    )


async def until_closed(items: Any, seen: list[WatchItem]) -> None:
    """Read the watch until an event says the trade is CLOSED."""
    async for item in items:
        seen.append(item)
        if isinstance(item, Event) and item.state is TradeState.CLOSED:
            return


def event_sequences(items: list[WatchItem]) -> list[int]:
    return [item.sequence for item in items if isinstance(item, Event)]


async def test_the_async_client_runs_a_paper_trade_and_watches_it_to_closed(
    service: Service,
) -> None:
    async with client_of(service) as client:
        account = await client.create_paper_account({"USDT": Decimal(10000)}, display_name="demo")
        await client.set_price(BTC, Decimal(100))
        created = await market_buy(client, account.name)
        seen: list[WatchItem] = []
        watching = asyncio.ensure_future(until_closed(client.watch(created.name), seen))

        read = await client.get_trade(created.name)
        await client.set_price(BTC, Decimal(111))
        await asyncio.wait_for(watching, timeout=10)

    assert read.state is TradeState.ACTIVE
    assert read.position.units_held == Decimal("0.999")
    assert read.leg("tp1").orders[0].price == Decimal(110)
    assert isinstance(seen[0], TradeSnapshot)
    assert isinstance(seen[1], SnapshotEnd)
    sequences = event_sequences(seen)
    assert sequences == sorted(set(sequences))
    closed = seen[-1]
    assert isinstance(closed, Event)
    assert closed.trade.position.realized_pnl == Decimal("9.78011")
    assert closed.trade.close_reason is not None
    assert closed.trade.close_reason.value == "TAKE_PROFIT"


async def test_the_sync_client_runs_a_paper_trade_and_watches_it_to_closed(
    service: Service,
) -> None:
    def trade_it() -> tuple[SmartTrade, list[WatchItem], dict[str, Decimal]]:
        with SmartTradeClient(service.address, "token-a", retry=FAST_RETRY) as client:
            account = client.create_paper_account({"USDT": Decimal(10000)})
            client.set_price(BTC, Decimal(100))
            created = client.create_trade(
                account=account.name,
                symbol=BTC,
                side=Side.BUY,
                entry=Entry.market(units=Decimal(1)),
                take_profit=[TakeProfitStep(price=Decimal(110))],
            )
            items = client.watch(created.name)
            seen = [next(items), next(items)]  # the snapshot and its end
            client.set_price(BTC, Decimal(111))
            for item in items:
                seen.append(item)
                if isinstance(item, Event) and item.state is TradeState.CLOSED:
                    break
            balances = client.get_balances(account.name)
            return client.get_trade(created.name), seen, {c: b.total for c, b in balances.items()}

    # The service runs on this event loop: the blocking client must wait elsewhere.
    trade, seen, balances = await asyncio.to_thread(trade_it)

    assert trade.state is TradeState.CLOSED
    assert isinstance(seen[0], TradeSnapshot)
    assert seen[0].trade.state is TradeState.ACTIVE
    assert event_sequences(seen) == sorted(set(event_sequences(seen)))
    assert balances == {"BTC": Decimal(0), "USDT": Decimal("10009.78011")}


async def test_list_trades_iterates_over_every_page(service: Service) -> None:
    async with client_of(service) as client:
        account = await client.create_paper_account()
        await client.set_price(BTC, Decimal(100))
        names = [
            (
                await client.create_trade(
                    account=account.name,
                    symbol=BTC,
                    side=Side.BUY,
                    entry=Entry.limit(Decimal(price), units=Decimal(1)),
                    take_profit=[TakeProfitStep(percent=Decimal(10))],
                )
            ).name
            for price in ("95", "96", "97")
        ]

        listed = [trade.name async for trade in client.list_trades(page_size=2)]
        pending = [trade.name async for trade in client.list_trades(states=[TradeState.PENDING])]

    assert listed == list(reversed(names))
    assert pending == listed


async def test_labels_an_own_id_and_a_filtered_ordered_list_through_the_client(
    service: Service,
) -> None:
    async with client_of(service) as client:
        account = await client.create_paper_account()
        await client.set_price(BTC, Decimal(100))

        async def buy(smart_trade_id: str, labels: dict[str, str]) -> SmartTrade:
            return await client.create_trade(
                account=account.name,
                symbol=BTC,
                side=Side.BUY,
                entry=Entry.market(units=Decimal("0.1")),
                take_profit=[TakeProfitStep(price=Decimal(150))],
                labels=labels,
                smart_trade_id=smart_trade_id,
            )

        first = await buy("sig-one", {"bot": "grid"})
        second = await buy("sig-two", {"bot": "dca"})
        with pytest.raises(AlreadyExists):
            await buy("sig-one", {})
        edited = await client.edit_trade(second.name, labels={"bot": "grid", "v": "2"})
        grid = [
            trade.name
            async for trade in client.list_trades(
                filter='labels.bot = "grid"', order_by="create_time desc", page_size=1
            )
        ]

    assert first.name == "smartTrades/sig-one"
    assert dict(first.labels) == {"bot": "grid"}
    assert dict(edited.labels) == {"bot": "grid", "v": "2"}
    assert grid == [second.name, first.name]


async def test_a_rich_error_is_raised_as_a_typed_exception_with_its_details(
    service: Service,
) -> None:
    async with client_of(service) as client:
        account = await client.create_paper_account()
        await client.set_price(BTC, Decimal(100))
        trade = await market_buy(client, account.name)

        with pytest.raises(InvalidArgument) as invalid:
            await client.create_trade(
                account=account.name,
                symbol="",
                side=Side.BUY,
                entry=Entry.market(units=Decimal(-1)),
            )
        with pytest.raises(FailedPrecondition) as refused:
            await client.open_now(trade.name)
        with pytest.raises(NotFound) as missing:
            await client.get_trade("smartTrades/00ff")

    assert invalid.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert invalid.value.reason == "INVALID_FIELD"
    assert invalid.value.domain == "smarttrade.v1"
    assert {"smart_trade.symbol", "smart_trade.entry.units"} <= set(invalid.value.field_violations)
    assert invalid.value.request_id is not None
    assert refused.value.reason == "ACTION_NOT_ALLOWED"
    assert refused.value.metadata == {"state": "ACTIVE", "action": "OPEN_NOW"}
    assert refused.value.preconditions[0].subject == "OPEN_NOW in ACTIVE"
    assert missing.value.reason == "NOT_FOUND"


async def test_a_call_without_a_valid_token_is_unauthenticated(service: Service) -> None:
    async with AsyncSmartTradeClient(service.address, "not-a-token") as client:
        with pytest.raises(Unauthenticated):
            await client.get_trade("smartTrades/00ff")


def self_signed_localhost(directory: Path) -> tuple[Path, Path, bytes]:
    """A certificate for `localhost` and its key (files), and the certificate in PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    cert, private = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(pem)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, private, pem


async def test_the_client_speaks_tls_to_a_service_with_a_certificate(
    database_url: str, tmp_path: Path
) -> None:
    cert, key, pem = self_signed_localhost(tmp_path)
    async with (
        running_service(
            database_url, tmp_path, tls_cert=cert, tls_key=key, insecure_client=False
        ) as service,
        AsyncSmartTradeClient(service.address, "token-a", root_certificates=pem) as client,
    ):
        accounts = [account async for account in client.list_accounts()]

    assert accounts == []


class LosesTheFirstAnswer(grpc.aio.UnaryUnaryClientInterceptor):
    """The first call of `method` reaches the service, which carries it out, but its answer
    is lost on the way back: the client sees UNAVAILABLE, as after a dropped connection."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.request_ids: list[str] = []

    async def intercept_unary_unary(
        self, continuation: Callable[..., Awaitable[Any]], details: Any, request: Any
    ) -> Any:
        call = await continuation(details, request)
        method = details.method.decode() if isinstance(details.method, bytes) else details.method
        if method.endswith(f"/{self.method}"):
            self.request_ids.append(request.request_id)
            if len(self.request_ids) == 1:
                await call
                raise grpc.aio.AioRpcError(
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.aio.Metadata(),
                    grpc.aio.Metadata(),
                    details="the connection dropped before the answer arrived",
                )
        return call


async def test_a_mutation_retried_after_a_lost_answer_reuses_its_request_id_for_one_effect(
    service: Service,
) -> None:
    losing = LosesTheFirstAnswer("CreateSmartTrade")
    async with client_of(service, interceptors=[losing]) as client:
        account = await client.create_paper_account()
        await client.set_price(BTC, Decimal(100))

        created = await market_buy(client, account.name)

        trades = [trade async for trade in client.list_trades()]
        balances = await client.get_balances(account.name)

    assert len(losing.request_ids) == 2
    assert losing.request_ids[0] == losing.request_ids[1]
    assert [trade.name for trade in trades] == [created.name]
    assert len(created.leg("entry").orders) == 1
    assert balances["BTC"].total == Decimal("0.999")  # bought once


class CountsWatches(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self) -> None:
        self.after_sequences: list[int] = []

    async def intercept_unary_stream(
        self, continuation: Callable[..., Awaitable[Any]], details: Any, request: Any
    ) -> Any:
        self.after_sequences.append(request.after_sequence)
        return await continuation(details, request)


async def test_the_watch_resumes_after_the_server_ends_the_stream_and_repeats_nothing(
    service: Service,
) -> None:
    watches = CountsWatches()
    async with client_of(service, interceptors=[watches]) as client:
        account = await client.create_paper_account()
        await client.set_price(BTC, Decimal(100))
        # A trade resting far below the market: the history starts after its events, which a
        # watcher can resume from (after_sequence 0 would mean "send a snapshot").
        await client.create_trade(
            account=account.name,
            symbol=BTC,
            side=Side.BUY,
            entry=Entry.limit(Decimal(50), units=Decimal(1)),
        )
        items = client.watch()
        assert isinstance(await anext(items), TradeSnapshot)
        start = await anext(items)
        assert isinstance(start, SnapshotEnd)
        await market_buy(client, account.name)
        seen: list[WatchItem] = [await anext(items) for _ in range(3)]

        service.running.bus.close_all()  # what a shutdown does: every stream ends, resumable
        await client.set_price(BTC, Decimal(111))
        await asyncio.wait_for(until_closed(items, seen), timeout=10)
        await items.aclose()

        reference: list[WatchItem] = []
        await asyncio.wait_for(
            until_closed(client.watch(after_sequence=start.sequence), reference), timeout=10
        )

    assert len(watches.after_sequences) == 3  # the first, the resumed one, the reference
    resumed_after = watches.after_sequences[1]  # the last event received before the end
    assert resumed_after in event_sequences(seen)
    assert resumed_after < event_sequences(seen)[-1]
    assert event_sequences(seen) == event_sequences(reference)
    assert len(set(event_sequences(seen))) == len(event_sequences(seen))


def minute_candles(*rows: tuple[str, str, str, str]) -> list[Candle]:
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    return [
        Candle(start + dt.timedelta(minutes=m), *(Decimal(price) for price in row))
        for m, row in enumerate(rows)
    ]


async def test_the_client_simulates_a_trade_over_candles_and_names_a_bad_one(
    service: Service,
) -> None:
    # Arrange: bought at 100, the target at 110 reached in the second minute.
    up = minute_candles(("100", "101", "99", "100"), ("100", "111", "99.5", "110"))
    bad = minute_candles(("100", "101", "99", "100"), ("100", "99", "101", "100"))

    async with client_of(service) as client:
        # Act
        simulation = await client.simulate(
            symbol=BTC,
            side=Side.BUY,
            entry=Entry.market(units=Decimal(1)),
            take_profit=[TakeProfitStep(price=Decimal(110))],
            stop_loss=StopLoss(price=Decimal(90)),
            candles=up,
        )
        with pytest.raises(InvalidArgument) as refused:
            await client.simulate(
                symbol=BTC, side=Side.BUY, entry=Entry.market(units=Decimal(1)), candles=bad
            )

    # Assert
    assert simulation.trade.state is TradeState.CLOSED
    assert simulation.trade.position.realized_pnl == Decimal("9.78011")
    assert (simulation.candle_count, simulation.tick_count) == (2, 8)
    assert simulation.events[0].sequence == 1
    assert list(refused.value.field_violations) == ["candles[1].high"]
