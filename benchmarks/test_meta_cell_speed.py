"""Speed of one predicted (meta) cell at the published size: what `ffbench sweep --device
meta` spends per cell in a long-lived worker (torch already imported).

Run: `python -m pytest benchmarks/test_meta_cell_speed.py`. The target: the published sweep
(bp, ff, rff; depth 2..47; hidden 2000; batch 5000) in under 5 minutes on a 2-core laptop,
i.e. a 47-layer cell in a few seconds. Not gated in CI (shared CPUs are too noisy).
"""

from __future__ import annotations

from typing import Any

import pytest

from ffbench.algorithms.registry import ALGORITHMS
from ffbench.cell.run import run_cell
from ffbench.settings.cell import CellSpec

PUBLISHED = {"hidden": 2000, "batch_size": 5000}


@pytest.mark.parametrize("layers", [2, 47])
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_meta_cell(benchmark: Any, algorithm: str, layers: int) -> None:
    spec = CellSpec(algorithm, n_layers=layers, device="meta", threads=1, **PUBLISHED)
    run_cell(CellSpec(algorithm, n_layers=2, hidden=8, batch_size=8, device="meta"))  # imports
    row = benchmark.pedantic(run_cell, args=(spec,), rounds=3, warmup_rounds=0)
    assert row["predicted_train_peak_bytes"] > 0
    benchmark.extra_info["predicted_train_peak_bytes"] = row["predicted_train_peak_bytes"]
