"""Running a sweep: resumable, every outcome a row, nothing finished ever lost.

`run_sweep` runs the cells of a SweepSpec that are not finished in the results directory,
each in a fresh child process (ffbench.executors), and writes every outcome as a row:
`OUT/cells/<cell_id>.json` per cell (by the child, or here for a child that left none)
and `OUT/results.parquet` after each cell, both atomically. The pure parts (resume rules,
classifying how a child ended) are separate functions. No torch in this process.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ffbench.executors import CellJob, CellOutcome, LocalPool, SubmititPool, gpu_ids
from ffbench.measure.env import host_columns, utc_now
from ffbench.results import (
    CELLS_DIR,
    FAILED_STATUSES,
    OOM_MARKERS,
    PARQUET_NAME,
    ResultsError,
    make_row,
    read_row_json,
    write_parquet,
    write_row_json,
)
from ffbench.spec import BadInput, CellSpec, identity_columns
from ffbench.sweep_spec import SweepSpec

log = logging.getLogger(__name__)

RESULTS_ROOT = Path("results")
WORK_DIR = ".work"  # spec files and child stderr of the running invocation; removed after it
STDERR_TAIL_CHARS = 2000
# a Slurm task's time limit beyond the cell's own timeout (enforced inside the task): a backstop
SLURM_MARGIN_MIN = 5


def results_dir(base: Path, *, fresh: bool) -> Path:
    """Where the sweep writes: `base` (--out, default results/NAME); with `fresh`, the first
    of NAME, NAME.2, NAME.3, ... that does not exist yet. Nothing is created here."""
    if base.exists() and not base.is_dir():
        raise BadInput(f"--out {base} is a file; give a directory for the sweep's results")
    _check_creatable(base)
    if not fresh or not base.exists():
        return base
    n = 2
    while base.with_name(f"{base.name}.{n}").exists():
        n += 1
    return base.with_name(f"{base.name}.{n}")


def _check_creatable(path: Path) -> None:
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise BadInput(f"--out {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"--out {path}: {existing} is not writable")


def clean_partial_files(out_dir: Path) -> None:
    """Temporary files of atomic writes interrupted by a kill, and the last run's work dir."""
    for tmp in [*out_dir.glob(".*.tmp"), *(out_dir / CELLS_DIR).glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)
    shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)


def load_cells(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Rows already in OUT/cells, by cell_id; an unreadable file is left to be run again."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted((out_dir / CELLS_DIR).glob("*.json")):
        try:
            rows[path.stem] = read_row_json(path)
        except ResultsError as exc:
            log.warning("%s; the cell will run again", exc)
    return rows


def is_finished(row: dict[str, Any] | None, *, retry_failed: bool) -> bool:
    """ok cells are never rerun; failed ones only with --retry-failed; skipped ones always."""
    if row is None:
        return False
    return row["status"] == "ok" or (row["status"] in FAILED_STATUSES and not retry_failed)


# ---- turning how a child ended into a row ----------------------------------------------------


def classify(outcome: CellOutcome, timeout_s: float) -> tuple[str, str]:
    """(status, error text) for a cell whose child left no row."""
    tail = outcome.stderr_tail[-STDERR_TAIL_CHARS:]
    code = outcome.returncode
    if outcome.timed_out:
        return "timeout", f"no result within the timeout of {timeout_s:g} s; the cell was killed"
    if outcome.scheduler_state is not None:
        status = {"OUT_OF_MEMORY": "oom", "TIMEOUT": "timeout", "FAILED": "error"}
        return status.get(outcome.scheduler_state, "crashed"), tail
    if code is not None and code < 0:
        name = _signal_name(-code)
        if -code == signal.SIGKILL:
            return "oom", f"killed by {name}, most likely the host's out-of-memory killer\n{tail}"
        return "crashed", f"killed by {name}\n{tail}"
    if any(marker in tail for marker in OOM_MARKERS):
        return "oom", tail
    return "error", f"exited with code {code} without a result row\n{tail}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def failure_row(
    spec: CellSpec, sweep_id: str, status: str, error: str, outcome: CellOutcome | None = None
) -> dict[str, Any]:
    """A full row for a cell that left none: identity and the environment known without torch."""
    where = host_columns() | ({"host": outcome.host} if outcome and outcome.host else {})
    return make_row(
        **identity_columns(spec, sweep_id),
        **where,
        status=status,
        error=error,
        returncode=outcome.returncode if outcome else None,
        cell_wall_s=outcome.wall_s if outcome else None,
        started_at=outcome.started_at if outcome else utc_now(),
        torch_version=_installed_version("torch"),
    )


def _installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def outcome_row(job: CellJob, outcome: CellOutcome, timeout_s: float) -> dict[str, Any]:
    """The child's own row if it wrote one (even if it hung afterwards), else a failure row."""
    try:
        return read_row_json(job.row_path)
    except ResultsError:
        row = failure_row(job.spec, job.sweep_id, *classify(outcome, timeout_s), outcome)
        write_row_json(row, job.row_path)
        return row


# ---- running -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    total: int  # cells in the grid
    to_run: int  # of which this invocation runs (the rest were finished before)


