"""The `smarttrade` command line as scripts use it: a subprocess against `smarttrade serve`,
reading `--json` answers and exit codes.

One server for the module (the local token, an embedded store); each test trades on its own
account and symbol, so the tests do not see each other's trades.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.binance_service import stub_overrides
from tests.support.binance_stub import BinanceStub
from tests.support.process import ServerProcess, free_port, serve_process

SMARTTRADE = str(Path(sys.executable).parent / "smarttrade")


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)


@dataclass(frozen=True)
class Cli:
    """Runs `smarttrade ...` with SMARTTRADE_SERVER and SMARTTRADE_DATA_DIR pointing at the
    test's server (so the token comes from its local token file, as for a user)."""

    env: dict[str, str]

    async def __call__(self, *arguments: str) -> Result:
        done = await asyncio.to_thread(
            subprocess.run,
            [SMARTTRADE, *arguments],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    async def json(self, *arguments: str) -> Any:
        return (await self(*arguments, "--json")).json()


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServerProcess]:
    async with serve_process(tmp_path_factory.mktemp("cli") / "data") as running:
        yield running


@pytest.fixture
def cli(server: ServerProcess) -> Cli:
    return cli_of(server)


def cli_of(server: ServerProcess) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTTRADE_")}
    env.update(SMARTTRADE_SERVER=server.address, SMARTTRADE_DATA_DIR=str(server.data_dir))
    return Cli(env)


async def paper_account(cli: Cli, usdt: str = "10000") -> str:
    account = await cli.json(
        "accounts", "create", "--exchange", "paper", "--balance", f"USDT={usdt}"
    )
    return str(account["name"])


async def test_accounts_are_created_listed_read_and_deleted(cli: Cli) -> None:
    created = await cli.json(
        "accounts", "create", "--name", "cli", "--balance", "USDT=500", "--maker-fee", "0.002"
    )
    name = created["name"]

    listed = await cli.json("accounts", "list")
    got = await cli.json("accounts", "get", name)
    balances = await cli.json("paper", "balances", name)
    quiet = await cli("accounts", "list", "-q")
    deleted = await cli.json("accounts", "delete", name)
    missing = await cli("accounts", "get", name)

    assert created["exchange"] == "paper"
    assert created["paper_settings"]["maker_fee_rate"] == "0.002"
    assert name in [account["name"] for account in listed]
    assert got["display_name"] == "cli"
    assert balances["USDT"]["total"] == "500"
    assert name in quiet.stdout.split()
    assert deleted == {"name": name, "deleted": True}
    assert missing.code == 4


async def test_an_account_is_renamed_and_a_stale_etag_exits_8(cli: Cli) -> None:
    created = await cli.json("accounts", "create", "--name", "before")
    name = created["name"]

    renamed = await cli.json(
        "accounts", "update", name, "--name", "after", "--etag", created["etag"]
    )
    stale = await cli("accounts", "update", name, "--name", "again", "--etag", created["etag"])
    nothing = await cli("accounts", "update", name)
    shown = await cli("accounts", "get", name)

    assert renamed["display_name"] == "after"
    assert renamed["etag"] != created["etag"]
    assert stale.code == 8
    assert nothing.code == 2
    assert f"etag:         {renamed['etag']}" in shown.stdout


async def test_a_trade_from_flags_runs_to_closed_at_its_take_profit(cli: Cli) -> None:
    account = await paper_account(cli)
    assert (await cli.json("paper", "price", "ETH/USDT", "100")) == {
        "symbol": "ETH/USDT",
        "price": "100",
    }

    created = await cli.json(
        "trades", "create", "--account", account, "--symbol", "ETH/USDT", "--side", "buy",
        "--units", "1", "--tp", "110", "--sl", "90",
    )  # fmt: skip
    await cli("paper", "price", "ETH/USDT", "111")
    closed = await cli.json("trades", "get", created["name"])
    listed = await cli.json("trades", "list", "--account", account)
    names = await cli("trades", "list", "--account", account, "-q")

    assert created["state"] == "ACTIVE"
    assert created["position"]["units_held"] == "0.999"
    assert created["take_profit"][0]["price"] == "110"
    assert created["stop_loss"]["price"] == "90"
    assert closed["state"] == "CLOSED"
    assert closed["close_reason"] == "TAKE_PROFIT"
    assert closed["position"]["realized_pnl"] == "9.78011"
    assert [trade["name"] for trade in listed] == [created["name"]]
    assert names.stdout.split() == [created["name"]]


