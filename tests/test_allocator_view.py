"""Predicted allocator peaks: the event log, the GPU validation, and `ffbench capacity`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import Cli

from ffbench.algorithms import registry
from ffbench.algorithms.resolve import resolved
from ffbench.capacity import (
    CAPACITY_MARGIN,
    SECANT_TOLERANCE,
    deepest,
    fit_lines,
    largest_batch,
    need_of,
)
from ffbench.cell.allocator_validation import compare_all, tracked_peaks
from ffbench.cell.allocator_view import event_log, replay
from ffbench.cell.built import MEMORY_PASS_STEPS, build, load_dataset, warm_up
from ffbench.cell.run import (
    META_MEMORY_PASS_STEPS,
    META_WARMUP_STEPS,
    memory_pass,
    memory_peaks,
    predicted_peaks,
)
from ffbench.measure.meta_cache import MetaShapeCache
from ffbench.settings.cell import CellSpec
from ffbench.settings.gpus import gpu

MIB = 1 << 20
GPU_RESULTS = Path(__file__).parent.parent / "results" / "gpu"
SMALL = {"hidden": 256, "batch_size": 256, "device": "meta"}


def test_event_log_gives_the_trackers_peaks_and_the_allocator_adds_workspaces() -> None:
    spec = resolved(CellSpec("bp", n_layers=3, **SMALL))
    log = event_log(spec)
    train, evaluation = predicted_peaks(spec, load_dataset(spec))
    assert tracked_peaks(log) == (train.tracked_bytes, evaluation.tracked_bytes)
    assert log.workspaces == 2  # the step's thread and autograd's backward thread
    peaks = replay(log, 32 * MIB)
    assert peaks.train_allocated_bytes >= train.tracked_bytes + 64 * MIB
    assert peaks.train_allocated_bytes <= train.tracked_bytes + 64 * MIB + 2 * MIB
    assert peaks.train_reserved_bytes >= peaks.train_allocated_bytes
    assert peaks.train_reserved_bytes % (2 * MIB) == 0  # segments are whole 2 MiB units


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("name", registry.names())
def test_one_traced_pass_gives_the_peaks_and_the_allocators_view_of_the_full_sequence(
    name: str, optimizer: str
) -> None:
    """A cell predicts from one short pass on meta (cell.memory_peaks): one warm-up step and
    one measured step. It must give the tracked peaks of the memory pass a real device runs
    (cell.memory_pass, here on meta) and the
    allocator's view of the cell's own sequence (its warm-up steps, MEMORY_PASS_STEPS), to
    the byte."""
    spec = resolved(CellSpec(name, n_layers=3, optimizer=optimizer, **SMALL))
    dataset = load_dataset(spec)
    peaks = memory_peaks(spec, dataset)
    built = build(spec, dataset, torch.device("meta"))  # the memory pass of a real device
    with MetaShapeCache():
        warm_up(built, META_WARMUP_STEPS, eval_batches=0)
        train, evaluation = memory_pass(built, META_MEMORY_PASS_STEPS)
    for traced, alone in ((peaks.train, train), (peaks.eval, evaluation)):
        assert (traced.tracked_bytes, traced.split, traced.host_tracked_bytes) == (
            alone.tracked_bytes, alone.split, alone.host_tracked_bytes)
    assert spec.warmup_steps > META_WARMUP_STEPS and MEMORY_PASS_STEPS > META_MEMORY_PASS_STEPS
    assert replay(peaks.log, 32 * MIB) == replay(event_log(spec), 32 * MIB)


@pytest.mark.slow
def test_a_sweep_predicts_the_allocators_view_for_the_target_gpu(
    tmp_path: Path, cli: Cli
) -> None:
    """--target-gpu names the GPU of a meta cell's allocator view: an A100's cuBLAS workspaces
    are 8 MiB + 128 KiB where an H200's are 32 MiB, one for the step's thread and one for
    backward's; the tensors are the same. The setting is part of the cell id (not at its
    default) and its own column; it is refused where no prediction is made."""
    common = ["sweep", "ci-cpu", "--algorithms", "bp", "--layers", "3", "--hidden", "256",
              "--batch-sizes", "256", "--device", "meta"]
    for name, extra in (("h200", []), ("a100", ["--target-gpu", "a100-40gb"])):
        done = cli(*common, *extra, "--out", tmp_path / name)
        assert done.code == 0, done.err
    [h200] = (tmp_path / "h200" / "cells").glob("*.json")
    [a100] = (tmp_path / "a100" / "cells").glob("*.json")
    big, small = json.loads(h200.read_text()), json.loads(a100.read_text())
    assert (big["target_gpu"], small["target_gpu"]) == ("h200", "a100-40gb")
    assert big["cell_id"] != small["cell_id"]
    assert big["train_peak_tracked_bytes"] == small["train_peak_tracked_bytes"]
    workspaces = 2 * (32 * MIB - (8 * MIB + 128 * 1024))
    for phase in ("train", "eval"):
        assert (big[f"predicted_{phase}_peak_allocated_bytes"]
                - small[f"predicted_{phase}_peak_allocated_bytes"]) == workspaces
    refused = cli(*common[:-1], "cpu", "--target-gpu", "l4", "--out", tmp_path / "cpu")
    assert refused.code == 2 and not (tmp_path / "cpu").exists()
    assert "--target-gpu is for --device meta" in refused.err


@pytest.mark.slow
def test_capacity_boundary_fits_and_one_more_layer_does_not() -> None:
    target = gpu("h200")
    wide = SMALL | {"hidden": 1024}  # 16 MiB more per layer (weights, gradients, Adam)
    at_10 = need_of(CellSpec("bp", n_layers=10, **wide), target).reserved
    at_11 = need_of(CellSpec("bp", n_layers=11, **wide), target).reserved
    assert at_11 > at_10
    fit = deepest(resolved(CellSpec("bp", n_layers=1, **wide)), (at_10 + at_11) // 2, target)
    assert (fit.n_layers, fit.checked, fit.needed_bytes) == (10, True, at_10)


@pytest.mark.slow
def test_the_largest_batch_fits_where_predicted_and_a_little_more_does_not() -> None:
    """Wide layers, few of them: at small batches the peak is the optimizer step, which does
    not grow with the batch, so the two small probes alone point far past the answer; the
    answer is where the predictions themselves cross the limit."""
    target = gpu("h200")
    spec = resolved(CellSpec("bp", n_layers=3, hidden=1024, batch_size=64, device="meta"))

    def need(batch: int) -> int:
        return need_of(dataclasses.replace(spec, batch_size=batch, eval_batch_size=None),
                       target).reserved

    limit = need(16) + (512 << 20)
    fit = largest_batch(spec, limit, target)
    assert fit.checked and fit.batch_size is not None
    assert need(fit.batch_size) == fit.needed_bytes <= limit
    assert need(int(fit.batch_size * (1 + SECANT_TOLERANCE)) + 1) > limit


@pytest.mark.slow
def test_capacity_says_no_limit_where_depth_does_not_raise_the_peak() -> None:
    """Layer-wise FF keeps finished layers off the device: its peak is the same at any
    depth, so capacity gives no depth limit (an extrapolation would give billions)."""
    target = gpu("h200")
    spec = resolved(CellSpec("ff-layerwise", n_layers=1, **SMALL))
    assert need_of(dataclasses.replace(spec, n_layers=8), target) == need_of(
        dataclasses.replace(spec, n_layers=16), target)
    fit = deepest(spec, 2 << 30, target)
    assert (fit.n_layers, fit.margin) == (None, 0)
    lines = fit_lines([fit], 2 << 30, target, by_batch=False)
    assert "no limit" in lines[1] and "does not grow with depth" in lines[1]


@pytest.mark.slow
def test_capacity_command_json(cli: Cli) -> None:
    result = cli("capacity", "2GiB", "--hidden", "256", "--batch-size", "256", "--algorithms",
                 "bp", "--layers", "4", "--json")
    assert result.code == 0, result.err
    (fit,) = json.loads(result.out)
    assert fit["algorithm"] == "bp" and fit["n_layers"] == 4
    assert fit["batch_size"] > 256 and fit["needed_bytes"] <= 2 << 30


@pytest.mark.slow
def test_capacity_names_its_settings_and_takes_the_optimizer(cli: Cli) -> None:
    """SGD keeps no optimizer state, so more layers fit than with Adam's two moments."""
    args = ["capacity", "2GiB", "--hidden", "256", "--batch-size", "256", "--algorithms", "bp"]
    deepest_layers = {}
    for optimizer in ("adam", "sgd"):
        result = cli(*args, "--optimizer", optimizer)
        assert result.code == 0, result.err
        first, _, row = result.out.splitlines()[:3]
        assert first == f"2GiB on h200: hidden 256, batch 256, float32, {optimizer}"
        deepest_layers[optimizer] = int(row.split()[1].replace(",", ""))
    assert deepest_layers["sgd"] > deepest_layers["adam"] > 0


