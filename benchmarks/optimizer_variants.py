"""Measured, not adopted: Adam's foreach and fused implementations, and torch.compile of the
layers, against today's steps (single-tensor Adam, eager), at the efficiency benchmark's
shapes (benchmarks/test_efficiency.py: one thread, hidden 1024, 4 layers, batch 1024).

Every variant of an algorithm is built in this one process and timed round by round, so
load from other processes falls on each alike; the ratios are medians of per-round ratios.
Each variant's Adam starts from the same parameters; state is its own (two warm-up steps).

    python benchmarks/optimizer_variants.py [ALGORITHM ...]      # default: bp ff rff
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import replace

import torch

from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import Built, warmed_up
from ffbench.measure.timer import time_calls
from ffbench.settings.cell import CellSpec

SIZE = {"n_layers": 4, "hidden": 1024, "batch_size": 1024}
ROUNDS = 7
WARMUP_STEPS = 2
CPU = torch.device("cpu")
ADAMS: dict[str, dict[str, bool]] = {
    "single-tensor": {"foreach": False},
    "foreach": {"foreach": True},
    "fused": {"fused": True},
}


def with_adam(built: Built, options: dict[str, bool]) -> Built:
    """The cell's optimizers replaced by Adams with `options` over the same parameters."""
    algorithm = built.algorithm
    algorithm.optimizers = [
        torch.optim.Adam(
            [p for group in opt.param_groups for p in group["params"]],
            lr=opt.param_groups[0]["lr"], **options,
        )
        for opt in algorithm.optimizers
    ]
    for _ in range(WARMUP_STEPS):
        algorithm.step(built.train)
    return built


def optimizer_steps(built: Built) -> Callable[[], None]:
    """All of the cell's optimizer steps once (the gradients of its last train step)."""
    optimizers = built.algorithm.optimizers

    def step() -> None:
        for optimizer in optimizers:
            optimizer.step()

    return step


def measure(algorithm: str) -> dict[str, tuple[float, float]]:
    """Variant -> (median step-time ratio to today's, median optimizer-step ratio)."""
    spec = resolved(CellSpec(algorithm, threads=1, **SIZE))  # type: ignore[arg-type]
    variants = {name: with_adam(warmed_up(spec, WARMUP_STEPS), options)
                for name, options in ADAMS.items()}
    if algorithm != "bp":  # bp's compile is the whole model's; FF's is each layer's
        variants["compiled layers"] = warmed_up(replace(spec, compile=True), WARMUP_STEPS + 1)
    step_ratios: dict[str, list[float]] = {name: [] for name in variants}
    opt_ratios: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(ROUNDS):
        steps = {name: statistics.median(time_calls(
            lambda b=built: b.algorithm.step(b.train), 3, CPU)) for name, built in variants.items()}
        opts = {name: statistics.median(time_calls(optimizer_steps(built), 5, CPU))
                for name, built in variants.items()}
        for name in variants:
            step_ratios[name].append(steps[name] / steps["single-tensor"])
            opt_ratios[name].append(opts[name] / opts["single-tensor"])
    return {name: (statistics.median(step_ratios[name]), statistics.median(opt_ratios[name]))
            for name in variants}


def main(algorithms: list[str]) -> None:
    torch.set_num_threads(1)
    print("algorithm  variant          step time / today's   Adam step time / today's")
    for algorithm in algorithms:
        for name, (step, opt) in measure(algorithm).items():
            print(f"{algorithm:10} {name:16} {step:19.3f}   {opt:24.3f}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["bp", "ff", "rff"])
