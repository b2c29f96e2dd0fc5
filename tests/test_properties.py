"""Property-based attack on the command line (Hypothesis): generated arguments for run,
sweep and explain, generated result files for plot, report and check, all through
`ffbench.cli.main` in this process. Every outcome is exit 0, or exit 1/2 with exactly one
stderr line and no traceback; a refusal (exit 2) writes nothing. Then generated results
folders (links, FIFOs, missing parts, tampered definitions) under report, check and sweep;
generated plugins (raising, exiting, crashing, blocking, printing, at import or in their
step; real entry points, real processes) under capacity, algorithms and sweep; and the
gate's inputs, whose exit code follows from what was changed.

Sizes are tiny or absurd (never in between), cells run on the meta device where they can,
and each test has a bounded number of examples so that the suite stays fast;
FFBENCH_PROPERTY_SCALE=10 runs ten times as many (a deeper attack: over 1,000 cases,
half an hour on a 2-core CPU)."""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from results_factory import sweep_rows

from ffbench.results import COLUMNS, write_parquet, write_row_json

CASES: dict[str, int] = {}  # generated cases per command, reported at the end of the run
FOLDER_EXITS: dict[str, int] = {}  # how commands on generated folders ended
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
        code, stdout, err = invoke(capsys, *["run", *args, "--out", str(out)])
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
    code, out, err = invoke(capsys, *["explain", *kept])
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
        code, stdout, err = invoke(capsys, *["sweep", "ci-cpu", "--device", "meta", "--steps", "1",
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
        code, out, err = invoke(capsys, *["check", str(folder / "now"), "--baseline",
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
        code, stdout, err = invoke(capsys, *[command, *inputs, "--out", str(out)])
        assert_clean(command, code, stdout, err, out)


# ---- generated results folders: links, missing parts, tampered definitions ---------------

SENTINEL_TEXT = "a file outside every results folder: never written"


def meta_cell_rows() -> list[dict[str, Any]]:
    """Rows of the cells `sweep ... --layers 1,2` below runs (their ids their settings')."""
    from ffbench.algorithms.resolve import identity_columns
    from ffbench.results import make_row
    from ffbench.settings.cell import CellSpec

    return [make_row(**identity_columns(CellSpec(
        "bp", n_layers=n, hidden=8, batch_size=8, device="meta", steps=1, warmup_steps=0),
        "ci-cpu"), status="ok", train_peak_tracked_bytes=1000 * n,
        eval_peak_tracked_bytes=500 * n, predicted_train_peak_bytes=1000 * n,
        predicted_eval_peak_bytes=500 * n, static_bytes=100 * n) for n in (1, 2, 3)]


FOLDER_SWEEP = ["sweep", "ci-cpu", "--algorithms", "bp", "--hidden", "8", "--batch-sizes", "8",
                "--steps", "1", "--warmup", "0", "--device", "meta", "--layers", "1,2"]
TAMPERED = {  # what a sweep.json may hold instead of what a sweep wrote
    "unknown key": lambda d: {**d, "surprise": 1},
    "float depths": lambda d: {**d, "grids": [{"layers": [1.5], "batch_sizes": [8]}]},
    "text depths": lambda d: {**d, "grids": [{"layers": ["a"], "batch_sizes": [8]}]},
    "no algorithms": lambda d: {**d, "algorithms": []},
    "huge grid": lambda d: {**d, "grids": [{"layers": "1..10000", "batch_sizes": "1..1000"}]},
    "many grids": lambda d: {**d, "grids": [{"layers": [n], "batch_sizes": [8]}
                                            for n in range(1, 2000)]},
    "not an object": lambda d: [d],
    "nested deep": lambda d: {**d, "cell": {"options": json.loads("[" * 50 + "]" * 50)}},
    "null": lambda d: None,
}
KINDS = ("regular", "missing", "link", "fifo", "garbage")


@st.composite
def folders(draw: st.DrawFn) -> dict[str, Any]:
    """What a results folder holds, part by part, each drawn: cell rows (some of them, a
    poisoned one, a user's file, a link or a FIFO named as a cell), a results.parquet (all,
    stale, corrupt, a directory, a FIFO, a link), a sweep.json (a sweep's, tampered, a
    FIFO, a link), a .lock (a PID, garbage, a link, a FIFO), links back to its parent."""
    rows = meta_cell_rows()

    def part(usual: list[str], odd: list[str]) -> str:  # odd one time in five
        return draw(st.sampled_from(odd if draw(st.integers(0, 4)) == 0 else usual))

    return {
        "cells": draw(st.lists(st.sampled_from(range(len(rows))), unique=True, max_size=3)),
        "cell_extras": draw(st.lists(st.sampled_from(
            ["poisoned", "user", "link", "fifo", "subdir"]), unique=True, max_size=3)),
        "parquet": part(["missing", "all", "stale"], ["corrupt", "directory", "fifo", "link"]),
        "definition": part(["missing", "sweep"], ["fifo", "link", *TAMPERED]),
        "lock": part(["missing", "pid", "garbage"], ["link", "fifo"]),
        "loops": draw(st.booleans()),
        "command": draw(st.sampled_from(["sweep", "check", "report"])),
    }


def build_folder(root: Path, plan: dict[str, Any]) -> tuple[Path, Path]:
    """The folder `plan` describes, below `root`; returns (folder, sentinel)."""
    from ffbench.results import write_parquet, write_row_json
    from ffbench.sweep.definition import record_owner
    from ffbench.sweep.spec import load_sweep

    sentinel = root / "sentinel.txt"
    sentinel.write_text(SENTINEL_TEXT)
    folder = root / "parent" / "results"
    cells = folder / "cells"
    cells.mkdir(parents=True)
    rows = meta_cell_rows()
    for index in plan["cells"]:
        write_row_json(rows[index], cells / f"{rows[index]['cell_id']}.json")
    extras = {"poisoned": lambda p: p.write_text("{not json"),
              "user": lambda p: p.write_text('{"mine": true}'),
              "link": lambda p: p.symlink_to(sentinel), "fifo": os.mkfifo,
              "subdir": lambda p: p.mkdir()}
    for n, extra in enumerate(plan["cell_extras"]):
        name = "notes.json" if extra == "user" else f"{n:012x}.json"
        extras[extra](cells / name)
    parquet = folder / "results.parquet"
    chosen = {"all": rows, "stale": rows[:1]}
    if plan["parquet"] in chosen:
        write_parquet(chosen[plan["parquet"]], parquet)
    {"corrupt": lambda: parquet.write_bytes(b"PAR1 torn"), "directory": parquet.mkdir,
     "fifo": lambda: os.mkfifo(parquet), "link": lambda: parquet.symlink_to(sentinel)}.get(
        plan["parquet"], lambda: None)()
    definition = folder / "sweep.json"
    if plan["definition"] != "missing":
        spec = load_sweep("ci-cpu", {"algorithms": "bp", "layers": "1,2", "hidden": 8,
                                     "batch_sizes": 8, "steps": 1, "warmup_steps": 0,
                                     "device": "meta"})
        record_owner(spec, folder)
        stored = json.loads(definition.read_text())
        if plan["definition"] in TAMPERED:
            definition.write_text(json.dumps(TAMPERED[plan["definition"]](stored)))
        elif plan["definition"] != "sweep":
            definition.unlink()
            (os.mkfifo if plan["definition"] == "fifo" else
             lambda p: p.symlink_to(sentinel))(definition)
    lock = folder / ".lock"
    {"pid": lambda: lock.write_text("12345\n"), "garbage": lambda: lock.write_text("\x1b[2J"),
     "link": lambda: lock.symlink_to(sentinel), "fifo": lambda: os.mkfifo(lock)}.get(
        plan["lock"], lambda: None)()
    if plan["loops"]:
        (root / "parent" / "loop").symlink_to(root / "parent")
        (folder / "up").symlink_to(root)
    return folder, sentinel


def snapshot(folder: Path) -> dict[str, Any]:
    """Every entry below `folder` (links not followed, FIFOs not opened): its kind, and a
    regular file's bytes."""
    seen: dict[str, Any] = {}
    for top, dirs, files in os.walk(folder, followlinks=False):
        for name in [*dirs, *files]:
            path = Path(top) / name
            mode = path.lstat().st_mode
            seen[str(path.relative_to(folder))] = (
                path.read_bytes() if stat.S_ISREG(mode) else stat.S_IFMT(mode))
    return seen


@pytest.mark.slow  # real sweeps among its commands
@examples(20)
@given(plan=folders())
def test_commands_on_generated_folders(
    plan: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A command on a folder of any shape: exit 0, or 1/2 with one line, within a minute;
    the file outside every folder (the links' target) never written; a user's file never
    moved; a refused sweep changes nothing; a sweep that ran keeps every row it found."""
    with scratch() as root:
        folder, sentinel = build_folder(root, plan)
        before = snapshot(folder)
        args = {"report": ["report", str(root / "parent"), "--out", str(root / "r.md")],
                "check": ["check", str(folder), "--baseline", str(folder)],
                "sweep": [*FOLDER_SWEEP, "--out", str(folder)]}[plan["command"]]
        started = time.monotonic()
        code, out, err = invoke(capsys, *args)
        assert time.monotonic() - started < 120, "a command took minutes"
        assert_clean(plan["command"], code, out, err)
        ended = f"{plan['command']} exit {code}"
        FOLDER_EXITS[ended] = FOLDER_EXITS.get(ended, 0) + 1
        assert sentinel.read_text() == SENTINEL_TEXT and not sentinel.is_symlink()
        after = snapshot(folder)
        if "notes.json" in before:
            assert after.get("cells/notes.json") == before["cells/notes.json"]
        if plan["command"] == "sweep" and code == 2:
            assert after == before, err  # refused: nothing written, nothing moved
        if plan["command"] == "sweep" and code == 0:
            kept = {k: v for k, v in before.items()
                    if k.startswith("cells/") and isinstance(v, bytes) and v.startswith(b"{\n")}
            assert all(after.get(k) == v for k, v in kept.items()), err


# ---- generated plugins: raising, exiting, crashing, blocking, printing ---------------------


@st.composite
def plugin_cases(draw: st.DrawFn) -> tuple[str, str, str]:
    from plugins_factory import BEHAVIOURS

    return (draw(st.sampled_from(["import", "step"])), draw(st.sampled_from(sorted(BEHAVIOURS))),
            draw(st.sampled_from(["capacity", "algorithms", "sweep"])))


FINE = ("behaves", "prints")


@pytest.mark.slow
@examples(5)
@given(case=plugin_cases())
def test_a_generated_plugin_is_a_row_or_a_line_never_the_commands_end(
    case: tuple[str, str, str],
) -> None:
    """A real plugin (an installed distribution's entry point) that misbehaves at import or
    in its step, through a real command in a fresh process: the command ends 0, the
    built-in answered, the plugin's answer (a row, a line) says whether it worked."""
    from conftest import ffbench_process
    from plugins_factory import WIDE, write_plugin

    when, behaviour, command = case
    with scratch() as root:
        name = write_plugin(root, when, behaviour, in_cells_only=command == "sweep")
        fine = behaviour in FINE or (when == "step" and command == "algorithms")
        if command == "capacity":
            done = ffbench_process("capacity", "1GiB", "--hidden", "32", "--batch-size", "8",
                                   "--algorithms", f"bp,{name}", "--timeout", "10", "--json",
                                   plugins=root, env=WIDE)
            assert done.returncode == 0, done.stderr
            fits = {fit["algorithm"]: fit for fit in json.loads(done.stdout)}
            assert fits["bp"]["error"] is None and (fits[name]["error"] is None) == fine
        elif command == "algorithms":
            done = ffbench_process("algorithms", "--timeout", "3", plugins=root, env=WIDE)
            assert done.returncode == 0, done.stderr
            [line] = [line for line in done.stdout.splitlines() if line.startswith(name + " ")]
            assert ("unusable:" not in line) == fine, line
        else:
            out = root / "s"
            done = ffbench_process(*FOLDER_SWEEP[:3], f"bp,{name}", *FOLDER_SWEEP[4:],
                                   "--timeout", "5", "--out", out, plugins=root, env=WIDE)
            assert done.returncode == 0, done.stderr
            from ffbench.results import read_parquet

            rows = read_parquet(out / "results.parquet")
            status = dict(zip(rows["algorithm"] + rows["n_layers"].astype(str), rows["status"],
                              strict=True))
            assert status["bp1"] == status["bp2"] == "ok"
            assert (status[f"{name}1"] == "ok") == fine, (status, done.stderr)
        CASES["plugin"] = CASES.get("plugin", 0) + 1
        assert "Traceback" not in done.stderr.split("warning")[0]


# ---- the gate's inputs ------------------------------------------------------------------


@st.composite
def gate_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """Results and a baseline built from the same real rows, each change drawn and
    recorded: a cell regressed or improved by a factor, a memory column nulled on one side
    or both, a cell given twice, a row without a cell id, a cell failed now."""
    rows = meta_cell_rows()
    n = len(rows)
    return {
        "factors": draw(st.lists(st.sampled_from([1.0, 1.0, 0.5, 0.99, 1.01, 1.5, 3.0]),
                                 min_size=n, max_size=n)),
        "null_now": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        "null_both": draw(st.booleans()),
        "twice": draw(st.sampled_from([None, "results", "baseline"])),
        "anonymous": draw(st.booleans()),
        "failed": draw(st.sampled_from([None, 0, 1, 2])),
        "metric": draw(st.sampled_from([None, "train_peak_tracked_bytes",
                                        "train_peak_allocated_bytes"])),
        "allow": draw(st.booleans()),
        "rtol": draw(st.sampled_from([0.0, 0.02, 0.6])),
    }


@examples(30)
@given(inputs=gate_inputs())
def test_the_gate_fails_closed_on_generated_inputs(
    inputs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The exit code follows from what was changed, cell by cell: 1 for a regression beyond
    rtol or a failed cell among the cells it compares, 1 for a cell it cannot compare
    (given twice, a column the baseline has and the results lack, a --metric null on both
    sides, no cell id) unless --allow-uncompared, else 0; the cells it could not compare
    named in one line."""
    from ffbench.results import write_parquet

    base = meta_cell_rows()
    now = [dict(row) for row in base]
    metric, rtol = inputs["metric"], inputs["rtol"]
    regressed = uncompared = False
    repeated = 0 if inputs["twice"] else None
    for index, (row, factor, null) in enumerate(
            zip(now, inputs["factors"], inputs["null_now"], strict=True)):
        for column in ("train_peak_tracked_bytes", "predicted_train_peak_bytes"):
            row[column] = int(row[column] * factor)
        if null:
            row["train_peak_tracked_bytes"] = None
        if inputs["failed"] == index:
            row["status"] = "oom"
        if index == repeated:
            continue  # not compared: which of its rows counts would be a guess
        if inputs["failed"] == index:
            regressed = True
            continue
        columns = [metric] if metric else ["train_peak_tracked_bytes",
                                           "predicted_train_peak_bytes"]
        for column in columns:
            old, new = base[index][column], row[column]
            if old is None and new is None or old is not None and new is None:
                uncompared = True  # null on both sides (named) or null now
            elif new > old * (1 + rtol):
                regressed = True
    extra_now, extra_base = [], []
    if inputs["twice"] == "results":
        extra_now = [dict(now[0])]
    elif inputs["twice"] == "baseline":
        extra_base = [dict(base[0])]
    if inputs["anonymous"]:
        extra_now.append({**now[1], "cell_id": None})
    uncompared = uncompared or inputs["twice"] is not None or inputs["anonymous"]
    with scratch() as folder:
        write_parquet(now + extra_now, folder / "now.parquet")
        write_parquet(base + extra_base, folder / "base.parquet")
        args = ["check", str(folder / "now.parquet"), "--baseline", str(folder / "base.parquet"),
                "--rtol", str(rtol)]
        args += ["--metric", metric] if metric else []
        args += ["--allow-uncompared"] if inputs["allow"] else []
        code, out, err = invoke(capsys, *args)
    CASES["gate"] = CASES.get("gate", 0) + 1
    assert not err, err
    expected = int(regressed or (uncompared and not inputs["allow"]))
    assert code == expected, (code, expected, inputs, out)
    named = [line for line in out.splitlines() if line.startswith("could not compare")]
    assert len(named) == int(uncompared), out


def test_zz_report_the_number_of_generated_cases() -> None:
    """Not a check: prints how many cases each command ran (pytest -s shows it)."""
    print(f"\ngenerated cases: {sum(CASES.values())} {dict(sorted(CASES.items()))}; "
          f"on generated folders: {dict(sorted(FOLDER_EXITS.items()))}")
