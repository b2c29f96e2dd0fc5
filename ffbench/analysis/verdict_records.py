"""What the verdict (ffbench.analysis.verdict) is made of: its phases and rules, and the
records it returns (a group, one comparison, a time, an accuracy, how the answer moves with
the optimizer)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ffbench.algorithms.resolve import NEUTRAL_EVAL_CHUNK
from ffbench.settings.cell import (
    default_of,
)
from ffbench.units import MIB

GROUP = ["source", "optimizer", "dtype", "batch_size", "hidden"]
KEYS = [*GROUP, "algorithm", "n_layers"]
TRAIN = "train"
EVAL_EQUAL = "eval at equal rows"
EVAL_PUBLISHED = "eval as published"
LARGER = "larger of train and fair eval"
PHASES = (TRAIN, EVAL_EQUAL, EVAL_PUBLISHED, LARGER)
HEADLINE_PHASES = (LARGER, TRAIN)  # the lines lead with the first of these in the results
STRONGEST = "strongest backprop"  # the baseline that is, at each depth, the lowest backprop
SAME_FRACTION = 0.01  # "about the same": under 1% of the backprop's peak apart ...
SAME_BYTES = 4 * MIB  # ... or under 4 MiB apart
PERCENT_POINTS = 100
# which of an FF cell's eval settings it is: replicated rows within the eval batch, every
# label of the whole batch at once (eval_chunk 0), or chunks larger than the eval batch
EQUAL_ROWS, PUBLISHED_ROWS, OTHER_ROWS = "equal", "published", "other"
# what a row without a setting had: written before the setting existed (optimizer, dtype),
# or a backprop's, for which eval_chunk does nothing (FF rows from before it had a default
# held all rows at once)
SETTING_DEFAULTS = {"optimizer": default_of("optimizer"), "dtype": default_of("dtype"),
                    "eval_chunk": NEUTRAL_EVAL_CHUNK}


# ---- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InGroup:
    """Where a record belongs: its group's settings (GROUP, in its order)."""

    source: str
    optimizer: str
    dtype: str
    batch_size: int
    hidden: int

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.source, self.optimizer, self.dtype, self.batch_size, self.hidden)


@dataclass(frozen=True)
class Group(InGroup):
    """One group of cells: what the verdict compares within, and what it holds."""

    measure: str  # how its peaks were obtained: "predicted on meta", "CUDA allocated", ...
    eval_batch_size: int  # the largest eval batch of its cells
    backprops: tuple[str, ...]  # registry order
    variants: tuple[str, ...]  # the FF variants, registry order
    notes: tuple[str, ...]  # phases not in these results, and why


@dataclass(frozen=True)
class Comparison(InGroup):
    """One FF variant against one baseline in one phase, over the depths both reached."""

    algorithm: str
    baseline: str  # a backprop's name, or STRONGEST
    phase: str
    deepest: int  # the deepest depth both reached
    ratio: float  # the algorithm's peak over the baseline's, at `deepest`
    bytes: float  # the algorithm's peak at `deepest`
    baseline_bytes: float
    backprop: str  # the backprop the baseline was at `deepest` (for STRONGEST: the lowest)
    below_from: int | None  # below from this depth on, at every deeper depth; None: never
    about_same: bool  # under SAME_FRACTION or SAME_BYTES apart at `deepest`
    first_depth: int  # the shallowest depth both reached
    algorithm_deepest: int  # the deepest depth the algorithm reached in this phase
    baseline_deepest: int  # ... and the baseline

    @property
    def difference_bytes(self) -> float:
        return self.bytes - self.baseline_bytes

    @property
    def saves(self) -> bool:
        return not self.about_same and self.ratio < 1


@dataclass(frozen=True)
class TimeComparison(InGroup):
    """Median train step time of an FF variant against a backprop, measured cells only."""

    algorithm: str
    baseline: str  # a backprop's name, or STRONGEST (the strongest by memory, headline phase)
    backprop: str  # the backprop timed
    depth: int  # the deepest depth both were timed at
    seconds: float
    baseline_seconds: float
    measured_on: str  # the device: "cpu", or the GPU's name

    @property
    def ratio(self) -> float:
        return self.seconds / self.baseline_seconds


@dataclass(frozen=True)
class AccuracyComparison(InGroup):
    """Test accuracy of an FF variant against bp's at the deepest depth both have."""

    algorithm: str
    depth: int
    accuracy: float  # a fraction: the median over the cells (seeds) run
    baseline_accuracy: float
    dataset: str
    epochs: str
    runs: int = 1  # cells (seeds) behind `accuracy`
    low: float = 0.0  # the lowest and highest of them
    high: float = 0.0
    baseline_runs: int = 1
    baseline_low: float = 0.0
    baseline_high: float = 0.0

    @property
    def points(self) -> float:
        return (self.accuracy - self.baseline_accuracy) * PERCENT_POINTS


@dataclass(frozen=True)
class OptimizerShift:
    """How one FF variant's headline ratio against the strongest backprop moves from the
    reference optimizer to another, the rest of the group the same."""

    source: str
    dtype: str
    batch_size: int
    hidden: int
    algorithm: str
    phase: str
    reference: str  # the reference optimizer (the default where present)
    other: str
    reference_ratio: float
    other_ratio: float
    reference_backprop: str  # the strongest backprop under each
    other_backprop: str
    reference_depth: int
    other_depth: int


@dataclass(frozen=True)
class Verdict:
    groups: list[Group]
    comparisons: list[Comparison]
    depths: pd.DataFrame  # per depth: GROUP, algorithm, baseline, phase, n_layers, ratio, ...
    times: list[TimeComparison]
    accuracies: list[AccuracyComparison]
    shifts: list[OptimizerShift]

    def frame(self) -> pd.DataFrame:
        """The comparisons, one row each."""
        columns = [f.name for f in dataclasses.fields(Comparison)]
        return pd.DataFrame([dataclasses.asdict(c) for c in self.comparisons], columns=columns)

    def find(self, algorithm: str, baseline: str, phase: str,
             group: Group | None = None) -> Comparison | None:
        """The comparison, in `group` (default: the only group)."""
        key = (group or self.groups[0]).key
        for c in self.comparisons:
            if (c.algorithm, c.baseline, c.phase) == (algorithm, baseline, phase) and \
                    c.key == key:
                return c
        return None

    def headline_phase(self, group: Group) -> str:
        return headline({c.phase for c in self.comparisons if c.key == group.key})


def headline(phases: Iterable[str]) -> str:
    """The phase a group's answer leads with: the larger of train and fair eval where the
    results hold it, else train."""
    present = set(phases)
    return next((p for p in HEADLINE_PHASES if p in present), TRAIN)


def _fields(group: Iterable[Any]) -> dict[str, Any]:
    """A group key as the records' keyword arguments."""
    return dict(zip(GROUP, group, strict=True))

