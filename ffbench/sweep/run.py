"""Running a sweep: resumable, every outcome a row, nothing finished ever lost.

`run_sweep` runs the cells of a SweepSpec that are not finished in the results folder, each
in a process of its own (ffbench.runner), and records every outcome as a row in the folder
(ffbench.sweep.folder). No torch in this process.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ffbench.algorithms.resolve import cell_id
from ffbench.results import FAILED_STATUSES, write_row_json
from ffbench.runner.devices import gpu_ids
from ffbench.runner.jobs import CellJob
from ffbench.runner.local_pool import LocalPool
from ffbench.runner.slurm import SubmititPool
from ffbench.settings.cell import HOST_DEVICE, CellSpec
from ffbench.sweep.definition import record_owner
from ffbench.sweep.folder import WORK_DIR, SweepDir, fresh_name, load_cells, results_dir
from ffbench.sweep.outcomes import failure_row, outcome_row
from ffbench.sweep.plan import PlannedSweep
from ffbench.sweep.spec import SweepSpec, check_runnable

# a Slurm task's time limit beyond the cell's own timeout (enforced inside the task): a backstop
SLURM_MARGIN_MIN = 5


def is_finished(row: dict[str, Any] | None, *, retry_failed: bool) -> bool:
    """ok cells are never rerun; failed ones only with --retry-failed; skipped ones always."""
    if row is None:
        return False
    return row["status"] == "ok" or (row["status"] in FAILED_STATUSES and not retry_failed)


@dataclass(frozen=True)
class Planned:
    total: int  # cells in the grid
    to_run: int  # of which this invocation runs (the rest were finished before)
    cells: tuple[CellSpec, ...] = ()  # those it runs


@dataclass(frozen=True)
class Started:
    spec: CellSpec


@dataclass(frozen=True)
class Finished:
    spec: CellSpec
    row: dict[str, Any]


Event = Planned | Started | Finished


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
    record_owner(sweep, out_dir)  # under the folder's lock
    todo = [
        spec for spec in cells
        if not is_finished(store.rows.get(cell_id(spec)), retry_failed=retry_failed)
    ]
    yield Planned(total=len(cells), to_run=len(todo), cells=tuple(todo))
    runnable, skipped = _split_runnable(sweep, run_order(sweep, todo))
    skipped_cells = [
        (spec, failure_row(spec, out_dir.name, "skipped", "no CUDA device on this host"))
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
    if device == HOST_DEVICE:
        return (f"--jobs {jobs} runs CPU cells side by side: their step times distort "
                "each other (memory is unaffected); use --jobs 1 for timings")
    gpus = len(gpu_ids())
    if device == "cuda" and jobs > gpus > 0:
        return (f"--jobs {jobs} on {gpus} GPU(s): cells share a GPU, so their times and "
                "NVML device memory mix; use at most one job per GPU")
    return None


# ---- a command's sweeps, start to end -----------------------------------------------------


@dataclass(frozen=True)
class Resume:
    """How the command that was interrupted continues: the same command line, writing into
    `out` (None: its default folders); not `possible` for fresh default folders of several
    sweeps, which no --out names."""

    out: Path | None
    possible: bool = True


def out_dirs(planned: Sequence[PlannedSweep], no_resume: bool) -> tuple[list[Path], Resume]:
    """Where each planned sweep writes, and how the command resumes. A sweep writing into
    a part of the folder the user gave (--out DIR: DIR/predicted, DIR/cpu-stand-in) has
    --no-resume make DIR fresh, and DIR is what a resume names."""
    roots = {one.root for one in planned if one.root is not None}
    root = next(iter(roots)) if len(roots) == 1 else None
    chosen = fresh_name(root) if root is not None and no_resume else root
    dirs = [results_dir(chosen / one.part if chosen is not None and one.root is not None
                        else one.out, fresh=no_resume and one.root is None)
            for one in planned]
    if chosen is not None:
        return dirs, Resume(chosen)
    if len(dirs) == 1:
        return dirs, Resume(dirs[0])
    return dirs, Resume(None, possible=not no_resume)


class SweepView(Protocol):
    """What a command shows of its sweeps (ffbench.console.sweep_view draws them)."""

    def starting(self, planned: PlannedSweep, out_dir: Path) -> None: ...
    def warning(self, text: str) -> None: ...
    def running(self, spec: SweepSpec, out_dir: Path, first: Event,
                events: Generator[Event, None, None]) -> None: ...
    def ended(self, spec: SweepSpec, out_dir: Path, rows: list[dict[str, Any]],
              retry_failed: bool) -> None: ...
    def interrupted(self, out_dir: Path, resume: Resume) -> None: ...
    def all_ended(self, folders: list[Path]) -> None: ...


def run_planned(planned: Sequence[PlannedSweep], view: SweepView, *, no_resume: bool = False,
                retry_failed: bool = False) -> list[Path]:
    """Run a command's sweeps in turn (ffbench.sweep.plan), each into its folder (a fresh one
    beside it with `no_resume`); returns the folders. Every cell of every sweep is checked
    before anything runs; the first sweep's processes start while they are."""
    pool = start_pool(planned[0].spec)  # starting while the cells are checked
    folders = []
    try:
        for one in planned:
            one.spec.cells()  # every cell validated before anything runs
            check_runnable(one.spec)
        dirs, resume = out_dirs(planned, no_resume)
        for index, (one, out_dir) in enumerate(zip(planned, dirs, strict=True)):
            view.starting(one, out_dir)
            warning = timing_warning(one.spec)
            if warning:
                view.warning(warning)
            events = run_sweep(one.spec, out_dir, retry_failed=retry_failed,
                               pool=pool if index == 0 else None)
            first = next(events)  # the folder's lock is taken here: refused before any display
            try:
                view.running(one.spec, out_dir, first, events)
            except KeyboardInterrupt:
                view.interrupted(out_dir, resume)
                raise
            rows = load_cells(out_dir)
            ids = [cell_id(spec) for spec in one.spec.cells()]
            view.ended(one.spec, out_dir, [rows[i] for i in ids if i in rows], retry_failed)
            folders.append(out_dir)
    finally:
        if pool is not None:
            pool.close()
    view.all_ended(folders)
    return folders