async def test_labels_an_own_id_and_a_filtered_list_from_the_command_line(cli: Cli) -> None:
    account = await paper_account(cli)
    await cli("paper", "price", "ADA/USDT", "100")

    def create(*more: str) -> list[str]:
        return [
            "trades", "create", "--account", account, "--symbol", "ADA/USDT", "--side", "buy",
            "--units", "1", "--tp", "150", *more,
        ]  # fmt: skip

    first = await cli.json(*create("--id", "ada-signal-1", "--label", "bot=grid"))
    second = await cli.json(*create("--label", "bot=dca", "--label", "run=r2"))
    taken = await cli(*create("--id", "ada-signal-1"))
    edited = await cli.json("trades", "edit", second["name"], "--label", "bot=grid")
    grid = await cli.json(
        "trades", "list", "--filter", f'labels.bot = "grid" AND account = {account}',
        "--order-by", "create_time",
    )  # fmt: skip
    bad = await cli("trades", "list", "--filter", "colour = red")
    shown = await cli("trades", "get", "ada-signal-1")

    assert first["name"] == "smartTrades/ada-signal-1"
    assert first["labels"] == {"bot": "grid"}
    assert second["labels"] == {"bot": "dca", "run": "r2"}
    assert taken.code != 0
    assert "already exists" in taken.stderr
    assert edited["labels"] == {"bot": "grid"}
    assert [trade["name"] for trade in grid] == [first["name"], second["name"]]
    assert bad.code == 3
    assert "filter" in bad.stderr
    assert "labels:" in shown.stdout


SETTINGS_YAML = """\
symbol: SOL/USDT
side: buy
entry: {type: limit, units: "2", limit_price: 95}
take_profit:
  - {price: "110", volume_percent: 50}
  - {percent: 20, volume_percent: "50", trailing_percent: "1"}
stop_loss: {percent: 3, move_to_breakeven: true, timeout: 30}
note: from a file
"""


async def test_a_trade_file_in_yaml_or_json_means_the_same_as_the_flags(
    cli: Cli, tmp_path: Path
) -> None:
    account = await paper_account(cli)
    await cli("paper", "price", "SOL/USDT", "100")
    yaml_file = tmp_path / "trade.yaml"
    yaml_file.write_text(SETTINGS_YAML)
    json_file = tmp_path / "trade.json"
    json_file.write_text(
        json.dumps(
            {
                "account": account,
                "symbol": "SOL/USDT",
                "side": "BUY",
                "entry": {"units": "2", "limit_price": "95"},
                "take_profit": [
                    {"price": "110", "volume_percent": "50"},
                    {"percent": "20", "volume_percent": "50", "trailing_percent": "1"},
                ],
                "stop_loss": {"percent": "3", "move_to_breakeven": True, "timeout": 30},
                "note": "from a file",
            }
        )
    )

    from_yaml = await cli.json("trades", "create", "--file", str(yaml_file), "--account", account)
    from_json = await cli.json("trades", "create", "--file", str(json_file))
    from_flags = await cli.json(
        "trades", "create", "--account", account, "--symbol", "SOL/USDT", "--side", "buy",
        "--units", "2", "--limit-price", "95", "--tp", "110:50", "--tp", "20%:50",
        "--tp-trailing", "1", "--sl", "3%", "--breakeven", "--sl-timeout", "30",
        "--note", "from a file",
    )  # fmt: skip

    def settings(trade: dict[str, Any]) -> tuple[Any, ...]:
        return (trade["entry"], trade["take_profit"], trade["stop_loss"], trade["note"])

    assert from_yaml["state"] == "PENDING"
    assert from_yaml["entry"]["type"] == "LIMIT"
    assert from_yaml["stop_loss"]["timeout"] == "30s"
    assert settings(from_yaml) == settings(from_json) == settings(from_flags)


