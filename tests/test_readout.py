"""The linear read-out of the FF family (`--option readout=linear`): local training, one
forward per image at eval, the neutral label."""

from __future__ import annotations

import pytest
import torch

from ffbench.algorithms import registry
from ffbench.algorithms.readout import NEUTRAL_LABEL, with_neutral_label
from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import build, load_dataset, warm_up
from ffbench.cell.run import memory_pass
from ffbench.settings.cell import MNIST_CLASSES, MNIST_PIXELS, CellSpec

FF_FAMILY = [name for name in registry.names() if "readout" in registry.load(name).options]
CPU = torch.device("cpu")


def built(name: str, readout: str, **fields: object):  # type: ignore[no-untyped-def]
    spec = resolved(CellSpec(name, **{"n_layers": 2, "hidden": 32, "batch_size": 64,
                             "dataset": "mnist-5k", "options": {"readout": readout},
                             **fields}))  # type: ignore[arg-type]
    return build(spec, load_dataset(spec), CPU)


@pytest.mark.parametrize("name", FF_FAMILY)
def test_the_read_out_changes_nothing_in_the_layers(name: str) -> None:
    """Same seed: after the same steps the layers hold the same weights with either read-out
    (its gradients stop at the layers; its initial weights take nothing from the stream the
    negatives are drawn from)."""
    weights = {}
    for readout in ("goodness", "linear"):
        cell = built(name, readout)
        for _ in range(4):
            cell.algorithm.step(cell.train)
        weights[readout] = [p.detach().clone() for layer in cell.algorithm.layers
                            for p in layer.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(*weights.values(), strict=True))


@pytest.mark.parametrize("name", FF_FAMILY)
def test_linear_read_out_evaluates_each_image_once(name: str) -> None:
    """Eval peak: no replicated rows at all, where the goodness read-out holds ten per image."""
    splits = {}
    for readout in ("goodness", "linear"):
        cell = built(name, readout)
        warm_up(cell, 1)
        _, evaluation = memory_pass(cell, steps=1)
        splits[readout] = evaluation.split
    e = 4  # float32
    assert splits["goodness"]["eval_replication"] >= 64 * MNIST_CLASSES * MNIST_CLASSES * e
    assert splits["linear"]["eval_replication"] == 0


def test_the_neutral_label_leaves_the_image_and_its_input_alone() -> None:
    x = torch.rand(5, MNIST_PIXELS)
    before = x.clone()
    rows = with_neutral_label(x)
    assert torch.equal(x, before)  # a copy: the caller's batch is not written into
    assert (rows[:, :MNIST_CLASSES] == NEUTRAL_LABEL).all()
    assert torch.equal(rows[:, MNIST_CLASSES:], x[:, MNIST_CLASSES:])


@pytest.mark.parametrize("name", FF_FAMILY)
def test_the_read_out_trains_with_its_own_learning_rate(name: str) -> None:
    cell = built(name, "linear", lr=0.01, options={"readout": "linear", "readout_lr": 0.002})
    rates = [group["lr"] for optimizer in cell.algorithm.optimizers
             for group in optimizer.param_groups]
    assert rates[-1] == 0.002 and set(rates[:-1]) == {0.01}
