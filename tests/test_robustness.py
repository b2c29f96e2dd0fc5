"""Nothing a user, a file or a neighbour does crashes a command or spoils its results:
each case in-process through `ffbench.cli.main` where a
subprocess is not the point, with real processes where it is (the folder lock)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ffbench_process, invoke
from results_factory import sweep_rows, write_results
from test_sweep_processes import WAIT_S, finished_cells, start_sweep, wait_for

from ffbench.algorithms.resolve import identity_columns
from ffbench.errors import BadInput
from ffbench.results import (
    CELLS_DIR,
    PARQUET_NAME,
    ResultsError,
    make_row,
    read_parquet,
    row_problem,
    write_parquet,
    write_row_json,
)
from ffbench.runner.jobs import CHILD_MODULE
from ffbench.settings.cell import CellSpec
from ffbench.settings.ranges import parse_int_range
from ffbench.sweep import folder as sweep_folder
from ffbench.sweep import spec as sweep_spec

META = ["--device", "meta", "--hidden", "8", "--batch-size", "8", "--steps", "1",
        "--warmup", "0", "--layers", "1"]
SWEEP_META = ["ci-cpu", "--algorithms", "bp", "--hidden", "8", "--batch-sizes", "8",
              "--steps", "1", "--warmup", "0", "--device", "meta"]


def assert_refused(code: int, err: str, words: str, expected_code: int = 2) -> None:
    assert code == expected_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], err
    assert lines[0].startswith("ffbench: error: ") and "Traceback" not in err


def child_processes() -> list[str]:
    """Command lines of this process's live children (a sweep's pool processes among them)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == os.getpid() and fields[0] != "Z":
                found.append((stat.parent / "cmdline").read_text().replace("\0", " "))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


# ---- the command line itself ----------------------------------------------------------------


