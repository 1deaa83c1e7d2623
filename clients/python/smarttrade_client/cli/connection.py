"""Where the CLI connects and with which token: flags first, then SMARTTRADE_* variables, then
the defaults of a local `smarttrade serve`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SERVER = "127.0.0.1:50051"
DEFAULT_DATA_DIR = "~/.local/share/smarttrade"
DEFAULT_TIMEOUT = 10.0


class UsageError(Exception):
    """The command line cannot work; the message says why (exit code 2)."""


@dataclass(frozen=True)
class Connection:
    server: str
    token: str | None = field(repr=False)
    token_source: str  # for error hints: "--token", "SMARTTRADE_TOKEN", a file, or "none"
    tls: bool
    root_certificates: bytes | None
    timeout: float


def local_token_file(env: Mapping[str, str]) -> Path:
    """The token file a local `smarttrade serve` writes (tenant `local`, loopback only)."""
    return Path(env.get("SMARTTRADE_DATA_DIR") or DEFAULT_DATA_DIR).expanduser() / "local-token"


def resolve(arguments: argparse.Namespace, env: Mapping[str, str] = os.environ) -> Connection:
    server = getattr(arguments, "server", None) or env.get("SMARTTRADE_SERVER") or DEFAULT_SERVER
    token: str | None = getattr(arguments, "token", None)
    source = "--token"
    if not token and env.get("SMARTTRADE_TOKEN"):
        token, source = env["SMARTTRADE_TOKEN"], "SMARTTRADE_TOKEN"
    if not token:
        path = local_token_file(env)
        source = str(path)
        try:
            token = path.read_text().strip() or None
        except OSError:
            token, source = None, "none"
    ca_cert = getattr(arguments, "ca_cert", None) or env.get("SMARTTRADE_CA_CERT")
    root_certificates = None
    if ca_cert:
        try:
            root_certificates = Path(ca_cert).expanduser().read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read the CA certificate {ca_cert}: {error}") from error
    tls = bool(getattr(arguments, "tls", False)) or env.get("SMARTTRADE_TLS", "") in ("1", "true")
    timeout = getattr(arguments, "timeout", None) or DEFAULT_TIMEOUT
    return Connection(server, token, source, tls or ca_cert is not None, root_certificates, timeout)
