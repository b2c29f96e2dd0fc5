"""`ffbench check`: the memory gate's exit codes and report, on real result rows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
from conftest import Cli

from ffbench.algorithms.resolve import cell_id
from ffbench.check import Cells, cells_of, compare
from ffbench.results import (
    PARQUET_NAME,
    read_row_json,
    spec_of_row,
    write_parquet,
    write_row_json,
)
from ffbench.settings.cell import CellSpec

CELLS = [("bp", 1), ("ff", 1), ("ff", 2)]
PEAKS = ("train_peak_tracked_bytes", "eval_peak_tracked_bytes")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results directory of three real (tiny) cells: cells/<cell_id>.json."""
    from ffbench.cell.run import run_cell

    out = tmp_path_factory.mktemp("results")
    for algorithm, layers in CELLS:
        row = run_cell(CellSpec(algorithm, n_layers=layers, hidden=32, batch_size=16,
                                steps=1, warmup_steps=1, threads=1))
        write_row_json(row, out / "cells" / f"{row['cell_id']}.json")
    return out


def rows(results: Path) -> list[dict[str, object]]:
    return [read_row_json(path) for path in sorted((results / "cells").glob("*.json"))]


def baseline_from(tmp_path: Path, rows: list[dict[str, object]]) -> Path:
    path = tmp_path / "baseline" / PARQUET_NAME
    write_parquet(rows, path)
    return path


def other_seed(row: dict[str, object]) -> dict[str, object]:
    """The same row as if measured for another seed: another cell, with its own id."""
    spec = dataclasses.replace(spec_of_row(row), seed=1)
    return {**row, "seed": 1, "cell_id": cell_id(spec)}


@pytest.fixture
def check(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """`ffbench check ARGS`, run in this process, its tables 160 columns wide."""
    monkeypatch.setenv("COLUMNS", "160")
    return lambda *args: cli("check", *args)


@pytest.mark.slow
def test_results_pass_against_themselves(results: Path, check: Cli) -> None:
    done = check(results, "--baseline", results)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok: 3 cells compared, 0 regressions" in done.stdout


@pytest.mark.slow
def test_a_baseline_5_percent_lower_is_a_regression(
    results: Path, tmp_path: Path, check: Cli
) -> None:
    lower = [{**row, **{c: round(row[c] * 0.95) for c in PEAKS}} for row in rows(results)]  # type: ignore[operator]
    done = check(results, "--baseline", baseline_from(tmp_path, lower))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL: 3 cells compared, 6 regressions" in done.stdout
    assert "+5.26%" in done.stdout and "train_peak_tracked_bytes" in done.stdout
    assert check(results, "--baseline", baseline_from(tmp_path, lower), "--rtol", "0.06"
                 ).returncode == 0


@pytest.mark.slow
def test_a_higher_baseline_is_an_improvement(results: Path, tmp_path: Path, check: Cli) -> None:
    higher = [{**row, "static_bytes": row["static_bytes"] * 2} for row in rows(results)]  # type: ignore[operator]
    done = check(results, "--baseline", baseline_from(tmp_path, higher))
    assert done.returncode == 0
    assert "3 improvements" in done.stdout


def test_a_missing_baseline_is_unusable_input(results: Path, tmp_path: Path, check: Cli) -> None:
    done = check(results, "--baseline", tmp_path / "nothing.parquet")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "nothing.parquet" in done.stderr
    assert not (tmp_path / "nothing.parquet").exists()


def test_no_common_cells_is_unusable_input(results: Path, tmp_path: Path, check: Cli) -> None:
    others = [other_seed(row) for row in rows(results)]
    done = check(results, "--baseline", baseline_from(tmp_path, others))
    assert done.returncode == 2
    assert "no cell of the results is in the baseline" in done.stderr


def test_unknown_metric_is_unusable_input(results: Path, check: Cli) -> None:
    done = check(results, "--baseline", results, "--metric", "step_time_median_s")
    assert done.returncode == 2 and "not a memory column" in done.stderr


def test_new_and_missing_cells_are_named(results: Path, tmp_path: Path, check: Cli) -> None:
    baseline_rows = rows(results)
    extra = other_seed(baseline_rows[0])
    done = check(results, "--baseline", baseline_from(tmp_path, baseline_rows[1:] + [extra]))
    assert done.returncode == 0
    gone = f"{extra['algorithm']} layers={extra['n_layers']}"
    assert f"missing (in the baseline only): {gone}" in done.stdout
    assert "new (not in the baseline): " in done.stdout
    assert "1 new, 1 missing" in done.stdout


def test_a_cell_that_fails_now_is_a_regression(results: Path, tmp_path: Path, check: Cli) -> None:
    now = rows(results)
    now[0] = {**now[0], "status": "oom", **dict.fromkeys(PEAKS)}
    failing = tmp_path / "now" / PARQUET_NAME
    write_parquet(now, failing)
    done = check(failing, "--baseline", results)
    assert done.returncode == 1
    assert "status oom" in done.stdout and "failed" in done.stdout


@pytest.mark.slow
def test_refresh_writes_a_baseline_that_then_passes(
    results: Path, tmp_path: Path, check: Cli
) -> None:
    baseline = tmp_path / "baselines" / "ci-cpu.parquet"
    done = check(results, "--baseline", baseline, "--refresh-baseline")
    assert done.returncode == 0 and "wrote 3 cells" in done.stdout
    stored = pd.read_parquet(baseline).set_index("cell_id")
    for row in rows(results):
        assert stored.loc[row["cell_id"], "train_peak_tracked_bytes"] == row[
            "train_peak_tracked_bytes"]
    assert check(results, "--baseline", baseline).returncode == 0


def test_cuda_peaks_are_compared_only_on_the_same_gpu(results: Path, tmp_path: Path) -> None:
    def on_gpu(name: str, allocated: int) -> Cells:
        gpu_rows = [{**row, "gpu_name": name, "train_peak_allocated_bytes": allocated}
                    for row in rows(results)]
        return cells_of(pd.read_parquet(baseline_from(tmp_path / name / str(allocated), gpu_rows)))

    now = on_gpu("NVIDIA H100 80GB HBM3", 2 * 10**9)
    assert compare(now, on_gpu("NVIDIA A100-SXM4-80GB", 10**9)).regressions == []
    regressions = compare(now, on_gpu("NVIDIA H100 80GB HBM3", 10**9)).regressions
    assert {c.metric for c in regressions} == {"train_peak_allocated_bytes"}
    assert len(regressions) == len(CELLS)
