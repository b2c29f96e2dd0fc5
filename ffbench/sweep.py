"""Running a sweep: resumable, every outcome a row, nothing finished ever lost.

`run_sweep` runs the cells of a SweepSpec that are not finished in the results directory,
each in a fresh child process (ffbench.executors), and writes every outcome as a row:
`OUT/cells/<cell_id>.json` per cell (by the child, or here for a child that left none)
and `OUT/results.parquet` after each cell, both atomically. The pure parts (resume rules,
classifying how a child ended) are separate functions. No torch in this process.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ffbench import sweep_folder
from ffbench.algorithms.resolve import cell_id, identity_columns
from ffbench.errors import BadInput
from ffbench.executors import CellJob, CellOutcome, LocalPool, SubmititPool, gpu_ids
from ffbench.measure.env import host_columns, utc_now
from ffbench.paths import check_creatable
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
from ffbench.settings.cell import CellSpec
from ffbench.sweep_spec import SweepSpec

log = logging.getLogger(__name__)

RESULTS_ROOT = Path("results")
WORK_DIR = ".work"  # spec files and child stderr of the running invocation; removed after it
REJECTED_DIR = "rejected"  # row files that failed validation, each with its reason
LOCK_NAME = ".lock"  # held (fcntl) by the one sweep writing into the folder; holds its PID
STDERR_TAIL_CHARS = 2000
# a Slurm task's time limit beyond the cell's own timeout (enforced inside the task): a backstop
SLURM_MARGIN_MIN = 5
# results.parquet is rewritten at most this often while cells finish (~15 ms a write): each
# row is on disk at once in its cell file, and the sweep's end writes the parquet whole
CONSOLIDATE_EVERY_S = 2.0


def results_dir(base: Path, *, fresh: bool) -> Path:
    """Where the sweep writes: `base` (--out, default results/NAME); with `fresh`, the first
    of NAME, NAME.2, NAME.3, ... that does not exist yet. Nothing is created here."""
    if base.exists() and not base.is_dir():
        raise BadInput(f"--out {base} is a file; give a directory for the sweep's results")
    check_creatable(base, "--out")
    for name in (PARQUET_NAME, CELLS_DIR, REJECTED_DIR, LOCK_NAME):
        part = base / name
        if part.exists() and part.is_dir() != (name in (CELLS_DIR, REJECTED_DIR)):
            kind = "directory" if part.is_dir() else "file"
            raise BadInput(f"--out {base}: {part} is a {kind}; this is not a sweep's folder")
    if not fresh or not base.exists():
        return base
    n = 2
    while base.with_name(f"{base.name}.{n}").exists():
        n += 1
    return base.with_name(f"{base.name}.{n}")


def clean_partial_files(out_dir: Path) -> None:
    """Temporary files of atomic writes interrupted by a kill, and the last run's work dir."""
    for tmp in [*out_dir.glob(".*.tmp"), *(out_dir / CELLS_DIR).glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)
    shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)


