"""Activation offloading (algorithms/offload.py; bp's `offload_activations`, bp-offload):
what the hooks copy, where the bytes count (host on meta, nothing moved on cpu), the closed
form against the tracker at every option combination, FLOPs, the allocator's view, and
PyTorch's MemTracker with checkpointing."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, ffbench_process
from test_algorithm_contract import peaks_and_mem_trackers
from torch.utils.flop_counter import FlopCounterMode

from ffbench.algorithms import account
from ffbench.algorithms.bp import HOST_DEVICE_NOTE, Backprop, offloaded_rows, segment_bounds
from ffbench.algorithms.offload import HostCopy, Offloader
from ffbench.algorithms.registry import ALGORITHMS
from ffbench.algorithms.resolve import resolved
from ffbench.cell.allocator_view import replay
from ffbench.cell.built import build, load_dataset, warm_up
from ffbench.cell.explain import explain, note_lines
from ffbench.cell.run import memory_peaks, run_cell
from ffbench.results import read_row_json
from ffbench.settings.cell import MNIST_CLASSES, CellSpec

CPU, META = torch.device("cpu"), torch.device("meta")
STEP_COUNTER_BYTES = 4  # Adam's float32 `step` per parameter tensor, on the host
MIB = 1 << 20
WORKSPACE_BYTES = 32 * MIB  # an H200's cuBLAS workspace (allocator_view's replay)
# (algorithm, options): bp-offload as registered and with checkpointing; bp offloading
# without the fused step (gradients accumulate, one optimizer step at the end)
COMBINATIONS: list[tuple[str, dict[str, Any]]] = [
    ("bp-offload", {}),
    ("bp-offload", {"checkpoint_segments": 2}),
    ("bp-offload", {"checkpoint_segments": 3}),
    ("bp-offload", {"checkpoint_segments": 4}),
    ("bp", {"offload_activations": True}),
    ("bp", {"offload_activations": True, "checkpoint_segments": 3}),
]
COMBINATION_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in options.items())}"
                   for name, options in COMBINATIONS]
# (layers, hidden, batch): the peak in a weight's step (small batch, wide layers), in the
# backward, deeper with several segments; with Adam at all four, with SGD (no step
# temporaries: the peak moves into the backward) at the first two
SIZES = [(2, 64, 32), (3, 300, 700), (9, 200, 512), (16, 100, 64)]
SIZED_OPTIMIZERS = [(size, "adam") for size in SIZES] + [(size, "sgd") for size in SIZES[:2]]


def spec_of(name: str, layers: int, hidden: int, batch: int, device: str = "meta",
            **fields: Any) -> CellSpec:
    return resolved(CellSpec(name, n_layers=layers, hidden=hidden, batch_size=batch, device=device,
                    threads=1, **fields))


def test_each_saved_activation_goes_to_the_host_once_and_comes_back_once() -> None:
    """A ReLU output saved by the ReLU and by the next Linear is one host copy used twice;
    leaves (the batch, a weight and its transposed view) stay; after the backward no copy
    is left, and the gradients are those of the plain graph."""
    torch.manual_seed(0)
    x = torch.randn(8, 5)
    w1, w2 = torch.randn(6, 5, requires_grad=True), torch.randn(3, 6, requires_grad=True)

    def forward() -> torch.Tensor:
        h = F.relu(F.linear(x, w1), inplace=True)
        return F.linear(h, w2).square().sum()

    def gradients(loss: torch.Tensor) -> list[torch.Tensor]:
        loss.backward()
        grads = [w1.grad, w2.grad]
        w1.grad = w2.grad = None
        return grads  # type: ignore[return-value]

    plain = gradients(forward())
    offloader = Offloader(CPU)
    with torch.autograd.graph.saved_tensors_hooks(offloader.pack, offloader.unpack):
        loss = forward()
    copies: list[HostCopy] = [copy for _, copy in offloader.saved.values()]
    assert [copy.uses for copy in copies] == [2, 1]  # ReLU output (ReLU, Linear 2); Linear 2's
    left = [weakref.ref(copy) for copy in copies]
    del copies
    offloader.saved.clear()  # as `offloaded` does when the forward ends
    grads = gradients(loss)
    assert [copy() for copy in left] == [None, None]  # freed with the nodes that saved them
    for got, expected in zip(grads, plain, strict=True):
        assert torch.equal(got, expected)


def test_a_storage_changed_in_place_after_it_was_saved_is_copied_again() -> None:
    offloader = Offloader(CPU)
    a = torch.ones(4, requires_grad=True) * 2
    with torch.autograd.graph.saved_tensors_hooks(offloader.pack, offloader.unpack):
        b = a.sin()  # saves a (version 0)
        with torch.no_grad():
            a.mul_(3)
        c = a.cos()  # saves a (version 1)
    assert len(offloader.saved) == 2
    (b.sum() + c.sum()).backward()


@pytest.mark.parametrize(("size", "optimizer"), SIZED_OPTIMIZERS,
                         ids=[f"{'x'.join(map(str, s))}-{o}" for s, o in SIZED_OPTIMIZERS])
@pytest.mark.parametrize(("name", "options"), COMBINATIONS, ids=COMBINATION_IDS)
def test_the_closed_form_is_the_tracked_device_peak_and_the_host_holds_the_offload(
    name: str, options: dict[str, Any], size: tuple[int, int, int], optimizer: str
) -> None:
    """On meta (a GPU's stand-in) every category to the byte, and the tracked host peak is
    the offloaded activations (plus Adam's host step counters): no parameter, no second
    copy of a storage saved twice. Where they are fewer bytes than a batch gathered on the
    host (the smallest size), the host peak is the same cell's without offloading."""
    spec = spec_of(name, *size, options=options, optimizer=optimizer)
    peaks = memory_peaks(spec, load_dataset(spec))
    closed = ALGORITHMS[name].memory_account(spec)
    assert closed.split == peaks.train.split, closed.at
    layers, hidden, batch = size
    cls = ALGORITHMS[name]
    assert issubclass(cls, Backprop)
    bounds = segment_bounds(layers, cls.checkpoint_segments(spec))
    rows = offloaded_rows(layers, bounds)
    assert closed.offloaded_bytes == 4 * batch * (rows * hidden + MNIST_CLASSES)
    tensors = 2 * (layers + 1)  # weight and bias of each Linear, the head's included
    counters = tensors * STEP_COUNTER_BYTES if optimizer == "adam" else 0
    kept = dataclasses.replace(spec, options={**options, "offload_activations": False})
    without = memory_peaks(kept, load_dataset(spec)).train.host_tracked_bytes
    assert without is not None
    assert peaks.train.host_tracked_bytes == max(closed.offloaded_bytes + counters, without)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_offloading_lowers_the_device_peak_by_the_saved_activations(optimizer: str) -> None:
    """Against bp with the fused step alone, at a size where the saved ReLU outputs make
    the peak: all but the few brought back at a time leave the device."""
    layers, hidden, batch = 9, 200, 512
    spec = spec_of("bp-offload", layers, hidden, batch, optimizer=optimizer)
    fused = dataclasses.replace(spec, algorithm="bp", options={"fused_step": True})
    offloading = memory_peaks(spec, load_dataset(spec)).train.tracked_bytes
    keeping = memory_peaks(fused, load_dataset(spec)).train.tracked_bytes
    row = account.matrix(batch, hidden, spec)
    assert keeping - offloading >= (layers - 3) * row


@pytest.mark.parametrize(("layers", "hidden", "batch"), [(3, 64, 64), (9, 200, 512)])
@pytest.mark.parametrize("options", [{}, {"checkpoint_segments": 3}])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_on_the_cpu_nothing_moves_and_the_prediction_models_it(
    layers: int, hidden: int, batch: int, options: dict[str, Any], optimizer: str
) -> None:
    """The cpu rule: host and device are one memory, so no hook runs: the tracked peaks are
    bp's with the same options and the fused step, byte for byte, and the cell's meta
    prediction (built for a cpu cell) predicts them (Adam's host step counters apart, as
    for every cpu cell); the account says so and moves nothing."""
    spec = spec_of("bp-offload", layers, hidden, batch, device="cpu", options=options,
                   optimizer=optimizer)
    peaks = memory_peaks(spec, load_dataset(spec))
    plain = dataclasses.replace(spec, algorithm="bp", options={**options, "fused_step": True})
    same = memory_peaks(plain, load_dataset(spec))
    assert (peaks.train.tracked_bytes, peaks.train.split, peaks.eval.tracked_bytes) == (
        same.train.tracked_bytes, same.train.split, same.eval.tracked_bytes)
    counters = 2 * (layers + 1) * STEP_COUNTER_BYTES if optimizer == "adam" else 0
    assert peaks.train.tracked_bytes == peaks.predicted_train.tracked_bytes + counters
    assert peaks.train.host_tracked_bytes is None  # the host is the device
    closed = ALGORITHMS["bp-offload"].memory_account(spec)
    assert closed.split == peaks.train.split
    assert closed.offloaded_bytes == 0 and closed.notes == {"offload": HOST_DEVICE_NOTE}


def test_the_row_reports_the_bytes_moved_per_step() -> None:
    """meta: the closed form's bytes each way, with the host's tracked peak beside them;
    cpu: nothing moved, no host column (the host is the device)."""
    meta = run_cell(CellSpec("bp-offload", n_layers=3, hidden=300, batch_size=700,
                             device="meta"))
    closed = ALGORITHMS["bp-offload"].memory_account(
        resolved(CellSpec("bp-offload", n_layers=3, hidden=300, batch_size=700, device="meta")))
    assert meta["offloaded_bytes_per_step"] == closed.offloaded_bytes > 0
    assert meta["host_peak_tracked_bytes"] >= meta["offloaded_bytes_per_step"]
    cpu = run_cell(CellSpec("bp-offload", n_layers=2, hidden=32, batch_size=16, steps=1,
                            warmup_steps=1, threads=1))
    assert cpu["offloaded_bytes_per_step"] == 0 and cpu["host_peak_tracked_bytes"] is None
    bp = run_cell(CellSpec("bp", n_layers=2, hidden=32, batch_size=16, device="meta"))
    assert bp["offloaded_bytes_per_step"] == 0


def test_explain_says_where_the_offloaded_bytes_went_and_on_cpu_that_nothing_moved() -> None:
    meta = note_lines(explain(spec_of("bp-offload", 3, 300, 700)))
    assert meta[0].startswith("offload: saved activations in host memory: 3 ReLU outputs")
    # 3 x 700 x 300 x 4 B + the log-softmax's 700 x 10 x 4 B; and the host's tracked peak
    assert "offloaded per train step: 2.55 MB (2.43 MiB) to host memory" in meta[1]
    assert "host tracked peak 2.43 MiB" in meta[1]
    cpu = note_lines(explain(spec_of("bp-offload", 2, 32, 16, device="cpu")))
    assert cpu == [f"offload: {HOST_DEVICE_NOTE}"]
    assert note_lines(explain(spec_of("bp", 2, 32, 16))) == []


@pytest.mark.parametrize("options", [{}, {"checkpoint_segments": 3}])
def test_offloading_adds_no_matmul(options: dict[str, Any]) -> None:
    """FLOPs counted by torch on meta, where the hooks run: the analytic count, which is
    bp's (checkpointing: bp's with the recomputed forwards)."""
    spec = spec_of("bp-offload", 5, 48, 32, options=options)
    built = build(spec, load_dataset(spec), META)
    warm_up(built, 1, eval_batches=0)
    with FlopCounterMode(display=False) as counter:
        built.algorithm.step(built.train)
    bp = dataclasses.replace(spec, algorithm="bp")
    assert built.algorithm.train_flops_per_step() == counter.get_total_flops()
    assert counter.get_total_flops() == build(
        bp, load_dataset(spec), META).algorithm.train_flops_per_step()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_allocator_view_sees_the_activations_leave_the_device(optimizer: str) -> None:
    """The event log a CUDA prediction is replayed from frees each offloaded activation in
    the forward: the allocator's predicted train peak falls with the tracked one, and stays
    the tracked peak plus the two cuBLAS workspaces and block rounding."""
    layers, hidden, batch = 9, 256, 512
    spec = spec_of("bp-offload", layers, hidden, batch, optimizer=optimizer)
    fused = dataclasses.replace(spec, algorithm="bp", options={"fused_step": True})
    offloading, keeping = (memory_peaks(s, load_dataset(spec)) for s in (spec, fused))
    ours, theirs = replay(offloading.log, WORKSPACE_BYTES), replay(keeping.log, WORKSPACE_BYTES)
    tracked = offloading.train.tracked_bytes
    assert tracked + 2 * WORKSPACE_BYTES <= ours.train_allocated_bytes
    assert ours.train_allocated_bytes <= tracked + 2 * WORKSPACE_BYTES + 2 * MIB
    row = account.matrix(batch, hidden, spec)
    assert theirs.train_allocated_bytes - ours.train_allocated_bytes >= (layers - 3) * row


@pytest.mark.parametrize(("name", "options"), COMBINATIONS, ids=COMBINATION_IDS)
def test_pytorch_mem_tracker_agrees_to_the_byte_at_every_combination(
    name: str, options: dict[str, Any]
) -> None:
    """tests/test_algorithm_contract.py's oracle (bp-offload as registered is there) with
    checkpointing and without the fused step: MemTracker counts the host stand-ins on the
    host and each copy brought back on the device, as ffbench's tracker does."""
    spec = spec_of(name, 4, 96, 128, options=options)
    ours, theirs = peaks_and_mem_trackers(spec)
    assert ours == theirs["meta"]
    assert theirs["cpu"] >= ALGORITHMS[name].memory_account(spec).offloaded_bytes


@pytest.mark.slow
def test_at_the_published_size_the_row_carries_the_closed_form(tmp_path: Path) -> None:
    """47 layers, hidden 2000, batch 5000 on meta, Adam: the predicted train peak is the
    closed form's, below bp-lean's; 47 ReLU outputs and the log-softmax go to the host."""
    rows = {}
    for name in ("bp-offload", "bp-lean"):
        out = tmp_path / f"{name}.json"
        result = ffbench_process("run", name, "--layers", "47", "--hidden", "2000",
                                 "--batch-size", "5000", "--device", "meta", "--out", str(out))
        assert result.returncode == 0, result.stderr
        rows[name] = read_row_json(out)
    row = rows["bp-offload"]
    spec = spec_of("bp-offload", 47, 2000, 5000)
    assert row["predicted_train_peak_bytes"] == ALGORITHMS["bp-offload"].memory_account(
        spec).nbytes
    assert row["offloaded_bytes_per_step"] == 47 * 5000 * 2000 * 4 + 5000 * MNIST_CLASSES * 4
    assert row["host_peak_tracked_bytes"] == row["offloaded_bytes_per_step"] + 96 * 4
    assert row["predicted_train_peak_bytes"] < rows["bp-lean"]["predicted_train_peak_bytes"]


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="it measures on a GPU (session.sh)")
def test_the_gpu_benchmark_skips_cleanly_without_cuda(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu/offload_step_time.py", "47", str(tmp_path)],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no CUDA device" in result.stdout and not any(tmp_path.iterdir())
