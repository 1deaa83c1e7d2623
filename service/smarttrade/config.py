"""Settings: one object, read once in the composition root, from SMARTTRADE_* environment
variables and command-line flags (flags win)."""

from __future__ import annotations

import argparse
import base64
import hashlib
import ipaddress
import json
import os
import secrets
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from smarttrade.store.credentials import MasterKeys

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DATA_DIR = Path("~/.local/share/smarttrade").expanduser()
LOCAL_TENANT = "local"
ALL_SCOPES = frozenset({"trade", "sandbox"})


class ConfigError(Exception):
    """The settings cannot work; the message says which and how to fix it."""


@dataclass(frozen=True)
class TokenEntry:
    """A token the service accepts, kept as its SHA-256 (hex)."""

    tenant_id: str
    token_sha256: str = field(repr=False)
    scopes: frozenset[str]

    @classmethod
    def plain(cls, tenant_id: str, token: str, scopes: frozenset[str]) -> TokenEntry:
        return cls(tenant_id, hashlib.sha256(token.encode()).hexdigest(), scopes)


@dataclass(frozen=True)
class Settings:
    listen: str = DEFAULT_LISTEN
    database_url: str | None = None  # None: the embedded PostgreSQL in data_dir
    data_dir: Path = DEFAULT_DATA_DIR
    tokens: tuple[TokenEntry, ...] = ()
    tls_cert: Path | None = None  # PEM; with tls_key, the server speaks TLS only
    tls_key: Path | None = None
    master_keys: str = field(default="", repr=False)  # "id:base64key,..."; empty: a local file
    master_key_id: str = ""
    # Per ccxt exchange id: "urls", "options" (deep-merged into ccxt's), "poll_interval",
    # "rate_limit_ms", "timeout", "streaming" (default true) and "stream_retry" (seconds a
    # failed stream polls before it is tried again, default 30): to point a venue at its
    # testnet, a proxy, or a local stub.
    exchange_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # A ccxt exchange id whose public prices drive the paper venue (instead of the sandbox),
    # for paper trading on the live market; its overrides apply.
    paper_prices: str = ""
    unknown_order_grace: float = 10.0
    order_poll_interval: float = 1.0  # venues that cannot stream order updates
    reconcile_interval: float = 30.0  # the periodic sweep of every live trade
    store_probe_interval: float = 0.25  # how often health asks the store `SELECT 1`
    # The longest a connection attempt, and a statement on the hot path, may wait on the
    # database (a line that stalls without dropping): then the store is unavailable.
    store_timeout: float = 5.0
    shutdown_grace: float = 5.0
    event_retention_days: float = 30.0  # the watch stream can resume this far back
    # A retry with a request id gets the first answer within this window; after it the id
    # is forgotten (and a retry is a new request).
    request_retention_hours: float = 24.0
    prune_interval: float = 3600.0  # how often old events and request ids are pruned
    watch_buffer: int = 1000  # events a watcher may fall behind before its stream is ended
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object per line (logs.JsonLines)
    metrics_listen: str = ""  # host:port to serve Prometheus metrics on; empty: metrics off
    lease_seconds: float = 0.0  # replicas on one database: the leader lease; 0: one replica
    replica_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    # Replicas: the host:port the others forward calls to this one at; empty: the listen
    # address (or the internal one), with a wildcard host replaced by this host's name.
    advertise: str = ""
    # A second host:port this replica serves on (port 0: any free one), which it advertises
    # to the others instead of `listen`: `--workers` gives each worker one, since they all
    # share `listen`.
    internal_listen: str = ""
    workers: int = 1  # `serve --workers N`: N replicas on this host behind `listen`

    def advertised(self, port: int) -> str:
        """Where other replicas reach this one (`port`: the one it listens on for them):
        `advertise`, with that port when it names a host only (a pod's IP, say)."""
        host = self.advertise or (
            self.internal_listen.rsplit(":", 1)[0].strip("[]") if self.internal_listen else ""
        )
        host = host or self.host
        if self.advertise and not _bare_host(host):
            return host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def on_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_tokens(text: str, name: str, hashed: bool) -> tuple[TokenEntry, ...]:
    """`tenant:token[:scope+scope],...` (or `tenant:sha256hex[...]` when `hashed`); scopes
    default to all (trade, sandbox)."""
    entries = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = item.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise ConfigError(f"{name} entries are tenant:token[:scope+scope]")
        scopes = frozenset(parts[2].split("+")) if len(parts) == 3 else ALL_SCOPES
        if not scopes <= ALL_SCOPES:
            raise ConfigError(f"unknown scopes {sorted(scopes - ALL_SCOPES)} in {name}")
        if hashed:
            if len(parts[1]) != 64 or any(c not in "0123456789abcdef" for c in parts[1]):
                raise ConfigError(f"{name} holds SHA-256 hex digests of the tokens")
            entries.append(TokenEntry(parts[0], parts[1], scopes))
        else:
            entries.append(TokenEntry.plain(parts[0], parts[1], scopes))
    return tuple(entries)


