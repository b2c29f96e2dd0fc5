"""Per-cell overhead of the sweep runner against `python -c "import torch"` on the host it runs on.

A cell's overhead is the wall time the parent sees for it (from just before it spawns the
child until the child has exited, its row on disk) minus the row's `cell_wall_s` (the
cell's own work, timed inside the child). Target (cells forked by the fork
server): the median overhead is at most 0.25 s and at most 0.15x the median time of
`python -c "import torch"`. The first cell of a pool waits for the server's imports, so
each measured pool runs a first cell that is not counted. The two are measured interleaved, so
load from other processes falls on both alike. Also reported, not gated: the end-to-end
overhead of `ffbench sweep` (its whole wall time minus the cells' work, per cell), which
adds the parent's own start and the parquet rewrites.

    python benchmarks/test_runner_overhead.py        # print the numbers
    pytest benchmarks/test_runner_overhead.py -s     # print and check them
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import ffbench
from ffbench.results import PARQUET_NAME, read_parquet, read_row_json
from ffbench.runner.jobs import FORKED, CellJob
from ffbench.runner.local_pool import LocalPool
from ffbench.settings.cell import CellSpec

REPEATS = 7
SWEEP_CELLS = 5
OVERHEAD_LIMIT = 0.15  # x the time of `python -c "import torch"`
OVERHEAD_LIMIT_S = 0.25
PACKAGE_ROOT = str(Path(ffbench.__file__).parent.parent)


def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{PACKAGE_ROOT}:{path}" if path else PACKAGE_ROOT}


def tiny_cell(index: int) -> CellSpec:
    """A cell whose own work is small; distinct depths make distinct cells (one seed, as in a
    sweep: its cells share the dataset the fork server loads once)."""
    return CellSpec(algorithm="bp", n_layers=1 + index, hidden=16, batch_size=32, steps=1,
                    warmup_steps=0, threads=1)


def import_torch_s() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True, env=child_env())
    return time.perf_counter() - start


def interleaved(workdir: Path) -> tuple[list[float], list[float]]:
    """(import torch times, cell overheads): one pool, REPEATS + 1 cells, an import timed
    before each cell after the first (which waits for the fork server's imports)."""
    imports, overheads = [], []
    pool = LocalPool(jobs=1, timeout_s=600, gpus=[])

    def jobs() -> Iterator[CellJob]:  # the pool takes the next cell when the last has ended
        for index in range(REPEATS + 1):
            if index:
                imports.append(import_torch_s())
            yield CellJob(tiny_cell(index), "overhead", workdir / f"cell-{index}.json")

    for job, outcome in pool.run(jobs(), workdir / "work"):
        if outcome is not None and job.spec.n_layers > 1:
            assert outcome.wall_s is not None and outcome.start_method == FORKED
            overheads.append(outcome.wall_s - read_row_json(job.row_path)["cell_wall_s"])
    return imports, overheads


def sweep_overhead_s(workdir: Path) -> float:
    out = workdir / "sweep"
    command = [sys.executable, "-m", "ffbench", "sweep", "ci-cpu", "--algorithms", "bp",
               "--layers", f"1..{SWEEP_CELLS}", "--hidden", "16", "--batch-sizes", "32",
               "--steps", "1", "--warmup", "0", "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=child_env(), capture_output=True)
    wall_s = time.perf_counter() - start
    return (wall_s - read_parquet(out / PARQUET_NAME)["cell_wall_s"].sum()) / SWEEP_CELLS


def measure() -> dict[str, float]:
    os.environ["PYTHONPATH"] = child_env()["PYTHONPATH"]  # the pool's children inherit it
    with tempfile.TemporaryDirectory(prefix="ffbench-overhead-") as tmp:
        imports, overheads = interleaved(Path(tmp))
        end_to_end = sweep_overhead_s(Path(tmp))
    import_s, overhead_s = statistics.median(imports), statistics.median(overheads)
    return {"import_torch_s": import_s, "cell_overhead_s": overhead_s,
            "ratio": overhead_s / import_s, "sweep_overhead_per_cell_s": end_to_end,
            "sweep_ratio": end_to_end / import_s}


def report(numbers: dict[str, float]) -> str:
    return (
        f"python -c 'import torch'  median of {REPEATS}: {numbers['import_torch_s']:.2f} s\n"
        f"runner overhead per cell  median of {REPEATS}: {numbers['cell_overhead_s']:.2f} s"
        f" (limit {OVERHEAD_LIMIT_S} s) = {numbers['ratio']:.2f}x (limit {OVERHEAD_LIMIT}x)\n"
        f"ffbench sweep end to end, {SWEEP_CELLS} cells: {numbers['sweep_overhead_per_cell_s']:.2f}"
        f" s per cell = {numbers['sweep_ratio']:.2f}x"
    )


def test_runner_overhead_is_at_most_a_quarter_second_and_0_15x_importing_torch() -> None:
    numbers = measure()
    print("\n" + report(numbers))
    assert numbers["cell_overhead_s"] <= OVERHEAD_LIMIT_S, report(numbers)
    assert numbers["ratio"] <= OVERHEAD_LIMIT, report(numbers)


if __name__ == "__main__":
    print(report(measure()))