async def test_the_trade_menu_commands_act_on_a_live_trade(cli: Cli) -> None:
    account = await paper_account(cli, usdt="100000")
    await cli("paper", "price", "BNB/USDT", "100")
    trade = await cli.json(
        "trades", "create", "--account", account, "--symbol", "BNB/USDT", "--side", "buy",
        "--units", "1", "--limit-price", "90", "--tp", "120",
    )  # fmt: skip
    name = trade["name"]

    edited = await cli.json("trades", "edit", name, "--limit-price", "91", "--sl", "80")
    opened = await cli.json("trades", "open-now", name, "--etag", edited["etag"])
    added = await cli.json("trades", "add-funds", name, "--units", "1")
    reduced = await cli.json("trades", "reduce-funds", name, "--percent", "50")
    refreshed = await cli.json("trades", "refresh", name)
    shared = await cli.json("trades", "share", name, "--ttl", "1h")
    resolved = await cli.json("trades", "resolve-share", shared["token"])
    listed = await cli.json("trades", "shares", name)
    every = await cli("trades", "shares", "-q")
    shown = await cli("trades", "shares")
    revoked = await cli.json("trades", "revoke-share", shared["name"])
    gone = await cli("trades", "resolve-share", shared["token"])
    closed = await cli.json("trades", "close", name)
    other = await cli.json(
        "trades", "create", "--account", account, "--symbol", "BNB/USDT", "--side", "buy",
        "--total", "50", "--limit-price", "50",
    )  # fmt: skip
    cancelled = await cli.json("trades", "cancel", other["name"])

    assert edited["entry"]["limit_price"] == "91"
    assert edited["stop_loss"]["price"] == "80"
    assert opened["state"] == "ACTIVE"
    assert [leg["id"] for leg in added["legs"]][-1] == "add1"
    assert "reduce1" in [leg["id"] for leg in reduced["legs"]]
    assert refreshed["name"] == name
    assert shared["token"]
    assert resolved["settings"]["symbol"] == "BNB/USDT"
    assert [share["name"] for share in listed] == [shared["name"]]
    assert "token" not in listed[0] or not listed[0]["token"]
    assert every.stdout.split() == [shared["name"]]
    assert shown.stdout.split()[:6] == [
        "NAME",
        "SYMBOL",
        "SIDE",
        "CREATED",
        "EXPIRES",
        shared["name"],
    ]
    assert revoked == {"name": shared["name"], "revoked": True}
    assert gone.code == 4
    assert closed["state"] in ("CLOSING", "CLOSED")
    assert cancelled["state"] == "CANCELLED"


@pytest.mark.parametrize(
    ("arguments", "code", "says"),
    [
        (["trades", "create", "--symbol", "BTC/USDT"], 2, "needs --account"),
        (["trades", "teleport"], 2, "invalid choice"),
        (["trades", "get", "not-hex!"], 3, "name: must be a resource name"),
        (["trades", "get", "smartTrades/00ff"], 4, "not found"),
        (["trades", "cancel", "smartTrades/00ff", "--etag", "nonsense"], 3, "etag"),
        (["--token", "wrong", "trades", "list"], 7, "unauthenticated"),
    ],
    ids=["usage", "unknown command", "invalid", "not found", "bad etag", "bad token"],
)
async def test_a_failure_exits_with_its_code_and_a_readable_message(
    cli: Cli, arguments: list[str], code: int, says: str
) -> None:
    result = await cli(*arguments)

    assert result.code == code
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


async def test_refused_actions_and_stale_etags_have_their_own_exit_codes(cli: Cli) -> None:
    account = await paper_account(cli)
    await cli("paper", "price", "LTC/USDT", "100")
    trade = await cli.json(
        "trades", "create", "--account", account, "--symbol", "LTC/USDT", "--side", "buy",
        "--units", "1", "--tp", "120",
    )  # fmt: skip

    refused = await cli("trades", "open-now", trade["name"], "--json")
    stale = await cli("trades", "close", trade["name"], "--etag", "v0")

    assert refused.code == 5
    assert json.loads(refused.stderr)["error"] == {
        "code": "FAILED_PRECONDITION",
        "reason": "ACTION_NOT_ALLOWED",
        "message": "OPEN_NOW is not allowed while the trade is ACTIVE",
        "metadata": {"state": "ACTIVE", "action": "OPEN_NOW"},
        "field_violations": {},
    }
    assert stale.code == 8
    assert "aborted (ETAG_MISMATCH)" in stale.stderr


async def test_an_unreachable_server_is_unavailable_after_the_retries(cli: Cli) -> None:
    result = await cli("--server", f"127.0.0.1:{free_port()}", "--timeout", "2", "accounts", "list")

    assert result.code == 6
    assert "is the service running at 127.0.0.1:" in result.stderr
    assert "Traceback" not in result.stderr


