"""UpdateExchangeAccount over gRPC (issue 15): a display name changed, credentials rotated while
a trade runs on them (its next venue call uses the new ones: the venue, a Binance stub through
real ccxt, accepts only those from then on), and the etag that refuses a stale change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from tests.support.binance_service import API_KEY, SECRET, open_binance_account, stub_overrides
from tests.support.binance_stub import BinanceStub
from tests.support.service import (
    Client,
    Service,
    eventually,
    request_id,
    rich_error,
    running_service,
)

BTC = "BTC/USDT"
NEW_KEY = "rotated-key-5a6b7c"
NEW_SECRET = "rotated-secret-8d9e0f"


async def update(
    client: Client, account: accounts_pb.ExchangeAccount, *paths: str, key: str = ""
) -> accounts_pb.ExchangeAccount:
    response = await client.accounts.UpdateExchangeAccount(
        accounts_pb.UpdateExchangeAccountRequest(
            exchange_account=account,
            update_mask=FieldMask(paths=list(paths)),
            request_id=key or request_id(),
        ),
        metadata=client.metadata,
    )
    return response.exchange_account


async def get(client: Client, name: str) -> accounts_pb.ExchangeAccount:
    response = await client.accounts.GetExchangeAccount(
        accounts_pb.GetExchangeAccountRequest(name=name), metadata=client.metadata
    )
    return response.exchange_account


@pytest.fixture
async def binance(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[BinanceStub, Client]]:
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as stub:
        await stub.set_balance("USDT", Decimal(10000))
        await stub.set_price(BTC, Decimal(100))
        async with running_service(
            database_url,
            tmp_path,
            exchange_overrides=stub_overrides(stub),
            order_poll_interval=0.05,
        ) as service:
            yield stub, service.a


async def test_credentials_rotated_while_a_trade_runs_are_used_from_its_next_venue_call(
    binance: tuple[BinanceStub, Client],
) -> None:
    # Arrange: a limit entry resting at 95 on the old key.
    stub, client = binance
    name = await open_binance_account(client, request_id())
    trade = await client.create(
        pb.SmartTrade(
            account=name,
            symbol=BTC,
            side=pb.SIDE_BUY,
            entry=pb.Entry(type=pb.ENTRY_TYPE_LIMIT, units="1", limit_price="95"),
            take_profit=pb.TakeProfit(steps=[pb.TakeProfitStep(price="120", volume_percent="100")]),
        )
    )
    await eventually(client, trade.name, lambda t: t.legs[0].orders[0].exchange_order_id != "")
    before = await get(client, name)

    # Act: the venue accepts only the new key from now on, and the account is told it.
    stub.api_key, stub.secret = NEW_KEY, NEW_SECRET
    rotated = await update(
        client,
        accounts_pb.ExchangeAccount(
            name=name,
            etag=before.etag,
            credentials=accounts_pb.ExchangeCredentials(api_key=NEW_KEY, secret=NEW_SECRET),
        ),
        "credentials",
    )
    await stub.set_price(BTC, Decimal(95))

    # Assert: the entry's fill is seen and the target placed, signed with the new key (the
    # venue refuses anything else); the etag changed, the secret is never shown.
    opened = await eventually(
        client,
        trade.name,
        lambda t: (
            t.state == pb.SMART_TRADE_STATE_ACTIVE
            and any(o.status == pb.ORDER_STATUS_OPEN for o in t.legs[1].orders)
        ),
    )
    assert opened.legs[1].orders[0].exchange_order_id
    assert rotated.etag != before.etag
    assert rotated.has_credentials
    assert not rotated.HasField("credentials")


async def test_a_display_name_is_changed_and_a_stale_etag_is_aborted(service: Service) -> None:
    client = service.a
    name = await client.paper_account(USDT="100")
    first = await get(client, name)

    # Act
    renamed = await update(
        client,
        accounts_pb.ExchangeAccount(name=name, etag=first.etag, display_name="swing"),
        "display_name",
    )
    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await update(
            client,
            accounts_pb.ExchangeAccount(name=name, etag=first.etag, display_name="scalp"),
            "display_name",
        )

    # Assert
    assert (await get(client, name)).display_name == renamed.display_name == "swing"
    assert renamed.etag != first.etag
    assert stale.value.code() == grpc.StatusCode.ABORTED


async def test_a_retried_update_answers_as_the_first_and_changes_nothing_more(
    service: Service,
) -> None:
    client = service.a
    name = await client.paper_account(USDT="100")
    change = accounts_pb.ExchangeAccount(name=name, display_name="swing")

    first = await update(client, change, "display_name", key="update-once")
    again = await update(client, change, "display_name", key="update-once")

    assert again == first


@pytest.mark.parametrize(
    ("account", "paths", "field"),
    [
        (accounts_pb.ExchangeAccount(display_name="x"), ["exchange"], "update_mask"),
        (accounts_pb.ExchangeAccount(display_name="x"), [], "update_mask"),
        (accounts_pb.ExchangeAccount(etag="v1"), ["display_name"], "exchange_account.etag"),
        (
            accounts_pb.ExchangeAccount(
                credentials=accounts_pb.ExchangeCredentials(api_key="k", secret="s")
            ),
            ["credentials"],
            "exchange_account.credentials",
        ),
    ],
    ids=["an immutable field", "no field", "a foreign etag", "credentials on paper"],
)
async def test_an_update_the_account_cannot_take_is_invalid_argument_naming_the_field(
    service: Service, account: accounts_pb.ExchangeAccount, paths: list[str], field: str
) -> None:
    client = service.a
    account.name = await client.paper_account(USDT="100")

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await update(client, account, *paths)

    error = rich_error(refused.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert list(error.fields) == [field]
