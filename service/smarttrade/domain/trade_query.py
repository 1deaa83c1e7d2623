"""Which trades a list selects, and in which order: ListSmartTrades' `filter` (AIP-160) and
`order_by` (AIP-132), parsed into values the store translates to SQL (store/trade_query.py).

The grammar is AIP-160's, on the fields a trader looks trades up by:

    expression  = sequence { "AND" sequence }        (juxtaposition is AND too)
    sequence    = factor { "OR" factor }              (OR binds tighter than AND)
    factor      = [ "NOT" | "-" ] ( "(" expression ")" | term )
    term        = field operator value | "labels." key ":" "*" | "labels" ":" key

Fields: `state`, `side`, `close_reason` (enum names, with or without their prefix:
`ACTIVE`, `SMART_TRADE_STATE_ACTIVE`), `symbol`, `account` (`exchangeAccounts/{id}`),
`labels.{key}`, and the times `create_time` and `end_time` (RFC 3339, quoted). Text values
may be quoted with `"` (with `\\"` and `\\\\` inside) or bare. Times compare with `=`, `!=`,
`<`, `<=`, `>`, `>=`; the other fields with `=` and `!=`.

A term on a value a trade does not have (no close reason, no end time, no such label) is
false, and its `!=` is true: `close_reason != STOP_LOSS` selects the open trades too, and
`NOT x` is always the opposite of `x`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from smarttrade.domain.errors import FieldViolation, InvalidSpec
from smarttrade.domain.fsm import TradeState
from smarttrade.domain.labels import LABEL_KEY
from smarttrade.domain.model import CloseReason
from smarttrade.domain.values import Side

MAX_FILTER = 2000  # characters
MAX_TERMS = 50
MAX_DEPTH = 16
ACCOUNT_NAME = re.compile(r"exchangeAccounts/([0-9a-f]{1,64})")
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
EQUALITY = ("=", "!=")
# The enum-valued fields, with the prefix their values carry in the contract.
ENUMS: dict[str, tuple[type[Enum], str]] = {
    "state": (TradeState, "SMART_TRADE_STATE_"),
    "side": (Side, "SIDE_"),
    "close_reason": (CloseReason, "CLOSE_REASON_"),
}
TIMES = ("create_time", "end_time")
TEXTS = ("symbol", "account")
FIELDS = (*ENUMS, *TEXTS, *TIMES, "labels")


# ---- the parsed filter --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """`field op value`. `value` is an Enum member, a str, or a datetime; for `labels` the
    label's `key`, and `op` ":" (the label is set) with no value."""

    field: str
    op: str
    value: Enum | str | datetime | None = None
    key: str = ""


@dataclass(frozen=True, slots=True)
class AllOf:
    parts: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    parts: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class NotOf:
    part: Filter


Filter = Term | AllOf | AnyOf | NotOf


class SortKey(Enum):
    CREATE_TIME = "create_time"
    UPDATE_TIME = "update_time"
    REALIZED_PNL = "realized_pnl"


@dataclass(frozen=True, slots=True)
class Order:
    key: SortKey = SortKey.CREATE_TIME
    descending: bool = True


NEWEST_FIRST = Order()


def order_by(text: str) -> Order:
    """AIP-132 `order_by`: one field, ascending unless followed by `desc` (`asc` is allowed).
    Empty: newest first."""
    words = text.split()
    if not words:
        return NEWEST_FIRST
    keys = {key.value: key for key in SortKey}
    if (
        len(words) > 2
        or words[0] not in keys
        or (len(words) == 2 and words[1] not in ("asc", "desc"))
    ):
        raise InvalidSpec(
            [
                FieldViolation(
                    "order_by",
                    f"must be one of {', '.join(keys)}, optionally followed by ' desc'",
                )
            ]
        )
    return Order(keys[words[0]], words[-1] == "desc")


