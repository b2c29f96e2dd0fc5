"""One cell measured for real on the CPU: schema, exact static bytes, deterministic peaks that a
hand count of the live tensors explains."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ffbench.cell.run import run_cell
from ffbench.results import COLUMNS
from ffbench.settings.cell import CellSpec

from helpers import ffbench_cli

F32 = 4
INT64 = 8
PIXELS = 784
CLASSES = 10
STEP_COUNTER_BYTES = 4  # Adam's float32 `step` per parameter tensor, on the CPU


def linear_shapes(algorithm: str, n_layers: int, hidden: int) -> list[tuple[int, int]]:
    """(in, out) of every Linear: the hidden stack, plus bp's head."""
    widths = [PIXELS] + [hidden] * n_layers
    shapes = list(zip(widths[:-1], widths[1:], strict=True))
    return shapes + [(hidden, CLASSES)] if algorithm == "bp" else shapes


def param_bytes(shapes: list[tuple[int, int]]) -> int:
    return sum((i * o + o) * F32 for i, o in shapes)


def static_by_hand(algorithm: str, n_layers: int, hidden: int) -> int:
    """Weights + biases, Adam's two moments of each, one step counter per tensor."""
    shapes = linear_shapes(algorithm, n_layers, hidden)
    return 3 * param_bytes(shapes) + 2 * len(shapes) * STEP_COUNTER_BYTES


def bp_train_peak_by_hand(n_layers: int, hidden: int, batch: int) -> int:
    """Small batches: the peak is in Adam's update of the first (largest) weight, when every
    gradient is alive and Adam holds sqrt(v) and its quotient (two weight-sized temporaries)."""
    shapes = linear_shapes("bp", n_layers, hidden)
    first_weight = PIXELS * hidden * F32
    batch_inputs = batch * PIXELS * F32 + batch * INT64  # x as floats, labels
    loss = F32
    return (static_by_hand("bp", n_layers, hidden) + param_bytes(shapes)  # + gradients
            + 2 * first_weight + batch_inputs + loss)


def ff_train_peak_by_hand(n_layers: int, hidden: int, batch: int) -> int:
    """hidden < 784: the peak is in layer 0's backward, as its weight gradient is made.
    Alive: persistent state (no gradients: they are freed after each layer's step), the
    batch, the 2B embedded rows [pos; neg], their normalized copy (saved for the matmul's
    backward), the ReLU output (made in place on the Linear's output), the one 2B x hidden
    gradient of the fused ReLU + goodness (2 h dL/dg), and the new weight and bias gradients
    (not yet the parameters' .grad)."""
    rows = 2 * batch
    batch_inputs = batch * PIXELS * F32 + batch * INT64
    embedded_and_normalized = 2 * rows * PIXELS * F32
    relu_out_and_its_gradient = 2 * rows * hidden * F32
    new_gradients = (PIXELS * hidden + hidden) * F32
    scalars = 2 * F32  # the loss's gradient seed and its quotient
    return (static_by_hand("ff", n_layers, hidden) + batch_inputs + embedded_and_normalized
            + relu_out_and_its_gradient + new_gradients + scalars)


def small_cell(algorithm: str, n_layers: int, hidden: int, batch: int) -> CellSpec:
    return CellSpec(algorithm, n_layers=n_layers, hidden=hidden, batch_size=batch,
                    steps=2, warmup_steps=1, threads=1)


@pytest.mark.parametrize("algorithm", ["bp", "ff"])
def test_row_has_every_column_and_exact_static_bytes(algorithm: str) -> None:
    row = run_cell(small_cell(algorithm, 3, 256, 512))
    assert set(row) == set(COLUMNS)
    assert row["status"] == "ok"
    assert row["static_bytes"] == static_by_hand(algorithm, 3, 256)
    for unmeasurable_on_cpu in ("train_peak_allocated_bytes", "eval_peak_reserved_bytes",
                                "nvml_peak_used_bytes", "gpu_name", "test_accuracy"):
        assert row[unmeasurable_on_cpu] is None
    for measured in ("train_peak_tracked_bytes", "eval_peak_tracked_bytes",
                     "predicted_train_peak_bytes", "cpu_peak_rss_bytes", "step_time_median_s",
                     "samples_per_s", "train_flops_per_step", "torch_version", "started_at"):
        assert row[measured] is not None and row[measured] != 0
    assert row["rows_per_step"] == (1024 if algorithm == "ff" else 512)


@pytest.mark.parametrize(("n_layers", "hidden", "batch"), [(3, 256, 512), (2, 512, 256)])
def test_bp_tracked_peak_matches_hand_count(n_layers: int, hidden: int, batch: int) -> None:
    row = run_cell(small_cell("bp", n_layers, hidden, batch))
    expected = bp_train_peak_by_hand(n_layers, hidden, batch)
    assert row["train_peak_tracked_bytes"] == pytest.approx(expected, rel=0.01)
    assert row["mem_gradients_bytes"] == param_bytes(linear_shapes("bp", n_layers, hidden))


@pytest.mark.parametrize(("n_layers", "hidden", "batch"), [(3, 256, 512), (2, 128, 1024)])
def test_ff_tracked_peak_matches_hand_count(n_layers: int, hidden: int, batch: int) -> None:
    row = run_cell(small_cell("ff", n_layers, hidden, batch))
    expected = ff_train_peak_by_hand(n_layers, hidden, batch)
    assert row["train_peak_tracked_bytes"] == pytest.approx(expected, rel=0.01)
    assert row["mem_gradients_bytes"] == 0


def test_predicted_peak_matches_tracked() -> None:
    row = run_cell(small_cell("ff", 2, 128, 256))
    for phase in ("train", "eval"):
        assert row[f"predicted_{phase}_peak_bytes"] == pytest.approx(
            row[f"{phase}_peak_tracked_bytes"], rel=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["bp", "ff"])
def test_tracked_peaks_identical_across_fresh_processes(algorithm: str, tmp_path: Path) -> None:
    peaks = set()
    for run in range(3):
        out = tmp_path / f"{run}.json"
        result = ffbench_cli("run", algorithm, "--layers", "2", "--hidden", "64",
                             "--batch-size", "128", "--steps", "2", "--warmup", "1",
                             "--threads", "1", "--out", str(out))
        assert result.returncode == 0, result.stderr
        row = json.loads(out.read_text())
        peaks.add((row["train_peak_tracked_bytes"], row["eval_peak_tracked_bytes"],
                   row["static_bytes"]))
    assert len(peaks) == 1, peaks


@pytest.mark.slow
def test_compile_is_its_own_column_and_trains_the_same_model() -> None:
    spec = small_cell("ff", 2, 32, 64)
    eager, compiled = run_cell(spec), run_cell(dataclasses.replace(spec, compile=True))
    assert (eager["compile"], compiled["compile"]) == (False, True)
    assert compiled["status"] == "ok"
    assert compiled["cell_id"] != eager["cell_id"]
    # memory is measured eager (the tracker's dispatch mode runs compiled code eagerly)
    assert compiled["train_peak_tracked_bytes"] == eager["train_peak_tracked_bytes"]
    assert compiled["final_train_loss"] == pytest.approx(eager["final_train_loss"], rel=1e-3)


def test_host_allocator_failure_is_oom_and_other_failures_are_errors() -> None:
    from ffbench.cell.run import classify

    cpu_refusal = RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to ...")
    assert classify(cpu_refusal) == "oom"
    assert classify(MemoryError()) == "oom"
    assert classify(ValueError("shapes do not match")) == "error"
