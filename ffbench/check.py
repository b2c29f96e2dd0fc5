"""`ffbench check`: the memory regression gate, results against a committed baseline.

Cells are matched by `cell_id`. Compared: the deterministic memory columns (tensor-tracked
and predicted peaks, static bytes) and, where both rows come from the same GPU model,
the CUDA allocator's peaks. A value above baseline x (1 + rtol) is a regression, below
baseline x (1 - rtol) an improvement; a cell that ran in the baseline and failed now is
a regression too. The gate fails closed: a cell it cannot compare (given more than once, a
memory column the baseline has and the results lack, a --metric null on both sides, no
memory column on both sides, a row without a cell id) fails it too, unless
--allow-uncompared says otherwise. No torch here: the gate starts in well under a second.
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
    uncompared: list[str] = field(default_factory=list)  # "label (why)": cells not compared
    allow_uncompared: bool = False  # --allow-uncompared: they do not fail the gate

    @property
    def exit_code(self) -> int:
        return 1 if self.regressions or (self.uncompared and not self.allow_uncompared) else 0


@dataclass(frozen=True)
class Cells:
    """A frame's rows by cell_id, and what cannot be matched: cells given more than once
    (which row counts would be a guess) and rows without a cell id."""

    rows: pd.DataFrame  # indexed by cell_id, one row per cell given once
    repeated: dict[str, int]  # cell_id -> how many rows name it
    labels: dict[str, str]  # cell_id -> its label, for the repeated ones
    without_id: int  # rows that name no cell


def cells_of(frame: pd.DataFrame) -> Cells:
    """The frame's rows by cell_id, and what cannot be matched (see `Cells`)."""
    named = frame[frame["cell_id"].notna()]
    counts = named["cell_id"].value_counts()
    repeated = {str(i): int(n) for i, n in counts[counts > 1].items()}
    labels = {i: _label(named[named["cell_id"] == i].iloc[-1]) for i in repeated}
    once = named[~named["cell_id"].isin(list(repeated))]
    return Cells(once.set_index("cell_id"), repeated, labels, len(frame) - len(named))


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
    now: Cells,
    before: Cells,
    rtol: float = DEFAULT_RTOL,
    metrics: Sequence[str] = (),
    *,
    allow_uncompared: bool = False,
) -> CheckReport:
    """Every common cell's memory columns, against the baseline's within `rtol`; what
    cannot be compared is listed in `uncompared` (and fails the gate unless
    `allow_uncompared`). Each side as `cells_of` reads a frame."""
    check_rtol(rtol)
    report = CheckReport(allow_uncompared=allow_uncompared)
    for side, cells in (("in the results", now), ("in the baseline", before)):
        report.uncompared += [f"{cells.labels[i]} (given {n} times {side})"
                              for i, n in cells.repeated.items()]
    if now.without_id:
        report.uncompared.append(f"{now.without_id} row(s) without a cell id in the results")
    results_rows, baseline_rows = now.rows, before.rows
    common = results_rows.index.intersection(baseline_rows.index)
    if common.empty and not report.uncompared:
        raise BadInput("no cell of the results is in the baseline (cells match by cell_id)")
    report.new_cells = sorted(
        _label(results_rows.loc[i]) for i in results_rows.index.difference(baseline_rows.index)
        if i not in before.repeated)
    report.missing_cells = sorted(
        _label(baseline_rows.loc[i]) for i in baseline_rows.index.difference(results_rows.index)
        if i not in now.repeated)
    for cell_id in common:
        _compare_cell(report, cell_id, results_rows.loc[cell_id], baseline_rows.loc[cell_id],
                      rtol, metrics)
    return report


def _compare_cell(
    report: CheckReport, cell_id: str, now: Any, before: Any, rtol: float, metrics: Sequence[str]
) -> None:
    """One cell: a status that failed now, each metric against its baseline. A metric the
    baseline has and the results lack, or a named one null on both sides, cannot be
    compared; nor can a cell with no memory column on both sides. A baseline cell that did
    not end ok has no numbers to hold the results to (nothing to gate)."""
    label = _label(now)
    if before["status"] != "ok":
        return
    report.compared_cells += 1
    if now["status"] != "ok":
        report.regressions.append(Change(cell_id, label, f"status {now['status']}", None, None))
        return
    why, compared = [], 0
    for metric in metrics or _default_metrics(now, before):
        old, new = _value(before, metric), _value(now, metric)
        if old is not None and new is None:
            why.append(f"{metric} is null now")
        elif old is None and new is None and metrics:
            why.append(f"{metric} is null on both sides")
        if old is None or new is None:
            continue
        compared += 1
        change = Change(cell_id, label, metric, old, new)
        if new > old * (1 + rtol):
            report.regressions.append(change)
        elif new < old * (1 - rtol):
            report.improvements.append(change)
    if not compared and not why:
        why.append("no memory column on both sides")
    if why:
        if not compared:
            report.compared_cells -= 1
        report.uncompared.append(f"{label} ({', '.join(why)})")


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
         metrics: Sequence[str] = (), allow_uncompared: bool = False) -> CheckReport:
    """The results' memory against the baseline's, cell by cell (BadInput for input that
    cannot be read); cells that cannot be compared fail it unless `allow_uncompared`."""
    metrics, rtol = check_metrics(metrics), check_rtol(rtol)
    if not baseline.exists():
        raise BadInput(f"--baseline {baseline}: no such file or directory")
    return compare(cells_of(load(results)), cells_of(load([baseline])), rtol=rtol,
                   metrics=metrics, allow_uncompared=allow_uncompared)


BASELINE_SUFFIX = ".parquet"


def refresh(results: list[Path], baseline: Path) -> int:
    """Write the results' successful rows as the new baseline (a parquet file, which every
    command reads); returns how many. A cell given more than once is refused: which of its
    rows is the baseline would be a guess."""
    if baseline.suffix != BASELINE_SUFFIX:
        raise BadInput(f"--baseline {baseline}: a refreshed baseline is written as parquet; "
                       f"give a FILE{BASELINE_SUFFIX}")
    check_out_file(baseline, "--baseline")
    cells = cells_of(load(results))
    if cells.repeated:
        first = next(iter(cells.repeated))
        raise BadInput(f"{cells.labels[first]} is given {cells.repeated[first]} times in the "
                       "results: refusing to choose one for the baseline")
    return refresh_baseline(cells.rows, baseline)
