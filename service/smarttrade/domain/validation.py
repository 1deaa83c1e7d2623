"""The rules a trade's settings must meet (DESIGN §2.5), one violation per bad field.

Field paths are those of the API (`take_profit.steps[1].price`) so a caller can point at the
field. Parsing (decimal strings, enums) happens at the API boundary; these are the trading
rules, checked against the market's precision and limits.

Prices are checked as they will be sent, rounded to the market's tick: a price that rounds
to zero is refused, and a target must be beyond the entry after rounding (a BUY limit entry
at 50,000 with a target of 50,000.004 on a 0.01 tick would sell at its own entry price).

For an edit of an ACTIVE trade (DESIGN §2.7) "the entry" is the average entry price, not the
price the entry settings name (a conditional's trigger, a limit): targets stay beyond it;
the stop may lie on either side of it (moved into profit it locks the profit in), but not
where the last price has already crossed it, which would fire it on the spot.

Prices and sizes in messages are plain decimals ("990", never "9.9E+2").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from decimal import Decimal

from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.market import Market
from smarttrade.domain.prices import at_or_before, at_or_beyond, offset
from smarttrade.domain.spec import (
    MAX_TAKE_PROFIT_STEPS,
    EntrySpec,
    EntryType,
    LeverageSpec,
    MarginMode,
    MarketType,
    StopLossSpec,
    TakeProfitStepSpec,
    TradeSpec,
    TriggerPrice,
)
from smarttrade.domain.values import OrderType, Side, plain

HUNDRED = Decimal(100)


def entry_price_estimate(entry: EntrySpec, last_price: Decimal) -> Decimal:
    """The price the entry is expected to execute at, for size conversion and side checks."""
    if entry.type is EntryType.SKIP and entry.average_price:
        return entry.average_price
    if entry.executes_as_limit and entry.limit_price:
        return entry.limit_price
    if entry.type is EntryType.CONDITIONAL and entry.trigger_price:
        return entry.trigger_price
    return last_price


def entry_units(entry: EntrySpec, market: Market, price: Decimal) -> Decimal:
    """The entry size in base units, rounded down to the lot."""
    if entry.units is not None:
        return market.round_amount(entry.units)
    assert entry.total is not None
    return market.round_amount(entry.total / price)


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """What the exits of an ACTIVE trade are checked against when they are edited."""

    average_entry_price: Decimal
    last_price: Decimal | None


def check_spec(
    spec: TradeSpec,
    market: Market,
    reference_price: Decimal,
    position: OpenPosition | None = None,
) -> None:
    """Raise `InvalidSpec` naming every bad field. `reference_price` is the last price the
    entry's size is converted at (PENDING); `position` is the open position of an ACTIVE
    trade, whose average entry the exits are checked against."""
    violations = spec_violations(spec, market, reference_price, position)
    if violations:
        raise InvalidSpec(violations)


def spec_violations(
    spec: TradeSpec,
    market: Market,
    reference_price: Decimal,
    position: OpenPosition | None = None,
) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    entry_price = entry_price_estimate(spec.entry, reference_price)
    _check_entry(spec.entry, market, entry_price, out)
    if position is not None:
        entry_price = position.average_entry_price
    entry_price = market.round_price(entry_price)
    _check_take_profit(spec.take_profit, spec.side, market, entry_price, out)
    if spec.stop_loss is not None:
        stop = spec.stop_loss
        active = position is not None
        _check_stop_loss(stop, spec.side, market, entry_price, len(spec.take_profit), out, active)
        if position is not None and not out:
            _check_stop_not_crossed(stop, spec.side, market, position, out)
    _check_leverage(spec.leverage, out)
    _whole_seconds(spec.time_limit, "time_limit", out)
    return out


def _positive(value: Decimal | None, field: str, out: list[FieldViolation]) -> bool:
    if value is not None and value <= 0:
        out.append(FieldViolation(field, "must be greater than 0"))
        return False
    return value is not None


def _price(value: Decimal | None, field: str, market: Market, out: list[FieldViolation]) -> bool:
    """A price must be positive on the market's tick: orders go out rounded to it."""
    if not _positive(value, field, out) or value is None:
        return False
    if market.round_price(value) <= 0:
        out.append(
            FieldViolation(field, f"must be at least the tick size {plain(market.price_tick)}")
        )
        return False
    return True