@pytest.mark.slow
def test_predictions_against_the_h200_measurements() -> None:
    """Every ok bp/ff/rff row of results/gpu/published-reduced*.parquet, phase by phase,
    where the row measured today's code (docs/gpu.md lists the exceptions)."""
    comparisons = compare_all(GPU_RESULTS.glob("published-reduced*.parquet"),
                              ["bp", "ff", "rff"], gpu("h200"))
    compared = [c for c in comparisons if not c.excluded]
    excluded = {(c.source, c.algorithm, c.phase) for c in comparisons if c.excluded}
    # measured with other code: bp's eval and ff's train changed after this file, rff's both
    assert excluded == {
        ("published-reduced.parquet", "bp", "eval"), ("published-reduced.parquet", "ff", "train"),
        ("published-reduced.parquet", "rff", "train"), ("published-reduced.parquet", "rff", "eval"),
    }
    assert len(compared) == 30
    deepest_measured = [c for c in comparisons if c.n_layers == 47]
    assert min(c.reserved_error for c in deepest_measured) >= -CAPACITY_MARGIN  # capacity's
    for c in compared:
        if c.phase == "eval":
            assert c.allocated_within and c.reserved_within, c
        else:
            # the named exception: a train-phase block the tracker does not see on CUDA,
            # a constant per algorithm (peak_snapshot.py ff 2 on a GPU names it)
            gap_mib = (c.measured_allocated_bytes - c.predicted_allocated_bytes) / MIB
            expected = {"bp": (52, 57), "ff": (129, 131)}[c.algorithm]
            assert expected[0] <= gap_mib <= expected[1], c
