"""Test accuracy after every epoch with the training seconds so far (`accuracy_curve`), on tiny
real runs (mnist-5k)."""

from __future__ import annotations

import json
import time

import pytest
import torch

from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import load_dataset
from ffbench.cell.run import accuracy, run_cell
from ffbench.measure.timer import Stopwatch
from ffbench.settings.cell import CellSpec

CPU = torch.device("cpu")


# settings under which each learns within two passes over the 4,000 training digits
FF_LEARNS_FAST: dict[str, object] = {
    "goodness": "topk_meansq", "options": {"readout": "linear", "readout_from_layer": 0},
}


def tiny(algorithm: str, **fields: object) -> CellSpec:
    defaults: dict[str, object] = {
        "n_layers": 2, "hidden": 64, "batch_size": 100, "dataset": "mnist-5k", "epochs": 2,
        "steps": 1, "warmup_steps": 1, "threads": 1,
    }
    return resolved(CellSpec(algorithm, **{**defaults, **fields}))  # type: ignore[arg-type]


@pytest.mark.parametrize(("algorithm", "fields", "passes"), [
    ("bp", {}, 2),
    ("ff", FF_LEARNS_FAST, 2),
    ("ff-progressive", FF_LEARNS_FAST, 4),  # 2 epochs for each of its 2 layers in turn
])
def test_one_point_per_pass_with_growing_training_time(
    algorithm: str, fields: dict[str, object], passes: int
) -> None:
    spec = tiny(algorithm, **fields)
    reached = accuracy(spec, load_dataset(spec), CPU)
    curve = json.loads(reached.curve)
    assert [epoch for epoch, _, _ in curve] == list(range(1, passes + 1))
    seconds = [s for _, s, _ in curve]
    assert 0 < seconds[0] and all(a < b for a, b in zip(seconds, seconds[1:], strict=False))
    assert all(0 <= acc <= 1 for _, _, acc in curve)
    assert reached.test == curve[-1][2]  # the final accuracy is the last epoch's
    assert curve[-1][2] > 0.5  # it learned something real (chance: 0.1)


@pytest.mark.slow
def test_the_row_carries_the_curve_and_only_when_trained() -> None:
    trained = run_cell(tiny("ff", epochs=1, **FF_LEARNS_FAST))
    curve = json.loads(trained["accuracy_curve"])
    assert len(curve) == 1 and curve[0][2] == trained["test_accuracy"]
    untrained = run_cell(tiny("ff", epochs=0))
    assert untrained["accuracy_curve"] is None and untrained["test_accuracy"] is None


def test_the_stopwatch_leaves_out_what_happens_between_spans() -> None:
    clock = Stopwatch(CPU)
    clock.start()
    time.sleep(0.05)
    first = clock.stop()
    time.sleep(0.3)  # an evaluation, say: not counted
    clock.start()
    time.sleep(0.05)
    total = clock.stop()
    assert 0.05 <= first < 0.1 and 0.1 <= total < 0.3