def from_environment(env: Mapping[str, str] = os.environ) -> Settings:
    def number(name: str, default: float) -> float:
        try:
            return float(env.get(name, default))
        except ValueError as error:
            raise ConfigError(f"{name} must be a number of seconds") from error

    return Settings(
        listen=env.get("SMARTTRADE_LISTEN", DEFAULT_LISTEN),
        database_url=env.get("SMARTTRADE_DATABASE_URL") or None,
        data_dir=Path(env.get("SMARTTRADE_DATA_DIR", str(DEFAULT_DATA_DIR))).expanduser(),
        tokens=parse_tokens(env.get("SMARTTRADE_TOKENS", ""), "SMARTTRADE_TOKENS", False)
        + parse_tokens(env.get("SMARTTRADE_TOKEN_HASHES", ""), "SMARTTRADE_TOKEN_HASHES", True),
        tls_cert=_path(env.get("SMARTTRADE_TLS_CERT")),
        tls_key=_path(env.get("SMARTTRADE_TLS_KEY")),
        master_keys=env.get("SMARTTRADE_MASTER_KEYS", ""),
        exchange_overrides=_json_object(env, "SMARTTRADE_EXCHANGE_OVERRIDES"),
        paper_prices=env.get("SMARTTRADE_PAPER_PRICES", ""),
        master_key_id=env.get("SMARTTRADE_MASTER_KEY_ID", ""),
        unknown_order_grace=number("SMARTTRADE_UNKNOWN_ORDER_GRACE", 10.0),
        order_poll_interval=number("SMARTTRADE_ORDER_POLL_INTERVAL", 1.0),
        reconcile_interval=number("SMARTTRADE_RECONCILE_INTERVAL", 30.0),
        store_probe_interval=number("SMARTTRADE_STORE_PROBE_INTERVAL", 0.25),
        store_timeout=number("SMARTTRADE_STORE_TIMEOUT", 5.0),
        shutdown_grace=number("SMARTTRADE_SHUTDOWN_GRACE", 5.0),
        event_retention_days=number("SMARTTRADE_EVENT_RETENTION_DAYS", 30.0),
        request_retention_hours=number("SMARTTRADE_REQUEST_RETENTION_HOURS", 24.0),
        prune_interval=number("SMARTTRADE_PRUNE_INTERVAL", 3600.0),
        watch_buffer=int(number("SMARTTRADE_WATCH_BUFFER", 1000)),
        log_level=env.get("SMARTTRADE_LOG_LEVEL", "INFO"),
        lease_seconds=number("SMARTTRADE_LEASE_SECONDS", 0.0),
        advertise=_advertise(env.get("SMARTTRADE_ADVERTISE", "")),
        log_format=_log_format(env.get("SMARTTRADE_LOG_FORMAT", "text")),
        metrics_listen=_address(env.get("SMARTTRADE_METRICS_LISTEN", ""), "metrics listen"),
        internal_listen=_address(
            env.get("SMARTTRADE_INTERNAL_LISTEN", ""), "internal listen", any_port=True
        ),
        workers=_workers(env.get("SMARTTRADE_WORKERS", "1")),
        **(
            {"replica_id": env["SMARTTRADE_REPLICA_ID"]} if env.get("SMARTTRADE_REPLICA_ID") else {}
        ),
    )


LOG_FORMATS = ("text", "json")


def _log_format(text: str) -> str:
    if text not in LOG_FORMATS:
        raise ConfigError(f"the log format is one of {', '.join(LOG_FORMATS)}, not {text!r}")
    return text


def _address(text: str, name: str, any_port: bool = False) -> str:
    """host:port (empty: not configured; port 0, with `any_port`: any free one)."""
    if not text:
        return text
    host, _, port = text.rpartition(":")
    lowest = 0 if any_port else 1
    if not host or not port.isascii() or not port.isdigit() or not lowest <= int(port) < 65536:
        raise ConfigError(f"the {name} address is host:port, not {text!r}")
    return text


