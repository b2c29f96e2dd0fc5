"""`ffbench check`: the memory regression gate, results against a committed baseline.

Cells are matched by `cell_id`. Compared: the deterministic memory columns (tensor-tracked
and predicted peaks, static bytes) and, where both rows come from the same GPU model,
the CUDA allocator's peaks. A value above baseline x (1 + rtol) is a regression, below
baseline x (1 - rtol) an improvement; a cell that ran in the baseline and failed now is
a regression too. No torch here: the gate starts in well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ffbench.errors import BadInput
from ffbench.results import MEMORY, load, write_parquet
from ffbench.settings.paths import check_out_file

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_RTOL = 0.02
# Exact on any machine: the tensor tracker counts bytes, not allocator blocks.
DETERMINISTIC_METRICS = (
    "train_peak_tracked_bytes",
    "eval_peak_tracked_bytes",
    "predicted_train_peak_bytes",
    "predicted_eval_peak_bytes",
    "static_bytes",
)
# Comparable only between rows measured on the same GPU model.
CUDA_METRICS = ("train_peak_allocated_bytes", "eval_peak_allocated_bytes")
CELL_LABEL = ("algorithm", "n_layers", "hidden", "batch_size", "device")


@dataclass(frozen=True)
class Change:
    cell_id: str
    label: str  # "ff layers=2 hidden=64 batch=64 cpu"
    metric: str
    baseline: float | None
    result: float | None  # None: the cell failed now

    @property
    def ratio(self) -> float:
        if self.result is None or not self.baseline:
            return math.inf
        return self.result / self.baseline


@dataclass
class CheckReport:
    compared_cells: int = 0
    regressions: list[Change] = field(default_factory=list)
    improvements: list[Change] = field(default_factory=list)
    new_cells: list[str] = field(default_factory=list)  # labels, in results only
    missing_cells: list[str] = field(default_factory=list)  # labels, in the baseline only

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions else 0


def by_cell(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows indexed by cell_id (the last row wins when a cell appears twice)."""
    return frame.drop_duplicates("cell_id", keep="last").set_index("cell_id")


def check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    unknown = [name for name in metrics if name not in MEMORY]
    if unknown:
        example = DETERMINISTIC_METRICS[0]
        raise BadInput(f"--metric {unknown[0]}: not a memory column (e.g. {example})")
    return tuple(metrics)


def check_rtol(rtol: float) -> float:
    """A relative tolerance: finite and 0 or more (nan would let every change pass)."""
    if not (math.isfinite(rtol) and rtol >= 0):
        raise BadInput(f"--rtol must be a finite number, 0 or more, got {rtol}")
    return rtol


def compare(
    results: pd.DataFrame,
    baseline: pd.DataFrame,
    rtol: float = DEFAULT_RTOL,
    metrics: Sequence[str] = (),
) -> CheckReport:
    """Every common cell's memory columns, against the baseline's within `rtol`."""
    check_rtol(rtol)
    common = results.index.intersection(baseline.index)
    if common.empty:
        raise BadInput("no cell of the results is in the baseline (cells match by cell_id)")
    report = CheckReport(compared_cells=len(common))
    report.new_cells = sorted(
        _label(results.loc[i]) for i in results.index.difference(baseline.index))
    report.missing_cells = sorted(
        _label(baseline.loc[i]) for i in baseline.index.difference(results.index))
    for cell_id in common:
        now, before = results.loc[cell_id], baseline.loc[cell_id]
        _compare_cell(report, cell_id, now, before, rtol, metrics)
    return report


def _compare_cell(
    report: CheckReport, cell_id: str, now: Any, before: Any, rtol: float, metrics: Sequence[str]
) -> None:
    label = _label(now)
    if before["status"] == "ok" and now["status"] != "ok":
        report.regressions.append(Change(cell_id, label, f"status {now['status']}", None, None))
        return
    for metric in metrics or _default_metrics(now, before):
        old, new = _value(before, metric), _value(now, metric)
        if old is None or new is None:
            continue
        change = Change(cell_id, label, metric, old, new)
        if new > old * (1 + rtol):
            report.regressions.append(change)
        elif new < old * (1 - rtol):
            report.improvements.append(change)


def _default_metrics(now: Any, before: Any) -> tuple[str, ...]:
    same_gpu = _present(now.get("gpu_name")) and now.get("gpu_name") == before.get("gpu_name")
    return DETERMINISTIC_METRICS + (CUDA_METRICS if same_gpu else ())


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _value(row: Any, metric: str) -> float | None:
    value = row.get(metric)
    return float(value) if _present(value) else None


def _label(row: Any) -> str:
    algorithm, layers, hidden, batch, device = (row.get(name) for name in CELL_LABEL)
    return f"{algorithm} layers={layers} hidden={hidden} batch={batch} {device}"


def refresh_baseline(results: pd.DataFrame, baseline_path: Path) -> int:
    """Write the results' successful rows as the new baseline (parquet); returns the row count."""
    rows = results[results["status"] == "ok"].reset_index()
    if rows.empty:
        raise BadInput("no successful cell in the results: refusing to write an empty baseline")
    records = rows.drop(columns=["source"], errors="ignore").to_dict("records")
    write_parquet([{k: (None if not _present(v) else v) for k, v in r.items()} for r in records],
                  baseline_path)
    return len(records)


def gate(results: list[Path], baseline: Path, *, rtol: float = DEFAULT_RTOL,
         metrics: Sequence[str] = ()) -> CheckReport:
    """The results' memory against the baseline's, cell by cell (BadInput for input that
    cannot be compared)."""
    metrics, rtol = check_metrics(metrics), check_rtol(rtol)
    if not baseline.exists():
        raise BadInput(f"--baseline {baseline}: no such file or directory")
    return compare(by_cell(load(results)), by_cell(load([baseline])), rtol=rtol,
                   metrics=metrics)


def refresh(results: list[Path], baseline: Path) -> int:
    """Write the results' successful rows as the new baseline; returns how many."""
    check_out_file(baseline, "--baseline")
    return refresh_baseline(by_cell(load(results)), baseline)
