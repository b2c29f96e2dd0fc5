"""Nothing lost, no gate bypassed, nothing hidden: what a hostile user, a tampered folder or
a broken plugin does to a command, one test per example, each through the real command
line (in this process where a subprocess is not the point; real processes, signals and
plugins where it is)."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FFBENCH, ffbench_process, invoke, process_env
from results_factory import ok_row, sweep_rows
from test_robustness import SWEEP_META, assert_refused
from test_sweep_processes import WAIT_S, start_sweep

from ffbench.algorithms.resolve import cell_id, identity_columns
from ffbench.errors import BadInput
from ffbench.results import (
    CELLS_DIR,
    PARQUET_NAME,
    load,
    make_row,
    read_parquet,
    write_parquet,
    write_row_json,
)
from ffbench.settings.cell import CellSpec
from ffbench.sweep import definition as sweep_definition
from ffbench.sweep import folder as sweep_folder
from ffbench.sweep import result_sets as sweep_result_sets
from ffbench.sweep.spec import load_sweep

TINY_META = [*SWEEP_META, "--layers", "1,2"]


def meta_rows(layers: tuple[int, ...] = (1, 2), **settings: object) -> list[dict[str, object]]:
    """Rows of real meta cells of bp (their ids their settings'), with made-up peaks."""
    rows = []
    for n in layers:
        spec = CellSpec("bp", n_layers=n, hidden=8, batch_size=8, device="meta", steps=1,
                        warmup_steps=0, **settings)  # type: ignore[arg-type]
        rows.append(make_row(**identity_columns(spec, "ci-cpu"), status="ok",
                             train_peak_tracked_bytes=1000 * n, eval_peak_tracked_bytes=500 * n,
                             predicted_train_peak_bytes=1000 * n,
                             predicted_eval_peak_bytes=500 * n, static_bytes=100 * n))
    return rows


def cells_folder(folder: Path, rows: list[dict[str, object]]) -> Path:
    for row in rows:
        write_row_json(row, folder / CELLS_DIR / f"{row['cell_id']}.json")
    return folder


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every path below `folder` with its bytes (None for a directory): what a refusal
    must leave as it was."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes()
            for p in sorted(folder.rglob("*"))}


# ---- 1. data lost or written outside the folder -----------------------------------------


def test_a_copied_results_file_is_not_rewritten_by_a_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "copied"
    write_parquet(sweep_rows(), out / PARQUET_NAME)
    before = tree(out)
    code, _, err = invoke(capsys, "sweep", *TINY_META, "--out", out)
    assert_refused(code, err, "holds results.parquet but no cell rows")
    assert tree(out) == before


def test_a_folder_of_the_users_own_is_neither_adopted_nor_moved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    (out / CELLS_DIR).mkdir(parents=True)
    (out / CELLS_DIR / "analysis.json").write_text('{"my": "notes"}')
    (out / "notes.txt").write_text("mine")
    before = tree(out)
    code, _, err = invoke(capsys, "sweep", *TINY_META, "--out", out)
    assert_refused(code, err, "holds files that are not a sweep's")
    assert tree(out) == before  # nothing moved to rejected/, no lock, no definition


def test_a_folder_another_sweep_is_starting_in_is_refused_as_in_use(tmp_path: Path) -> None:
    out = tmp_path / "s"
    holder = sweep_folder.FolderLock(out)  # a sweep that has just taken the folder
    try:
        holder.write_pid()
        (out / ".results.parquet.x1y2.tmp").write_bytes(b"PAR1")  # its first write under way
        (out / "notes.txt").write_text("not a sweep's")  # whatever else the folder holds
        with pytest.raises(sweep_folder.SweepLocked, match=f"PID {os.getpid()}"):
            sweep_folder.results_dir(out, fresh=False)
    finally:
        holder.release()
    with pytest.raises(BadInput, match="holds files that are not a sweep's"):
        sweep_folder.results_dir(out, fresh=False)  # the same folder, no sweep holding it


def test_a_sweep_killed_during_its_first_write_is_resumed(tmp_path: Path) -> None:
    out = tmp_path / "s"
    (out / CELLS_DIR).mkdir(parents=True)
    (out / ".lock").write_text("12345\n")
    (out / ".sweep.json.k3j9.tmp").write_text('{"grids": ')  # atomic writes cut by a kill
    (out / ".results.parquet.q8w1.tmp").write_bytes(b"PAR1")
    (out / CELLS_DIR / ".0a1b2c3d4e5f.json.z0.tmp").write_text("{")
    assert sweep_folder.results_dir(out, fresh=False) == out
    sweep_folder.SweepDir(out).close()
    assert not list(out.rglob("*.tmp"))  # the partial files are cleaned up, nothing else


