"""Regenerate the small example results set (results/example/results.parquet) on a CPU.

    python results/example/make.py            # ~6 minutes on 2 cores

bp and ff on 5,000 real MNIST digits (mnist-5k), hidden 1024, batch 128 and 512, depths
1..8, one thread, 1 epoch for test accuracy. Each cell runs in a fresh spawned process,
as the sweep runner does. The cells at 16 and 24 layers run with the process's data
segment capped (RLIMIT_DATA) at CAP_BYTES above what it held once torch and the data
were loaded, so the set also holds genuine failed cells: an allocation past the cap
fails and the cell becomes an oom row (a cell that fits under the cap stays ok).
The notebook and the tests read whatever this writes; nothing depends on its numbers,
and a real sweep's results.parquet can replace it.
"""

from __future__ import annotations

import multiprocessing
import resource
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ALGORITHMS = ("bp", "ff")
HIDDEN = 1024
BATCH_SIZES = (128, 512)
DEPTHS = (1, 2, 4, 6, 8)
CAPPED_DEPTHS = (16, 24)
CAP_BYTES = 160 * 2**20
SETTINGS = {"steps": 5, "warmup_steps": 2, "epochs": 1, "threads": 1, "dataset": "mnist-5k"}
OUT = Path(__file__).resolve().parent / "results.parquet"


def data_segment_bytes() -> int:
    """VmData of this process, from /proc/self/status (kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmData in /proc/self/status")


def run_one(fields: dict[str, Any], capped: bool) -> dict[str, Any]:
    from ffbench.cell.run import run_cell_row
    from ffbench.data import load
    from ffbench.settings.cell import CellSpec

    if capped:  # torch and one copy of the data loaded first: the cap bounds the cell alone
        load(CellSpec(**fields))
        hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
        resource.setrlimit(resource.RLIMIT_DATA, (data_segment_bytes() + CAP_BYTES, hard))
    return run_cell_row(CellSpec(**fields), sweep_id="example")


def cells() -> list[tuple[dict[str, Any], bool]]:
    grid = []
    for batch_size in BATCH_SIZES:
        for algorithm in ALGORITHMS:
            for depth in DEPTHS + CAPPED_DEPTHS:
                fields = {"algorithm": algorithm, "n_layers": depth, "hidden": HIDDEN,
                          "batch_size": batch_size, **SETTINGS}
                grid.append((fields, depth in CAPPED_DEPTHS))
    return grid


def main() -> None:
    from ffbench.results import write_parquet

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn, max_tasks_per_child=1) as pool:
        rows = list(pool.map(run_one, *zip(*cells(), strict=True)))
    write_parquet(rows, OUT)
    for row in rows:
        print(row["algorithm"], row["batch_size"], row["n_layers"], row["status"],
              row["train_peak_tracked_bytes"], row["test_accuracy"])
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