def load_cells(out_dir: Path, *, set_aside: bool = False) -> dict[str, dict[str, Any]]:
    """Rows already in OUT/cells, by cell_id. A file that is not a valid row of its cell
    counts as not run; with `set_aside` (the sweep holding the lock) it is moved to
    OUT/rejected/ beside a .reason.txt, with one warning line."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted((out_dir / CELLS_DIR).glob("*.json")):
        try:
            row = read_row_json(path)
            if row["cell_id"] != path.stem:
                raise ResultsError(f"{path}: holds the row of cell {row['cell_id']!r:.40}")
            rows[path.stem] = row
        except ResultsError as exc:
            if set_aside:
                reject(path, str(exc))
                log.warning("%s; set aside in %s/, the cell will run again", exc, REJECTED_DIR)
            else:
                log.warning("%s; the cell counts as not run", exc)
    return rows


def reject(path: Path, reason: str) -> Path:
    """Move a row file that cannot be used to OUT/rejected/, with the reason beside it."""
    folder = path.parent.parent / REJECTED_DIR
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    n = 2
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    os.replace(path, target)
    target.with_name(f"{target.name}.reason.txt").write_text(reason + "\n")
    return target


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
        start_method=outcome.start_method if outcome else None,
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
        row = read_row_json(job.row_path)
        if row["cell_id"] != cell_id(job.spec):
            raise ResultsError(f"{job.row_path}: holds the row of cell {row['cell_id']!r:.40}")
        return row
    except ResultsError as exc:
        status, error = classify(outcome, timeout_s)
        if job.row_path.exists():  # a row that cannot be stored: kept aside, the cell failed
            reject(job.row_path, str(exc))
            status, error = "error", f"the cell's row was rejected: {exc}"
        row = failure_row(job.spec, job.sweep_id, status, error, outcome)
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


class SweepLocked(BadInput):
    """Another sweep is writing into this results folder."""


class FolderLock:
    """One sweep per results folder: an fcntl lock on OUT/.lock, held while this object is
    open. The kernel drops it when the process dies (even of SIGKILL), so a killed sweep's
    folder is never locked for its resume."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK_NAME
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SweepLocked(f"{out_dir} is in use by another sweep (PID {holder}); wait for "
                              "it to finish or give another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd: int | None = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock; the file stays (unlinking would race)
            self.fd = None


class SweepDir:
    """The results directory of a sweep: its rows in memory, mirrored to disk atomically.
    Holds the folder's lock from creation to `close`."""

    def __init__(self, out_dir: Path, owner: SweepSpec | None = None) -> None:
        self.path = out_dir
        self.cells = out_dir / CELLS_DIR
        had_lock_file = (out_dir / LOCK_NAME).exists()
        self.lock = FolderLock(out_dir)  # before anything in the folder is touched
        try:
            if owner is not None:  # a folder holding another sweep is refused untouched
                try:
                    sweep_folder.check_owner(owner, out_dir)
                except BadInput:
                    if not had_lock_file:  # leave the folder as it was found
                        self.lock.path.unlink(missing_ok=True)
                    raise
            self.cells.mkdir(exist_ok=True)
            clean_partial_files(out_dir)
            self.rows = load_cells(out_dir, set_aside=True)
            self._consolidated_s = -math.inf
            self.consolidate()  # repairs a parquet left behind by a kill between two writes
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        self.lock.release()

    def row_path(self, spec: CellSpec) -> Path:
        return self.cells / f"{cell_id(spec)}.json"

    def forget(self, spec: CellSpec) -> None:
        """Drop a stale (failed or skipped) row about to be redone: it must not pass as new."""
        self.row_path(spec).unlink(missing_ok=True)
        self.rows.pop(cell_id(spec), None)

    def record(self, *rows: dict[str, Any]) -> None:
        self.rows.update((row["cell_id"], row) for row in rows)
        if time.monotonic() - self._consolidated_s >= CONSOLIDATE_EVERY_S:
            self.consolidate()

    def sync(self) -> None:
        """Take in rows that children wrote but this process never heard of (Ctrl-C)."""
        self.rows = load_cells(self.path, set_aside=True)
        self.consolidate()

    def consolidate(self) -> None:
        """All rows, one per cell, in a stable order, to results.parquet (atomically)."""
        if self.rows:
            write_parquet(sorted(self.rows.values(), key=_row_order), self.path / PARQUET_NAME)
            self._consolidated_s = time.monotonic()


def _row_order(row: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("algorithm", "device", "dtype", "hidden", "batch_size", "n_layers", "cell_id")
    return tuple((row[key] is None, row[key] or 0) for key in keys)


def run_sweep(
    sweep: SweepSpec, out_dir: Path, *, retry_failed: bool = False,
    pool: LocalPool | None = None,
) -> Generator[Event, None, None]:
    """Run every unfinished cell of the sweep, yielding progress; each outcome is a row.
    `pool`: one started early (`start_pool`), else one is made here.

    Closing the iterator (or Ctrl-C inside it) kills the running cells; finished ones stay."""
    cells = sweep.cells()
    store = SweepDir(out_dir, owner=sweep)
    with closing(store):
        yield from _run_cells(sweep, cells, store, pool or _pool(sweep, out_dir),
                              retry_failed=retry_failed)


def start_pool(sweep: SweepSpec) -> LocalPool | None:
    """The local pool for this sweep, its processes already starting (they import torch
    while this process checks the cells: a second or two earlier to the first cell); None
    where cells run elsewhere (Slurm) or none can run here (CUDA without a GPU)."""
    if sweep.executor != "local" or not _runnable(sweep):
        return None
    pool = _local_pool(sweep)
    pool.start(sweep.device)
    return pool


def _run_cells(
    sweep: SweepSpec, cells: list[CellSpec], store: SweepDir, pool: LocalPool | SubmititPool,
    *, retry_failed: bool
) -> Generator[Event, None, None]:
    out_dir = store.path
    sweep_folder.record_owner(sweep, out_dir)  # under the folder's lock
    todo = [
        spec for spec in cells
        if not is_finished(store.rows.get(cell_id(spec)), retry_failed=retry_failed)
    ]
    yield Planned(total=len(cells), to_run=len(todo))
    runnable, skipped = _split_runnable(sweep, run_order(sweep, todo))
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
        with closing(pool.run(jobs(), out_dir / WORK_DIR)) as ends:  # closing kills what runs
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


def run_order(sweep: SweepSpec, cells: list[CellSpec]) -> list[CellSpec]:
    """The grid's order (depth-major), but deepest first where cells run side by side in
    workers (meta): the longest cells start first, so that the workers end together instead
    of one running the deepest cell alone at the end."""
    if sweep.device != "meta" or sweep.cells_at_once == 1:
        return cells
    return sorted(cells, key=lambda spec: -spec.n_layers)  # stable: algorithms keep their order


def _split_runnable(
    sweep: SweepSpec, cells: list[CellSpec]
) -> tuple[list[CellSpec], list[CellSpec]]:
    """(cells to run, cells to skip): all or none (`_runnable`)."""
    return (cells, []) if _runnable(sweep) else ([], cells)


def _runnable(sweep: SweepSpec) -> bool:
    """CUDA cells cannot run locally without a GPU (a Slurm node may well have one, so the
    slurm executor runs them all)."""
    return sweep.executor != "local" or not sweep.device.startswith("cuda") or bool(gpu_ids())


def _pool(sweep: SweepSpec, out_dir: Path) -> LocalPool | SubmititPool:
    if sweep.executor == "slurm":
        minutes = sweep.slurm.get("time_min", math.ceil(sweep.timeout_s / 60) + SLURM_MARGIN_MIN)
        return SubmititPool(slurm={**sweep.slurm, "time_min": minutes}, folder=out_dir / "slurm",
                            timeout_s=sweep.timeout_s)
    return _local_pool(sweep)


def _local_pool(sweep: SweepSpec) -> LocalPool:
    return LocalPool(jobs=sweep.cells_at_once, timeout_s=sweep.timeout_s, gpus=gpu_ids())


def timing_warning(sweep: SweepSpec) -> str | None:
    """Parallel cells on one CPU (or one GPU) share it: their times are not comparable."""
    jobs = sweep.cells_at_once
    if sweep.executor != "local" or jobs == 1:
        return None
    device = sweep.device.partition(":")[0]
    if device == "cpu":
        return (f"--jobs {jobs} runs CPU cells side by side: their step times distort "
                "each other (memory is unaffected); use --jobs 1 for timings")
    gpus = len(gpu_ids())
    if device == "cuda" and jobs > gpus > 0:
        return (f"--jobs {jobs} on {gpus} GPU(s): cells share a GPU, so their times and "
                "NVML device memory mix; use at most one job per GPU")
    return None
