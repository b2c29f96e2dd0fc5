"""Predicted allocator peaks against the measured ones of results/gpu, like with like.

A GPU row was measured at some commit; the code has changed since. A phase of a row is
compared only where today's tracked prediction for that cell equals the one the row stored
(`predicted_<phase>_peak_bytes`): then the row measured what today's code runs. The others
are kept with the reason they are excluded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ffbench.cell.allocator_view import EventLog, event_log, replay
from ffbench.measure import tracker
from ffbench.results import spec_of_row
from ffbench.settings.cell import CellSpec
from ffbench.settings.gpus import Gpu, cublas_workspace_bytes

ALLOCATED_TOLERANCE = 0.02  # relative, or ALLOCATED_TOLERANCE_BYTES when larger
ALLOCATED_TOLERANCE_BYTES = 4 << 20
RESERVED_TOLERANCE = 0.10
PHASES = ("train", "eval")


@dataclass(frozen=True)
class Comparison:
    source: str  # the parquet file
    algorithm: str
    n_layers: int
    phase: str
    measured_allocated_bytes: int
    measured_reserved_bytes: int
    predicted_allocated_bytes: int
    predicted_reserved_bytes: int
    excluded: str  # why this phase is not compared ("" when it is)

    @property
    def allocated_error(self) -> float:
        """(predicted - measured) / measured."""
        return self.predicted_allocated_bytes / self.measured_allocated_bytes - 1

    @property
    def reserved_error(self) -> float:
        return self.predicted_reserved_bytes / self.measured_reserved_bytes - 1

    @property
    def allocated_within(self) -> bool:
        gap = abs(self.predicted_allocated_bytes - self.measured_allocated_bytes)
        return gap <= max(ALLOCATED_TOLERANCE * self.measured_allocated_bytes,
                          ALLOCATED_TOLERANCE_BYTES)

    @property
    def reserved_within(self) -> bool:
        return abs(self.reserved_error) <= RESERVED_TOLERANCE


def spec_from_row(row: dict[str, Any]) -> CellSpec:
    """The row's cell, on meta."""
    return dataclasses.replace(spec_of_row(row), device="meta", threads=None)


def tracked_peaks(log: EventLog) -> tuple[int, int]:
    """The tracker's (train, eval) peaks from its event log: each phase starts at what is
    alive when it starts (TensorTracker.reset_peak), as tracker.replay counts it."""
    train = tracker.replay(log.events[:log.eval_start], log.train_start)
    evaluation = tracker.replay(log.events[:log.end], log.eval_start)
    return train.peak_bytes, evaluation.peak_bytes


def compare_row(row: dict[str, Any], source: str, target: Gpu) -> list[Comparison]:
    log = event_log(spec_from_row(row))
    tracked = dict(zip(PHASES, tracked_peaks(log), strict=True))
    peaks = replay(log, cublas_workspace_bytes(target, config=""))
    predicted = {"train": (peaks.train_allocated_bytes, peaks.train_reserved_bytes),
                 "eval": (peaks.eval_allocated_bytes, peaks.eval_reserved_bytes)}
    out = []
    for phase in PHASES:
        stored = int(row[f"predicted_{phase}_peak_bytes"])
        excluded = "" if stored == tracked[phase] else (
            f"measured with other code: its tracked prediction {stored} B, today's "
            f"{tracked[phase]} B")
        out.append(Comparison(
            source, str(row["algorithm"]), int(row["n_layers"]), phase,
            int(row[f"{phase}_peak_allocated_bytes"]), int(row[f"{phase}_peak_reserved_bytes"]),
            *predicted[phase], excluded,
        ))
    return out


def measured_rows(
    paths: Iterable[Path], algorithms: Iterable[str]
) -> list[tuple[str, dict[str, Any]]]:
    """(file name, row) of every ok row of the given algorithms in the parquet files."""
    import pandas as pd

    wanted = set(algorithms)
    rows = []
    for path in sorted(paths):
        frame = pd.read_parquet(path)
        for row in frame.to_dict("records"):
            if row["status"] == "ok" and row["algorithm"] in wanted:
                rows.append((path.name, row))
    return rows


def compare_all(paths: Iterable[Path], algorithms: Iterable[str], target: Gpu) -> list[Comparison]:
    return [c for source, row in measured_rows(paths, algorithms)
            for c in compare_row(row, source, target)]