@pytest.mark.slow
def test_a_sweeps_folder_keeps_a_file_of_the_users_in_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s"
    code, _, err = invoke(capsys, "sweep", *TINY_META, "--out", out)
    assert code == 0, err
    (out / CELLS_DIR / "analysis.json").write_text('{"my": "notes"}')
    code, _, err = invoke(capsys, "sweep", *SWEEP_META, "--layers", "1..3", "--out", out)
    assert code == 0, err
    assert (out / CELLS_DIR / "analysis.json").read_text() == '{"my": "notes"}'
    assert not (out / sweep_folder.REJECTED_DIR).exists()
    assert len(read_parquet(out / PARQUET_NAME)) == 3


@pytest.mark.slow
def test_a_lock_file_that_is_a_link_is_never_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, target = tmp_path / "s", tmp_path / "precious.txt"
    code, _, err = invoke(capsys, "sweep", *TINY_META, "--out", out)
    assert code == 0, err
    target.write_text("keep me")
    (out / ".lock").unlink()
    (out / ".lock").symlink_to(target)
    code, _, err = invoke(capsys, "sweep", *TINY_META, "--out", out)
    assert_refused(code, err, "is a symbolic link")
    assert target.read_text() == "keep me" and (out / ".lock").is_symlink()


@pytest.mark.parametrize("kind", ["link", "fifo", "device"])
def test_run_out_never_replaces_a_link_or_a_special_file(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "target.json"
    target.write_text("keep me")
    out = tmp_path / "out.json"
    if kind == "link":
        out.symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(out)
    else:  # a node of its own, like /dev/null (which a broken build would replace, as root)
        try:
            os.mknod(out, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("making a device node needs root")
    started = time.perf_counter()
    code, stdout, err = invoke(capsys, "run", "bp", "--device", "meta", "--hidden", "8",
                               "--batch-size", "8", "--layers", "1", "--out", out)
    assert_refused(code, err, "ffbench writes only regular files")
    assert stdout == ""  # refused before the cell ran
    assert time.perf_counter() - started < 5
    assert target.read_text() == "keep me"
    if kind == "link":
        assert out.is_symlink()
    if kind == "fifo":
        assert out.is_fifo()
    if kind == "device":
        assert out.is_char_device()


def test_deleting_the_lock_file_does_not_admit_a_second_sweep(tmp_path: Path) -> None:
    out = tmp_path / "s"
    first = sweep_folder.SweepDir(out)
    try:
        with pytest.raises(sweep_folder.SweepLocked, match=f"PID {os.getpid()}"):
            sweep_folder.SweepDir(out)
        (out / ".lock").unlink()
        with pytest.raises(sweep_folder.SweepLocked, match="PID unknown"):
            sweep_folder.SweepDir(out)
        assert not (out / ".lock").exists()  # the refused one wrote nothing
    finally:
        first.close()
    sweep_folder.SweepDir(out).close()


@pytest.mark.slow
def test_a_running_sweep_whose_lock_file_is_deleted_keeps_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "s"
    first = start_sweep("ci-cpu", "--algorithms", "bp,ff", "--layers", "1..3", "--hidden", "256",
                        "--batch-sizes", "256", "--steps", "10", "--warmup", "0", "--device",
                        "cpu", "--threads", "1", "--out", out)
    deadline = time.monotonic() + WAIT_S
    while not ((out / ".work").exists() and any((out / ".work").iterdir())):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # still holding its folder, however fast its cells
    try:
        (out / ".lock").unlink()
        second = ffbench_process("sweep", "ci-cpu", "--algorithms", "bp,ff", "--layers", "1..3",
                                 "--hidden", "256", "--batch-sizes", "256", "--steps", "10",
                                 "--warmup", "0", "--device", "cpu", "--threads", "1",
                                 "--out", out)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2 and "in use by another sweep" in second.stderr, second.stderr
    _, err = first.communicate(timeout=WAIT_S)
    assert first.returncode == 0, err
    frame = read_parquet(out / PARQUET_NAME)
    assert len(frame) == 6 and set(frame["status"]) == {"ok"}


@pytest.mark.parametrize("name", ["base.json", "base", "base.md"])
def test_refresh_baseline_writes_only_a_parquet_file(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = cells_folder(tmp_path / "r", meta_rows())
    code, _, err = invoke(capsys, "check", results, "--baseline", tmp_path / name,
                          "--refresh-baseline")
    assert_refused(code, err, "give a FILE.parquet")
    assert not (tmp_path / name).exists()
    code, out, err = invoke(capsys, "check", results, "--baseline", tmp_path / "b.parquet",
                            "--refresh-baseline")
    assert code == 0 and "wrote 2 cells" in out, err
    code, out, err = invoke(capsys, "check", results, "--baseline", tmp_path / "b.parquet")
    assert code == 0 and "ok: 2 cells compared" in out, err


# ---- 2. the memory gate fails closed ---------------------------------------------------------


def regressed(rows: list[dict[str, object]], factor: int = 3) -> list[dict[str, object]]:
    columns = ("train_peak_tracked_bytes", "predicted_train_peak_bytes")
    return [{**row, **{c: int(row[c]) * factor for c in columns}} for row in rows]  # type: ignore[call-overload]


def assert_failed_closed(code: int, out: str, words: str) -> None:
    """exit 1, and one line naming the cells the gate could not compare, with why."""
    assert code == 1, out
    [line] = [line for line in out.splitlines() if line.startswith("could not compare")]
    assert words in line and "bp layers=1" in line, line
    assert out.rstrip().splitlines()[-1].startswith("FAIL: "), out


def test_a_cell_given_twice_fails_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = cells_folder(tmp_path / "base", meta_rows())
    worse = cells_folder(tmp_path / "worse", regressed(meta_rows()))
    code, out, _ = invoke(capsys, "check", worse, base, "--baseline", base)
    assert_failed_closed(code, out, "given 2 times in the results")
    code, out, _ = invoke(capsys, "check", worse, "--baseline", base)
    assert code == 1 and "4 regressions" in out  # given once, the regression is seen
    code, out, _ = invoke(capsys, "check", worse, base, "--baseline", base,
                          "--allow-uncompared")
    assert code == 0 and "--allow-uncompared: not a failure" in out


def test_rows_without_their_memory_columns_fail_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = cells_folder(tmp_path / "base", meta_rows())
    from ffbench.check import DETERMINISTIC_METRICS

    empty = [{**row, **dict.fromkeys(DETERMINISTIC_METRICS)} for row in meta_rows()]
    code, out, _ = invoke(capsys, "check", cells_folder(tmp_path / "now", empty),
                          "--baseline", base)
    assert_failed_closed(code, out, "train_peak_tracked_bytes is null now")


def test_a_metric_null_on_both_sides_fails_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = cells_folder(tmp_path / "base", meta_rows())
    worse = cells_folder(tmp_path / "worse", regressed(meta_rows()))
    code, out, _ = invoke(capsys, "check", worse, "--baseline", base,
                          "--metric", "train_peak_allocated_bytes")
    assert_failed_closed(code, out, "train_peak_allocated_bytes is null on both sides")
    code, out, _ = invoke(capsys, "check", worse, "--baseline", base,
                          "--metric", "train_peak_tracked_bytes")
    assert code == 1 and "2 regressions" in out


def test_rows_without_a_cell_id_fail_the_gate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = cells_folder(tmp_path / "base", meta_rows())
    anonymous = [{**row, "cell_id": None} for row in meta_rows()]
    write_parquet(anonymous + meta_rows()[:1], tmp_path / "now.parquet")
    code, out, _ = invoke(capsys, "check", tmp_path / "now.parquet", "--baseline", base)
    assert code == 1 and "2 row(s) without a cell id" in out, out


# ---- 3. results hidden or mixed -------------------------------------------------------------


def test_a_stale_parquet_beside_intact_cells_hides_no_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = meta_rows((1, 2, 3))
    folder = cells_folder(tmp_path / "r", rows)
    write_parquet(rows[:1], folder / PARQUET_NAME)  # as a kill between two writes leaves it
    assert len(load([folder])) == 3
    code, out, err = invoke(capsys, "check", folder, "--baseline", folder)
    assert code == 0 and "ok: 3 cells compared" in out, err


def test_a_corrupt_parquet_beside_intact_cells_blocks_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = cells_folder(tmp_path / "r", meta_rows())
    (folder / PARQUET_NAME).write_bytes(b"PAR1 torn in half")
    code, out, err = invoke(capsys, "check", folder, "--baseline", folder)
    assert code == 0 and "ok: 2 cells compared" in out, err
    code, out, err = invoke(capsys, "report", folder, "--out", tmp_path / "r.md")
    assert code == 0, err
    assert "All 2 cells run succeeded." in (tmp_path / "r.md").read_text()


def test_a_folder_with_rows_of_a_plugin_not_installed_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "r"
    spec = load_sweep("ci-cpu", {"algorithms": "bp", "layers": "1,2", "hidden": 8,
                                 "batch_sizes": 8, "steps": 1, "warmup_steps": 0,
                                 "device": "meta"})
    sweep_definition.record_owner(spec, folder)
    stored = json.loads((folder / sweep_definition.DEFINITION_NAME).read_text())
    stored["algorithms"] = ["bp", "ff-gone"]
    (folder / sweep_definition.DEFINITION_NAME).write_text(json.dumps(stored))
    rows = meta_rows()
    plugin_row = {**rows[0], "algorithm": "ff-gone", "cell_id": "0123456789ab"}
    cells_folder(folder, [*rows, plugin_row])
    code, _, err = invoke(capsys, "report", folder, "--out", tmp_path / "r.md")
    assert code == 0, err
    assert "ff-gone" in err and "unchecked" in err  # said once
    text = (tmp_path / "r.md").read_text()
    assert "All 3 cells run succeeded." in text


def test_a_folder_mixing_optimizers_is_fitted_per_optimizer(tmp_path: Path) -> None:
    from ffbench.analysis.fits import slope_table

    rows = [ok_row("bp", n, 64, optimizer=optimizer, mem_optimizer_state_bytes=None,
                   train_peak_tracked_bytes=n * slope)
            for optimizer, slope in (("adam", 3 * 2**20), ("sgd", 2**20)) for n in (1, 2, 3)]
    write_parquet(rows, tmp_path / "fair" / PARQUET_NAME)
    frame = sweep_result_sets.load_set([tmp_path / "fair"])
    assert sorted(frame["source"].unique()) == [f"{tmp_path / 'fair'} (optimizer=adam)",
                                                f"{tmp_path / 'fair'} (optimizer=sgd)"]
    slopes = slope_table(frame).set_index("source")["train_slope_bytes_per_layer"]
    assert sorted(slopes.round()) == [2**20, 3 * 2**20]  # each its own, never their mean


# ---- 4. hangs and unbounded work ------------------------------------------------------------


def test_a_link_to_a_parent_is_not_followed_when_searching_for_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = tmp_path / "parent"
    cells_folder(parent / "a", meta_rows())
    (parent / "loop").symlink_to(parent)
    (parent / "b").mkdir()
    (parent / "b" / "up").symlink_to(parent)
    assert sweep_result_sets.results_below(parent) == [parent / "a"]
    started = time.perf_counter()
    code, out, err = invoke(capsys, "report", parent)
    assert code == 0, err
    assert out.count("wrote ") == 1 and time.perf_counter() - started < 60


def test_a_fifo_among_the_cells_or_as_the_sweep_file_blocks_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = cells_folder(tmp_path / "r", meta_rows())
    os.mkfifo(folder / CELLS_DIR / "0123456789ab.json")
    os.mkfifo(tmp_path / "sweep.toml")
    code, _, err = invoke(capsys, "report", folder, "--out", tmp_path / "r.md")
    assert code == 0 and "is a FIFO" in err, err
    code, _, err = invoke(capsys, "sweep", tmp_path / "sweep.toml", "--out", tmp_path / "x")
    assert_refused(code, err, "is a FIFO")
    os.mkfifo(tmp_path / "fifo.parquet")
    code, _, err = invoke(capsys, "check", tmp_path / "fifo.parquet", "--baseline", folder)
    assert_refused(code, err, "is a FIFO")


@pytest.mark.slow
def test_extending_a_sweep_with_batch_sizes_stores_no_phantom_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s"
    code, _, err = invoke(capsys, "sweep", *SWEEP_META, "--layers", "1..4", "--out", out)
    assert code == 0, err
    code, _, err = invoke(capsys, "sweep", *SWEEP_META, "--layers", "1", "--batch-sizes", "16",
                          "--out", out)
    assert code == 0, err
    frame = sweep_result_sets.load_set([out])
    assert len(frame) == 5 and "missing" not in set(frame["status"])


def test_a_definition_stored_before_grids_is_read_as_one_grid(tmp_path: Path) -> None:
    folder = cells_folder(tmp_path / "r", meta_rows((1,)))
    (folder / sweep_definition.DEFINITION_NAME).write_text(json.dumps({
        "name": "ci-cpu", "algorithms": ["bp"], "layers": [1, 2, 3], "batch_sizes": [8],
        "hidden": [8], "cell": {"steps": 1, "warmup_steps": 0, "device": "meta"}}))
    frame = sweep_result_sets.load_set([folder])
    assert sorted(zip(frame["n_layers"], frame["status"], strict=True)) == [
        (1, "ok"), (2, "missing"), (3, "missing")]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"algorithms": []}, "no names given"),
        ({"algorithms": "bp"}, None),
        ({"surprise": 1}, "unknown key 'surprise'"),
        ({"grids": [{"layers": ["a"], "batch_sizes": [8]}]}, "expected a range"),
        ({"grids": [{"layers": [1.5], "batch_sizes": [8]}]}, "expected a range"),
        ({"grids": [{"layers": [1, 2], "batch_sizes": [8], "x": 1}]}, "a grid is an object"),
        ({"grids": [{"layers": "1..10000", "batch_sizes": "1..1000000"}]}, "more than the limit"),
        ({"grids": [{"layers": "1..10000", "batch_sizes": "1..100"}] * 2}, "more than any"),
        ({"cell": {"steps": "many"}}, "steps"),
        ({"cell": {"layers": 3}}, "known settings"),
        ({"hidden": [10**12]}, "at most"),
        ([1, 2], "not an object"),
    ],
)
def test_a_tampered_definition_is_one_line(
    change: dict[str, object] | list[int], words: str | None, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = cells_folder(tmp_path / "r", meta_rows())
    spec = load_sweep("ci-cpu", {"algorithms": "bp", "layers": "1,2", "hidden": 8,
                                 "batch_sizes": 8, "steps": 1, "warmup_steps": 0,
                                 "device": "meta"})
    sweep_definition.record_owner(spec, folder)
    path = folder / sweep_definition.DEFINITION_NAME
    stored = json.loads(path.read_text())
    path.write_text(json.dumps(change if isinstance(change, list) else {**stored, **change}))
    started = time.perf_counter()
    for command in (["report", folder, "--out", tmp_path / "r.md"],
                    ["sweep", *TINY_META, "--out", folder]):
        code, _, err = invoke(capsys, *command)
        if words is None:
            assert code == 0, err
        else:
            assert_refused(code, err, "not a sweep definition ffbench wrote")
            assert words in err
    assert time.perf_counter() - started < 30


def test_a_definition_too_big_to_list_is_reported_without_its_missing_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = cells_folder(tmp_path / "r", meta_rows())
    spec = load_sweep("ci-cpu", {"algorithms": "bp", "layers": "1..10000", "hidden": 8,
                                 "batch_sizes": "8,16", "steps": 1, "warmup_steps": 0,
                                 "device": "meta"}, max_cells=20000)
    sweep_definition.record_owner(spec, folder)
    started = time.perf_counter()
    code, _, err = invoke(capsys, "report", folder, "--out", tmp_path / "r.md")
    assert code == 0 and "not run yet are not listed" in err, err
    assert time.perf_counter() - started < 30


# ---- 5. wrong statuses and wrong advice ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("device", "timeout"), [("meta", "1"), ("cpu", "0.5")])
def test_a_cells_clock_starts_when_the_cell_does(
    device: str, timeout: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker's start-up and torch's import (seconds) are not the cell's time: cells of
    milliseconds end ok under a timeout shorter than the start-up."""
    code, _, err = invoke(capsys, "sweep", "ci-cpu", "--algorithms", "bp,ff", "--layers", "1,2",
                          "--hidden", "8", "--batch-sizes", "8", "--steps", "1", "--warmup", "0",
                          "--device", device, "--timeout", timeout, "--out", tmp_path / "s")
    assert code == 0, err
    assert set(read_parquet(tmp_path / "s" / PARQUET_NAME)["status"]) == {"ok"}, err


@pytest.mark.slow
def test_a_plugin_whose_import_blocks_times_out_on_its_cells_clock(tmp_path: Path) -> None:
    from plugins_factory import WIDE, write_plugin

    name = write_plugin(tmp_path, "import", "blocks", in_cells_only=True)
    started = time.monotonic()
    done = ffbench_process("sweep", "ci-cpu", "--algorithms", f"bp,{name}", "--layers", "1",
                           "--hidden", "8", "--batch-sizes", "8", "--steps", "1", "--warmup", "0",
                           "--device", "cpu", "--timeout", "5", "--out", tmp_path / "s",
                           plugins=tmp_path, env=WIDE)
    assert done.returncode == 0, done.stderr
    rows = read_parquet(tmp_path / "s" / PARQUET_NAME).set_index("algorithm")
    assert rows.loc["bp", "status"] == "ok" and rows.loc[name, "status"] == "timeout"
    assert time.monotonic() - started < 60  # not the server's 300 s wait


def no_gpu_plan(monkeypatch: pytest.MonkeyPatch, out: Path) -> list[object]:
    from ffbench.sweep import plan

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    return plan.plan(None, {"layers": "2..47"}, out)  # type: ignore[return-value]


def test_the_resume_command_of_the_no_gpu_plan_names_the_folder_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ffbench.console.sweep_view import ConsoleSweepView
    from ffbench.sweep.run import out_dirs

    pub = tmp_path / "pub"
    planned = no_gpu_plan(monkeypatch, pub)
    argv = ["ffbench", "sweep", "--layers", "2..47", "--out", str(pub)]
    dirs, resume = out_dirs(planned, no_resume=False)  # type: ignore[arg-type]
    assert dirs == [pub / "predicted", pub / "cpu-stand-in"] and resume.out == pub
    ConsoleSweepView(argv).interrupted(dirs[0], resume)
    assert f"ffbench sweep --layers 2..47 --out {pub}\n" in capsys.readouterr().err
    (pub / "predicted").mkdir(parents=True)  # --no-resume: a fresh pub.2, named so
    dirs, resume = out_dirs(planned, no_resume=True)  # type: ignore[arg-type]
    assert dirs == [tmp_path / "pub.2" / "predicted", tmp_path / "pub.2" / "cpu-stand-in"]
    ConsoleSweepView([*argv, "--no-resume"]).interrupted(dirs[0], resume)
    assert f"ffbench sweep --layers 2..47 --out {tmp_path / 'pub.2'}\n" in (
        capsys.readouterr().err)


@pytest.mark.slow
def test_an_options_suggested_command_is_accepted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from ffbench.settings.cell import option_text, options_value

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    code, _, err = invoke(capsys, "sweep", "--device", "cuda", "--algorithms", "bp",
                          "--layers", "2", "--option", "fused_step=true", "--out", tmp_path / "o")
    assert_refused(code, err, "--option fused_step=true")
    suggested = shlex.split(err.split("run: ")[1])
    assert suggested[:2] == ["ffbench", "sweep"]
    code, _, err = invoke(capsys, *suggested[1:], "--out", tmp_path / "o")
    assert code == 0, err  # the command it suggests runs
    for value in (True, False, 3, 0.3, "adam", "2", "true", [1, 2], {"a": None}, None):
        assert options_value([f"x={option_text(value)}"]) == {"x": value}


@pytest.mark.parametrize(("visible", "ids"), [
    ("-1", []), ("", []), ("none", []), ("0,-1,1", ["0"]), ("1,0", ["1", "0"]),
    ("GPU-8f3a7c1e-0000-1111-2222-333344445555", ["GPU-8f3a7c1e-0000-1111-2222-333344445555"]),
    ("0,0", ["0"]),
])
def test_cuda_visible_devices_as_cuda_reads_it(
    visible: str, ids: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ffbench.runner.devices import gpu_ids

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert gpu_ids() == ids


def test_cuda_visible_devices_minus_one_plans_the_no_gpu_sweeps(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    planned = no_gpu_plan(monkeypatch, tmp_path / "pub")
    assert [one.spec.device for one in planned] == ["meta", "cpu"]  # type: ignore[attr-defined]


@pytest.mark.slow
@pytest.mark.parametrize("out", [".", "s1/.."])
def test_a_fresh_folder_beside_dot_or_dotdot_is_named_in_full(
    out: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    work = tmp_path / "work"
    code, _, err = invoke(capsys, "sweep", *TINY_META, "--out", work / "s1")
    assert code == 0, err
    monkeypatch.chdir(work)
    s1 = tree(work / "s1")
    code, _, err = invoke(capsys, "sweep", *TINY_META, "--out", out, "--no-resume")
    assert code == 0, err
    assert tree(work / "s1") == s1  # nothing created inside the results folder s1
    assert len(read_parquet(tmp_path / "work.2" / PARQUET_NAME)) == 2


def test_the_root_folder_with_no_resume_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke(capsys, "sweep", *TINY_META, "--out", "/", "--no-resume")
    assert_refused(code, err, "the root folder has no folder beside it")


def test_the_published_size_on_a_cpu_is_announced_as_hours() -> None:
    from ffbench.console.progress_text import duration, estimate_s

    cells = load_sweep("published", {"device": "cpu"}).cells()
    assert estimate_s(cells) > 24 * 3600, duration(estimate_s(cells))
    quick = load_sweep("quick", {}).cells()
    assert 10 < estimate_s(quick) < 120  # the embedded default: about half a minute


# ---- 6. plugins take down only themselves -----------------------------------------------------

STEP_FAILURES = ("raises", "exits", "os-exits", "segfaults", "blocks")


@pytest.mark.slow
def test_capacity_across_all_algorithms_survives_every_plugin(tmp_path: Path) -> None:
    from plugins_factory import WIDE, write_plugin

    failing = [write_plugin(tmp_path, "step", what) for what in STEP_FAILURES]
    talking = [write_plugin(tmp_path, "step", "prints"), write_plugin(tmp_path, "import", "prints")]
    broken = write_plugin(tmp_path, "import", "raises")
    done = ffbench_process("capacity", "1GiB", "--hidden", "64", "--batch-size", "8",
                           "--timeout", "5", "--json", plugins=tmp_path, env=WIDE)
    assert done.returncode == 0, done.stderr
    fits = {fit["algorithm"]: fit for fit in json.loads(done.stdout)}  # stdout: JSON alone
    assert fits["bp"]["n_layers"] > 0 and fits["bp"]["error"] is None
    for name in talking:
        assert fits[name]["error"] is None and fits[name]["n_layers"] == fits["bp"]["n_layers"]
    errors = {name: fits[name]["error"] for name in [*failing, broken]}
    assert "RuntimeError: plugin broke on purpose" in errors["p-step-raises"]
    assert "SystemExit: 3" in errors["p-step-exits"]
    assert "exited with code 7" in errors["p-step-os-exits"]
    assert "SIGSEGV" in errors["p-step-segfaults"]
    assert "took more than 5 s" in errors["p-step-blocks"]
    assert "does not load: RuntimeError" in errors[broken]
    table = ffbench_process("capacity", "1GiB", "--hidden", "64", "--batch-size", "8",
                            "--timeout", "5", "--algorithms", f"bp,{failing[0]}",
                            plugins=tmp_path, env=WIDE)
    assert table.returncode == 0, table.stderr
    assert f"{failing[0]}" in table.stdout and "failed" in table.stdout


@pytest.mark.slow
def test_ffbench_algorithms_survives_every_plugin_at_import(tmp_path: Path) -> None:
    from plugins_factory import BEHAVIOURS, WIDE, write_plugin

    names = {what: write_plugin(tmp_path, "import", what) for what in BEHAVIOURS}
    done = ffbench_process("algorithms", "--timeout", "5", plugins=tmp_path, env=WIDE)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert set(lines) >= {"bp", "ff", *names.values()}
    assert "unusable" not in lines[names["behaves"]] + lines[names["prints"]]
    assert "a plugin talking" not in done.stdout
    for what, words in [("raises", "RuntimeError"), ("exits", "SystemExit: 3"),
                        ("interrupts", "KeyboardInterrupt"), ("os-exits", "exited with code 7"),
                        ("segfaults", "SIGSEGV"), ("blocks", "took more than 5 s")]:
        assert "unusable: " in lines[names[what]] and words in lines[names[what]], what


def test_explain_warns_when_a_memory_account_is_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ffbench.algorithms.account import MemoryAccount
    from ffbench.algorithms.bp import Backprop

    exact = Backprop.memory_account

    def off_by_770_kb(cls: type, spec: CellSpec) -> MemoryAccount:
        account = exact(spec)
        return dataclasses.replace(account, split={
            **account.split, "activations": account.split["activations"] + 770_000})

    args = ["explain", "bp", "--layers", "2", "--hidden", "256", "--batch-size", "64"]
    code, _, err = invoke(capsys, *args)
    assert code == 0 and "warning" not in err, err  # the built-in account: exact
    monkeypatch.setattr(Backprop, "memory_account", classmethod(off_by_770_kb))
    code, _, err = invoke(capsys, *args)
    assert code == 0 and "closed-form account" in err and "770,000 bytes over" in err, err


# ---- 7. nonsense refused --------------------------------------------------------------------


@pytest.mark.parametrize(("size", "words"), [
    ("0", "more than 0 bytes"), ("0GiB", "more than 0 bytes"), ("9" * 400, "not a memory size"),
    ("9" * 25 + "GiB", "at most 1 EiB"), ("0.0000001", "more than 0 bytes"),
])
def test_capacity_refuses_sizes_that_are_not_sizes(
    size: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = invoke(capsys, "capacity", size, "--algorithms", "bp")
    assert_refused(code, err, words)


def test_capacity_answers_each_algorithm_once_and_sees_small_growth(
    capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = invoke(capsys, "capacity", "1GiB", "--hidden", "16", "--batch-size", "8",
                            "--algorithms", "bp,bp", "--json")
    assert code == 0, err
    [fit] = json.loads(out)
    # 16 units: a layer's bytes hide beneath the allocator's 2 MiB segments; backprop's
    # peak still grows with depth, so it has a limit
    assert fit["algorithm"] == "bp" and isinstance(fit["n_layers"], int) and fit["n_layers"] > 48


@pytest.mark.parametrize(("option", "words"), [
    ("checkpoint_segments=true", "option checkpoint_segments=true should be a int"),
    ("fused_step=1", "should be a bool"),
    ("checkpoint_segments=-1", "0 or more"),
])
def test_option_values_of_the_wrong_kind_are_refused(
    option: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = invoke(capsys, "run", "bp", "--device", "meta", "--layers", "2", "--option",
                          option)
    assert_refused(code, err, words)


def test_negative_readout_layers_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = invoke(capsys, "run", "ff", "--device", "meta", "--layers", "2", "--option",
                          "readout_from_layer=-3")
    assert_refused(code, err, "readout_from_layer counts layers: 0 or more, got -3")


def test_a_value_the_algorithm_clamps_is_the_same_cell() -> None:
    def cell(algorithm: str, layers: int, **options: object) -> str:
        return cell_id(CellSpec(algorithm, n_layers=layers, options=options))

    assert cell("bp", 2, checkpoint_segments=2**63 - 1) == cell("bp", 2, checkpoint_segments=2)
    assert cell("bp", 2, checkpoint_segments=3) == cell("bp", 2, checkpoint_segments=2)
    assert cell("bp", 4, checkpoint_segments=3) != cell("bp", 4, checkpoint_segments=2)
    assert cell("ff", 1, readout_from_layer=5) == cell("ff", 1)  # the default acts so too
    assert cell("ff", 3, readout_from_layer=5) == cell("ff", 3, readout_from_layer=2)
    assert cell("bp", 2) == cell("bp", 2, checkpoint_segments=0)  # ids made before hold
    row = make_row(**identity_columns(CellSpec("bp", n_layers=2, options={
        "checkpoint_segments": 2**63 - 1}), "s"), status="ok")
    assert json.loads(str(row["options"]))["checkpoint_segments"] == 2


def test_explain_names_the_optimizer_it_explains(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["explain", "bp", "--layers", "2", "--hidden", "64", "--batch-size", "8"]
    code, out, err = invoke(capsys, *args, "--optimizer", "momentum")
    assert code == 0, err
    [reason] = [line for line in out.splitlines() if line.strip().startswith("optimizer_state:")]
    assert "momentum" in reason and "Adam" not in reason
    code, out, err = invoke(capsys, *args)
    assert "Adam's two moments" in out


# ---- 8. output ----------------------------------------------------------------------------


@pytest.mark.slow
def test_commands_with_stdout_closed_do_their_work_and_exit_0(tmp_path: Path) -> None:
    folder = cells_folder(tmp_path / "r", meta_rows())
    commands = {
        "run": ["run", "bp", "--device", "meta", "--layers", "1", "--hidden", "8",
                "--batch-size", "8", "--out", str(tmp_path / "row.json")],
        "sweep": ["sweep", *map(str, TINY_META), "--out", str(tmp_path / "s")],
        "report": ["report", str(folder)],
        "capacity": ["capacity", "1GiB", "--algorithms", "bp", "--hidden", "64"],
    }
    for name, args in commands.items():
        done = subprocess.run([*FFBENCH, *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=process_env(),
                              timeout=WAIT_S, preexec_fn=lambda: os.close(1))
        assert done.returncode == 0 and "Traceback" not in done.stderr, (name, done.stderr)
    assert (tmp_path / "row.json").exists() and (tmp_path / "s" / PARQUET_NAME).exists()
    assert (folder / "report.md").exists()


def test_escape_sequences_in_shown_text_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "\x1b[2J\x1b[31mred" / "r.json"
    code, stdout, err = invoke(capsys, "run", "bp", "--device", "meta", "--layers", "1",
                               "--hidden", "8", "--batch-size", "8", "--out", out)
    assert code == 0, err
    assert "\x1b" not in stdout and "\\x1b[2J" in stdout
    folder = cells_folder(tmp_path / "r", meta_rows())
    holder = sweep_folder.FolderLock(folder)  # a sweep holds it; its lock file tampered
    (folder / ".lock").write_text("\x1b[2J123")
    try:
        code, _, err = invoke(capsys, "sweep", *TINY_META, "--out", folder)
    finally:
        holder.release()
    assert code == 2 and "\x1b" not in err, err


def test_error_text_with_escapes_and_markup_is_escaped_in_every_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ffbench.console.tables import sweep_table

    rows = meta_rows()
    rows[1] = {**rows[1], "status": "error", "algorithm": "bp",
               "error": "\x1b[2Jboom <script>alert(1)</script>"}
    folder = cells_folder(tmp_path / "r", rows)
    for suffix in (".md", ".html"):
        code, _, err = invoke(capsys, "report", folder, "--out", tmp_path / f"r{suffix}")
        assert code == 0, err
        text = (tmp_path / f"r{suffix}").read_text()
        assert "\x1b" not in text and "<script>" not in text and "boom" in text
    from ffbench.console import show

    show(sweep_table([{**rows[1], "algorithm": "\x1b[2Jbp"}]))
    assert "\x1b[2J" not in capsys.readouterr().out


def test_printed_commands_are_quoted_for_a_shell(capsys: pytest.CaptureFixture[str]) -> None:
    from ffbench.console.sweep_view import ConsoleSweepView
    from ffbench.text import shell_command

    ConsoleSweepView([]).all_ended([Path("-my results"), Path("a b/c")])
    out = capsys.readouterr().out
    assert "ffbench plot './-my results'" in out and "ffbench report 'a b/c'" in out
    assert shlex.split(shell_command("ffbench", "plot", Path("-x"))) == ["ffbench", "plot", "./-x"]


def test_a_tiny_columns_setting_leaves_tables_readable(tmp_path: Path) -> None:
    folder = cells_folder(tmp_path / "r", meta_rows())
    worse = cells_folder(tmp_path / "w", regressed(meta_rows()))
    done = ffbench_process("check", worse, "--baseline", folder, env={"COLUMNS": "5"})
    assert done.returncode == 1, done.stderr
    assert "+200.00%" in done.stdout and "bp layers=1" in done.stdout
    assert "…" not in done.stdout  # no cell cut short


# ---- a killed sweep, reported and checked from its cells ----------------------------------


@pytest.mark.slow
def test_a_sweep_killed_with_sigkill_is_reported_and_checked_from_its_cells(
    tmp_path: Path,
) -> None:
    out = tmp_path / "killed"
    sweep = start_sweep("ci-cpu", "--algorithms", "bp,ff", "--layers", "1..12", "--hidden",
                        "64", "--batch-sizes", "16", "--steps", "1", "--warmup", "0",
                        "--device", "meta", "--jobs", "2", "--out", out)

    def written() -> tuple[int, int]:
        cells = len(list((out / CELLS_DIR).glob("*.json")))
        try:
            return cells, len(read_parquet(out / PARQUET_NAME))
        except Exception:
            return cells, 0

    deadline = time.monotonic() + WAIT_S
    while True:  # kill it while its parquet lags its cells (it is rewritten every 2 s)
        assert time.monotonic() < deadline and sweep.poll() is None, "the sweep ended first"
        cells, parquet = written()
        if parquet and cells > parquet:
            break
        time.sleep(0.02)
    os.kill(sweep.pid, signal.SIGKILL)
    sweep.wait()
    cells, parquet = written()
    assert cells > parquet > 0
    frame = load([out])
    assert len(frame) == cells
    done = ffbench_process("check", out, "--baseline", out)
    assert done.returncode == 0 and f"ok: {cells} cells compared" in done.stdout, done.stderr
    done = ffbench_process("report", out)
    assert done.returncode == 0, done.stderr
    assert f"{cells} of 24 cells run" in (out / "report.md").read_text()