def test_a_sweep_refused_after_its_pool_started_leaves_no_process(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A sweep starts its pool's processes (two meta workers here) while it checks its cells;
    a cell refused then ends them with the refusal."""
    assert not [line for line in child_processes() if CHILD_MODULE in line]
    code, _, err = invoke(capsys, "sweep", *SWEEP_META, "--algorithms", "rff", "--jobs", "2",
                          "--option", "iterations=0", "--out", tmp_path / "out")
    assert_refused(code, err, "iterations")
    assert not [line for line in child_processes() if CHILD_MODULE in line]
    assert not (tmp_path / "out").exists()


def test_no_arguments_print_the_help_and_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke(capsys)
    assert code == 0 and "Usage" in out and "sweep" in out and not err


# ---- numbers that are not numbers ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--lr", "inf"], "--lr must be a finite number"),
        (["--lr", "nan"], "--lr must be a finite number"),
        (["--threshold", "nan"], "--threshold must be a finite number"),
        (["--threshold", "-inf"], "--threshold must be a finite number"),
        (["--seed", "-1"], "--seed must be 0 or more"),
        (["--hidden", str(2**63)], "--hidden must be at most"),
        (["--seed", str(2**64)], "--seed must be at most"),
        (["--option", "readout_from_layer=1e400"], "must be a finite number"),
    ],
)
def test_numbers_that_are_not_numbers_are_refused(
    args: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    code, _, err = invoke(capsys, "run", "ff", *META, *args, "--out", out)
    assert_refused(code, err, words)
    assert not out.exists()


def test_check_rtol_nan_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = write_results(tmp_path, sweep_rows())
    code, _, err = invoke(capsys, "check", results, "--baseline", results, "--rtol", "nan")
    assert_refused(code, err, "--rtol must be a finite number")


def test_a_loss_that_becomes_nan_is_diverged_with_its_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    code, _, err = invoke(capsys, "run", "bp", "--layers", "1", "--hidden", "16",
                          "--batch-size", "16", "--steps", "3", "--warmup", "0",
                          "--threads", "1", "--lr", "1e30", "--out", out)
    row = json.loads(out.read_text())
    assert code == 1 and "cell diverged" in err
    assert row["status"] == "diverged" and row["diverged_at_step"] in (1, 2, 3)
    assert not math.isfinite(row["final_train_loss"])
    assert row["train_peak_tracked_bytes"] > 0  # what was measured is kept


# ---- sizes without a bound --------------------------------------------------------------------


def test_a_huge_range_is_refused_before_it_is_built(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    code, _, err = invoke(capsys, "sweep", *SWEEP_META, "--layers", "1..1000000000000",
                          "--out", "/nonexistent/never")
    assert_refused(code, err, "--layers: every value must be at most 10000")
    # the most cells --max-cells allows: still refused before a value is made (this one
    # once took the CI machine's 24 GiB)
    code, _, err = invoke(capsys, "sweep", *SWEEP_META, "--layers", "1..1000000000000",
                          "--max-cells", "1000000", "--out", "/nonexistent/never")
    assert_refused(code, err, "--layers: every value must be at most 10000")
    code, _, err = invoke(capsys, "sweep", *SWEEP_META, "--batch-sizes", "1..30000",
                          "--out", "/nonexistent/never")
    assert_refused(code, err, "30000 values, more than the limit of 10000")
    code, _, err = invoke(capsys, "sweep", *SWEEP_META, "--max-cells", "2000000",
                          "--out", "/nonexistent/never")
    assert_refused(code, err, "--max-cells must be at most 1000000")
    code, _, err = invoke(capsys, "sweep", *SWEEP_META, "--jobs", str(2**62),
                          "--out", "/nonexistent/never")
    assert_refused(code, err, "--jobs must be at most 1024")
    assert time.perf_counter() - started < 5


def test_a_grid_too_big_is_refused_and_max_cells_raises_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text('algorithms = ["bp", "ff"]\nlayers = "1..1000"\nhidden = "1..1000"\n')
    with pytest.raises(BadInput, match="2000000 cells, more than the limit of 10000"):
        sweep_spec.load_sweep(str(path), {})
    small = sweep_spec.load_sweep(str(path), {"hidden": "1,2"}, max_cells=4000)
    assert small.size == 4000


def test_ranges_are_counted_not_expanded() -> None:
    assert parse_int_range("2,4..8:2,7", flag="x") == [2, 4, 6, 7, 8]
    with pytest.raises(BadInput, match="at most"):
        parse_int_range("1..9999999999999999999", flag="layers")
    with pytest.raises(BadInput, match="cannot read"):
        parse_int_range("1" * 5000, flag="layers")  # beyond int(str)'s digit limit


# ---- a row that poisons its folder -------------------------------------------------------


def one_cell_row(**values: object) -> dict[str, object]:
    spec = CellSpec(algorithm="bp", n_layers=1, hidden=8, batch_size=8, device="meta")
    return make_row(**identity_columns(spec, "s"), status="ok", **values)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"train_peak_tracked_bytes": 2**64}, "out of range"),
        ({"static_bytes": "lots"}, "is not a int64"),
        ({"status": "fine"}, "status 'fine'"),
        ({"hidden": 9}, "does not match its settings"),
        ({"n_layers": -3}, "out of range"),
        ({"compile": "yes"}, "is not a bool"),
    ],
)
def test_rows_that_cannot_be_stored_are_named(change: dict[str, object], words: str) -> None:
    assert row_problem(one_cell_row()) is None
    problem = row_problem({**one_cell_row(), **change})
    assert problem is not None and words in problem


def test_a_poisoned_cell_file_is_set_aside_and_every_command_still_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = one_cell_row(train_peak_tracked_bytes=100, eval_peak_tracked_bytes=50)
    cells = tmp_path / CELLS_DIR
    write_row_json(good, cells / f"{good['cell_id']}.json")
    poisoned = {**good, "hidden": 2**70}
    (cells / "0123456789ab.json").write_text(json.dumps(poisoned))
    code, out, err = invoke(capsys, "check", tmp_path, "--baseline", tmp_path)
    assert code == 0 and "ok: 1 cells compared" in out
    assert "0123456789ab.json" in err and "out of range" in err  # one warning line
    store = sweep_folder.SweepDir(tmp_path)  # a sweep resuming here
    store.close()
    assert set(store.rows) == {good["cell_id"]}
    reason = tmp_path / "rejected" / "0123456789ab.json.reason.txt"
    assert "out of range" in reason.read_text()
    assert read_parquet(tmp_path / PARQUET_NAME)["cell_id"].tolist() == [good["cell_id"]]


def test_a_parquet_with_a_wrong_type_loses_that_row_only(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = sweep_rows()
    write_parquet(rows, tmp_path / PARQUET_NAME)
    table = pq.read_table(tmp_path / PARQUET_NAME)
    statuses = table.column("status").to_pylist()
    statuses[0] = "melted"
    table = table.set_column(table.schema.get_field_index("status"), "status",
                             pa.array(statuses, pa.string()))
    pq.write_table(table, tmp_path / PARQUET_NAME)
    assert len(read_parquet(tmp_path / PARQUET_NAME)) == len(rows) - 1
    pq.write_table(table.slice(0, 1), tmp_path / PARQUET_NAME)
    with pytest.raises(ResultsError, match="status 'melted'"):
        read_parquet(tmp_path / PARQUET_NAME)


# ---- late checks: output paths ------------------------------------------------------------


def test_run_out_under_a_file_is_refused_before_the_cell_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "some_file.json").write_text("{}")
    code, out, err = invoke(capsys, "run", "bp", *META, "--out",
                            tmp_path / "some_file.json" / "r.json")
    assert_refused(code, err, "is a file, not a directory")
    assert "tracked peak" not in out  # refused before the cell ran


@pytest.mark.parametrize("command", ["plot", "report", "check"])
def test_unwritable_outputs_of_plot_report_check_are_refused(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = write_results(tmp_path / "res", sweep_rows())
    blocker = tmp_path / "file"
    blocker.write_text("")
    outs = {"plot": ["--out", blocker / "figs"], "report": ["--out", blocker / "r.md"],
            "check": ["--baseline", blocker / "b.parquet", "--refresh-baseline"]}
    code, _, err = invoke(capsys, command, results, *outs[command])
    assert_refused(code, err, "is a file, not a directory")


def test_two_meta_sweeps_compared_draw_without_step_times(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Meta cells have no step times: comparing two such folders once crashed on NaN axis
    limits."""
    untimed = {"device": "meta", "step_time_median_s": None, "step_time_iqr_s": None,
               "samples_per_s": None}
    a = write_results(tmp_path / "a", sweep_rows(**untimed))
    b = write_results(tmp_path / "b", sweep_rows(**untimed))
    code, out, err = invoke(capsys, "plot", a, b, "--out", tmp_path / "figs")
    assert code == 0 and "Traceback" not in err, err
    assert (tmp_path / "figs" / "compare_inputs.png").stat().st_size > 0
    assert "time_vs_layers: no successful cell with step times" in out + err


def test_a_results_parquet_that_is_a_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "o" / PARQUET_NAME).mkdir(parents=True)
    code, _, err = invoke(capsys, "sweep", *SWEEP_META, "--layers", "1", "--out", tmp_path / "o")
    assert_refused(code, err, "is a directory; this is not a sweep's folder")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [PARQUET_NAME]


