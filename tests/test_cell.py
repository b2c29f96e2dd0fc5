"""One cell measured for real on the CPU: schema, exact static bytes, deterministic peaks.
(The train peak's bytes, category by category, are held to each algorithm's closed form and
to PyTorch's MemTracker by the generated tests in test_algorithm_contract.py.)"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import ffbench_process

from ffbench.cell.run import run_cell
from ffbench.results import COLUMNS
from ffbench.settings.cell import CellSpec

F32 = 4
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
        result = ffbench_process("run", algorithm, "--layers", "2", "--hidden", "64",
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
