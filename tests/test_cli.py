"""The command line as a user meets it: real files, fresh processes where it matters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Cli, ffbench_process

from ffbench.results import COLUMNS

from helpers import make_mnist_dir


@pytest.mark.slow
def test_run_writes_a_full_row_and_prints_a_summary(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = ffbench_process("run", "ff", "--layers", "2", "--hidden", "32", "--batch-size", "64",
                             "--steps", "2", "--warmup", "1", "--threads", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "tracked peak" in result.stdout
    row = json.loads(out.read_text())
    assert list(row) == list(COLUMNS) and row["status"] == "ok"


@pytest.mark.slow
def test_run_reads_mnist_from_data_dir(tmp_path: Path) -> None:
    root = make_mnist_dir(tmp_path / "data")
    out = tmp_path / "r.json"
    result = ffbench_process("run", "bp", "--layers", "1", "--hidden", "16", "--batch-size", "16",
                             "--steps", "1", "--dataset", "mnist", "--data-dir", str(root),
                             "--epochs", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert 0 <= json.loads(out.read_text())["test_accuracy"] <= 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "ff", "--layers", "0"], "--layers"),
        (["run", "ff", "--batch-size", "-1"], "--batch-size"),
        (["run", "nope"], "unknown algorithm"),
        (["run", "ff", "--device", "tpu"], "unknown device"),
        (["run", "ff", "--dataset", "mnist"], "--data-dir"),
        (["run", "ff", "--dataset", "mnist", "--data-dir", "/no/such/dir"], "--data-dir"),
        (["run", "ff", "--layers", "x"], "--layers"),
        (["run", "ff", "--epochs", "2"], "real data"),
        (["run", "ff", "--option", "nonsense"], "NAME=VALUE"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_file(
    args: list[str], words: str, tmp_path: Path, cli: Cli
) -> None:
    out = tmp_path / "r.json"
    result = cli(*args, "--out", out)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_run_on_missing_cuda_is_refused(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has CUDA")
    result = ffbench_process("run", "bp", "--device", "cuda", "--out", str(tmp_path / "r.json"))
    assert result.returncode == 2 and "CUDA is not available" in result.stderr


def test_algorithms_lists_one_line_each(cli: Cli) -> None:
    from ffbench.algorithms.registry import ALGORITHMS

    result = cli("algorithms")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(ALGORITHMS)
