"""Performance targets on the CPU, one thread, hidden 1024, 4 layers, batch 1024:

- every algorithm's train step reaches >= 85% of the calibrated matmul rate at its shapes;
- FF's step time over backprop's is within 10% of their FLOP ratio (its extra time is arithmetic).

All algorithms are built in this one process; their steps, and the calibration of each one's
matmul rate, are interleaved round by round, so a change in the machine's load hits every
algorithm and its floor alike. Run:
`python -m pytest benchmarks/test_efficiency.py -s` (prints the table in docs/performance.md).
Not in CI: it needs a quiet machine.
"""

from __future__ import annotations

import statistics
from typing import Any

import pytest
import torch

from ffbench.algorithms.registry import ALGORITHMS
from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import Built, warmed_up
from ffbench.cell.run import calibrated_rate
from ffbench.measure.timer import time_calls
from ffbench.settings.cell import CellSpec

SIZE = {"n_layers": 4, "hidden": 1024, "batch_size": 1024}
ROUNDS = 7
MIN_EFFICIENCY = 0.85
RATIO_TOLERANCE = 0.10
CPU = torch.device("cpu")


def built_cell(algorithm: str) -> Built:
    return warmed_up(resolved(CellSpec(algorithm, threads=1, **SIZE)), 2)  # type: ignore[arg-type]


def interleaved(cells: dict[str, Built]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per algorithm, ROUNDS step times and as many calibrations, taken round by round."""
    times: dict[str, list[float]] = {name: [] for name in cells}
    rates: dict[str, list[float]] = {name: [] for name in cells}
    for _ in range(ROUNDS):
        for name, built in cells.items():
            times[name] += time_calls(lambda b=built: b.algorithm.step(b.train), 1, CPU)
            rates[name].append(calibrated_rate(built))
    return times, rates


@pytest.fixture(scope="module")
def measured() -> dict[str, dict[str, Any]]:
    torch.set_num_threads(1)
    cells = {name: built_cell(name) for name in ALGORITHMS}
    times, rates = interleaved(cells)
    rows = {}
    print("\n| algorithm | step time (median) | train GFLOP/step | achieved GFLOP/s "
          "| calibrated GFLOP/s | efficiency |")
    print("|---|---|---|---|---|---|")
    for name, built in cells.items():
        median_s = statistics.median(times[name])
        flops = built.algorithm.train_flops_per_step()
        rate = statistics.median(rates[name])
        rows[name] = {"median_s": median_s, "flops": flops, "efficiency": flops / median_s / rate}
        print(f"| {name} | {median_s * 1e3:.0f} ms | {flops / 1e9:.2f} "
              f"| {flops / median_s / 1e9:.1f} | {rate / 1e9:.1f} "
              f"| {rows[name]['efficiency']:.0%} |")
    return rows


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_train_step_reaches_the_calibrated_matmul_rate(
    measured: dict[str, dict[str, Any]], algorithm: str
) -> None:
    assert measured[algorithm]["efficiency"] >= MIN_EFFICIENCY


@pytest.mark.parametrize("algorithm", [name for name in ALGORITHMS if name != "bp"])
def test_ff_time_ratio_follows_flop_ratio(
    measured: dict[str, dict[str, Any]], algorithm: str
) -> None:
    bp, other = measured["bp"], measured[algorithm]
    time_ratio = other["median_s"] / bp["median_s"]
    flop_ratio = other["flops"] / bp["flops"]
    assert time_ratio / flop_ratio == pytest.approx(1, abs=RATIO_TOLERANCE)
