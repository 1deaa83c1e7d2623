"""What a fuzzer that is not ours sent, over gRPC to the real service: out-of-range timestamps
and durations, other scripts' digits, megabyte values quoted back, undecodable bytes, a cursor
from the future. Each is a client error naming the field, never INTERNAL, UNKNOWN or a
silent stream."""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import grpc
import pytest
from google.protobuf.descriptor import Descriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from tests.support.service import Client, Service, rich_error

BTC = "BTC/USDT"
YEAR_10000 = 253_402_300_800
BEFORE_YEAR_1 = -62_135_596_801
BAD_TIMESTAMPS = [(0, -1), (0, 10**9), (YEAR_10000, 0), (BEFORE_YEAR_1, 0), (2**63 - 1, 0)]
BAD_DURATIONS = [(60, -1), (0, 10**9), (10**15, 0), (2**63 - 1, 0), (-(2**63), 0)]
CLIENT_ERRORS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.NOT_FOUND,
}
SERVICES = [
    trades_pb.DESCRIPTOR.services_by_name["SmartTradeService"],
    accounts_pb.DESCRIPTOR.services_by_name["ExchangeAccountService"],
    paper_pb.DESCRIPTOR.services_by_name["PaperMarketService"],
]


def request_id() -> str:
    return str(uuid.uuid4())


def limit_buy(account: str) -> pb.SmartTrade:
    return pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="0.1", limit_price="90"),
        stop_loss=pb.StopLoss(price="80", timeout=Duration(seconds=5)),
    )


