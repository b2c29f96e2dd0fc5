"""bp's memory-saving options, bp-lean and bp-offload train the same function as bp; the
optimizer setting's state is what it says for every algorithm; bp-lean's peaks are
predicted (bp-offload's: tests/test_offload.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import ffbench_process

from ffbench.algorithms.registry import ALGORITHMS
from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import build, load_dataset, warm_up
from ffbench.cell.run import memory_peaks, static_bytes
from ffbench.results import read_row_json
from ffbench.settings.cell import OPTIMIZERS, CellSpec

STEPS = 4
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-6
INT64_BYTES = 8
STEP_COUNTER_BYTES = 4  # Adam's float32 `step` per parameter tensor, on the CPU
# layer-by-layer algorithms: only the layer in training holds optimizer state
ONE_LAYER_TRAINED = ("ff-progressive", "ff-layerwise")


def small(algorithm: str, **kw: object) -> CellSpec:
    fields: dict[str, object] = {
        "n_layers": 4, "hidden": 64, "batch_size": 32, "threads": 1, "dataset": "mnist-5k",
    } | kw
    return resolved(CellSpec(algorithm, **fields))  # type: ignore[arg-type]


def trained(spec: CellSpec, offload_on_host: bool = False) -> tuple[
        list[float], dict[str, torch.Tensor]]:
    """Losses of STEPS train steps from the seed, and the weights after them.
    `offload_on_host`: the offloading hooks run on the CPU too, where a cell turns them off
    (host and device are one memory): every saved activation is copied out and back."""
    built = build(spec, load_dataset(spec), torch.device("cpu"))
    if offload_on_host:
        assert built.algorithm.offloading is False  # type: ignore[attr-defined]  # the cpu rule
        built.algorithm.offloading = True  # type: ignore[attr-defined]
    losses = [float(built.algorithm.step(built.train)) for _ in range(STEPS)]
    return losses, {k: v.detach().clone() for k, v in built.algorithm.model.state_dict().items()}


VARIANTS = [
    ("bp", {"checkpoint_segments": 2}),
    ("bp", {"checkpoint_segments": 3}),
    ("bp", {"fused_step": True}),
    ("bp-lean", {}),
    ("bp-lean", {"checkpoint_segments": 4}),
    ("bp-offload", {}),
    ("bp-offload", {"checkpoint_segments": 3}),
    ("bp", {"offload_activations": True}),
]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize(("algorithm", "options"), VARIANTS)
def test_memory_saving_backprop_trains_the_same_function(
    algorithm: str, options: dict[str, object], optimizer: str
) -> None:
    plain_losses, plain_weights = trained(small("bp", optimizer=optimizer))
    losses, weights = trained(small(algorithm, options=options, optimizer=optimizer))
    assert losses == pytest.approx(plain_losses, rel=LOSS_RTOL)
    assert plain_weights.keys() == weights.keys()
    for name, value in plain_weights.items():
        torch.testing.assert_close(weights[name], value, rtol=0, atol=WEIGHT_ATOL)
    first = plain_weights["layers.0.weight"]
    assert not torch.equal(first, trained(small("bp", optimizer=optimizer, lr=0.5))[1][
        "layers.0.weight"]), "the weights moved with the learning rate: the steps did train"


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize(("algorithm", "options"), [
    ("bp-offload", {}),
    ("bp-offload", {"checkpoint_segments": 2}),
    ("bp-offload", {"checkpoint_segments": 3}),
    ("bp", {"offload_activations": True}),
    ("bp", {"offload_activations": True, "checkpoint_segments": 2}),
])
def test_offloaded_activations_train_the_same_function(
    algorithm: str, options: dict[str, object], optimizer: str
) -> None:
    """With the hooks running (each saved activation copied to a host tensor of its own and
    back, one copy serving every node that saved it): the losses and weights of the same
    cell without them, to the bit (against bp: VARIANTS above)."""
    spec = small(algorithm, options=options, optimizer=optimizer)
    plain_losses, plain_weights = trained(spec)
    losses, weights = trained(spec, offload_on_host=True)
    assert losses == plain_losses
    for name, value in plain_weights.items():
        assert torch.equal(weights[name], value), name


def state_holding_bytes(spec: CellSpec) -> tuple[int, int, int]:
    """(all parameter bytes, bytes of the parameters that carry optimizer state, their count)."""
    built = build(spec, load_dataset(spec), torch.device("cpu"))
    every = list(built.algorithm.model.parameters())
    trained_params = (
        list(built.algorithm.layers[-1].parameters())  # type: ignore[attr-defined]
        if spec.algorithm in ONE_LAYER_TRAINED else every
    )
    nbytes = sum(p.numel() * p.element_size() for p in every)
    return nbytes, sum(p.numel() * p.element_size() for p in trained_params), len(trained_params)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_static_bytes_are_weights_plus_the_optimizers_state(algorithm: str, optimizer: str) -> None:
    spec = small(algorithm, optimizer=optimizer, n_layers=3)
    built = build(spec, load_dataset(spec), torch.device("cpu"))
    warm_up(built, 2)
    weights, with_state, tensors = state_holding_bytes(spec)
    expected = {
        "sgd": weights,
        "momentum": weights + with_state,
        "adam": weights + 2 * with_state + tensors * STEP_COUNTER_BYTES,
    }[optimizer]
    assert static_bytes(built.algorithm) == expected


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize(("layers", "hidden", "batch"), [(4, 64, 128), (9, 200, 512)])
def test_bp_lean_tracked_cpu_peak_equals_its_meta_prediction(
    layers: int, hidden: int, batch: int, optimizer: str
) -> None:
    spec = small("bp-lean", n_layers=layers, hidden=hidden, batch_size=batch,
                 optimizer=optimizer, warmup_steps=1)
    peaks = memory_peaks(spec, load_dataset(spec))
    # Adam's step counters live on the host: on the CPU they are tracked, on meta not
    tensors = 2 * (layers + 1)  # weight and bias of every Linear, the head's included
    on_host = tensors * STEP_COUNTER_BYTES if optimizer == "adam" else 0
    assert peaks.train.tracked_bytes == peaks.predicted_train.tracked_bytes + on_host
    # and so is the eval batch's int64 gather index, where it is alive at the eval peak
    eval_index = batch * INT64_BYTES
    assert peaks.eval.tracked_bytes - peaks.predicted_eval.tracked_bytes - on_host in (
        0, eval_index)
    plain = memory_peaks(dataclasses.replace(spec, algorithm="bp", options={}),
                         load_dataset(spec))
    assert peaks.train.tracked_bytes < plain.train.tracked_bytes


ACCOUNT_RTOL = 0.02
WELL_BELOW = 0.75  # bp-lean at 47 layers: about two thirds of bp (2.7 vs 4.0 GiB)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize(
    ("layers", "hidden", "batch"),
    [(47, 2000, 5000), (16, 2000, 5000), (2, 2000, 5000), (9, 500, 2000), (3, 100, 64)],
)
def test_bp_lean_closed_form_account_matches_meta(
    layers: int, hidden: int, batch: int, optimizer: str
) -> None:
    spec = resolved(CellSpec("bp-lean", n_layers=layers, hidden=hidden, batch_size=batch,
                    device="meta", optimizer=optimizer))
    peaks = memory_peaks(spec, load_dataset(spec))
    account = ALGORITHMS[spec.algorithm].memory_account(spec)
    assert account.nbytes == pytest.approx(peaks.train.tracked_bytes, rel=ACCOUNT_RTOL)
    for category in account.exact:
        assert account.split[category] == peaks.train.split[category], (category, account.at)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize(("algorithm", "options", "layers", "batch"), [
    ("bp-lean", {}, 2, 100), ("bp-lean", {}, 4, 100), ("bp-lean", {}, 9, 10),
    ("bp", {"fused_step": True}, 3, 2), ("bp", {"fused_step": True, "checkpoint_segments": 3},
                                         3, 100),
])
def test_fused_steps_of_wide_layers_are_accounted_to_the_byte(
    algorithm: str, options: dict[str, object], layers: int, batch: int, optimizer: str
) -> None:
    """Wide layers and few rows: a layer's fused steps (its gradients made, its bias and its
    weight stepped, with the activations alive then) are the train step's peak."""
    spec = resolved(CellSpec(algorithm, n_layers=layers, hidden=1000, batch_size=batch,
                             device="meta", optimizer=optimizer, options=options))
    peaks = memory_peaks(spec, load_dataset(spec))
    account = ALGORITHMS[spec.algorithm].memory_account(spec)
    assert account.nbytes == peaks.train.tracked_bytes, account.at
    assert "layer" in account.at


