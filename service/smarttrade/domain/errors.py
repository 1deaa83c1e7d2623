"""Errors of the core. The API maps each to one gRPC status in exactly one place."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class DomainError(Exception):
    """Base of the core's errors."""


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad input field. `field` is the request path, e.g. `take_profit.steps[1].price`."""

    field: str
    description: str


class InvalidSpec(DomainError):
    """The request breaks one or more rules; every bad field is named, once."""

    def __init__(self, violations: list[FieldViolation]) -> None:
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in violations))
        self.violations = tuple(violations)


class ActionNotAllowed(DomainError):
    """The action is not on the trade-management menu in the trade's current state."""

    def __init__(self, state: Enum, action: Enum, detail: str = "") -> None:
        message = f"{action.value} is not allowed while the trade is {state.value}"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.state = state
        self.action = action


class InvalidTransition(DomainError):
    """A transition missing from a transition table: a bug in the core, never user input."""

    def __init__(self, machine: str, state: Enum, trigger: Enum) -> None:
        super().__init__(f"{machine}: no transition from {state.value} on {trigger.value}")
        self.state = state
        self.trigger = trigger