async def call(client: Client, method: str, request: Message) -> grpc.aio.AioRpcError | None:
    """The call's error, or None when it answered OK (a stream: its first message)."""
    for stub in (client.trades, client.accounts, client.paper):
        if hasattr(stub, method):
            rpc = getattr(stub, method)
    try:
        if method == "WatchSmartTrades":
            stream = rpc(request, metadata=client.metadata, timeout=10)
            await stream.read()
            stream.cancel()
        else:
            await rpc(request, metadata=client.metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error
    return None


def time_fields(descriptor: Descriptor, prefix: str = "", depth: int = 0) -> Iterator[str]:
    """Paths to every Timestamp and Duration a request can carry (one element into lists)."""
    for field in descriptor.fields:
        kind = field.message_type
        if kind is None or kind.GetOptions().map_entry:
            continue
        path = f"{prefix}{field.name}"
        if kind.full_name in (Timestamp.DESCRIPTOR.full_name, Duration.DESCRIPTOR.full_name):
            yield path
        elif depth < 5:
            yield from time_fields(kind, f"{path}.", depth + 1)


def with_value(request: Message, path: str, seconds: int, nanos: int) -> Message:
    changed = copy.deepcopy(request)
    target: Any = changed
    *parents, leaf = path.split(".")
    for name in parents:
        field = target.DESCRIPTOR.fields_by_name[name]
        target = getattr(target, name)
        if field.is_repeated:
            target = target[0] if len(target) else target.add()
    getattr(target, leaf).seconds = seconds
    getattr(target, leaf).nanos = nanos
    return changed


async def valid_requests(client: Client) -> dict[str, Message]:
    """A request per RPC that the service would accept, to change one field of."""
    account = await client.paper_account(USDT="100000")
    await client.set_price(BTC, "100")
    trade = await client.create(limit_buy(account))
    return {
        "CreateSmartTrade": trades_pb.CreateSmartTradeRequest(
            smart_trade=limit_buy(account), request_id=request_id()
        ),
        "ListSmartTrades": trades_pb.ListSmartTradesRequest(),
        "UpdateSmartTrade": trades_pb.UpdateSmartTradeRequest(
            smart_trade=pb.SmartTrade(name=trade.name, stop_loss=limit_buy(account).stop_loss),
            update_mask=FieldMask(paths=["stop_loss"]),
            request_id=request_id(),
        ),
        "ShareSmartTrade": trades_pb.ShareSmartTradeRequest(
            name=trade.name, request_id=request_id(), ttl=Duration(seconds=60)
        ),
        "WatchSmartTrades": trades_pb.WatchSmartTradesRequest(
            name=trade.name, heartbeat_interval=Duration(seconds=5)
        ),
        "CreateExchangeAccount": accounts_pb.CreateExchangeAccountRequest(
            exchange_account=accounts_pb.ExchangeAccount(exchange="paper"),
            request_id=request_id(),
        ),
        "UpdateExchangeAccount": accounts_pb.UpdateExchangeAccountRequest(
            exchange_account=accounts_pb.ExchangeAccount(name=account, display_name="renamed"),
            update_mask=FieldMask(paths=["display_name"]),
            request_id=request_id(),
        ),
        "SimulateSmartTrade": trades_pb.SimulateSmartTradeRequest(
            smart_trade=limit_buy(account),
            candles=[
                trades_pb.Candle(
                    time=Timestamp(seconds=1_772_323_200),
                    open="100",
                    high="100",
                    low="100",
                    close="100",
                )
            ],
        ),
    }


async def test_no_timestamp_or_duration_in_any_request_gets_internal_or_unknown(
    service: Service,
) -> None:
    client = service.a
    valid = await valid_requests(client)
    tried = []
    for descriptor in SERVICES:
        for method in descriptor.methods:
            paths = list(time_fields(method.input_type))
            request = valid.get(method.name)
            assert request is not None or not paths, f"{method.name} needs a valid request"
            for path in paths:
                assert request is not None
                for seconds, nanos in BAD_TIMESTAMPS + BAD_DURATIONS:
                    error = await call(
                        client, method.name, with_value(request, path, seconds, nanos)
                    )
                    code = error.code() if error else grpc.StatusCode.OK
                    assert code in CLIENT_ERRORS, f"{method.name} {path}={seconds},{nanos}: {error}"
                tried.append(f"{method.name}.{path}")

    assert {
        "ListSmartTrades.create_time_start",
        "ListSmartTrades.create_time_end",
        "ShareSmartTrade.ttl",
        "WatchSmartTrades.heartbeat_interval",
        "CreateSmartTrade.smart_trade.stop_loss.timeout",
        "SimulateSmartTrade.candles.time",
        "SimulateSmartTrade.candle_source.start_time",
    } <= set(tried)


@pytest.mark.parametrize(
    ("method", "path", "values"),
    [
        ("ListSmartTrades", "create_time_start", BAD_TIMESTAMPS),
        ("ListSmartTrades", "create_time_end", BAD_TIMESTAMPS),
        ("ShareSmartTrade", "ttl", BAD_DURATIONS),
        ("WatchSmartTrades", "heartbeat_interval", BAD_DURATIONS),
        ("CreateSmartTrade", "smart_trade.stop_loss.timeout", BAD_DURATIONS),
        ("UpdateSmartTrade", "smart_trade.stop_loss.timeout", BAD_DURATIONS),
    ],
)
async def test_a_timestamp_or_duration_out_of_range_is_invalid_argument_naming_the_field(
    service: Service, method: str, path: str, values: list[tuple[int, int]]
) -> None:
    client = service.a
    valid = await valid_requests(client)

    errors = [
        await call(client, method, with_value(valid[method], path, seconds, nanos))
        for seconds, nanos in values
    ]

    for error in errors:
        assert error is not None
        refusal = rich_error(error)
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT
        assert list(refusal.fields) == [path]


NON_ASCII_DIGITS = ["１２３", "١٢٣", "𝟏𝟎𝟎"]


@pytest.mark.parametrize("digits", NON_ASCII_DIGITS)
async def test_decimals_in_other_scripts_digits_are_refused_on_every_path_and_place_no_order(
    service: Service, digits: str
) -> None:
    client = service.a
    account = await client.paper_account(USDT="100000")
    await client.set_price(BTC, "100")
    trade = await client.create(limit_buy(account))
    book = service.running.engine.venues.paper.book("tenant-a")
    orders_before = len(book.all_orders())
    market = pb.SmartTrade(
        account=account,
        symbol=BTC,
        side=pb.SIDE_BUY,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units=digits),
    )
    paper_account = accounts_pb.ExchangeAccount(
        exchange="paper",
        paper_settings=accounts_pb.PaperAccountSettings(maker_fee_rate=digits),
    )
    attempts: list[tuple[str, Message, str]] = [
        (
            "CreateSmartTrade",
            trades_pb.CreateSmartTradeRequest(smart_trade=market, request_id=request_id()),
            "smart_trade.entry.units",
        ),
        (
            "AddSmartTradeFunds",
            trades_pb.AddSmartTradeFundsRequest(
                name=trade.name, units=digits, request_id=request_id()
            ),
            "units",
        ),
        (
            "SetPaperPrice",
            paper_pb.SetPaperPriceRequest(symbol=BTC, price=digits, request_id=request_id()),
            "price",
        ),
        (
            "SetPaperBalances",
            paper_pb.SetPaperBalancesRequest(
                account=account,
                balances=[paper_pb.Balance(currency="USDT", total=digits)],
                request_id=request_id(),
            ),
            "balances[0].total",
        ),
        (
            "CreateExchangeAccount",
            accounts_pb.CreateExchangeAccountRequest(
                exchange_account=paper_account, request_id=request_id()
            ),
            "exchange_account.paper_settings.maker_fee_rate",
        ),
    ]

    for method, request, field in attempts:
        error = await call(client, method, request)
        assert error is not None, f"{method} accepted {digits!r}"
        refusal = rich_error(error)
        assert (refusal.code, list(refusal.fields)) == (grpc.StatusCode.INVALID_ARGUMENT, [field])

    assert len(book.all_orders()) == orders_before
    assert await client.balances(account) == {"USDT": "100000"}


