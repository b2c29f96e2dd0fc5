"""Performance targets (issue 7), each cell in a fresh process as users run them:
CPU, one thread, hidden 1024, 4 layers, batch 1024.

- every algorithm's train step reaches >= 70% of the calibrated matmul rate at its shapes;
- FF's step time over backprop's is within 15% of their FLOP ratio.

Run: `python -m pytest benchmarks/test_efficiency.py -s` (prints the README's table).
Not in CI: it needs a quiet machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ffbench.algorithms.registry import ALGORITHMS

SIZE = ["--layers", "4", "--hidden", "1024", "--batch-size", "1024"]
MIN_EFFICIENCY = 0.70
RATIO_TOLERANCE = 0.15
REPO = Path(__file__).resolve().parent.parent


def measure(algorithm: str, out: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [sys.executable, "-m", "ffbench", "run", algorithm, *SIZE, "--device", "cpu",
         "--threads", "1", "--steps", "7", "--out", str(out)],
        check=True, env=env, capture_output=True,
    )
    row: dict[str, Any] = json.loads(out.read_text())
    return row


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("efficiency")
    measured = {name: measure(name, out / f"{name}.json") for name in ALGORITHMS}
    print("\n| algorithm | step time (median) | train GFLOP/step | achieved GFLOP/s "
          "| efficiency | train peak (tracked) |")
    print("|---|---|---|---|---|---|")
    for name, row in measured.items():
        print(f"| {name} | {row['step_time_median_s'] * 1e3:.0f} ms "
              f"| {row['train_flops_per_step'] / 1e9:.2f} "
              f"| {row['achieved_flops_per_s'] / 1e9:.1f} | {row['efficiency']:.0%} "
              f"| {row['train_peak_tracked_bytes'] / 2**20:.1f} MiB |")
    return measured


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_train_step_reaches_the_calibrated_matmul_rate(
    rows: dict[str, dict[str, Any]], algorithm: str
) -> None:
    assert rows[algorithm]["efficiency"] >= MIN_EFFICIENCY


@pytest.mark.parametrize("algorithm", [name for name in ALGORITHMS if name != "bp"])
def test_ff_time_ratio_follows_flop_ratio(
    rows: dict[str, dict[str, Any]], algorithm: str
) -> None:
    bp, other = rows["bp"], rows[algorithm]
    time_ratio = other["step_time_median_s"] / bp["step_time_median_s"]
    flop_ratio = other["train_flops_per_step"] / bp["train_flops_per_step"]
    assert time_ratio / flop_ratio == pytest.approx(1, abs=RATIO_TOLERANCE)
