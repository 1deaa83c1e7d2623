"""The `smarttrade` CLI reads numbers as the service does: ASCII digits only. Python's
`Decimal("١٢٣")` is 123, so without the check the CLI would turn another script's digits
into a real order's size."""

from __future__ import annotations

import argparse
from datetime import timedelta
from decimal import Decimal

import pytest

from smarttrade_client.cli.commands import duration
from smarttrade_client.cli.connection import UsageError
from smarttrade_client.cli.trade_settings import decimal, entry, stop_loss, take_profit

NON_ASCII_DIGITS = ["１２３", "١٢٣", "𝟏𝟎𝟎", "1.٥"]


@pytest.mark.parametrize("text", NON_ASCII_DIGITS)
def test_a_flag_in_another_scripts_digits_is_not_a_number(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        decimal(text)


@pytest.mark.parametrize("text", NON_ASCII_DIGITS)
def test_a_trade_file_value_in_another_scripts_digits_is_refused_naming_it(text: str) -> None:
    with pytest.raises(UsageError, match=r"entry\.units"):
        entry({"type": "market", "units": text})
    with pytest.raises(UsageError, match=r"stop_loss\.price"):
        stop_loss({"price": text})
    with pytest.raises(UsageError, match="volume_percent"):
        take_profit([{"price": "110", "volume_percent": text}])


@pytest.mark.parametrize("text", ["٩٠s", "１h", "𝟏𝟎m"])
def test_a_ttl_in_another_scripts_digits_is_refused(text: str) -> None:
    with pytest.raises(UsageError):
        duration(text)


def test_ascii_numbers_still_read() -> None:
    assert decimal("12.5") == Decimal("12.5")
    assert entry({"type": "market", "units": "0.5"}).units == Decimal("0.5")
    assert duration("1h30m") == timedelta(minutes=90)
