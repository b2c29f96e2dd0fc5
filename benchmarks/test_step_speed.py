"""Speed of one train step and one eval batch per algorithm, one thread, fixed small sizes.

Run: `python -m pytest benchmarks/test_step_speed.py` (pytest-benchmark prints the table;
add `--benchmark-autosave` and `--benchmark-compare` to see regressions run to run). Not
gated in CI: CPU timings on shared machines are too noisy for a pass/fail threshold.
"""

from __future__ import annotations

from typing import Any

import pytest

from ffbench.algorithms.registry import ALGORITHMS
from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import Built, warmed_up
from ffbench.settings.cell import CellSpec

SIZE = {"n_layers": 4, "hidden": 512, "batch_size": 512}


def built_cell(algorithm: str) -> Built:
    return warmed_up(resolved(CellSpec(algorithm, threads=1, **SIZE)), 2)  # type: ignore[arg-type]


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_train_step(benchmark: Any, algorithm: str) -> None:
    built = built_cell(algorithm)
    batch = built.train.next()
    benchmark.extra_info["train_flops_per_step"] = built.algorithm.train_flops_per_step()
    benchmark.pedantic(built.algorithm.train_step, args=batch, rounds=7, warmup_rounds=1)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_eval_batch(benchmark: Any, algorithm: str) -> None:
    built = built_cell(algorithm)
    x, _ = built.eval.next()
    benchmark.extra_info["eval_flops_per_batch"] = built.algorithm.eval_flops_per_batch()
    benchmark.pedantic(built.algorithm.predict, args=(x,), rounds=5, warmup_rounds=1)