@dataclass(frozen=True)
class Started:
    spec: CellSpec


@dataclass(frozen=True)
class Finished:
    spec: CellSpec
    row: dict[str, Any]


Event = Planned | Started | Finished


class SweepDir:
    """The results directory of a sweep: its rows in memory, mirrored to disk atomically."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir
        self.cells = out_dir / CELLS_DIR
        self.cells.mkdir(parents=True, exist_ok=True)
        clean_partial_files(out_dir)
        self.rows = load_cells(out_dir)
        self.consolidate()  # repairs a parquet left behind by a kill between two writes

    def row_path(self, spec: CellSpec) -> Path:
        return self.cells / f"{spec.cell_id}.json"

    def forget(self, spec: CellSpec) -> None:
        """Drop a stale (failed or skipped) row about to be redone: it must not pass as new."""
        self.row_path(spec).unlink(missing_ok=True)
        self.rows.pop(spec.cell_id, None)

    def record(self, *rows: dict[str, Any]) -> None:
        self.rows.update((row["cell_id"], row) for row in rows)
        self.consolidate()

    def sync(self) -> None:
        """Take in rows that children wrote but this process never heard of (Ctrl-C)."""
        self.rows = load_cells(self.path)
        self.consolidate()

    def consolidate(self) -> None:
        """All rows, one per cell, in a stable order, to results.parquet (atomically)."""
        if self.rows:
            write_parquet(sorted(self.rows.values(), key=_row_order), self.path / PARQUET_NAME)


def _row_order(row: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("algorithm", "device", "dtype", "hidden", "batch_size", "n_layers", "cell_id")
    return tuple((row[key] is None, row[key] or 0) for key in keys)


def run_sweep(
    sweep: SweepSpec, out_dir: Path, *, retry_failed: bool = False
) -> Generator[Event, None, None]:
    """Run every unfinished cell of the sweep, yielding progress; each outcome is a row.

    Closing the iterator (or Ctrl-C inside it) kills the running cells; finished ones stay."""
    cells = sweep.cells()
    store = SweepDir(out_dir)
    todo = [
        spec for spec in cells
        if not is_finished(store.rows.get(spec.cell_id), retry_failed=retry_failed)
    ]
    yield Planned(total=len(cells), to_run=len(todo))
    runnable, skipped = _split_runnable(sweep, todo)
    skipped_cells = [
        (spec, failure_row(spec, out_dir.name, "skipped", "no CUDA device on this machine"))
        for spec in skipped
    ]
    for spec, row in skipped_cells:
        write_row_json(row, store.row_path(spec))
    store.record(*(row for _, row in skipped_cells))  # one parquet write for all of them
    for spec, row in skipped_cells:
        yield Finished(spec, row)

    def jobs() -> Iterator[CellJob]:
        for spec in runnable:  # taken one by one, just before each cell starts
            store.forget(spec)
            yield CellJob(spec, out_dir.name, store.row_path(spec))

    try:
        with closing(_pool(sweep, out_dir).run(jobs())) as ends:  # closing kills what runs
            for job, outcome in ends:
                if outcome is None:
                    yield Started(job.spec)
                    continue
                row = outcome_row(job, outcome, sweep.timeout_s)
                store.record(row)
                yield Finished(job.spec, row)
    finally:
        shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)
        store.sync()


def _split_runnable(
    sweep: SweepSpec, cells: list[CellSpec]
) -> tuple[list[CellSpec], list[CellSpec]]:
    """(cells to run, cells to skip): CUDA cells cannot run locally without a GPU (a Slurm
    node may well have one, so the slurm executor runs them all)."""
    if sweep.executor != "local" or not sweep.device.startswith("cuda") or gpu_ids():
        return cells, []
    return [], cells


def _pool(sweep: SweepSpec, out_dir: Path) -> LocalPool | SubmititPool:
    if sweep.executor == "slurm":
        minutes = sweep.slurm.get("time_min", math.ceil(sweep.timeout_s / 60) + SLURM_MARGIN_MIN)
        return SubmititPool(slurm={**sweep.slurm, "time_min": minutes}, folder=out_dir / "slurm",
                            timeout_s=sweep.timeout_s)
    return LocalPool(jobs=sweep.jobs, timeout_s=sweep.timeout_s, gpus=gpu_ids(),
                     workdir=out_dir / WORK_DIR)


def timing_warning(sweep: SweepSpec) -> str | None:
    """Parallel cells on one CPU (or one GPU) share it: their times are not comparable."""
    if sweep.executor != "local" or sweep.jobs == 1:
        return None
    device = sweep.device.partition(":")[0]
    if device == "cpu":
        return (f"--jobs {sweep.jobs} runs CPU cells side by side: their step times distort "
                "each other (memory is unaffected); use --jobs 1 for timings")
    gpus = len(gpu_ids())
    if device == "cuda" and sweep.jobs > gpus > 0:
        return (f"--jobs {sweep.jobs} on {gpus} GPU(s): cells share a GPU, so their times and "
                "NVML device memory mix; use at most one job per GPU")
    return None
