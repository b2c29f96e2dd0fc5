"""Cells on a Slurm cluster: every cell one task of a job array, through submitit."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ffbench.runner.jobs import STDERR_TAIL_BYTES, CellJob, CellOutcome, Ends
from ffbench.runner.local_pool import run_blocking

SUBMITIT_POLL_S = 2.0  # Slurm's accounting is slow to ask; submitit caches it anyway


class SubmititPool:
    """Every cell as one task of a Slurm job array (submitit); logs under `folder`.

    Each task runs `run_blocking`, so a cell on a node is the same fresh child, with
    the same timeout, as on the local host. `slurm["cluster"] = "local"` runs the same
    path through submitit's LocalExecutor (how the tests exercise it)."""

    def __init__(self, *, slurm: dict[str, Any], folder: Path, timeout_s: float) -> None:
        self.slurm, self.folder, self.timeout_s = slurm, folder, timeout_s

    def parameters(self) -> dict[str, Any]:
        """submitit's names for the [slurm] table's settings (slurm_* apply on Slurm only)."""
        names = {
            "time_min": "timeout_min", "cpus_per_task": "cpus_per_task", "mem_gb": "mem_gb",
            "partition": "slurm_partition", "account": "slurm_account", "qos": "slurm_qos",
            "constraint": "slurm_constraint", "gpus_per_task": "slurm_gpus_per_task",
            "array_parallelism": "slurm_array_parallelism", "setup": "slurm_setup",
        }
        given = {names[key]: value for key, value in self.slurm.items() if key in names}
        return {"name": "ffbench", **given}

    def run(self, jobs: Iterable[CellJob], workdir: Path | None = None) -> Ends:
        """Submits every cell at once; yields as LocalPool.run does (`workdir` is unused:
        each task keeps its own)."""
        import submitit

        cells = list(jobs)
        if not cells:
            return
        executor = submitit.AutoExecutor(
            folder=self.folder / "%j", cluster=self.slurm.get("cluster", "slurm")
        )
        executor.update_parameters(**self.parameters())
        futures = executor.map_array(run_blocking, cells, [self.timeout_s] * len(cells))
        for cell in cells:
            yield cell, None
        pending = list(zip(futures, cells, strict=True))
        try:
            while pending:
                for future, cell in [pair for pair in pending if pair[0].done()]:
                    pending.remove((future, cell))
                    yield cell, _submitit_outcome(cell, future)
                if pending:
                    time.sleep(SUBMITIT_POLL_S)
        finally:
            for future, _ in pending:
                future.cancel(check=False)


def _submitit_outcome(job: CellJob, future: Any) -> CellOutcome:
    try:
        outcome: CellOutcome = future.result()
        return outcome
    except Exception as exc:  # the task itself died: time limit, memory limit, node failure
        return CellOutcome(
            job=job, returncode=None, timed_out=False, wall_s=None,
            stderr_tail=str(exc)[-STDERR_TAIL_BYTES:], pid=None, host="",
            started_at=None, scheduler_state=str(future.state),
        )