def _percent(value: Decimal | None, field: str, out: list[FieldViolation]) -> None:
    if value is not None and not 0 < value < HUNDRED:
        out.append(FieldViolation(field, "must be between 0 and 100, exclusive"))


def _absent(value: object, field: str, why: str, out: list[FieldViolation]) -> None:
    if value is not None:
        out.append(FieldViolation(field, f"must be empty {why}"))


def _check_entry(
    entry: EntrySpec, market: Market, price: Decimal, out: list[FieldViolation]
) -> None:
    kind = entry.type
    if (entry.units is None) == (entry.total is None):
        out.append(FieldViolation("entry.units", "exactly one of units or total is required"))
    size_ok = _positive(entry.units, "entry.units", out) or _positive(
        entry.total, "entry.total", out
    )
    wants_limit = entry.executes_as_limit
    if wants_limit:
        if entry.limit_price is None:
            out.append(FieldViolation("entry.limit_price", f"is required for a {_kind(entry)}"))
        _price(entry.limit_price, "entry.limit_price", market, out)
    else:
        _absent(entry.limit_price, "entry.limit_price", f"for a {_kind(entry)}", out)
    if kind is EntryType.CONDITIONAL:
        if entry.trigger_price is None:
            out.append(FieldViolation("entry.trigger_price", "is required for CONDITIONAL"))
        _price(entry.trigger_price, "entry.trigger_price", market, out)
    else:
        _absent(entry.trigger_price, "entry.trigger_price", f"for {kind.value}", out)
    if kind is EntryType.SKIP:
        if entry.average_price is None:
            out.append(FieldViolation("entry.average_price", "is required for SKIP"))
        _price(entry.average_price, "entry.average_price", market, out)
    else:
        _absent(entry.average_price, "entry.average_price", f"for {kind.value}", out)
    if entry.trailing_percent is not None:
        if wants_limit or kind is EntryType.SKIP:
            out.append(
                FieldViolation("entry.trailing_percent", "trailing entries execute at market")
            )
        _percent(entry.trailing_percent, "entry.trailing_percent", out)
    if size_ok and price > 0 and not out:
        units = entry_units(entry, market, price)
        field = "entry.units" if entry.units is not None else "entry.total"
        if units <= 0 or units < market.min_amount:
            out.append(
                FieldViolation(
                    field, f"is below the market minimum of {plain(market.min_amount)} base"
                )
            )
        elif units * price < market.min_cost:
            out.append(
                FieldViolation(
                    field, f"is below the market minimum cost of {plain(market.min_cost)}"
                )
            )
        elif market.max_amount is not None and units > market.max_amount:
            out.append(
                FieldViolation(field, f"is above the market maximum {plain(market.max_amount)}")
            )


def _beyond(side: Side, price: Decimal | None, entry_price: Decimal) -> bool:
    """Strictly beyond the entry on the favourable side of `side`."""
    return price is not None and at_or_beyond(side, price, entry_price) and price != entry_price


def _kind(entry: EntrySpec) -> str:
    if entry.type is EntryType.CONDITIONAL:
        return f"CONDITIONAL entry with a {entry.order_type.value} order"
    return f"{entry.type.value} entry"


def _check_take_profit(
    steps: tuple[TakeProfitStepSpec, ...],
    side: Side,
    market: Market,
    entry_price: Decimal,
    out: list[FieldViolation],
) -> None:
    if len(steps) > MAX_TAKE_PROFIT_STEPS:
        out.append(
            FieldViolation("take_profit.steps", f"at most {MAX_TAKE_PROFIT_STEPS} steps allowed")
        )
        return
    for index, step in enumerate(steps):
        path = f"take_profit.steps[{index}]"
        if (step.price is None) == (step.percent is None):
            out.append(FieldViolation(f"{path}.price", "exactly one of price or percent"))
        price_ok = _price(step.price, f"{path}.price", market, out)
        if (
            price_ok
            and step.price
            and not _beyond(side, market.round_price(step.price), entry_price)
        ):
            where = "above" if side is Side.BUY else "below"
            out.append(
                FieldViolation(
                    f"{path}.price", f"must be {where} the entry price {plain(entry_price)}"
                )
            )
        if _positive(step.percent, f"{path}.percent", out) and side is Side.SELL:
            _percent(step.percent, f"{path}.percent", out)
        _positive(step.volume_percent, f"{path}.volume_percent", out)
        if step.trailing_percent is not None:
            if index != len(steps) - 1:
                out.append(
                    FieldViolation(f"{path}.trailing_percent", "only the last step may trail")
                )
            _percent(step.trailing_percent, f"{path}.trailing_percent", out)
    if steps and sum(step.volume_percent for step in steps) != HUNDRED:
        out.append(FieldViolation("take_profit.steps", "volume_percent must sum to exactly 100"))