async def test_watch_streams_json_lines_until_the_trade_is_done(cli: Cli) -> None:
    account = await paper_account(cli)
    await cli("paper", "price", "XRP/USDT", "1")
    trade = await cli.json(
        "trades", "create", "--account", account, "--symbol", "XRP/USDT", "--side", "buy",
        "--units", "100", "--tp", "1.2",
    )  # fmt: skip
    watcher = await asyncio.create_subprocess_exec(
        SMARTTRADE, "watch", trade["name"], "--until-done", "--json",
        env=cli.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert watcher.stdout is not None
    first = json.loads(await asyncio.wait_for(watcher.stdout.readline(), timeout=30))

    await cli("paper", "price", "XRP/USDT", "1.3")
    rest, errors = await asyncio.wait_for(watcher.communicate(), timeout=30)

    lines = [json.loads(line) for line in rest.decode().splitlines()]
    events = [line["event"] for line in lines if "event" in line]
    assert watcher.returncode == 0, errors.decode()
    assert first["snapshot"]["state"] == "ACTIVE"
    assert lines[0] == {"snapshot_end": {"sequence": lines[0]["snapshot_end"]["sequence"]}}
    assert events[-1]["type"] == "STATE_CHANGED"
    assert events[-1]["state"] == "CLOSED"
    sequences = [event["sequence"] for event in events]
    assert sequences == sorted(set(sequences))


async def test_watch_prints_plain_lines_when_not_on_a_terminal(cli: Cli) -> None:
    account = await paper_account(cli)
    await cli("paper", "price", "ADA/USDT", "1")
    trade = await cli.json(
        "trades", "create", "--account", account, "--symbol", "ADA/USDT", "--side", "buy",
        "--units", "100", "--tp", "1.2",
    )  # fmt: skip
    await cli("trades", "close", trade["name"])

    result = await cli("watch", trade["name"], "--until-done")

    assert result.code == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"snapshot {trade['name']} ADA/USDT BUY CLOSED (CLOSED_AT_MARKET) held 0"
    ]


async def test_serve_stays_the_services_command_and_help_lists_both(cli: Cli) -> None:
    serve_help = await cli("serve", "--help")
    top_help = await cli("--help")

    assert serve_help.code == 0
    assert "--database-url" in serve_help.stdout
    assert top_help.code == 0
    for command in ("serve", "accounts", "trades", "paper", "watch", "exit codes"):
        assert command in top_help.stdout


SIMULATED_YAML = """\
symbol: BTC/USDT
side: buy
entry: {units: "10"}
take_profit:
  - {price: "104", volume_percent: 50}
  - {price: "106", volume_percent: 50}
stop_loss: {price: "95", move_to_breakeven: true}
"""
PRICES_CSV = """\
time,open,high,low,close
2026-03-01T00:00:00Z,100,100.5,99.8,100.2
2026-03-01T00:01:00Z,100.2,104.3,100,104
2026-03-01T00:02:00Z,104,104.2,103.1,103.5
2026-03-01T00:03:00Z,103.5,106.5,103.4,106.1
"""


async def test_simulate_prints_the_outcome_the_fills_and_a_chart_of_the_levels(
    cli: Cli, tmp_path: Path
) -> None:
    # Arrange
    (tmp_path / "spec.yaml").write_text(SIMULATED_YAML)
    (tmp_path / "prices.csv").write_text(PRICES_CSV)
    files = ("--file", str(tmp_path / "spec.yaml"), "--candles", str(tmp_path / "prices.csv"))

    # Act
    shown = await cli("trades", "simulate", *files)
    answer = await cli.json("trades", "simulate", *files)

    # Assert: 10 BTC bought at 100 (9.99 held after the fee, an average of 100.1001...),
    # half sold at 104 and the rest at 106; the stop moved to breakeven after the first.
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["outcome:", "CLOSED", "(TAKE_PROFIT)"]
    fills = lines[lines.index("") + 2 : lines.index("", lines.index("") + 1)]
    assert [row.split()[:6] for row in fills] == [
        ["entry", "BUY", "100", "10", "0.01", "BTC"],
        ["tp1", "SELL", "104", "4.995", "0.51948", "USDT"],
        ["tp2", "SELL", "106", "4.995", "0.52947", "USDT"],
    ]
    chart = "\n".join(lines[lines.index("", lines.index("") + 1) + 1 :])
    for level in ("entry 100.1001", "tp1 104", "tp2 106", "stop 100.1"):
        assert level in chart
    assert "B" in chart  # the buy, and the two sells, where they filled
    assert chart.count("S") == 2
    assert answer["trade"]["state"] == "CLOSED"
    assert answer["trade"]["position"]["realized_pnl"] == "47.90105"  # 1,048.95 - 1,000 - fees
    assert answer["candle_count"] == 4


