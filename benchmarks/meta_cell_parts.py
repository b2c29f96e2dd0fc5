"""Where a meta cell's time goes: the whole cell, its traced pass, and the same
steps under the shape cache alone and with no dispatch mode at all, at the published width
and batch. Medians of 3 in one process, after one cell that pays the imports.

Run: `PYTHONPATH=. python benchmarks/meta_cell_parts.py`.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch

from ffbench.algorithms.resolve import resolved
from ffbench.cell.allocator_view import traced_sequence
from ffbench.cell.built import build, load_dataset
from ffbench.cell.run import run_cell
from ffbench.measure.meta_cache import MetaShapeCache
from ffbench.settings.cell import CellSpec

CELLS = (("bp", 47), ("ff", 47), ("rff", 24))
PUBLISHED = {"hidden": 2000, "batch_size": 5000}
REPEATS = 3
META = torch.device("meta")


def median_s(work: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        gc.collect()
        gc.freeze()  # as the meta worker does between cells
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parts(spec: CellSpec) -> str:
    dataset = load_dataset(spec)
    run_cell(spec)  # imports and first-use caches

    def steps(cached: bool) -> None:
        built = build(spec, dataset, META)
        with MetaShapeCache() if cached else nullcontext():
            for _ in range(2):  # warm-up and measured step, each with an eval batch
                built.algorithm.step(built.train)
                built.algorithm.predict(built.eval.next()[0])

    cell = median_s(lambda: run_cell(spec))
    traced = median_s(lambda: traced_sequence(build(spec, dataset, META), 1, 1))
    return (f"{spec.algorithm} {spec.n_layers} layers: cell {cell:.2f} s, traced pass "
            f"{traced:.2f} s, steps under the shape cache {median_s(lambda: steps(True)):.2f} s, "
            f"steps alone {median_s(lambda: steps(False)):.2f} s")


def main() -> None:
    for name, layers in CELLS:
        print(parts(resolved(CellSpec(name, n_layers=layers, device="meta", **PUBLISHED))))


if __name__ == "__main__":
    main()
