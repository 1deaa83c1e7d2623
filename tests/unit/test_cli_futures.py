"""The `smarttrade` CLI's futures (issue 14): `trades create --futures --leverage N --margin
isolated|cross` and a trade file's `leverage:` become the contract's `leverage` field, the
leverage flags without futures are a usage error (exit 2), and `trades get` / `trades list`
show a futures trade's leverage, its open position's margin, ROE and liquidation price, and a
liquidation. No server: the flags are read by the real parser, the answers built by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from smarttrade_client.cli import main, views
from smarttrade_client.cli import parser as cli_parser
from smarttrade_client.cli.connection import UsageError
from smarttrade_client.cli.trade_settings import trade_mapping, trade_settings
from smarttrade_client.convert import share, smart_trade, trade_message
from smarttrade_client.v1 import smart_trade_pb2 as pb
from tests.unit.trade_messages import futures_trade, liquidated, spot_trade

CREATE = [
    "trades", "create", "--account", "exchangeAccounts/fedcba9876543210",
    "--symbol", "BTC/USDT:USDT", "--side", "buy", "--units", "10",
]  # fmt: skip


def create_request(*flags: str) -> pb.SmartTrade:
    """The SmartTrade message `trades create` sends for these flags."""
    arguments = cli_parser.build("smarttrade", None).parse_args([*CREATE, *flags])
    return trade_message(**trade_settings(trade_mapping(arguments)))


# --- trades create: flags and files -> the request ---------------------------------------------


def test_futures_flags_set_the_contracts_leverage_field() -> None:
    request = create_request("--futures", "--leverage", "5", "--margin", "isolated")

    assert request.leverage == pb.Leverage(
        market_type=pb.MARKET_TYPE_LINEAR, value="5", margin_mode=pb.MARGIN_MODE_ISOLATED
    )


def test_futures_alone_leaves_leverage_and_margin_to_the_services_defaults() -> None:
    request = create_request("--futures")

    assert request.leverage == pb.Leverage(market_type=pb.MARKET_TYPE_LINEAR)


def test_a_cross_margin_futures_trade_asks_for_cross() -> None:
    request = create_request("--futures", "--leverage", "20", "--margin", "CROSS")

    assert request.leverage.margin_mode == pb.MARGIN_MODE_CROSS
    assert request.leverage.value == "20"


def test_the_older_market_flag_still_means_futures() -> None:
    assert create_request("--market", "linear", "--leverage", "5") == create_request(
        "--futures", "--leverage", "5"
    )


def test_a_spot_trade_sends_no_leverage() -> None:
    request = create_request()

    assert not request.HasField("leverage")


def test_a_trade_file_with_the_contracts_leverage_means_the_same_as_the_flags(
    tmp_path: Path,
) -> None:
    trade_file = tmp_path / "futures.yaml"
    trade_file.write_text('leverage: {market_type: linear, value: "5", margin_mode: isolated}\n')

    from_file = create_request("--file", str(trade_file))
    from_flags = create_request("--futures", "--leverage", "5", "--margin", "isolated")

    assert from_file == from_flags


def test_leverage_flags_override_the_files_on_the_futures_it_names(tmp_path: Path) -> None:
    trade_file = tmp_path / "futures.json"
    trade_file.write_text('{"leverage": {"market_type": "LINEAR", "value": "5"}}')

    request = create_request("--file", str(trade_file), "--leverage", "10", "--margin", "cross")

    assert request.leverage == pb.Leverage(
        market_type=pb.MARKET_TYPE_LINEAR, value="10", margin_mode=pb.MARGIN_MODE_CROSS
    )


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--leverage", "5"], "--leverage needs --futures"),
        (["--margin", "cross"], "--margin needs --futures"),
        (["--leverage", "5", "--margin", "isolated"], "--leverage and --margin need --futures"),
        (["--market", "spot", "--leverage", "3"], "--leverage needs --futures"),
    ],
    ids=["leverage", "margin", "both", "spot market"],
)
def test_leverage_or_margin_without_futures_is_a_usage_error(flags: list[str], says: str) -> None:
    with pytest.raises(UsageError, match=says):
        create_request(*flags)


def test_a_trade_files_leverage_that_is_not_a_mapping_is_a_usage_error(tmp_path: Path) -> None:
    trade_file = tmp_path / "futures.yaml"
    trade_file.write_text("leverage: 5\n")

    with pytest.raises(UsageError, match="leverage must be a mapping"):
        create_request("--file", str(trade_file))


def test_the_command_exits_2_on_leverage_without_futures_before_any_call(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Nothing listens on port 9: a call would end in UNAVAILABLE (exit 6), not 2.
    code = main([*CREATE, "--leverage", "5", "--server", "127.0.0.1:9", "--token", "t"])

    assert code == 2
    assert "--leverage needs --futures" in capsys.readouterr().err


def test_futures_and_market_are_one_choice() -> None:
    with pytest.raises(SystemExit) as raised:
        create_request("--futures", "--market", "spot")

    assert raised.value.code == 2


# --- trades get / list: the answer -> text -----------------------------------------------------


def test_trades_get_shows_the_leverage_and_the_open_positions_margin_roe_and_liquidation() -> None:
    lines = views.trade_detail(smart_trade(futures_trade())).splitlines()

    assert lines[:4] == [
        "name:        smartTrades/0123456789abcdef",
        "state:       ACTIVE",
        "symbol:      BTC/USDT:USDT BUY",
        "leverage:    10x isolated, USDT-margined perpetual",
    ]
    pnl = lines.index("pnl:         realized 0 USDT, unrealized 40 USDT")
    assert lines[pnl + 1] == "futures:     margin 100 USDT, ROE 40%, liquidation 90.361445783133"


def test_a_cross_margin_trade_says_its_liquidation_price_is_not_known_yet() -> None:
    message = futures_trade()
    message.leverage.margin_mode = pb.MARGIN_MODE_CROSS
    message.futures.liquidation_price = ""
    message.futures.roe_percent = "-12.5"

    lines = views.trade_detail(smart_trade(message)).splitlines()

    assert "leverage:    10x cross, USDT-margined perpetual" in lines
    assert "futures:     margin 100 USDT, ROE -12.5%, liquidation unknown" in lines


def test_a_futures_trade_the_service_reports_without_leverage_runs_at_1x_isolated() -> None:
    message = futures_trade()
    message.leverage.CopyFrom(pb.Leverage(market_type=pb.MARKET_TYPE_LINEAR))

    lines = views.trade_detail(smart_trade(message)).splitlines()

    assert "leverage:    1x isolated, USDT-margined perpetual" in lines


def test_a_liquidated_trade_shows_its_leverage_but_no_futures_line() -> None:
    lines = views.trade_detail(smart_trade(liquidated(futures_trade()))).splitlines()

    assert "state:       CLOSED (LIQUIDATED)" in lines
    assert "leverage:    10x isolated, USDT-margined perpetual" in lines
    assert "pnl:         realized -96 USDT" in lines
    assert not [line for line in lines if line.startswith("futures:")]


def test_a_spot_trade_shows_no_leverage_or_futures_line() -> None:
    lines = views.trade_detail(smart_trade(spot_trade())).splitlines()

    assert not [line for line in lines if line.startswith(("leverage:", "futures:"))]


def test_trades_list_shows_a_liquidation_as_the_trades_state() -> None:
    table = views.trades_table([smart_trade(liquidated(futures_trade()))])

    row = table.splitlines()[1]
    assert row.startswith("smartTrades/0123456789abcdef  BTC/USDT:USDT  BUY   CLOSED (LIQUIDATED)")


def test_a_shared_futures_trades_settings_show_its_leverage() -> None:
    settings = pb.SharedSettings(
        exchange="binanceusdm",
        symbol="BTC/USDT:USDT",
        side=pb.SIDE_SELL,
        entry=pb.Entry(type=pb.ENTRY_TYPE_MARKET),
        leverage=pb.Leverage(
            market_type=pb.MARKET_TYPE_LINEAR, value="3", margin_mode=pb.MARGIN_MODE_CROSS
        ),
    )
    shared = share(pb.SmartTradeShare(token="st1_x", settings=settings))

    lines = views.share_detail(shared).splitlines()

    assert "leverage:    3x cross, USDT-margined perpetual" in lines
