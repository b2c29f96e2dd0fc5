"""Axis ticks a reader reads at a glance: plain numbers (100, 200, 500; 1, 2, 5; 1,000),
never "10^0" or "3x10^0", and on a log axis never a lone tick.

A log axis gets its major ticks at 1, 2 and 5 times powers of ten where they fit the
axis's length, one per decade (or per few decades) where they do not, and evenly spaced
round numbers where the axis spans too little for two such ticks (550, 600, 650); its
minor ticks stay unlabelled. No torch, no pyplot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.ticker import FuncFormatter, Locator, MaxNLocator, NullFormatter

# (mantissas within a decade, decades between labelled decades), densest first
LOG_TICK_SETS: tuple[tuple[tuple[int, ...], int], ...] = (
    ((1, 2, 5), 1), ((1, 3), 1), ((1,), 1), ((1,), 2), ((1,), 3), ((1,), 5),
)
MIN_TICKS = 2  # fewer on a log axis and it falls back to evenly spaced round numbers
LINEAR_STEPS = (1, 2, 2.5, 5, 10)  # round steps of the fallback (MaxNLocator's `steps`)
LINEAR_SPARSER = 2  # the fallback's ticks: half as many as the axis could hold
DEFAULT_ROOM = 8  # ticks an axis holds when it cannot say (no axis attached)
SIGNIFICANT = 3  # digits kept after the leading one for values that are not whole


def plain_number(value: float, _position: float | None = None) -> str:
    """1,000 / 20 / 0.5 / 1.25: thousands separated, no exponent, no trailing zeros."""
    if value == 0:
        return "0"
    if abs(value) >= 1 and float(value).is_integer():
        return f"{value:,.0f}"
    decimals = max(0, SIGNIFICANT - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}".rstrip("0").rstrip(".")


def _log_ticks(low: float, high: float, mantissas: Sequence[int], every: int) -> list[float]:
    """mantissa x 10^k for k a multiple of `every`, inside [low, high] (a hair of slack)."""
    slack = 1e-9
    first = math.floor(math.log10(low)) - 1
    last = math.ceil(math.log10(high)) + 1
    return [m * 10.0**k for k in range(first, last + 1) if k % every == 0 for m in mantissas
            if low * (1 - slack) <= m * 10.0**k <= high * (1 + slack)]


def _fits(ticks: list[float], low: float, high: float, room: int) -> bool:
    """Whether the closest two of `ticks` are at least one label's room apart."""
    span = math.log10(high / low)
    gaps = np.diff(np.log10(ticks))
    return len(ticks) <= room and (span <= 0 or gaps.min() / span * room >= 1)


class ReadableLogLocator(Locator):
    """Major ticks of a log axis at plain round numbers that fit the axis's length."""

    def __call__(self) -> Sequence[float]:
        low, high = self.axis.get_view_interval() if self.axis else (1.0, 10.0)
        return self.tick_values(low, high)

    def tick_values(self, vmin: float, vmax: float) -> Sequence[float]:
        low, high = sorted((vmin, vmax))
        if high <= 0:
            return []
        low = low if low > 0 else high / 10
        room = max(MIN_TICKS, self.axis.get_tick_space() if self.axis else DEFAULT_ROOM)
        for mantissas, every in LOG_TICK_SETS:
            ticks = _log_ticks(low, high, mantissas, every)
            if len(ticks) >= MIN_TICKS and _fits(ticks, low, high, room):
                return ticks
            if len(ticks) < MIN_TICKS:
                break  # sparser sets hold no more ticks
        bins = max(MIN_TICKS, room // LINEAR_SPARSER)
        linear = MaxNLocator(nbins=bins, steps=list(LINEAR_STEPS)).tick_values(low, high)
        return [t for t in linear if t > 0]


def readable(ax: Axes, which: str, log: bool) -> None:
    """A linear or log scale on the `which` ("x" or "y") axis of `ax`, with plain-number
    tick labels (a log axis: readable major ticks, unlabelled minor ones)."""
    axis: Axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log" if log else "linear")
    if log:
        axis.set_major_locator(ReadableLogLocator())
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(plain_number))