def trailer_bytes(error: grpc.aio.AioRpcError) -> int:
    return sum(len(key) + len(value) for key, value in error.trailing_metadata() or ())


async def test_a_megabyte_value_is_invalid_argument_with_a_bounded_answer_wherever_it_is_quoted(
    service: Service,
) -> None:
    client = service.a
    huge, wide = "X" * 1_000_000, "𝟏" * 250_000
    attempts: list[tuple[str, Message, str]] = [
        (
            "SetPaperPrice",
            paper_pb.SetPaperPriceRequest(symbol=huge, price="1", request_id=request_id()),
            "symbol",
        ),
        (
            "CreateExchangeAccount",
            accounts_pb.CreateExchangeAccountRequest(
                exchange_account=accounts_pb.ExchangeAccount(exchange=wide),
                request_id=request_id(),
            ),
            "exchange",
        ),
        (
            "CreateExchangeAccount",
            accounts_pb.CreateExchangeAccountRequest(
                exchange_account=accounts_pb.ExchangeAccount(
                    exchange="paper",
                    paper_settings=accounts_pb.PaperAccountSettings(
                        initial_balances={huge: "1", wide: "2"}
                    ),
                ),
                request_id=request_id(),
            ),
            "exchange_account.paper_settings.initial_balances[",
        ),
    ]

    for method, request, field in attempts:
        error = await call(client, method, request)
        assert error is not None
        refusal = rich_error(error)
        assert refusal.code == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert any(name.startswith(field) for name in refusal.fields), refusal.fields
        assert len((error.details() or "").encode()) <= 400
        assert all(len(value) <= 200 for value in refusal.metadata.values())
        assert trailer_bytes(error) < 5000


async def undecodable_call(channel: grpc.aio.Channel, path: str, streams: tuple[bool, bool]) -> Any:
    """One call of `path` with a one-byte body that is no protobuf message (a cut varint)."""
    client_streams, server_streams = streams
    body, raw = b"\xff", cast(Any, channel)  # bytes as they are: no serializer
    if client_streams:
        return await raw.stream_stream(path)(iter([body])).read()
    if server_streams:
        return await raw.unary_stream(path)(body).read()
    return await raw.unary_unary(path)(body)


