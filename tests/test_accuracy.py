"""Accuracy on the offline real MNIST subset (mnist-5k) with the `mnist-5k-accuracy` preset:
each algorithm reaches its `accuracy_target`, in its own `ffbench run` process (side by side)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ffbench.algorithms.base import Algorithm
from ffbench.algorithms.registry import load, usable

# every algorithm that states the accuracy its mnist-5k-accuracy settings reach
TARGETS = {cls.name: cls.accuracy_target for cls in usable() if cls.accuracy_target is not None}
RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """One result row per algorithm; the three processes run at the same time."""
    out_dir = tmp_path_factory.mktemp("accuracy")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", "ffbench", "run", name, "--preset", "mnist-5k-accuracy",
             "--steps", "1", "--warmup", "1", "--out", str(out_dir / f"{name}.json")],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        for name in TARGETS
    }
    for name, process in running.items():
        _, stderr = process.communicate(timeout=RUN_TIMEOUT_S)
        assert process.returncode == 0, f"{name}: {stderr}"
    return {name: json.loads((out_dir / f"{name}.json").read_text()) for name in TARGETS}


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", sorted(TARGETS))
def test_reaches_its_target_accuracy(rows: dict[str, dict[str, object]], algorithm: str) -> None:
    row = rows[algorithm]
    assert row["status"] == "ok"
    assert row["dataset"] == "mnist-5k" and row["epochs"] > 0  # type: ignore[operator]
    assert row["test_accuracy"] >= TARGETS[algorithm]  # type: ignore[operator]


@pytest.mark.slow
def test_layers_that_predict_report_their_own_accuracy(
    rows: dict[str, dict[str, object]],
) -> None:
    for name in TARGETS:
        if load(name).layer_predictions is Algorithm.layer_predictions:  # no per-layer readout
            assert rows[name]["layer_accuracy"] is None
            continue
        per_layer = json.loads(rows[name]["layer_accuracy"])  # type: ignore[arg-type]
        assert len(per_layer) == rows[name]["n_layers"]
        assert all(0.0 <= value <= 1.0 for value in per_layer)
        assert max(per_layer) > 0.5  # the layers themselves learned the task