def _check_stop_loss(
    stop: StopLossSpec,
    side: Side,
    market: Market,
    entry_price: Decimal,
    step_count: int,
    out: list[FieldViolation],
    active: bool = False,
) -> None:
    if (stop.price is None) == (stop.percent is None):
        out.append(FieldViolation("stop_loss.price", "exactly one of price or percent"))
    price_ok = _price(stop.price, "stop_loss.price", market, out)
    if (
        price_ok
        and stop.price
        and not active
        and not _beyond(side.opposite, market.round_price(stop.price), entry_price)
    ):
        where = "below" if side is Side.BUY else "above"
        out.append(
            FieldViolation(
                "stop_loss.price", f"must be {where} the entry price {plain(entry_price)}"
            )
        )
    if _positive(stop.percent, "stop_loss.percent", out) and side is Side.BUY:
        _percent(stop.percent, "stop_loss.percent", out)
    if stop.order_type is OrderType.LIMIT:
        if stop.limit_price is None:
            out.append(FieldViolation("stop_loss.limit_price", "is required for a LIMIT stop"))
        _price(stop.limit_price, "stop_loss.limit_price", market, out)
    else:
        _absent(stop.limit_price, "stop_loss.limit_price", "for a MARKET stop", out)
    if stop.timeout is not None and (
        stop.timeout.total_seconds() <= 0 or stop.timeout.microseconds
    ):
        out.append(
            FieldViolation("stop_loss.timeout", "must be a positive whole number of seconds")
        )
    if stop.order_type is OrderType.LIMIT:
        _whole_seconds(stop.fallback_after, "stop_loss.fallback_after", out)
        if _positive(stop.fallback_percent, "stop_loss.fallback_percent", out):
            _percent(stop.fallback_percent, "stop_loss.fallback_percent", out)
    else:
        _absent(stop.fallback_after, "stop_loss.fallback_after", "for a MARKET stop", out)
        _absent(stop.fallback_percent, "stop_loss.fallback_percent", "for a MARKET stop", out)
    _percent(stop.trailing_percent, "stop_loss.trailing_percent", out)
    if stop.move_to_breakeven and step_count < 2:
        out.append(
            FieldViolation("stop_loss.move_to_breakeven", "needs at least 2 take-profit steps")
        )


MAX_DURATION = timedelta(days=365)


def _whole_seconds(value: timedelta | None, field: str, out: list[FieldViolation]) -> None:
    """A duration of the settings: whole seconds, more than 0 and at most a year."""
    if value is not None and (value <= timedelta(0) or value.microseconds or value > MAX_DURATION):
        out.append(FieldViolation(field, "must be whole seconds, more than 0 and at most a year"))


def _check_stop_not_crossed(
    stop: StopLossSpec,
    side: Side,
    market: Market,
    position: OpenPosition,
    out: list[FieldViolation],
) -> None:
    """An edited stop of an ACTIVE trade must not be where the last price already is."""
    last = position.last_price
    if stop.price is not None:
        level, field = market.round_price(stop.price), "stop_loss.price"
    elif stop.percent is not None:
        below = offset(side, position.average_entry_price, -stop.percent)
        level, field = market.round_price(below), "stop_loss.percent"
    else:
        return
    if last is not None and at_or_before(side, last, level):
        where = "below" if side is Side.BUY else "above"
        out.append(
            FieldViolation(
                field, f"puts the stop at {plain(level)}, not {where} the last price {plain(last)}"
            )
        )


