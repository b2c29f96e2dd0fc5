"""How a cell's process ended, turned into its row: the child's own row if it wrote one,
else a failure row whose status and error say what the parent saw."""

from __future__ import annotations

import signal
from importlib import metadata
from typing import Any

from ffbench.algorithms.resolve import cell_id, identity_columns
from ffbench.measure.env import host_columns, utc_now
from ffbench.results import OOM_MARKERS, ResultsError, make_row, read_row_json, write_row_json
from ffbench.runner.jobs import CellJob, CellOutcome
from ffbench.runner.processes import signal_name
from ffbench.settings.cell import CellSpec
from ffbench.sweep.folder import reject

STDERR_TAIL_CHARS = 2000


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
        name = signal_name(-code)
        if -code == signal.SIGKILL:
            return "oom", f"killed by {name}, most likely the host's out-of-memory killer\n{tail}"
        return "crashed", f"killed by {name}\n{tail}"
    if any(marker in tail for marker in OOM_MARKERS):
        return "oom", tail
    return "error", f"exited with code {code} without a result row\n{tail}"


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