MAX_WORKERS = 64


def _workers(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise ConfigError(f"workers is a number from 1 to {MAX_WORKERS}, not {text!r}")
    return int(text)


def _bare_host(text: str) -> bool:
    """An IP address (v4 or v6) or a host name, without a port."""
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return ":" not in text


def _advertise(text: str) -> str:
    """host:port, or a host alone (the listening port is added)."""
    return text if not text or _bare_host(text) else _address(text, "advertise")


def _path(text: str | None) -> Path | None:
    return Path(text).expanduser() if text else None


def _json_object(env: Mapping[str, str], name: str) -> dict[str, Any]:
    text = env.get(name, "")
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ConfigError(f"{name} must be a JSON object: {error}") from error
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object")
    return value


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", help=f"host:port to serve gRPC on (default {DEFAULT_LISTEN})")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL URL (postgresql://user:pass@host/db); default: embedded PostgreSQL",
    )
    parser.add_argument("--data-dir", type=Path, help=f"default {DEFAULT_DATA_DIR}")
    parser.add_argument(
        "--metrics-listen", help="host:port to serve Prometheus metrics on (default: off)"
    )
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, help="text (default) or json: one object per line"
    )
    parser.add_argument(
        "--replica-id", help="this replica's name in metrics and logs (default: host-pid)"
    )
    parser.add_argument(
        "--workers",
        help="run N replicas on this host behind the one port, to use N cores (default 1; "
        "see the README)",
    )


def with_flags(settings: Settings, flags: argparse.Namespace) -> Settings:
    changes: dict[str, object] = {}
    if flags.listen:
        changes["listen"] = flags.listen
    if flags.database_url:
        changes["database_url"] = flags.database_url
    if flags.data_dir:
        changes["data_dir"] = flags.data_dir.expanduser()
    if flags.metrics_listen:
        changes["metrics_listen"] = _address(flags.metrics_listen, "metrics listen")
    if flags.log_format:
        changes["log_format"] = flags.log_format
    if flags.replica_id:
        changes["replica_id"] = flags.replica_id
    if flags.workers:
        changes["workers"] = _workers(flags.workers)
    return replace(settings, **changes)  # type: ignore[arg-type]


def _private_file(path: Path, make: str) -> str:
    """Read a secret file, creating it (0600) with `make` the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(make)
    return path.read_text().strip()


def master_keys(settings: Settings) -> MasterKeys:
    """The configured master keys, or (single-node quick start) a key kept in the data dir."""
    text = settings.master_keys
    if not text:
        generated = json.dumps({"local-1": base64.b64encode(secrets.token_bytes(32)).decode()})
        stored = json.loads(_private_file(settings.data_dir / "master-keys.json", generated))
        keys = {key_id: base64.b64decode(value) for key_id, value in stored.items()}
        return MasterKeys(keys, settings.master_key_id or list(keys)[-1])
    keys = {}
    for item in text.split(","):
        key_id, _, value = item.strip().partition(":")
        try:
            keys[key_id] = base64.b64decode(value, validate=True)
        except ValueError as error:
            raise ConfigError("SMARTTRADE_MASTER_KEYS entries are id:base64key") from error
    current = settings.master_key_id or list(keys)[-1]  # appending a key rotates to it
    try:
        return MasterKeys(keys, current)
    except ValueError as error:
        raise ConfigError(f"SMARTTRADE_MASTER_KEYS: {error}") from error


def token_entries(settings: Settings) -> tuple[Sequence[TokenEntry], str | None]:
    """The tokens to accept, and the local token to show (quick start on loopback only)."""
    if settings.tokens:
        return settings.tokens, None
    if not settings.on_loopback:
        raise ConfigError(
            f"refusing to serve on {settings.listen} without SMARTTRADE_TOKENS: "
            "configure tokens (tenant:token) or listen on 127.0.0.1"
        )
    token = _private_file(settings.data_dir / "local-token", secrets.token_urlsafe(24))
    return (TokenEntry.plain(LOCAL_TENANT, token, ALL_SCOPES),), token


def tls_credentials(settings: Settings) -> tuple[bytes, bytes] | None:
    """The (certificate chain, private key) to serve TLS with, when configured."""
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise ConfigError("set both SMARTTRADE_TLS_CERT and SMARTTRADE_TLS_KEY, or neither")
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        return settings.tls_cert.read_bytes(), settings.tls_key.read_bytes()
    except OSError as error:
        raise ConfigError(f"cannot read the TLS certificate or key: {error}") from error
