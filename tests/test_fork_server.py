"""Cells forked by the fork server are isolated as spawned ones were: real subprocesses."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from ffbench.algorithms.resolve import cell_id
from ffbench.results import read_row_json
from ffbench.runner.jobs import CHILD_MODULE, FORKED, CellJob, CellOutcome
from ffbench.runner.local_pool import LocalPool
from ffbench.settings.cell import CellSpec

WAIT_S = 300
MIB = 2**20


def tiny(**changes: Any) -> CellSpec:
    return CellSpec(**{"algorithm": "bp", "n_layers": 1, "hidden": 16, "batch_size": 8,
                       "steps": 1, "warmup_steps": 0, "threads": 1, **changes})


def run(specs: list[CellSpec], workdir: Path,
        timeout_s: float = WAIT_S) -> list[tuple[CellOutcome, dict[str, Any]]]:
    jobs = [CellJob(spec, "s", workdir / f"{i}-{cell_id(spec)}.json")
            for i, spec in enumerate(specs)]
    pool = LocalPool(jobs=1, timeout_s=timeout_s, gpus=[])
    outcomes = [outcome for _, outcome in pool.run(jobs, workdir / "work") if outcome is not None]
    return [(outcome, read_row_json(outcome.job.row_path) if outcome.job.row_path.exists()
             else {}) for outcome in outcomes]


@pytest.mark.slow
def test_a_big_host_buffer_in_one_cell_does_not_show_in_the_next(tmp_path: Path) -> None:
    # 2 layers of 2048 units at batch 8: ~93 MB of parameters, gradients and Adam state,
    # next to nothing to compute
    big, small = tiny(n_layers=2, hidden=2048, seed=1), tiny(seed=2)
    (alone_outcome, alone), = run([small], tmp_path / "alone")
    (big_outcome, big_row), (after_outcome, after) = run([big, small], tmp_path / "pair")
    assert {o.start_method for o in (alone_outcome, big_outcome, after_outcome)} == {FORKED}
    assert {r["start_method"] for r in (alone, big_row, after)} == {FORKED}
    assert len({alone_outcome.pid, big_outcome.pid, after_outcome.pid}) == 3
    buffer = big_row["train_peak_tracked_bytes"]
    assert buffer > 80 * MIB
    # the big cell's high-water mark holds its buffer; the next cell's does not inherit it
    assert big_row["cpu_peak_rss_bytes"] - alone["cpu_peak_rss_bytes"] > buffer * 0.9
    assert abs(after["cpu_peak_rss_bytes"] - alone["cpu_peak_rss_bytes"]) < buffer * 0.1


@pytest.mark.slow
def test_a_forked_cell_is_killed_alone_and_its_failure_is_a_returncode(tmp_path: Path) -> None:
    slow = tiny(n_layers=1500, seed=3)  # the meta prediction alone takes minutes
    results = run([slow, tiny(seed=4)], tmp_path, timeout_s=15)
    (slow_outcome, slow_row), (next_outcome, next_row) = results
    assert slow_outcome.timed_out and slow_outcome.returncode == -signal.SIGKILL
    assert slow_outcome.start_method == FORKED and not slow_row  # the sweep writes its row
    assert next_row["status"] == "ok" and next_outcome.returncode == 0
    assert not os.path.exists(f"/proc/{slow_outcome.pid}")


@pytest.mark.slow
def test_a_forked_cell_crashing_is_reported_by_its_signal(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    job = CellJob(tiny(n_layers=1500, seed=5), "s", tmp_path / "row.json")  # minutes long
    pool = LocalPool(jobs=1, timeout_s=WAIT_S, gpus=[])
    ends = pool.run([job], workdir)
    next(ends)  # started: the fork server answered with its pid
    stderr = workdir / f"{cell_id(job.spec)}.stderr"
    deadline = time.monotonic() + WAIT_S
    while not stderr.exists():  # the forked process has redirected its stderr
        assert time.monotonic() < deadline
        time.sleep(0.01)
    running = pool_running_pid(workdir, job)
    os.kill(running, signal.SIGABRT)
    _, outcome = next(ends)
    assert outcome is not None and outcome.returncode == -signal.SIGABRT
    assert outcome.start_method == FORKED and not job.row_path.exists()


def pool_running_pid(workdir: Path, job: CellJob) -> int:
    """The forked cell's pid, by its title (`... ffbench.child CELL_ID ROW`), as ps shows
    (the title may come a moment after the cell's stderr file)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if CHILD_MODULE.encode() in argv and cell_id(job.spec).encode() in argv:
                return int(proc.name)
        time.sleep(0.05)
    raise AssertionError(f"no process titled with {cell_id(job.spec)} ({workdir})")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cells_cuda_peak_is_its_own(tmp_path: Path) -> None:
    big = tiny(hidden=4096, batch_size=4096, device="cuda", seed=6)
    small = tiny(device="cuda", seed=7)
    (_, alone), = run([small], tmp_path / "alone")
    (_, big_row), (_, after) = run([big, small], tmp_path / "pair")
    assert {r["start_method"] for r in (alone, big_row, after)} == {FORKED}
    assert big_row["train_peak_allocated_bytes"] > 100 * alone["train_peak_allocated_bytes"]
    for column in ("train_peak_allocated_bytes", "train_peak_reserved_bytes",
                   "eval_peak_allocated_bytes"):
        assert after[column] == alone[column], column
    # NVML sees this process's own context and allocations, not the previous cell's
    assert after["nvml_process_peak_used_bytes"] < big_row["nvml_process_peak_used_bytes"]