def unsupported(spec: TradeSpec, market: Market) -> list[FieldViolation]:
    """What the market cannot run: a futures (LINEAR) trade needs a venue's perpetual
    (BTC/USDT:USDT), a leverage the market allows (whole, 1 to its maximum where the venue
    says it, and with an initial margin above its maintenance margin) and an entry of its
    own (a SKIP entry claims a position the trade did not open, whose leverage it cannot
    know); a spot trade
    needs a spot market. Checked at creation only: an edit cannot change a trade's market
    type, leverage or symbol."""
    leverage = spec.leverage
    if spec.trigger_price is TriggerPrice.MARK and not market.is_contract:
        message = "MARK is a perpetual's price: LINEAR trades only"
        return [FieldViolation("trigger_price", message)]
    if leverage.market_type is MarketType.SPOT:
        if market.is_contract:
            message = f"{spec.symbol} is a perpetual contract: set leverage.market_type LINEAR"
            return [FieldViolation("symbol", message)]
        return []  # a margin mode on spot is ignored, as the contract says
    if not market.is_contract:
        message = (
            f"{spec.symbol} is a spot market: a LINEAR trade needs a perpetual such as"
            f" {market.base}/{market.quote}:{market.quote}"
        )
        return [FieldViolation("symbol", message)]
    out: list[FieldViolation] = []
    value = leverage.value if leverage.value is not None else Decimal(1)
    # A venue that does not say its ceiling refuses a leverage above it when it is set
    # (before the entry: the trade then fails with the venue's reason).
    ceiling = market.max_leverage
    if value != value.to_integral_value() or value < 1 or (ceiling and value > ceiling):
        top = f" to {plain(ceiling)}" if ceiling else " up"
        message = f"must be a whole number from 1{top} on {spec.symbol}"
        out.append(FieldViolation("leverage.value", message))
    elif 1 / value <= market.maintenance_rate:
        rate = plain(market.maintenance_rate * HUNDRED)
        message = f"{plain(value)}x leaves no margin above the {rate}% maintenance margin"
        out.append(FieldViolation("leverage.value", message))
    if spec.entry.type is EntryType.SKIP:
        message = "a futures trade opens its own position: SKIP is for coins already held"
        out.append(FieldViolation("entry.type", message))
    return out


def shared_position_conflict(spec: TradeSpec, live: list[tuple[str, TradeSpec]]) -> str | None:
    """Why a futures trade cannot run beside the account's `live` trades on its symbol, or
    None. A one-way futures account nets every order on a symbol into one position at one
    leverage and margin mode: trades of the other side would close each other's position,
    and another leverage or margin mode would change the one the others run at. Trades of
    one side at one setting share the position (reconciliation adds them up). `spec` has
    its defaults (`futures_defaults`)."""
    if spec.leverage.market_type is MarketType.SPOT:
        return None
    for trade_id, other in live:
        other = futures_defaults(other)
        if other.side is not spec.side:
            return (
                f"trade {trade_id} is a live {other.side.value} on {spec.symbol} of this account:"
                " a futures account holds one position per symbol (one-way mode)"
            )
        if other.leverage != spec.leverage:
            mode = other.leverage.margin_mode
            return (
                f"trade {trade_id} runs {spec.symbol} of this account at"
                f" {plain(other.leverage.value or Decimal(1))}x"
                f" {mode.value if mode else ''}: trades on one position share its leverage"
                " and margin mode"
            )
    return None


def futures_defaults(spec: TradeSpec) -> TradeSpec:
    """A LINEAR trade's leverage as it runs: 1 when not set, ISOLATED when no margin mode
    is (the contract's default: a trade risks its own margin, not the account)."""
    leverage = spec.leverage
    if leverage.market_type is MarketType.SPOT:
        return spec
    return replace(
        spec,
        leverage=replace(
            leverage,
            value=leverage.value if leverage.value is not None else Decimal(1),
            margin_mode=leverage.margin_mode or MarginMode.ISOLATED,
        ),
    )


def _check_leverage(leverage: LeverageSpec, out: list[FieldViolation]) -> None:
    if leverage.value is None:
        return
    if leverage.value < 1:
        out.append(FieldViolation("leverage.value", "must be at least 1"))
    elif leverage.market_type is MarketType.SPOT and leverage.value != 1:
        out.append(FieldViolation("leverage.value", "spot markets have no leverage"))