@pytest.mark.slow
def test_bp_lean_predicts_a_train_peak_well_below_bp_at_the_published_size(
    tmp_path: Path,
) -> None:
    peak = {}
    for algorithm in ("bp", "bp-lean"):
        out = tmp_path / f"{algorithm}.json"
        result = ffbench_process("run", algorithm, "--layers", "47", "--hidden", "2000",
                                 "--batch-size", "5000", "--device", "meta", "--out", str(out))
        assert result.returncode == 0, result.stderr
        peak[algorithm] = read_row_json(out)["predicted_train_peak_bytes"]
    assert peak["bp-lean"] < WELL_BELOW * peak["bp"]


@pytest.mark.parametrize("options", [{"checkpoint_segments": 3}, {"checkpoint_segments": 9}])
def test_checkpointed_flops_count_the_recomputed_forwards(options: dict[str, object]) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    spec = small("bp", n_layers=5, options=options)
    built = build(spec, load_dataset(spec), torch.device("cpu"))
    warm_up(built, 1)
    with FlopCounterMode(display=False) as counter:
        built.algorithm.step(built.train)
    plain = build(small("bp", n_layers=5), load_dataset(spec), torch.device("cpu"))
    assert built.algorithm.train_flops_per_step() == counter.get_total_flops()
    assert built.algorithm.train_flops_per_step() > plain.algorithm.train_flops_per_step()