# ---- parsing ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op><=|>=|!=|=|<|>|:|\(|\)|\*)
      | (?P<minus>-(?=[A-Za-z(]))
      | (?P<word>[A-Za-z0-9_][A-Za-z0-9_.\-/]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # string, op, minus, word, end
    text: str
    at: int


def _refused(description: str) -> InvalidSpec:
    return InvalidSpec([FieldViolation("filter", description)])


def _tokens(text: str) -> list[_Token]:
    tokens, at = [], 0
    while at < len(text):
        if text[at:].isspace():
            break
        match = _TOKEN.match(text, at)
        if match is None or match.lastgroup is None:
            raise _refused(f"unexpected character at position {at + 1}")
        kind = match.lastgroup
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        at = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def parse_filter(text: str) -> Filter | None:
    """The filter of an AIP-160 expression; None when it is empty. Raises `InvalidSpec`
    naming `filter` on bad syntax, an unknown field, or a value the field cannot have."""
    if len(text) > MAX_FILTER:
        raise _refused(f"must be at most {MAX_FILTER} characters")
    if not text.strip():
        return None
    return _Parser(_tokens(text)).whole()


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self._tokens = tokens
        self._at = 0
        self._terms = 0
        self._depth = 0

    def whole(self) -> Filter:
        found = self._expression()
        if self._peek().kind != "end":
            raise self._unexpected()
        return found

    def _peek(self) -> _Token:
        return self._tokens[self._at]

    def _next(self) -> _Token:
        token = self._tokens[self._at]
        self._at += 1
        return token

    def _unexpected(self) -> InvalidSpec:
        token = self._peek()
        if token.kind == "end":
            return _refused("ends too early")
        return _refused(f"unexpected {token.text!r} at position {token.at + 1}")

    def _is_word(self, word: str) -> bool:
        token = self._peek()
        return token.kind == "word" and token.text == word

    def _expression(self) -> Filter:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _refused(f"must nest at most {MAX_DEPTH} levels")
        parts = [self._sequence()]
        while True:
            if self._is_word("AND"):
                self._next()
            elif self._peek().kind in ("end",) or self._peek().text == ")":
                break
            parts.append(self._sequence())
        self._depth -= 1
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def _sequence(self) -> Filter:
        parts = [self._factor()]
        while self._is_word("OR"):
            self._next()
            parts.append(self._factor())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def _factor(self) -> Filter:
        if self._is_word("NOT") or self._peek().kind == "minus":
            self._next()
            return NotOf(self._factor())
        token = self._peek()
        if token.kind == "op" and token.text == "(":
            self._next()
            inner = self._expression()
            if self._next().text != ")":
                self._at -= 1
                raise self._unexpected()
            return inner
        return self._term()

    def _term(self) -> Term:
        token = self._next()
        if token.kind != "word" or token.text in ("AND", "OR", "NOT"):
            self._at -= 1
            raise self._unexpected()
        self._terms += 1
        if self._terms > MAX_TERMS:
            raise _refused(f"must have at most {MAX_TERMS} terms")
        field, _, key = token.text.partition(".")
        if field not in FIELDS or (key and field != "labels") or (field == "labels" and "." in key):
            raise _refused(f"cannot filter on {token.text!r}; fields: {', '.join(FIELDS)}")
        operator = self._next()
        if operator.kind != "op" or operator.text not in (*COMPARISONS, ":"):
            self._at -= 1
            raise self._unexpected()
        if field == "labels":
            return self._label_term(key, operator.text)
        if operator.text == ":" or (field not in TIMES and operator.text not in EQUALITY):
            raise _refused(f"{field} takes {' or '.join(EQUALITY)}")
        value = self._value()
        if field in ENUMS:
            return Term(field, operator.text, _enum_value(field, value))
        if field == "account":
            match = ACCOUNT_NAME.fullmatch(value)
            if match is None:
                raise _refused("account must be exchangeAccounts/{account}")
            return Term(field, operator.text, match[1])
        if field == "symbol":
            return Term(field, operator.text, value)
        return Term(field, operator.text, _time_value(field, value))

    def _label_term(self, key: str, operator: str) -> Term:
        if not key:  # `labels:key`: the label is set
            if operator != ":":
                raise _refused("labels must be compared as labels.{key}")
            key = self._value()
            self._check_key(key)
            return Term("labels", ":", None, key)
        self._check_key(key)
        if operator == ":":
            star = self._next()
            if star.text != "*":
                self._at -= 1
                raise self._unexpected()
            return Term("labels", ":", None, key)
        if operator not in EQUALITY:
            raise _refused(f"labels take {' or '.join(EQUALITY)}")
        return Term("labels", operator, self._value(), key)

    @staticmethod
    def _check_key(key: str) -> None:
        if not LABEL_KEY.fullmatch(key):
            raise _refused(f"{key!r} is not a label key")

    def _value(self) -> str:
        token = self._next()
        if token.kind == "string":
            return re.sub(r"\\(.)", r"\1", token.text[1:-1])
        if token.kind == "word" and token.text not in ("AND", "OR", "NOT"):
            return token.text
        self._at -= 1
        raise self._unexpected()


def _enum_value(field: str, value: str) -> Enum:
    kind, prefix = ENUMS[field]
    name = value.removeprefix(prefix)
    try:
        return kind[name]
    except KeyError:
        names = ", ".join(member.name for member in kind)
        raise _refused(f"{field} must be one of {names}") from None


def _time_value(field: str, value: str) -> datetime:
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or "T" not in value.upper():
        raise _refused(f"{field} must be an RFC 3339 time with its offset, in quotes")
    return at


def canonical(found: Filter | None) -> str:
    """A filter as one text, equal for equal filters: what a page token is bound to."""
    return repr(found)
