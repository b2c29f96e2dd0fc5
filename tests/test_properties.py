"""Property-based attack on the command line (Hypothesis): generated arguments for run,
sweep and explain, generated result files for plot, report and check, all through
`ffbench.cli.main` in this process. Every outcome is exit 0, or exit 1/2 with exactly one
stderr line and no traceback; a refusal (exit 2) writes nothing.

Sizes are tiny or absurd (never in between), cells run on the meta device where they can,
and each test has a bounded number of examples so that the suite stays fast;
FFBENCH_PROPERTY_SCALE=10 runs ten times as many (a deeper attack, minutes)."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from results_factory import sweep_rows

from ffbench.cli import main
from ffbench.results import COLUMNS, write_parquet, write_row_json

CASES: dict[str, int] = {}  # generated cases per command, reported at the end of the run
SCALE = int(os.environ.get("FFBENCH_PROPERTY_SCALE", "1"))


def examples(count: int) -> settings:
    """`count` generated cases (times FFBENCH_PROPERTY_SCALE), no deadline."""
    return settings(max_examples=count * SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


QUICK = examples(12)

ODD_TEXT = st.sampled_from(["[/]", "[bold]x[/bold]", "", " ", "\u00e9\u4e2d", "a\nb", "-1",
                            "nan", "1e400", "9" * 30])
SMALL = st.integers(min_value=-2, max_value=3)
HUGE = st.sampled_from([2**31, 2**62, 2**63, 2**64 + 1, 10**30, -(2**63) - 1])
INTEGER = st.one_of(SMALL, SMALL, HUGE, ODD_TEXT)
FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), SMALL, ODD_TEXT)


def text_of(value: Any) -> str:
    return repr(value) if isinstance(value, float) and math.isfinite(value) else str(value)


def flags(draw: st.DrawFn, choices: dict[str, st.SearchStrategy[Any]]) -> list[str]:
    """Some of the flags, each with a generated value."""
    chosen = draw(st.lists(st.sampled_from(sorted(choices)), unique=True, max_size=5))
    return [part for name in chosen for part in (name, text_of(draw(choices[name])))]


CELL_FLAGS: dict[str, st.SearchStrategy[Any]] = {
    "--layers": INTEGER, "--hidden": INTEGER, "--batch-size": INTEGER,
    "--eval-batch-size": INTEGER, "--warmup": INTEGER, "--threads": INTEGER,
    "--dtype": st.sampled_from(["float32", "bfloat16", "float8", "[/]"]),
    "--goodness": st.one_of(st.sampled_from(["meansq", "sumsq"]), ODD_TEXT),
    "--dataset": st.sampled_from(["synthetic", "mnist", "[x]"]),
    "--eval-chunk": INTEGER,
    "--option": st.sampled_from(["readout_from_layer=1", "readout_from_layer=1e400",
                                 "iterations=NaN", "x", "=", "a=[/]", f"cache={2**70}"]),
    "--preset": st.sampled_from(["nope", "[/]"]),
}
RUN_FLAGS = {**CELL_FLAGS, "--steps": INTEGER, "--epochs": INTEGER, "--lr": FLOAT,
             "--threshold": FLOAT, "--seed": INTEGER}
ALGORITHM = st.sampled_from(["bp", "ff", "rff", "ff-progressive", "ff-layerwise", "nope", "[/]"])


def invoke(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as ended:
        main(args)
    out, err = capsys.readouterr()
    code = ended.value.code
    return (code if isinstance(code, int) else 1), out, err


def assert_clean(
    command: str, code: int, out: str, err: str, wrote: Path | None = None
) -> None:
    """The promise: exit 0, or 1/2 with one error line on stderr, last (plot and report may
    warn first about files they left out); a refusal writes nothing. (check's exit 1 is also
    its verdict on a regression, said on stdout.)"""
    CASES[command] = CASES.get(command, 0) + 1
    assert "Traceback" not in err, err
    assert code in (0, 1, 2), (code, err)
    if command == "check" and code == 1 and "FAIL: " in out:
        return
    if code:
        errors = [line for line in err.splitlines() if line.startswith("ffbench: error: ")]
        assert len(errors) == 1 and err.rstrip().splitlines()[-1] == errors[0], err
        if code == 2:  # one error line; before it only warnings about what was left out
            assert all(line.startswith("warning: ") for line in err.strip().splitlines()[:-1]), err
            assert wrote is None or not wrote.exists(), (wrote, err)


@contextmanager
def scratch() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="ffbench-prop-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@st.composite
def run_args(draw: st.DrawFn) -> list[str]:
    return [draw(ALGORITHM), *flags(draw, RUN_FLAGS), "--device",
            draw(st.sampled_from(["meta", "meta", "meta", "tpu", "cuda:9", "[/]"]))]


@QUICK
@given(args=run_args(), name=ODD_TEXT)
def test_run_with_generated_arguments(
    args: list[str], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with scratch() as folder:
        out = folder / (name.strip().replace("/", "_") or "x") / "r.json"
        code, stdout, err = invoke(capsys, ["run", *args, "--out", str(out)])
        assert_clean("run", code, stdout, err, out)
        if code == 0:
            assert json.loads(out.read_text())["status"] == "ok"


@QUICK
@given(args=run_args())
def test_explain_with_generated_arguments(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    drop = {"--steps", "--epochs", "--lr", "--threshold", "--seed"}  # not explain's options
    kept = [a for i, a in enumerate(args) if a not in drop and (i == 0 or args[i - 1] not in drop)]
    code, out, err = invoke(capsys, ["explain", *kept])
    assert_clean("explain", code, out, err)


SWEEP_FLAGS: dict[str, st.SearchStrategy[Any]] = {
    **{k: v for k, v in CELL_FLAGS.items() if k not in ("--layers", "--hidden", "--batch-size",
                                                      "--preset", "--threads")},
    "--algorithms": st.one_of(st.sampled_from(["bp", "bp,ff", "bp,nope", ",", "[/]"])),
    "--layers": st.one_of(st.sampled_from(["1", "1,2", "0..3", "1..10**9", "1..1000000000000",
                                           "3..1", "1..4:0", "x"]), ODD_TEXT),
    "--hidden": st.sampled_from(["4", "4,8", "1..100000", "-1"]),
    "--timeout": FLOAT, "--jobs": INTEGER, "--max-cells": INTEGER,
    "--executor": st.sampled_from(["local", "slurm", "[/]"]),
}


@st.composite
def sweep_args(draw: st.DrawFn) -> list[str]:
    return flags(draw, SWEEP_FLAGS)


@pytest.mark.slow
@examples(10)
@given(args=sweep_args())
def test_sweep_with_generated_arguments(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with scratch() as folder:
        out = folder / "o[/]ut"
        code, stdout, err = invoke(capsys, ["sweep", "ci-cpu", "--device", "meta", "--steps", "1",
                                       "--batch-sizes", "4", "--hidden", "4", "--layers", "1",
                                       "--algorithms", "bp", *args, "--out", str(out)])
        assert_clean("sweep", code, stdout, err, out)


# ---- generated result files --------------------------------------------------------------

ODD_VALUE = st.one_of(HUGE, SMALL, st.floats(allow_nan=True, allow_infinity=True), ODD_TEXT,
                      st.booleans(), st.none(), st.just([1, 2]), st.just({"a": 1}))


@st.composite
def result_files(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    """("parquet" or "cells", rows): real rows, some with a column set to something odd."""
    rows = [dict(row) for row in sweep_rows(algorithms=draw(st.sampled_from(
        [("bp",), ("bp", "ff")])))]
    rows = rows[: draw(st.integers(1, len(rows)))]
    for _ in range(draw(st.integers(0, 4))):
        row = draw(st.sampled_from(rows))
        row[draw(st.sampled_from(COLUMNS))] = draw(ODD_VALUE)
    return draw(st.sampled_from(["parquet", "cells"])), rows


def write_files(folder: Path, kind: str, rows: list[dict[str, Any]]) -> None:
    folder.mkdir(parents=True)
    if kind == "parquet":
        try:
            write_parquet(rows, folder / "results.parquet")
            return
        except Exception:  # values a parquet cannot hold: they go in as cell files
            pass
    for index, row in enumerate(rows):
        try:
            write_row_json(row, folder / "cells" / f"{index}.json")
        except (TypeError, ValueError):
            (folder / "cells" / f"{index}.json").write_text(repr(row))


@QUICK
@given(files=result_files(), baseline=result_files(), rtol=FLOAT)
def test_check_with_generated_results(
    files: tuple[str, list[dict[str, Any]]], baseline: tuple[str, list[dict[str, Any]]],
    rtol: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    with scratch() as folder:
        write_files(folder / "now", *files)
        write_files(folder / "base", *baseline)
        code, out, err = invoke(capsys, ["check", str(folder / "now"), "--baseline",
                                         str(folder / "base"), "--rtol", text_of(rtol)])
        assert_clean("check", code, out, err)


@pytest.mark.slow
@examples(8)
@given(files=result_files(), second=st.none() | result_files(),
       command=st.sampled_from(["plot", "report"]))
def test_plot_and_report_with_generated_results(
    files: tuple[str, list[dict[str, Any]]], second: tuple[str, list[dict[str, Any]]] | None,
    command: str, capsys: pytest.CaptureFixture[str],
) -> None:
    with scratch() as folder:
        write_files(folder / "a", *files)
        inputs = [str(folder / "a")]
        if second is not None:
            write_files(folder / "b", *second)
            inputs.append(str(folder / "b"))
        out = folder / ("figs" if command == "plot" else "r.md")
        code, stdout, err = invoke(capsys, [command, *inputs, "--out", str(out)])
        assert_clean(command, code, stdout, err, out)


def test_zz_report_the_number_of_generated_cases() -> None:
    """Not a check: prints how many cases each command ran (pytest -s shows it)."""
    print(f"\ngenerated cases: {sum(CASES.values())} {dict(sorted(CASES.items()))}")