def test_an_os_error_mid_command_is_one_line_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ffbench import results

    def disk_full(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device", str(path))

    baseline = tmp_path / "b.parquet"
    monkeypatch.setattr(results, "atomic_write", disk_full)
    res = write_results_plain(tmp_path / "res", [one_cell_row()])  # a baseline names its cells
    code, _, err = invoke(capsys, "check", res, "--baseline", baseline, "--refresh-baseline")
    assert_refused(code, err, "No space left on device", expected_code=1)
    assert not baseline.exists()


def write_results_plain(folder: Path, rows: list[dict[str, object]] | None = None) -> Path:
    import pyarrow.parquet as pq

    from ffbench.results import rows_to_table

    folder.mkdir(parents=True)
    pq.write_table(rows_to_table(sweep_rows() if rows is None else rows), folder / PARQUET_NAME)
    return folder


# ---- text taken as markup -----------------------------------------------------------------


def test_brackets_in_paths_and_messages_are_printed_as_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "[bold]x[/bold] [/]" / "r.json"
    code, stdout, _ = invoke(capsys, "run", "bp", *META, "--out", out)
    assert code == 0 and f"wrote {out}" in stdout.replace("\n", "")
    code, _, err = invoke(capsys, "run", "[red]bp[/red]")
    assert_refused(code, err, "unknown algorithm '[red]bp[/red]'")


@pytest.mark.slow
def test_a_sweep_into_a_bracketed_folder_with_a_failing_cell_finishes(tmp_path: Path) -> None:
    out = tmp_path / "o[/]ut [x]"
    result = ffbench_process("sweep", *SWEEP_META, "--layers", "1,2", "--option", "no_such=[/]",
                             "--out", out)
    assert result.returncode == 2 and "unknown option 'no_such'" in result.stderr  # refused
    (tmp_path / "data" / "MNIST" / "raw").mkdir(parents=True)
    from ffbench.settings.cell import MNIST_FILES

    for name in MNIST_FILES:
        (tmp_path / "data" / "MNIST" / "raw" / name).write_bytes(b"[/] not idx")
    result = ffbench_process("sweep", *SWEEP_META, "--layers", "1,2", "--dataset", "mnist",
                             "--data-dir", tmp_path / "data", "--out", out)
    assert result.returncode == 0, result.stderr
    assert f"finished in {out}" in result.stderr.replace("\n", "")
    assert "error bp layers=1" in result.stderr and "2 cell(s) failed" in result.stdout


# ---- two sweeps into one folder (real processes) ------------------------------------------


@pytest.mark.slow
def test_two_sweeps_started_together_one_runs_one_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "x"
    args = [*SWEEP_META, "--layers", "1..4", "--out", out]
    both = [start_sweep(*args), start_sweep(*args)]
    ended = [(p, *p.communicate(timeout=WAIT_S)) for p in both]
    codes = sorted(p.returncode for p, _, _ in ended)
    assert codes == [0, 2], [e for _, _, e in ended]
    (winner, _, _), (loser, _, refusal) = sorted(ended, key=lambda e: e[0].returncode)
    assert refusal.strip().count("\n") == 0, refusal
    assert f"in use by another sweep (PID {winner.pid})" in refusal
    frame = read_parquet(out / PARQUET_NAME)
    assert len(frame) == 4 and frame["cell_id"].is_unique  # every cell exactly once


@pytest.mark.slow
def test_a_second_sweep_leaves_the_running_ones_files_alone(tmp_path: Path) -> None:
    out = tmp_path / "x"
    # cells of a few seconds: the first sweep still runs when the second (its own import of
    # torch, ~2 s) reaches the folder's lock
    first = start_sweep("ci-cpu", "--algorithms", "bp,ff", "--layers", "1..4", "--hidden", "512",
                        "--batch-sizes", "512", "--steps", "20", "--warmup", "0", "--device",
                        "cpu", "--threads", "1", "--jobs", "2", "--out", out)
    wait_for(lambda: (out / ".work").exists() and any((out / ".work").iterdir()),
             "the first sweep's cells to start")
    second = ffbench_process("sweep", "ci-cpu", "--algorithms", "bp,ff", "--layers", "1..4",
                             "--out", out)
    work_left = (out / ".work").exists() or finished_cells(out) == 8
    assert second.returncode == 2 and f"(PID {first.pid})" in second.stderr, second.stderr
    assert work_left  # its work files were not cleaned away under it
    _, err = first.communicate(timeout=WAIT_S)
    assert first.returncode == 0, err
    frame = read_parquet(out / PARQUET_NAME)
    assert len(frame) == 8 and frame["cell_id"].is_unique and set(frame["status"]) == {"ok"}


def test_a_killed_sweeps_lock_never_blocks_its_resume(tmp_path: Path) -> None:
    out = tmp_path / "k"
    out.mkdir()
    holder = subprocess.Popen(
        ["python3", "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(out)!r}, os.O_RDONLY)\n"  # a sweep locks the folder itself
         "fcntl.flock(fd, fcntl.LOCK_EX)\n"
         f"open({str(out / '.lock')!r}, 'w').write(str(os.getpid()))\n"
         "print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(sweep_folder.SweepLocked, match=f"PID {holder.pid}"):
            sweep_folder.SweepDir(out)
    finally:
        holder.kill()
        holder.wait()
    store = sweep_folder.SweepDir(out)  # the kernel dropped the dead holder's lock
    store.close()
