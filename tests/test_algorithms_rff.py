"""Recurrent FF: damping, synchronous updates, the readout iterations, every module trained."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ffbench.algorithms.resolve import check, resolved
from ffbench.algorithms.rff import RecurrentFF, every_label_rows, positive_and_negative_rows
from ffbench.settings.cell import MNIST_CLASSES, MNIST_PIXELS, CellSpec

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def build(**fields: object) -> RecurrentFF:
    spec = CellSpec(algorithm="rff", **{"n_layers": 3, "hidden": 32, "batch_size": 16, **fields})
    torch.manual_seed(0)
    return RecurrentFF(resolved(spec), CPU)


def batch(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(size, MNIST_PIXELS, generator=gen)
    return images, torch.randint(0, 10, (size,), generator=gen)


def test_every_trainable_module_changes_after_training_steps() -> None:
    rff = build()
    before = {name: p.detach().clone() for name, p in rff.model.named_parameters()}
    for _ in range(2):
        rff.train_step(*batch())
    unchanged = [
        name for name, p in rff.model.named_parameters() if torch.equal(p.detach(), before[name])
    ]
    assert len(before) == 3 * 3  # bottom_up weight and bias, top_down weight, per layer
    assert unchanged == []


def test_update_is_synchronous_and_damped_as_configured() -> None:
    rff = build(options={"damping_old": 0.5, "damping_new": 0.25})
    image = torch.rand(6, MNIST_PIXELS)
    label = F.one_hot(torch.arange(6) % MNIST_CLASSES, MNIST_CLASSES).float()
    states = [torch.rand(6, 32) for _ in range(3)]
    layers = rff.layers
    with torch.no_grad():
        expected = [
            0.5 * states[0] + 0.25 * layers[0](image, states[1]),
            0.5 * states[1] + 0.25 * layers[1](states[0], states[2]),
            0.5 * states[2] + 0.25 * layers[2](states[1], label),
        ]
        computed = rff.iterate(states, image, label)
    for got, want in zip(computed, expected, strict=True):
        torch.testing.assert_close(got, want)
    # training runs the same damped, synchronous update (then adjusts the weights)
    trained, _ = rff._train_iteration(states, image, label)
    for got, want in zip(trained, expected, strict=True):
        torch.testing.assert_close(got, want)


def goodness_per_iteration(
    rff: RecurrentFF, x: torch.Tensor, iterations: int
) -> list[torch.Tensor]:
    """(n_layers, E * C) goodness at each iteration 1..iterations, computed step by step."""
    image, label = every_label_rows(x)
    with torch.no_grad():
        states = rff.bottom_up(image, label)
        out = []
        for _ in range(iterations):
            states = rff.iterate(states, image, label)
            out.append(torch.stack([rff.goodness(s) for s in states]))
    return out


def test_readout_sums_exactly_the_configured_iterations() -> None:
    rff = build(options={"readout_first": 3, "readout_last": 5})
    for _ in range(3):
        rff.train_step(*batch())
    x = torch.rand(4, MNIST_PIXELS)
    per_iteration = goodness_per_iteration(rff, x, 8)
    score = rff.readout_goodness(x)
    torch.testing.assert_close(score, sum(per_iteration[2:5]))  # iterations 3, 4, 5
    for wrong in (per_iteration[1:5], per_iteration[2:6], per_iteration[2:4]):
        assert not torch.allclose(score, sum(wrong))
    summed = score.sum(dim=0).view(-1, MNIST_CLASSES)
    assert torch.equal(rff.predict(x), summed.argmax(dim=1))
    assert torch.equal(rff.layer_predictions(x), score.view(3, -1, MNIST_CLASSES).argmax(dim=2))


def test_prediction_stops_after_the_last_readout_iteration() -> None:
    rff = build(options={"readout_first": 2, "readout_last": 4}, eval_chunk=0)  # one pass
    calls = []
    iterate = rff.iterate
    rff.iterate = lambda *args: calls.append(1) or iterate(*args)  # type: ignore[method-assign]
    rff.predict(torch.rand(3, MNIST_PIXELS))
    assert len(calls) == 4


def test_training_runs_the_configured_number_of_iterations() -> None:
    rff = build(options={"iterations": 5})
    assert rff.train_step(*batch()).shape == (5, 3)  # one loss per iteration and layer


def test_negatives_never_carry_the_true_label() -> None:
    labels = torch.randint(0, 10, (20_000,))
    images, one_hot = positive_and_negative_rows(torch.rand(20_000, 4), labels)
    chosen = one_hot.argmax(dim=1)
    assert torch.equal(chosen[:20_000], labels)
    assert not (chosen[20_000:] == labels).any()
    assert torch.equal(images[:20_000], images[20_000:])  # same images, only labels differ
    assert set(chosen[20_000:].tolist()) == set(range(10))


def test_eval_chunk_gives_the_same_predictions() -> None:
    rff = build()
    rff.train_step(*batch())
    x = torch.rand(7, MNIST_PIXELS)
    whole = rff.predict(x)
    rff.spec = dataclasses.replace(rff.spec, eval_chunk=20)
    assert torch.equal(rff.predict(x), whole)


def test_analytic_flops_match_torch_flop_counter() -> None:
    rff = build(batch_size=8, eval_batch_size=4)
    rff.train_step(*batch(8))  # optimizer state exists: the counted step is a steady one
    with FlopCounterMode(display=False) as train:
        rff.train_step(*batch(8))
    with FlopCounterMode(display=False) as evaluation:
        rff.predict(torch.rand(4, MNIST_PIXELS))
    assert train.get_total_flops() == rff.train_flops_per_step()
    assert evaluation.get_total_flops() == rff.eval_flops_per_batch()


@pytest.mark.parametrize(
    "options",
    [{"readout_last": 9}, {"readout_first": 0}, {"readout_first": 5, "readout_last": 4},
     {"damping_old": 1.5}],
)
def test_impossible_readout_or_damping_is_refused(options: dict[str, object]) -> None:
    from ffbench.errors import BadInput

    with pytest.raises(BadInput):
        check(CellSpec(algorithm="rff", n_layers=2, options=options))
