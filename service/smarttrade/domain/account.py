"""An exchange account: where a tenant's trades run, a real venue's or a paper one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

PAPER = "paper"


@dataclass(frozen=True, slots=True)
class PaperSettings:
    """How a paper account's orders fill (DESIGN §2.9): fees as rates, slippage in percent."""

    maker_fee_rate: Decimal = Decimal("0.001")
    taker_fee_rate: Decimal = Decimal("0.001")
    slippage_percent: Decimal = Decimal(0)
    partial_fills: bool = False


@dataclass(frozen=True, slots=True)
class Credentials:
    """A real venue's API credentials, as given; sealed before they are stored, never
    shown (no repr)."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    password: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class ExchangeAccount:
    id: str
    tenant_id: str
    display_name: str
    exchange: str
    created_at: datetime
    sealed_credentials: bytes | None = None  # never opened outside the venue's factory
    paper_settings: PaperSettings | None = None

    @property
    def is_paper(self) -> bool:
        return self.exchange == PAPER
