"""Authentication, scopes and TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smarttrade.config import ConfigError, Settings, token_entries
from smarttrade.v1 import paper_market_service_pb2 as paper_pb
from smarttrade.v1 import smart_trade_service_pb2 as trades_pb
from smarttrade.v1 import smart_trade_service_pb2_grpc as trades_grpc
from tests.support.service import Client, Service, request_id, running_service


async def test_a_call_without_or_with_a_wrong_token_is_unauthenticated(service: Service) -> None:
    stub = service.a.trades
    for metadata in ((), (("authorization", "Bearer nope"),), (("authorization", "token-a"),)):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ListSmartTrades(trades_pb.ListSmartTradesRequest(), metadata=metadata)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_token_without_the_sandbox_scope_cannot_move_paper_prices(
    service: Service,
) -> None:
    trading = Client(service.a.channel, "token-a-trading-only")

    await trading.trades.ListSmartTrades(
        trades_pb.ListSmartTradesRequest(), metadata=trading.metadata
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await trading.paper.SetPaperPrice(
            paper_pb.SetPaperPriceRequest(symbol="BTC/USDT", price="1", request_id=request_id()),
            metadata=trading.metadata,
        )

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_serving_a_public_address_without_configured_tokens_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="without SMARTTRADE_TOKENS"):
        token_entries(Settings(listen="0.0.0.0:50051", data_dir=tmp_path))


def test_on_loopback_a_local_token_is_created_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(listen="127.0.0.1:50051", data_dir=tmp_path)
    _, first = token_entries(settings)
    _, again = token_entries(settings)

    assert first
    assert first == again
    assert (tmp_path / "local-token").stat().st_mode & 0o777 == 0o600


def self_signed(directory: Path) -> tuple[Path, Path, bytes]:
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
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, pem


async def test_with_a_certificate_configured_the_service_speaks_tls_only(
    database_url: str, tmp_path: Path
) -> None:
    cert, key, pem = self_signed(tmp_path)
    async with running_service(
        database_url, tmp_path, tls_cert=cert, tls_key=key, insecure_client=False
    ) as service:
        credentials = grpc.ssl_channel_credentials(root_certificates=pem)
        async with grpc.aio.secure_channel(service.address, credentials) as channel:
            stub = trades_grpc.SmartTradeServiceStub(channel)
            listed = await stub.ListSmartTrades(
                trades_pb.ListSmartTradesRequest(), metadata=service.a.metadata
            )
            assert list(listed.smart_trades) == []
        async with grpc.aio.insecure_channel(service.address) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await trades_grpc.SmartTradeServiceStub(plain).ListSmartTrades(
                    trades_pb.ListSmartTradesRequest(), metadata=service.a.metadata, timeout=3
                )
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