async def test_undecodable_bytes_are_invalid_argument_on_every_rpc_and_cost_no_log_per_call(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    every = [
        *SERVICES,
        health_pb2.DESCRIPTOR.services_by_name["Health"],
        reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
    ]
    methods = [
        (
            f"/{descriptor.full_name}/{method.name}",
            (method.client_streaming, method.server_streaming),
        )
        for descriptor in every
        for method in descriptor.methods
    ]
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="smarttrade")
    codes: dict[str, set[grpc.StatusCode]] = {}

    async with grpc.aio.insecure_channel(service.address) as channel:  # and no token
        for index in range(100):
            path, streams = methods[index % len(methods)]
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await undecodable_call(channel, path, streams)
            assert rich_error(refused.value).reason == "UNDECODABLE_REQUEST"
            codes.setdefault(path, set()).add(refused.value.code())

    assert len(codes) == len(methods) >= 25
    assert set().union(*codes.values()) == {grpc.StatusCode.INVALID_ARGUMENT}
    logged = [caplog.handler.format(record) for record in caplog.records]
    assert sum(len(line) for line in logged) < 300, logged[:1]


async def test_a_method_the_server_does_not_implement_is_unimplemented_without_a_log_per_call(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with grpc.aio.insecure_channel(service.address) as channel:
        health = channel.unary_unary(
            "/grpc.health.v1.Health/List",
            request_serializer=health_pb2.HealthListRequest.SerializeToString,
            response_deserializer=health_pb2.HealthListResponse.FromString,
        )
        for _ in range(20):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await health(health_pb2.HealthListRequest())
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED

    assert caplog.records == []


def resume(client: Client, after: int) -> Any:
    request = trades_pb.WatchSmartTradesRequest(after_sequence=after)
    return client.trades.WatchSmartTrades(request, metadata=client.metadata, timeout=10)


@pytest.mark.parametrize("beyond", [1, 1000, 2**62])
async def test_a_cursor_beyond_the_last_event_is_out_of_range_not_a_silent_stream(
    service: Service, beyond: int
) -> None:
    client = service.a
    account = await client.paper_account(USDT="100000")
    await client.set_price(BTC, "100")
    await client.create(limit_buy(account))
    head = service.running.bus.head("tenant-a")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await resume(client, head + beyond).read()

    refusal = rich_error(refused.value)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.OUT_OF_RANGE, "CURSOR_AHEAD")
    assert list(refusal.fields) == ["after_sequence"]
    assert refusal.metadata == {}  # the head is not told: it would tell of other tenants


async def test_resuming_at_the_last_event_follows_on_even_when_the_history_is_pruned(
    service: Service,
) -> None:
    client = service.a
    account = await client.paper_account(USDT="100000")
    await client.set_price(BTC, "100")
    trade = await client.create(limit_buy(account))
    head = service.running.bus.head("tenant-a")
    async with service.running.unit_of_work() as uow:
        await uow.events.prune(datetime.now(UTC) + timedelta(seconds=1))
        await uow.commit()
    stream = resume(client, head)
    # Nothing to catch up on: the stream says at once that it is live, at the cursor. Read
    # that first, so that the cancel's event below is surely sent live (calling Cancel
    # before would race the server's catch-up).
    live = await stream.read()

    await client.trades.CancelSmartTrade(
        trades_pb.CancelSmartTradeRequest(name=trade.name, request_id=request_id()),
        metadata=client.metadata,
    )
    first = await stream.read()
    stream.cancel()

    assert live.WhichOneof("payload") == "heartbeat"
    assert live.heartbeat.sequence == head
    assert first.WhichOneof("payload") == "event"
    assert first.event.sequence > head
