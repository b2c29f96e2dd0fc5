"""Accuracy on the offline real MNIST subset (mnist-5k) with the `mnist-5k-accuracy` preset:
each algorithm's target, each algorithm in its own `ffbench run` process (two at a time, as
many as the CI machine has cores)."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import FFBENCH, process_env

from ffbench.algorithms.base import Algorithm
from ffbench.algorithms.registry import load, usable

# every algorithm that states the accuracy its mnist-5k-accuracy settings reach
TARGETS = {cls.name: cls.accuracy_target for cls in usable() if cls.accuracy_target is not None}
RUN_TIMEOUT_S = 900
AT_ONCE = 2


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """One result row per algorithm (seed 0, the preset's)."""
    out_dir = tmp_path_factory.mktemp("accuracy")

    def start(name: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*FFBENCH, "run", name, "--preset", "mnist-5k-accuracy",
             "--steps", "1", "--warmup", "1", "--out", str(out_dir / f"{name}.json")],
            env=process_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

    waiting = list(TARGETS)
    while waiting:
        running = {name: start(name) for name in waiting[:AT_ONCE]}
        waiting = waiting[AT_ONCE:]
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
    curve = json.loads(row["accuracy_curve"])  # type: ignore[arg-type]
    assert curve[-1][2] == row["test_accuracy"]


@pytest.mark.slow
def test_bp_lean_reaches_bps_accuracy_exactly(rows: dict[str, dict[str, object]]) -> None:
    """It trains the same function from the same seed: the same accuracy after every epoch."""
    lean, bp = rows["bp-lean"], rows["bp"]
    assert lean["test_accuracy"] == bp["test_accuracy"]
    accuracies = [[acc for _, _, acc in json.loads(row["accuracy_curve"])]  # type: ignore[arg-type]
                  for row in (lean, bp)]
    assert accuracies[0] == accuracies[1]


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
