"""An error that quotes a caller's value stays small enough for the trailers it travels in
(clients refuse trailers over 8 KiB, and the caller would see RESOURCE_EXHAUSTED instead)."""

from __future__ import annotations

import pytest
from google.rpc import code_pb2, error_details_pb2

from smarttrade.api.errors import MAX_STATUS_BYTES, status_of
from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.errors import NotFound, PreconditionFailed

MEGABYTE = "X" * 1_000_000
WIDE = "𝟏" * 250_000  # a megabyte of four-byte characters


def bad_request(error: Exception) -> error_details_pb2.BadRequest:
    status = status_of(error)
    found = error_details_pb2.BadRequest()
    assert any(detail.Unpack(found) for detail in status.details)
    return found


@pytest.mark.parametrize("value", [MEGABYTE, WIDE])
def test_a_quoted_megabyte_leaves_a_status_within_its_budget(value: str) -> None:
    errors: list[Exception] = [
        InvalidSpec([FieldViolation("symbol", f"{value!r} is not a paper market")]),
        InvalidSpec([FieldViolation(f"initial_balances[{value}]", "must be a currency code")]),
        NotFound("share", value),
        PreconditionFailed("NO_CREDENTIALS", f"{value} needs credentials"),
    ]
    for error in errors:
        status = status_of(error)
        assert status.ByteSize() <= MAX_STATUS_BYTES
        assert len(status.message.encode()) <= 400


def test_many_long_violations_show_the_first_that_fit_and_count_the_rest() -> None:
    wide = "𝟏" * 1000
    violations = [FieldViolation(f"balances[{i}].{wide}", wide) for i in range(1000)]

    status = status_of(InvalidSpec(violations))
    shown = bad_request(InvalidSpec(violations)).field_violations

    assert status.code == code_pb2.INVALID_ARGUMENT
    assert status.ByteSize() <= MAX_STATUS_BYTES
    assert shown[0].field.startswith("balances[0].")
    assert shown[-1].description == f"and {1000 - (len(shown) - 1)} more"


def test_a_short_violation_is_shown_whole() -> None:
    shown = bad_request(InvalidSpec([FieldViolation("price", "must be greater than 0")]))
    assert [(v.field, v.description) for v in shown.field_violations] == [
        ("price", "must be greater than 0")
    ]
