"""Exchange credentials stay secret: sealed at rest (AES-256-GCM, a data key per record wrapped
by a master key, bound to its account), never in a dump of the database, a log record, an RPC
response or an error message. Each test creates distinctive secrets and greps for them."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import os
import traceback
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from sqlalchemy import select, update

from smarttrade.api import render
from smarttrade.app import ccxt_venues
from smarttrade.config import Settings
from smarttrade.domain.account import Credentials, ExchangeAccount
from smarttrade.domain.errors import InvalidSpec
from smarttrade.engine.bus import EventBus
from smarttrade.engine.ownership import Engines
from smarttrade.engine.venues import Venues
from smarttrade.exchange.paper import PaperVenue
from smarttrade.exchange.paper_markets import DEFAULT_MARKETS
from smarttrade.exchange.paper_storage import PostgresPaperStorage
from smarttrade.store import tables
from smarttrade.store.credentials import (
    CredentialsError,
    MasterKeys,
    seal,
    unseal,
)
from smarttrade.store.database import Database, open_database
from smarttrade.store.unit_of_work import UnitOfWorkFactory
from smarttrade.usecases.accounts import Accounts, CreateAccount, NewAccount
from smarttrade.usecases.page_tokens import PageTokens
from smarttrade.usecases.requests import Requested
from smarttrade.v1 import exchange_account_service_pb2 as accounts_pb
from smarttrade.v1 import smart_trade_pb2 as pb
from tests.integration.test_ccxt_exchange import STUB_OPTIONS
from tests.support.binance_stub import BinanceStub
from tests.support.service import Client, request_id, running_service
from tests.support.store import pg_dump

TENANT = "tenant-a"
API_KEY = "ck-Zq7Kp2-distinctive-api-key-5150"
SECRET = "cs-Wv9Xr4-distinctive-api-secret-8086"
PASSWORD = "cp-Lm3Nb8-distinctive-passphrase-6502"
SECRETS = (API_KEY, SECRET, PASSWORD)
KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))


def leaked_in(text: str | bytes) -> list[str]:
    """The secrets found in `text`, as written or hex-encoded (a bytea column dumps as hex)."""
    data = text.encode() if isinstance(text, str) else text
    lowered = data.lower()
    return [
        secret
        for secret in SECRETS
        if secret.encode() in data or secret.encode().hex().encode() in lowered
    ]


def as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def error_texts(error: BaseException) -> Iterable[str]:
    """What an error can show: its message, repr and traceback, through its whole chain."""
    yield "".join(traceback.format_exception(error))
    seen: BaseException | None = error
    while seen is not None:
        yield str(seen)
        yield repr(seen)
        yield repr(seen.args)
        seen = seen.__cause__ or seen.__context__


def credentials() -> Credentials:
    return Credentials(API_KEY, SECRET, PASSWORD)


def key_id_of(sealed: bytes) -> str:
    """The master key id a record was sealed under (the envelope's header)."""
    return sealed[2 : 2 + sealed[1]].decode()


def requested(method: str = "CreateExchangeAccount") -> Requested:
    return Requested(TENANT, str(uuid.uuid4()), method, uuid.uuid4().hex)


def utc_now() -> datetime:
    return datetime.now(UTC)


async def account_service(database: Database, keys: MasterKeys) -> Accounts:
    """The account use cases wired as `app.start` wires them, accepting `binance`."""
    unit_of_work = UnitOfWorkFactory(database, EventBus())
    paper = PaperVenue(DEFAULT_MARKETS, PostgresPaperStorage(unit_of_work), clock=utc_now)
    await paper.start()
    build, _ = ccxt_venues(keys, {})
    return Accounts(
        Engines(Venues(paper, build), unit_of_work, sharded=False),
        unit_of_work,
        keys,
        PageTokens(os.urandom(32)),
        supported=lambda e: e == "binance",
        clock=utc_now,
    )


async def binance_account(service: Accounts, secrets: Credentials | None = None) -> ExchangeAccount:
    new = NewAccount("main", "binance", secrets or credentials(), None, {})
    return await service.create(CreateAccount(requested(), new))


async def stored(database: Database, account_id: str) -> ExchangeAccount:
    async with UnitOfWorkFactory(database, EventBus())() as uow:
        account = await uow.accounts.get(TENANT, account_id)
    assert account is not None
    return account


def logged_text(records: Iterable[logging.LogRecord]) -> str:
    """Every record in every form a handler could write it: message, arguments, exception."""
    formatter = logging.Formatter()
    parts = []
    for record in records:
        parts += [repr(record), record.getMessage(), repr(record.args), repr(record.__dict__)]
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
    return "\n".join(parts)


@pytest.fixture
async def database(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    opened = await open_database(database_url, tmp_path)
    yield opened
    await opened.close()


@pytest.fixture
def keys() -> MasterKeys:
    return MasterKeys({"A": KEY_A}, "A")


# ---- sealing ---------------------------------------------------------------------------------


async def test_an_account_is_stored_sealed_and_opens_only_with_its_own_id(
    database: Database, keys: MasterKeys
) -> None:
    service = await account_service(database, keys)

    account = await binance_account(service)

    row = await stored(database, account.id)
    assert row.sealed_credentials is not None
    assert leaked_in(row.sealed_credentials) == []
    opened = unseal(row.sealed_credentials, account.id, keys)
    assert (opened.api_key, opened.secret, opened.password) == SECRETS


async def test_a_dump_of_the_database_holds_no_plaintext_secret(
    database: Database, database_url: str, keys: MasterKeys
) -> None:
    service = await account_service(database, keys)
    account = await binance_account(service)
    await service.list(TENANT, 10, "")

    dump = await pg_dump(database_url)

    row = await stored(database, account.id)
    assert row.sealed_credentials is not None
    assert row.sealed_credentials.hex().encode() in dump  # the dump is of this database
    assert leaked_in(dump) == []


async def test_the_responses_describing_an_account_hold_no_secret(
    database: Database, keys: MasterKeys
) -> None:
    service = await account_service(database, keys)
    created = await binance_account(service)
    got = await service.get(TENANT, created.id)
    listed, _ = await service.list(TENANT, 10, "")

    messages = [render.exchange_account(account) for account in (created, got, *listed)]

    for message in messages:
        assert message.has_credentials
        assert leaked_in(message.SerializeToString()) == []
        assert leaked_in(str(message)) == []


async def test_the_values_that_carry_credentials_do_not_show_them(
    database: Database, keys: MasterKeys
) -> None:
    service = await account_service(database, keys)
    new = NewAccount("main", "binance", credentials(), None, {})
    account = await service.create(CreateAccount(requested(), new))

    assert leaked_in(repr(credentials()) + repr(new) + repr(account) + repr(keys)) == []
    assert KEY_A.hex() not in repr(keys)


async def test_refusing_an_account_never_repeats_its_credentials(
    database: Database, keys: MasterKeys
) -> None:
    service = await account_service(database, keys)
    refused = [
        NewAccount("x", "kraken", credentials(), None, {}),  # not a supported exchange
        NewAccount("x", "binance", Credentials(API_KEY, ""), None, {}),  # no secret
        NewAccount("x", "paper", credentials(), None, {}),  # paper takes none
    ]

    for new in refused:
        with pytest.raises(InvalidSpec) as invalid:
            await service.create(CreateAccount(requested(), new))
        texts = [*error_texts(invalid.value), *(repr(v) for v in invalid.value.violations)]
        assert leaked_in("\n".join(texts)) == []


# ---- a sealed record is bound to its account and its master key ------------------------------


async def test_a_ciphertext_copied_onto_another_accounts_row_does_not_decrypt(
    database: Database, keys: MasterKeys
) -> None:
    service = await account_service(database, keys)
    victim = await binance_account(service)
    thief = await binance_account(service, Credentials("thief-key", "thief-secret"))
    accounts = tables.exchange_accounts
    async with database.connections.begin() as connection:
        stolen = (
            await connection.execute(
                select(accounts.c.credentials).where(accounts.c.id == victim.id)
            )
        ).scalar_one()
        await connection.execute(
            update(accounts).where(accounts.c.id == thief.id).values(credentials=stolen)
        )

    row = await stored(database, thief.id)
    assert row.sealed_credentials is not None
    assert row.sealed_credentials == stolen
    with pytest.raises(CredentialsError) as refused:
        unseal(row.sealed_credentials, thief.id, keys)

    assert all(leaked_in(text) == [] for text in error_texts(refused.value))


async def test_a_record_does_not_open_with_a_wrong_master_key(keys: MasterKeys) -> None:
    sealed = seal(credentials(), "acct-1", keys)
    impostor = MasterKeys({"A": bytes(32)}, "A")  # the same id, another key

    with pytest.raises(CredentialsError) as refused:
        unseal(sealed, "acct-1", impostor)

    assert all(leaked_in(text) == [] for text in error_texts(refused.value))


def tampered(sealed: bytes) -> dict[str, bytes]:
    """The ways a stored record can be damaged, each named."""
    flip_last = sealed[:-1] + bytes([sealed[-1] ^ 1])
    id_length = sealed[1]
    wrapped_at = 2 + id_length + 12 + 2
    flip_wrapped = sealed[:wrapped_at] + bytes([sealed[wrapped_at] ^ 1]) + sealed[wrapped_at + 1 :]
    return {
        "body": flip_last,
        "wrapped key": flip_wrapped,
        "truncated": sealed[: len(sealed) // 2],
        "header only": sealed[:3],
        "empty": b"",
        "other format": bytes([9]) + sealed[1:],
        "unknown key id": bytes([sealed[0], 1]) + b"Z" + sealed[2 + id_length :],
        "key id not utf-8": bytes([sealed[0], 1]) + b"\xff" + sealed[2 + id_length :],
    }


@pytest.mark.parametrize(
    "damage",
    [
        "body",
        "wrapped key",
        "truncated",
        "header only",
        "empty",
        "other format",
        "unknown key id",
        "key id not utf-8",
    ],
)
def test_a_damaged_record_fails_with_a_credentials_error_that_shows_no_secret(
    keys: MasterKeys, damage: str
) -> None:
    sealed = seal(credentials(), "acct-1", keys)

    with pytest.raises(CredentialsError) as refused:
        unseal(tampered(sealed)[damage], "acct-1", keys)

    assert all(leaked_in(text) == [] for text in error_texts(refused.value))


def test_sealing_the_same_credentials_twice_gives_unrelated_ciphertexts(keys: MasterKeys) -> None:
    first, second = seal(credentials(), "acct-1", keys), seal(credentials(), "acct-1", keys)

    assert first != second
    assert leaked_in(first + second) == []


# ---- master key rotation ---------------------------------------------------------------------


async def test_after_rotation_old_records_still_open_and_new_ones_use_the_new_key(
    database: Database, keys: MasterKeys
) -> None:
    before = await binance_account(await account_service(database, keys))
    rotated = MasterKeys({"A": KEY_A, "B": KEY_B}, "B")
    service = await account_service(database, rotated)

    after = await binance_account(service)

    old_row, new_row = await stored(database, before.id), await stored(database, after.id)
    assert old_row.sealed_credentials is not None
    assert new_row.sealed_credentials is not None
    assert (key_id_of(old_row.sealed_credentials), key_id_of(new_row.sealed_credentials)) == (
        "A",
        "B",
    )
    for row in (old_row, new_row):
        assert row.sealed_credentials is not None
        assert unseal(row.sealed_credentials, row.id, rotated).secret == SECRET
    with pytest.raises(CredentialsError) as refused:
        unseal(new_row.sealed_credentials, new_row.id, keys)
    assert refused.value.detail == "unknown master key id 'B'"


async def test_a_venue_is_built_from_a_record_sealed_under_a_retired_current_key(
    database: Database, keys: MasterKeys
) -> None:
    before = await binance_account(await account_service(database, keys))
    build, _ = ccxt_venues(MasterKeys({"A": KEY_A, "B": KEY_B}, "B"), {})

    exchange = build(await stored(database, before.id))
    try:
        assert exchange.exchange_id == "binance"
    finally:
        await exchange.close()


async def test_an_adapter_built_with_credentials_since_rotated_elsewhere_is_built_again(
    database: Database, keys: MasterKeys
) -> None:
    # Arrange: this replica's adapter of the account, built with the first keys (as when it
    # last held the account's shard); another replica then rotated them, and the venue
    # accepts only the new ones.
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as stub:
        await stub.set_balance("USDT", Decimal(100))
        service = await account_service(database, keys)
        account = await binance_account(service)
        build, _ = ccxt_venues(keys, binance_overrides(stub)["exchange_overrides"])
        paper = PaperVenue(
            DEFAULT_MARKETS, PostgresPaperStorage(UnitOfWorkFactory(database, EventBus()))
        )
        venues = Venues(paper, build)
        exchange = venues.exchange(account)
        assert (await exchange.fetch_balances())["USDT"].total == 100
        stub.api_key, stub.secret = "rotated-key-77", "rotated-secret-77"
        sealed = seal(Credentials("rotated-key-77", "rotated-secret-77"), account.id, keys)
        rotated = dataclasses.replace(account, sealed_credentials=sealed)

        # Act: the shard back here, its account read from the store again. (An account
        # object from before is no reason to rebuild: only a shard's return is.)
        assert venues.exchange(account) is exchange
        venues.recheck_tenants(lambda tenant: tenant == account.tenant_id)
        again = venues.exchange(rotated)
        balances = await again.fetch_balances()
        await venues.close()  # this adapter, and the one it replaced

    # Assert: the same object for every holder, now signing with the new keys.
    assert again is exchange
    assert balances["USDT"].total == 100


# ---- end to end over gRPC --------------------------------------------------------------------


def binance_overrides(venue: BinanceStub) -> dict[str, Any]:
    """Settings that point the service's `binance` at the stub (and accept it, once the
    service lists the exchanges it accepts)."""
    overrides: dict[str, Any] = {
        "exchange_overrides": {
            "binance": {
                "urls": {"api": {"public": venue.url, "private": venue.url}},
                "options": STUB_OPTIONS,
                "poll_interval": 0.05,
                "rate_limit_ms": 1,
                "streaming": False,  # polled (test_binance_streams.py covers the streams)
            }
        },
        "order_poll_interval": 0.05,
        "master_keys": "A:" + base64.b64encode(KEY_A).decode(),
    }
    if "exchanges" in {f.name for f in dataclasses.fields(Settings)}:
        overrides["exchanges"] = ("binance",)
    return overrides


async def until_state(client: Client, name: str, state: int, responses: list[Message]) -> None:
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        trade = await client.get(name)
        responses.append(trade)
        if trade.state == state:
            return
        assert asyncio.get_running_loop().time() < deadline, f"still {trade.state}"
        await asyncio.sleep(0.05)


@dataclasses.dataclass
class Seen:
    """Everything a whole scenario left where someone could read it."""

    dump: bytes = b""
    responses: list[Message] = dataclasses.field(default_factory=list)
    refusals: list[grpc.aio.AioRpcError] = dataclasses.field(default_factory=list)
    orders_sent: int = 0


async def binance_scenario(database_url: str, tmp_path: Path) -> Seen:
    """Over gRPC: create a `binance` account with the secrets, be refused twice with them, read
    the account back, and run a trade on it (entry, take profit) against the Binance stub,
    which checks the API key and the signature made with the secret; then dump the database."""
    seen = Seen()
    async with BinanceStub(api_key=API_KEY, secret=SECRET) as venue:
        await venue.set_balance("USDT", Decimal(10000))
        await venue.set_price("BTC/USDT", Decimal(100))
        async with running_service(database_url, tmp_path, **binance_overrides(venue)) as service:
            client = service.a
            given = accounts_pb.ExchangeCredentials(
                api_key=API_KEY, secret=SECRET, password=PASSWORD
            )
            created = await client.accounts.CreateExchangeAccount(
                accounts_pb.CreateExchangeAccountRequest(
                    exchange_account=accounts_pb.ExchangeAccount(
                        display_name="main", exchange="binance", credentials=given
                    ),
                    request_id=request_id(),
                ),
                metadata=client.metadata,
            )
            seen.responses.append(created)
            name = created.exchange_account.name
            for bad in (
                accounts_pb.ExchangeAccount(exchange="kraken-pro-x", credentials=given),
                accounts_pb.ExchangeAccount(exchange="paper", credentials=given),
            ):
                try:
                    await client.accounts.CreateExchangeAccount(
                        accounts_pb.CreateExchangeAccountRequest(
                            exchange_account=bad, request_id=request_id()
                        ),
                        metadata=client.metadata,
                    )
                except grpc.aio.AioRpcError as error:
                    seen.refusals.append(error)
            seen.responses.append(
                await client.accounts.GetExchangeAccount(
                    accounts_pb.GetExchangeAccountRequest(name=name), metadata=client.metadata
                )
            )
            seen.responses.append(
                await client.accounts.ListExchangeAccounts(
                    accounts_pb.ListExchangeAccountsRequest(), metadata=client.metadata
                )
            )
            trade = await client.create(
                pb.SmartTrade(
                    account=name,
                    symbol="BTC/USDT",
                    side=pb.SIDE_BUY,
                    entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET, units="0.1"),
                    take_profit=pb.TakeProfit(
                        steps=[pb.TakeProfitStep(price="110", volume_percent="100")]
                    ),
                )
            )
            seen.responses.append(trade)
            await until_state(client, trade.name, pb.SMART_TRADE_STATE_ACTIVE, seen.responses)
            await venue.set_price("BTC/USDT", Decimal(111))
            await until_state(client, trade.name, pb.SMART_TRADE_STATE_CLOSED, seen.responses)
            seen.dump = await pg_dump(database_url)
        seen.orders_sent = len(venue.requests_to("POST", "order"))
    return seen


async def test_no_secret_reaches_a_dump_a_response_or_an_error_in_a_whole_binance_scenario(
    database_url: str, tmp_path: Path
) -> None:
    seen = await binance_scenario(database_url, tmp_path)

    assert seen.orders_sent == 2  # the credentials were unsealed and used: entry, take profit
    assert [error.code() for error in seen.refusals] == [grpc.StatusCode.INVALID_ARGUMENT] * 2
    assert leaked_in(seen.dump) == []
    for response in seen.responses:
        assert leaked_in(response.SerializeToString()) == []
    for error in seen.refusals:
        assert leaked_in(f"{error.details()} {error.debug_error_string()}") == []
        trailers = error.trailing_metadata() or ()
        assert leaked_in(b"".join(as_bytes(value) for _, value in trailers)) == []


async def test_the_secret_and_password_never_reach_the_logs_even_at_debug(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    await binance_scenario(database_url, tmp_path)

    assert caplog.records  # the scenario did log, at DEBUG
    found = leaked_in(caplog.text + logged_text(caplog.records))
    assert SECRET not in found
    assert PASSWORD not in found


async def test_the_api_key_never_reaches_the_logs_even_at_debug(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    await binance_scenario(database_url, tmp_path)

    assert API_KEY not in leaked_in(caplog.text + logged_text(caplog.records))
