"""Units and phase names for display: stored data is in base units (bytes, seconds)."""

from __future__ import annotations

MIB = 2**20
MS_PER_S = 1e3
PHASES = ("train", "eval")  # the two measured phases of a cell


def mib(value: int | float | None) -> str:
    return "-" if value is None else f"{value / MIB:,.2f} MiB"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * MS_PER_S:,.2f} ms"
