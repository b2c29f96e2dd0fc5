"""Checks of single values, each raising BadInput with one sentence that names the flag."""

from __future__ import annotations

import math
from typing import Any

from ffbench.errors import BadInput

INT64_MAX = 2**63 - 1  # the largest integer a result column (parquet int64) holds
INT64_MIN = -(2**63)


def whole_number(flag: str, value: Any, low: int, high: int = INT64_MAX) -> int:
    """An int (not a bool) in [low, high]: what the code and an int64 column can hold."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"--{flag} must be a whole number, got {value!r}")
    if value < low:
        word = "at least 1" if low == 1 else f"{low} or more"
        raise BadInput(f"--{flag} must be {word}, got {value}")
    if value > high:
        raise BadInput(f"--{flag} must be at most {high}, got {value}")
    return value


def finite_number(flag: str, value: Any) -> float:
    """A real, finite number (inf and nan refused: they make every result meaningless)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"--{flag} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise BadInput(f"--{flag} must be a finite number, got {value}")
    return float(value)


def positive_number(flag: str, value: Any) -> float:
    if not finite_number(flag, value) > 0:
        raise BadInput(f"--{flag} must be positive, got {value}")
    return float(value)


def one_of(flag: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BadInput(f"unknown {flag} {value!r} (use one of: {', '.join(choices)})")


def storable(what: str, value: Any) -> None:
    """A JSON value whose numbers are finite floats or int64 integers, nested or not."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise BadInput(f"{what}: {value} does not fit in 64 bits")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise BadInput(f"{what} must be a finite number, got {value}")
    elif isinstance(value, (list, tuple)):
        for item in value:
            storable(what, item)
    elif isinstance(value, dict):
        for item in value.values():
            storable(what, item)
    else:
        raise BadInput(f"{what}: cannot use a {type(value).__name__}")