async def test_simulate_says_where_the_trade_filled_more_than_the_candle_traded(
    cli: Cli, tmp_path: Path
) -> None:
    # Arrange: the same history with a volume column; 3 BTC traded where 10 were bought.
    (tmp_path / "spec.yaml").write_text(SIMULATED_YAML)
    rows = PRICES_CSV.splitlines()
    volumes = ["volume", "3", "40", "40", "40"]
    (tmp_path / "prices.csv").write_text(
        "\n".join(f"{row},{volume}" for row, volume in zip(rows, volumes, strict=True)) + "\n"
    )
    files = ("--file", str(tmp_path / "spec.yaml"), "--candles", str(tmp_path / "prices.csv"))

    # Act
    shown = await cli("trades", "simulate", *files)
    answer = await cli.json("trades", "simulate", *files)

    # Assert
    assert shown.code == 0, shown.stderr
    said = [line.split(None, 1) for line in shown.stdout.splitlines() if line.startswith("volume:")]
    assert said == [
        [
            "volume:",
            "filled more than was traded in 1 candle(s), first at 2026-03-01 00:00:00: 10 BTC of 3",
        ]
    ]
    assert answer["volume_shortfalls"] == [
        {"candle_time": "2026-03-01T00:00:00Z", "volume": "3", "filled": "10"}
    ]


async def test_simulate_fetches_the_history_from_a_venue_when_asked_to(
    tmp_path: Path,
) -> None:
    # Arrange: the Binance stub's minutes of the CSV's four candles, and a server whose
    # `binance` is the stub.
    (tmp_path / "spec.yaml").write_text(SIMULATED_YAML)
    rows = [line.split(",") for line in PRICES_CSV.splitlines()[1:]]
    start_ms = 1_772_323_200_000  # 2026-03-01T00:00:00Z
    async with BinanceStub(api_key="k", secret="s") as stub:
        stub.set_candles(
            "BTC/USDT",
            [
                (start_ms + m * 60_000, o, h, low, c, "40")
                for m, (_, o, h, low, c) in enumerate(rows)
            ],
        )
        overrides = {"SMARTTRADE_EXCHANGE_OVERRIDES": json.dumps(stub_overrides(stub))}
        async with serve_process(tmp_path / "data", env=overrides) as server:
            fetched = cli_of(server)
            flags = ("--file", str(tmp_path / "spec.yaml"), "--from-exchange", "binance")
            window = ("--start", "2026-03-01T00:00:00Z", "--end", "2026-03-01T00:04:00Z")

            # Act
            shown = await fetched("trades", "simulate", *flags, *window)
            answer = await fetched.json("trades", "simulate", *flags, *window)
            unbounded = await fetched("trades", "simulate", *flags)

    # Assert: the outcome of the same candles given as a CSV; no chart (no candles here).
    assert shown.code == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["outcome:", "CLOSED", "(TAKE_PROFIT)"]
    assert lines[2].split(None, 1) == ["history:", "4 candles, 16 ticks walked"]
    assert answer["trade"]["position"]["realized_pnl"] == "47.90105"
    assert len(stub.requests_to("GET", "klines")) == 2
    assert unbounded.code == 2
    assert "--from-exchange needs --start and --end" in unbounded.stderr


@pytest.mark.parametrize(
    ("window", "said"),
    [
        (("--start", "99999999999999999999", "--end", "2026-03-02"), "--start: "),
        (("--start", "2026-03-01", "--end", "9999-12-31T23:59:59-01:00"), "--end: "),
        (("--start", "\u0661\u0662\u0663", "--end", "2026-03-02"), "--start: "),
        (("--start", "1969-07-20", "--end", "2026-03-02"), "--start: "),
        (("--start", "2026-03-02", "--end", "2026-03-01"), "--end must be after --start"),
        (("--start", "2026-03-01"), "--from-exchange needs --start and --end"),
    ],
    ids=[
        "too large",
        "beyond 9999 in UTC",
        "non-ASCII digits",
        "before 1970",
        "reversed",
        "no end",
    ],
)
async def test_simulate_refuses_a_bad_window_to_fetch_as_usage(
    cli: Cli, tmp_path: Path, window: tuple[str, ...], said: str
) -> None:
    (tmp_path / "spec.yaml").write_text(SIMULATED_YAML)
    spec = ("--file", str(tmp_path / "spec.yaml"))

    result = await cli("trades", "simulate", *spec, "--from-exchange", "binance", *window)

    assert result.code == 2, result.stderr
    assert said in result.stderr
    assert "Traceback" not in result.stderr


async def test_simulate_refuses_a_bad_candle_naming_its_row_and_field(
    cli: Cli, tmp_path: Path
) -> None:
    (tmp_path / "spec.yaml").write_text(SIMULATED_YAML)
    (tmp_path / "prices.csv").write_text(PRICES_CSV.replace("104.2,103.1", "103.1,104.2"))

    result = await cli(
        "trades", "simulate", "--file", str(tmp_path / "spec.yaml"),
        "--candles", str(tmp_path / "prices.csv"),
    )  # fmt: skip

    assert result.code != 0
    assert "candles[2].high" in result.stderr
    assert "Traceback" not in result.stderr
