"""Tests generated from the registry: every registered algorithm, built-in or installed
plugin, is put under them by being registered (no list here names one).

Per algorithm: the class keeps the contract; a smoke test of train and eval on cpu and
meta; the tracked peak on meta against the algorithm's closed-form memory account at two
sizes (one peaking in an Adam step, one in backward); and against PyTorch's own memory
accounting, torch.distributed._tools.mem_tracker.MemTracker, to the byte. Every algorithm
with a `readout` option (the FF family) is tried with `readout=linear` as well (VARIANTS).
FLOPs against FlopCounterMode: tests/test_flops.py, generated the same way.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from torch import nn
from torch.distributed._tools.mem_tracker import MemTracker

from ffbench.algorithms import registry
from ffbench.algorithms.base import Algorithm
from ffbench.algorithms.presets import PRESETS
from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import build, load_dataset, warm_up
from ffbench.cell.run import META_WARMUP_STEPS, memory_peaks, predicted_peaks
from ffbench.measure.categories import CATEGORIES
from ffbench.measure.tracker import TensorTracker
from ffbench.settings.cell import MNIST_CLASSES, CellSpec

from helpers import algorithm_variants

NAMES = registry.names()
VARIANTS = algorithm_variants()  # (algorithm, options), the linear read-out's included
# (layers, hidden, batch): small rows and wide layers peak in an Adam step; many rows, in
# backward (each algorithm's account names both moments). The larger one is slow for the
# oracle (rff's eight iterations under MemTracker's hooks): in the full suite only.
SIZES = [(2, 64, 32), (3, 300, 700)]
ORACLE_SIZES = [SIZES[0], pytest.param(SIZES[1], marks=pytest.mark.slow)]
TOTAL_RTOL = 0.02  # the account's total against the tracked peak
CATEGORY_RTOL = 0.001  # each category the account counts exactly
META = torch.device("meta")
# More (layers, hidden, batch) for the closed-form and oracle tests, e.g. a plugin's own
# shapes: FFBENCH_CONTRACT_SIZES="4x128x64,8x512x256" (docs/plugins.md).
SIZES_VARIABLE = "FFBENCH_CONTRACT_SIZES"


def extra_sizes(text: str) -> list[tuple[int, int, int]]:
    """(layers, hidden, batch) of each "LAYERSxHIDDENxBATCH" in a comma-separated list."""
    sizes = []
    for part in filter(None, (item.strip() for item in text.split(","))):
        numbers = part.split("x")
        if len(numbers) != 3 or not all(n.isdigit() and int(n) > 0 for n in numbers):
            raise ValueError(f"{SIZES_VARIABLE}: {part!r} is not LAYERSxHIDDENxBATCH")
        sizes.append((int(numbers[0]), int(numbers[1]), int(numbers[2])))
    return sizes


EXTRA_SIZES = extra_sizes(os.environ.get(SIZES_VARIABLE, ""))
SIZES += EXTRA_SIZES
ORACLE_SIZES += EXTRA_SIZES


def small_spec(name: str, device: str, **fields: Any) -> CellSpec:
    return resolved(CellSpec(name, n_layers=2, hidden=32, batch_size=16, eval_batch_size=8,
                    device=device, dataset="mnist-5k", warmup_steps=1, **fields))


@pytest.mark.parametrize("name", NAMES)
def test_the_class_keeps_the_contract(name: str) -> None:
    cls = registry.load(name)
    assert issubclass(cls, Algorithm) and cls.name == name
    assert cls.display_name and cls.summary and "\n" not in cls.summary
    assert registry.display_name(name) == cls.display_name
    assert cls.default_lr > 0
    cls.check_options({})  # its defaults are valid
    assert set(cls.preset_settings) <= set(PRESETS)  # test_presets builds a cell from each
    account = cls.memory_account(small_spec(name, "meta"))
    assert set(account.split) == set(CATEGORIES) and account.at


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize("phase", ["train", "eval"])
@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_smoke(name: str, options: dict[str, Any], phase: str, device: str) -> None:
    spec = small_spec(name, device, options=options)
    built = build(spec, load_dataset(spec), torch.device(device))
    warm_up(built, 1, eval_batches=0)
    if phase == "train":
        loss = built.algorithm.step(built.train)
        assert loss.device.type == device
        if device == "cpu":
            assert torch.isfinite(loss).all()
    else:
        x, _ = built.eval.next()
        predicted = built.algorithm.predict(x)
        assert predicted.shape == (spec.eval_batch_size,)
        if device == "cpu":
            assert ((predicted >= 0) & (predicted < MNIST_CLASSES)).all()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_the_tracked_peak_is_the_closed_form_account(
    name: str, options: dict[str, Any], size: tuple[int, ...]
) -> None:
    layers, hidden, batch = size
    spec = resolved(CellSpec(name, n_layers=layers, hidden=hidden, batch_size=batch,
                    device="meta", options=options))
    predicted, _ = predicted_peaks(spec, load_dataset(spec))
    account = registry.load(name).memory_account(spec)
    assert account.nbytes == pytest.approx(predicted.tracked_bytes, rel=TOTAL_RTOL), account.at
    for category in account.exact:
        assert account.split[category] == pytest.approx(
            predicted.split[category], rel=CATEGORY_RTOL, abs=0), (category, account.at)


@pytest.mark.parametrize("optimizer", ["sgd", "momentum"])
@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_the_account_covers_every_optimizer(
    name: str, options: dict[str, Any], optimizer: str
) -> None:
    """Adam is covered above; sgd keeps no state, momentum one buffer per parameter, and
    without Adam's temporaries the peak moves into the backward. At the smaller size (the
    cheap one): predicted on meta, and measured on cpu, where the host is the device (Adam's
    step counters and ff-layerwise's host-side layers and cache count there)."""
    layers, hidden, batch = SIZES[0]
    for device in ("meta", "cpu"):
        spec = resolved(CellSpec(name, n_layers=layers, hidden=hidden, batch_size=batch,
                                 device=device, optimizer=optimizer, threads=1,
                                 options=options))
        peaks = memory_peaks(spec, load_dataset(spec))
        peak = peaks.predicted_train if device == "meta" else peaks.train
        account = registry.load(name).memory_account(spec)
        assert account.nbytes == pytest.approx(peak.tracked_bytes, rel=TOTAL_RTOL), account.at
        for category in account.exact:
            assert account.split[category] == pytest.approx(
                peak.split[category], rel=CATEGORY_RTOL, abs=0), (category, account.at)


class Oracle(MemTracker):
    """MemTracker, letting a module run more than once in a step: ff's and rff's layers are
    called outside any common parent module (rff's once per iteration), which MemTracker
    takes for a second training iteration and refuses. Dropping the module's own statistics
    before it runs again keeps every device total, which is all this test reads."""

    def _pre_fw_hook(self, module: nn.Module, inputs: Any) -> None:
        if module in self.memory_tracking and not self._mod_tracker.is_bw:
            del self.memory_tracking[module]
        super()._pre_fw_hook(module, inputs)

    def _track_module_params_and_buffers(
        self, module: nn.Module, install_grad_hooks: bool = True
    ) -> tuple[int, int]:
        """MemTracker hooks each parameter for its gradient, which a tensor without grad
        refuses: ff-layerwise's linear read-out runs a frozen layer with its weights copied
        to the device for that call (functional_call), copies that get no gradient."""
        hooks = install_grad_hooks and all(p.requires_grad for p in module.parameters())
        return super()._track_module_params_and_buffers(module, install_grad_hooks=hooks)


def peaks_and_mem_trackers(spec: CellSpec) -> tuple[int, dict[str, int]]:
    """One train step's peak on meta by ffbench's tracker, and MemTracker's peak per device
    type, for the same step (after a warm-up); the model, its optimizers and the
    algorithm's cache passed to MemTracker as tensors that exist before the step."""
    built = build(spec, load_dataset(spec), META)
    warm_up(built, META_WARMUP_STEPS, eval_batches=0)
    algorithm = built.algorithm
    oracle = Oracle()
    oracle.track_external(algorithm.model, *algorithm.optimizers,
                          *algorithm.persistent_tensors().get("cache", []))
    with oracle:
        algorithm.step(built.train)
    with TensorTracker(META, algorithm.persistent_tensors) as tracker:
        algorithm.step(built.train)
    return tracker.peak_bytes, {device.type: snap["Total"] for device, snap in
                                oracle.get_tracker_snapshot("peak").items()}


@pytest.mark.parametrize("size", ORACLE_SIZES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize(("name", "options"), VARIANTS)
def test_pytorch_mem_tracker_agrees_to_the_byte(
    name: str, options: dict[str, Any], size: tuple[int, ...]
) -> None:
    """One train step on meta (fake tensors), counted by both trackers.

    What each counts that the other does not: MemTracker counts every device, ffbench's
    tracker only the measured one, so the host's share (Adam's float32 step counters, the
    sampler's indices, ff-layerwise's frozen layers and cache) is MemTracker's alone and
    left out here (its "cpu" entry); tensors that exist before the step count for MemTracker
    only when passed to `track_external`, for ffbench's tracker only when the algorithm
    reports them persistent, so the model, its optimizers and the algorithm's persistent
    tensors (a cache) are passed. After that, the two peaks are equal to the byte."""
    layers, hidden, batch = size
    spec = resolved(CellSpec(name, n_layers=layers, hidden=hidden, batch_size=batch,
                    device="meta", options=options))
    ours, theirs = peaks_and_mem_trackers(spec)
    assert ours == theirs["meta"]
