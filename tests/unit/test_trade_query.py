"""ListSmartTrades' filter (AIP-160) and order_by (AIP-132) as the core parses them, and the
rules of labels and of a caller's own trade id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from smarttrade.domain.errors import InvalidSpec
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.labels import label_violations, trade_id_violation
from smarttrade.domain.model import CloseReason
from smarttrade.domain.trade_query import (
    NEWEST_FIRST,
    AllOf,
    AnyOf,
    NotOf,
    Order,
    SortKey,
    Term,
    order_by,
    parse_filter,
)
from smarttrade.domain.values import Side

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC)


def refusal(text: str) -> str:
    with pytest.raises(InvalidSpec) as refused:
        parse_filter(text)
    (violation,) = refused.value.violations
    assert violation.field == "filter"
    return violation.description


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("state = ACTIVE", Term("state", "=", TradeState.ACTIVE)),
        ("state = SMART_TRADE_STATE_CLOSED", Term("state", "=", TradeState.CLOSED)),
        ("side != SELL", Term("side", "!=", Side.SELL)),
        ("side = SIDE_BUY", Term("side", "=", Side.BUY)),
        ("close_reason = STOP_LOSS", Term("close_reason", "=", CloseReason.STOP_LOSS)),
        ('symbol = "BTC/USDT"', Term("symbol", "=", "BTC/USDT")),
        ("symbol = ETH/USDT", Term("symbol", "=", "ETH/USDT")),
        ("account = exchangeAccounts/00a1", Term("account", "=", "00a1")),
        ('labels.bot = "grid-2"', Term("labels", "=", "grid-2", "bot")),
        ("labels.bot != grid", Term("labels", "!=", "grid", "bot")),
        ("labels.signal:*", Term("labels", ":", None, "signal")),
        ("labels:signal", Term("labels", ":", None, "signal")),
        ('create_time >= "2026-12-01T00:00:00Z"', Term("create_time", ">=", DEC_1)),
        ('create_time < "2026-12-01T01:00:00+01:00"', Term("create_time", "<", DEC_1)),
        ('end_time > "2026-12-01T00:00:00Z"', Term("end_time", ">", DEC_1)),
        ('end_time <= "2026-12-01T00:00:00Z"', Term("end_time", "<=", DEC_1)),
    ],
)
def test_each_term_parses_to_its_field_operator_and_typed_value(text: str, term: Term) -> None:
    assert parse_filter(text) == term


def test_an_empty_filter_selects_everything() -> None:
    assert parse_filter("") is None
    assert parse_filter("   ") is None


def test_or_binds_tighter_than_and_as_aip_160_says() -> None:
    found = parse_filter("side = BUY AND state = ACTIVE OR state = PENDING")

    assert found == AllOf(
        (
            Term("side", "=", Side.BUY),
            AnyOf((Term("state", "=", TradeState.ACTIVE), Term("state", "=", TradeState.PENDING))),
        )
    )


def test_terms_side_by_side_are_and_and_parentheses_group() -> None:
    found = parse_filter("side = BUY (state = ACTIVE OR NOT symbol = X/Y) -labels.a:*")

    assert found == AllOf(
        (
            Term("side", "=", Side.BUY),
            AnyOf(
                (
                    Term("state", "=", TradeState.ACTIVE),
                    NotOf(Term("symbol", "=", "X/Y")),
                )
            ),
            NotOf(Term("labels", ":", None, "a")),
        )
    )


def test_a_quoted_value_keeps_escaped_quotes() -> None:
    assert parse_filter(r'symbol = "A\"B"') == Term("symbol", "=", 'A"B')


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("colour = red", "cannot filter on 'colour'"),
        ("state.x = ACTIVE", "cannot filter on 'state.x'"),
        ("state = OPEN", "state must be one of"),
        ("close_reason = WHATEVER", "close_reason must be one of"),
        ("state > ACTIVE", "state takes = or !="),
        ("labels.bot > a", "labels take = or !="),
        ("labels.Bot = a", "is not a label key"),
        ("labels = a", "labels must be compared as labels.{key}"),
        ("create_time > 2026-12-01", "RFC 3339"),
        ('create_time > "2026-12-01T00:00:00"', "RFC 3339"),
        ("account = 00a1", "exchangeAccounts/{account}"),
        ("(state = ACTIVE", "ends too early"),
        ("state = ACTIVE)", "unexpected ')'"),
        ("state ACTIVE", "unexpected 'ACTIVE'"),
        ("AND state = ACTIVE", "unexpected 'AND'"),
        ("state = ACTIVE AND", "ends too early"),
        ("state = ACTIVE; DROP TABLE smart_trades", "unexpected character"),
        ("labels.a:x", "unexpected 'x'"),
    ],
)
def test_bad_syntax_or_an_unknown_field_is_refused_naming_filter(text: str, says: str) -> None:
    assert says in refusal(text)


def test_a_filter_too_long_or_too_deep_is_refused() -> None:
    assert "at most" in refusal("state = ACTIVE AND " * 200 + "state = ACTIVE")
    assert "nest" in refusal("(" * 40 + "state = ACTIVE" + ")" * 40)


@pytest.mark.parametrize(
    ("text", "order"),
    [
        ("", NEWEST_FIRST),
        ("create_time desc", Order(SortKey.CREATE_TIME, True)),
        ("create_time", Order(SortKey.CREATE_TIME, False)),
        ("  update_time   desc ", Order(SortKey.UPDATE_TIME, True)),
        ("realized_pnl", Order(SortKey.REALIZED_PNL, False)),
        ("realized_pnl asc", Order(SortKey.REALIZED_PNL, False)),
    ],
)
def test_order_by_names_one_field_ascending_unless_desc(text: str, order: Order) -> None:
    assert order_by(text) == order


@pytest.mark.parametrize("text", ["symbol", "create_time up", "create_time, update_time desc"])
def test_order_by_other_fields_or_forms_is_refused_naming_order_by(text: str) -> None:
    with pytest.raises(InvalidSpec) as refused:
        order_by(text)
    assert [v.field for v in refused.value.violations] == ["order_by"]


def test_labels_of_lowercase_keys_and_values_are_accepted() -> None:
    assert label_violations({"bot": "grid-2", "signal_id": "", "a1": "x_y"}) == []


@pytest.mark.parametrize(
    "labels",
    [
        {"Bot": "x"},
        {"1bot": "x"},
        {"": "x"},
        {"b" * 64: "x"},
        {"bot": "Grid"},
        {"bot": "x" * 64},
        {"bot": "a b"},
        {"bot": "ünï"},
        {"bøt": "x"},
    ],
)
def test_a_bad_label_is_refused_naming_its_key(labels: dict[str, str]) -> None:
    (key,) = labels
    assert [v.field for v in label_violations(labels)] == [f"labels[{key}]"]


def test_more_than_64_labels_are_refused() -> None:
    labels = {f"k{i}": "" for i in range(65)}
    assert [v.field for v in label_violations(labels)] == ["labels"]


@pytest.mark.parametrize("chosen", ["sig1", "signal-2026-12-03-btc", "a" * 63, "abcdef0123456"])
def test_a_chosen_trade_id_of_the_aip_122_form_is_accepted(chosen: str) -> None:
    assert trade_id_violation(chosen) is None


@pytest.mark.parametrize(
    "chosen",
    ["abc", "a" * 64, "1abc", "Abcd", "abc-", "ab_cd", "ab.cd", "abcdef0123456789", "sïgnal"],
)
def test_a_chosen_trade_id_of_another_form_is_refused(chosen: str) -> None:
    violation = trade_id_violation(chosen)
    assert violation is not None
    assert violation.field == "smart_trade_id"


def test_a_chosen_id_names_a_16_hex_trade_id_of_its_tenant_only() -> None:
    from smarttrade.usecases.create import trade_id_for, trade_id_named

    mine = trade_id_named("tenant-a", "signal-42")

    assert len(mine) == 16
    assert set(mine) <= set("0123456789abcdef")
    assert trade_id_named("tenant-b", "signal-42") != mine
    assert trade_id_for("tenant-a", "any request id", "signal-42") == mine
    assert trade_id_named("tenant-a", mine) == mine  # the service's own id names itself
