"""Invariant checks that survive `python -O`.

Plain `assert` is stripped under -O, and a replica must never silently continue past a broken
assumption (DESIGN section 5), so every bound and protocol assumption is checked with these
helpers. They raise `InvariantError`, which is never caught on purpose: a replica that breaks an
invariant must stop (fail-stop), not limp on.
"""

from __future__ import annotations


class InvariantError(AssertionError):
    """A broken internal invariant: a bug, never bad user input."""


def check(condition: object, message: str = "invariant violated") -> None:
    """Raise InvariantError unless `condition` is truthy; cheap enough for hot paths."""
    if not condition:
        raise InvariantError(message)


def check_range(value: int, low: int, high: int, name: str) -> int:
    """Check low <= value <= high and return value; the message names the bound."""
    if not (low <= value <= high):
        raise InvariantError(f"{name}={value} outside [{low}, {high}]")
    return value
