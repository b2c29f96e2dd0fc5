"""What backprop's memory savings cost in time: bp-lean's and bp-offload's train step
against bp's, timed alternately in one process so that load on a shared machine hits each
alike.

Run: `PYTHONPATH=. python benchmarks/bp_lean_step_time.py [LAYERS HIDDEN BATCH ROUNDS]` (one
CPU thread). Prints the median step time of each and its ratio to bp's, next to the ratio of
their matmul FLOPs (checkpointing runs the checkpointed segments' forward twice).

On the CPU bp-offload moves nothing (host and device are one memory, so no hook runs: see
algorithms/bp.py): its ratio is that of the fused optimizer step alone and says nothing of
what copying the activations costs on a GPU (benchmarks/gpu/offload_step_time.py measures
that, with `alternating_medians` below).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import Built, warmed_up
from ffbench.measure.timer import time_calls
from ffbench.settings.cell import CellSpec

DEFAULT_SIZE = (16, 1000, 1000)  # layers, hidden, batch: seconds a step on one thread
DEFAULT_ROUNDS = 15
WARMUP_STEPS = 2
# label -> (algorithm, options)
VARIANTS: dict[str, tuple[str, Mapping[str, Any]]] = {
    "bp": ("bp", {}), "bp-lean": ("bp-lean", {}), "bp-offload": ("bp-offload", {}),
}


def step_seconds(built: Built) -> float:
    """One train step, timed on its device (CUDA events on a GPU)."""
    return time_calls(lambda: built.algorithm.step(built.train), 1, built.algorithm.device)[0]


def alternating_medians(
    variants: Mapping[str, tuple[str, Mapping[str, Any]]], layers: int, hidden: int,
    batch: int, rounds: int, device: str = "cpu", threads: int | None = 1,
) -> tuple[dict[str, float], dict[str, Built]]:
    """Median train step seconds of each variant, one step of each in turn per round, and the
    cells (warmed up, alive together on `device`)."""
    cells = {
        label: warmed_up(resolved(CellSpec(name, n_layers=layers, hidden=hidden, batch_size=batch,
                                  device=device, threads=threads, options=dict(options)
                                  )), WARMUP_STEPS)
        for label, (name, options) in variants.items()
    }
    times: dict[str, list[float]] = {label: [] for label in cells}
    for _ in range(rounds):
        for label, built in cells.items():
            times[label].append(step_seconds(built))
    return {label: statistics.median(t) for label, t in times.items()}, cells


def ratio_lines(median: Mapping[str, float], cells: Mapping[str, Built],
                labels: Sequence[str], base: str = "bp") -> list[str]:
    flops = {label: cells[label].algorithm.train_flops_per_step() for label in labels}
    lines = [f"{label:12} median step {median[label]:.4f} s  ({flops[label] / 1e9:.2f} GFLOP)"
             for label in labels]
    lines += [f"{label} / {base}: time {median[label] / median[base]:.3f}, "
              f"FLOPs {flops[label] / flops[base]:.3f}" for label in labels if label != base]
    return lines


def main(layers: int, hidden: int, batch: int, rounds: int) -> None:
    torch.set_num_threads(1)
    median, cells = alternating_medians(VARIANTS, layers, hidden, batch, rounds)
    print("\n".join(ratio_lines(median, cells, list(VARIANTS))))
    print(f"({layers} layers, hidden {hidden}, batch {batch}, {rounds} rounds, 1 CPU thread; "
          f"bp-offload moves nothing on the CPU)")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    size = tuple(args[:3]) if len(args) >= 3 else DEFAULT_SIZE
    main(*size, args[3] if len(args) > 3 else DEFAULT_ROUNDS)
