"""What a runner is given and what it reports: a cell to run (CellJob) and how its process
ended (CellOutcome), with the constants every part of the runner shares.

Every cell runs in a process of its own (ffbench.runner.child), which writes its row itself,
atomically; a runner only reports how each process ended, and the sweep turns an ending
without a row into a failure row.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from ffbench.algorithms.resolve import cell_id
from ffbench.settings.cell import CellSpec

CHILD_MODULE = "ffbench.runner.child"
PARENT_PID_ENV = "FFBENCH_PARENT_PID"  # the child dies with this process (cell_process.py)
POLL_S = 0.005  # how often the local pool (and the fork server) look at their children
STDERR_TAIL_BYTES = 4000
WORKER_CLOSE_S = 5.0
# A cell's clock (its timeout) starts when its process begins the cell, not at the spawn:
# the interpreter's start and torch's import (seconds, more on a loaded machine) are not
# the cell's time. A process that has not begun its cell after this long is timed from here.
STARTUP_S = 300.0
START_LINE = b"start\n"  # what a cell's process (or a worker, per cell) says as it begins
DONE_LINE = b"done\n"  # what a worker says as a cell ends
FORK_SERVER_FLAG = "--fork-server"
SERVE_FLAG = "--serve"
# the row's start_method: how the cell's process came to be
SPAWNED, FORKED, WORKER = "spawn", "fork-server", "worker"


@dataclass(frozen=True)
class CellJob:
    """One cell to run and where its child writes the row."""

    spec: CellSpec
    sweep_id: str
    row_path: Path


@dataclass(frozen=True)
class CellOutcome:
    """How a cell's process ended, as the parent saw it (the row is the child's own word)."""

    job: CellJob
    returncode: int | None  # negative: killed by that signal; None: never known
    timed_out: bool
    wall_s: float | None  # parent-observed, from just before the spawn to the end
    stderr_tail: str
    pid: int | None
    host: str
    started_at: str | None
    scheduler_state: str | None = None  # Slurm's word when the job itself failed
    start_method: str | None = None  # SPAWNED, FORKED or WORKER


# (job, None) as a cell starts, (job, outcome) as it ends
Ends = Generator[tuple[CellJob, "CellOutcome | None"], None, None]


def write_spec(job: CellJob, workdir: Path) -> Path:
    """The cell's spec as a file its process reads."""
    path = workdir / f"{cell_id(job.spec)}.spec.json"
    path.write_text(job.spec.to_json())
    return path


def child_env() -> dict[str, str]:
    """This process's environment, and its pid: a child dies with it (die_with_parent)."""
    return {**os.environ, PARENT_PID_ENV: str(os.getpid())}
