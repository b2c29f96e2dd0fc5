"""What bp-lean's memory saving costs in time: its train step against bp's, one CPU thread,
timed alternately in one process so that load on a shared machine hits both alike.

Run: `PYTHONPATH=. python benchmarks/bp_lean_step_time.py [LAYERS HIDDEN BATCH ROUNDS]`.
Prints the median step time of each and their ratio, next to the ratio of their matmul FLOPs
(checkpointing runs the checkpointed segments' forward twice).
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import Built, warmed_up
from ffbench.settings.cell import CellSpec

DEFAULT_SIZE = (16, 1000, 1000)  # layers, hidden, batch: seconds a step on one thread
DEFAULT_ROUNDS = 15
WARMUP_STEPS = 2


def step_seconds(built: Built) -> float:
    start = time.perf_counter()
    built.algorithm.step(built.train)
    return time.perf_counter() - start


def main(layers: int, hidden: int, batch: int, rounds: int) -> None:
    torch.set_num_threads(1)
    names = ("bp", "bp-lean")
    cells = {
        name: warmed_up(
            resolved(CellSpec(name, n_layers=layers, hidden=hidden, batch_size=batch, threads=1)),
            WARMUP_STEPS,
        )
        for name in names
    }
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            times[name].append(step_seconds(cells[name]))
    median = {name: statistics.median(times[name]) for name in names}
    flops = {name: cells[name].algorithm.train_flops_per_step() for name in names}
    for name in names:
        print(f"{name:8} median step {median[name]:.4f} s  ({flops[name] / 1e9:.2f} GFLOP)")
    print(f"bp-lean / bp: time {median['bp-lean'] / median['bp']:.3f}, "
          f"FLOPs {flops['bp-lean'] / flops['bp']:.3f} "
          f"({layers} layers, hidden {hidden}, batch {batch}, {rounds} rounds, 1 thread)")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    size = tuple(args[:3]) if len(args) >= 3 else DEFAULT_SIZE
    main(*size, args[3] if len(args) > 3 else DEFAULT_ROUNDS)
