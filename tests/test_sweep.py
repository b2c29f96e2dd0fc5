"""The sweep's pure parts: reading sweeps, the grid, resume rules, failure classification,
the results directory, and what bad input does (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import invoke

import ffbench
from ffbench.algorithms.registry import ALGORITHMS
from ffbench.algorithms.resolve import cell_id, identity, identity_columns
from ffbench.console.sweep_view import resume_command
from ffbench.console.tables import sweep_table
from ffbench.errors import BadInput
from ffbench.results import CELLS_DIR, PARQUET_NAME, make_row, read_parquet
from ffbench.runner.jobs import CellJob, CellOutcome
from ffbench.runner.slurm import SubmititPool
from ffbench.settings.cell import CellSpec
from ffbench.sweep import folder as sweep_folder
from ffbench.sweep import outcomes as sweep_outcomes
from ffbench.sweep import run as sweep_run
from ffbench.sweep import spec as sweep_spec

PACKAGE_ROOT = Path(ffbench.__file__).parent.parent


def tiny_values(**extra: object) -> dict[str, object]:
    return {"algorithms": "bp,ff", "layers": "1..3", "hidden": 16, "batch_sizes": 32, **extra}


def test_flags_override_the_file_and_options_merge(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('algorithms = ["bp", "ff"]\nlayers = "2..4"\nhidden = 64\nsteps = 3\n'
                    'timeout_s = 60\n[options]\nreadout_from_layer = 1\n')
    spec = sweep_spec.load_sweep(str(path), {"layers": "5,7", "steps": 9, "algorithms": "ff",
                                         "options": {"readout_from_layer": 2}})
    assert spec.name == "mine"
    assert (spec.algorithms, spec.layers, spec.hidden) == (("ff",), (5, 7), (64,))
    assert spec.cell == {"steps": 9, "options": {"readout_from_layer": 2}}
    assert spec.timeout_s == 60.0
    assert [c.options for c in spec.cells()] == [{"readout_from_layer": 2}] * 2


def test_grid_is_depth_major_validated_and_without_duplicates() -> None:
    spec = sweep_spec.parse_sweep(tiny_values(algorithms="bp,ff,bp", batch_sizes="32,64"), "t")
    cells = spec.cells()
    assert len(cells) == 2 * 3 * 2
    assert [(c.batch_size, c.n_layers, c.algorithm) for c in cells[:4]] == [
        (32, 1, "bp"), (32, 1, "ff"), (32, 2, "bp"), (32, 2, "ff")]
    assert len({cell_id(c) for c in cells}) == len(cells)
    assert all(c.hidden == 16 for c in cells)


@pytest.mark.parametrize("name", ["quick", "ci-cpu", "published", "fair"])
def test_packaged_sweeps_are_valid(name: str) -> None:
    default_name, values = sweep_spec.read_sweep_file(name)
    assert default_name == name == values["name"]
    values["algorithms"] = [a for a in values["algorithms"] if a in ALGORITHMS]  # rff may lag
    cells = sweep_spec.parse_sweep(values, name).cells()
    assert len(cells) > 0


def test_the_published_sweep_has_the_published_grid_and_the_fair_baselines() -> None:
    _, values = sweep_spec.read_sweep_file("published")
    assert values["algorithms"] == ["bp", "bp-lean", "bp-offload", "ff", "ff-layerwise", "rff"]
    assert sweep_spec.parse_int_range(values["layers"], flag="layers") == list(range(2, 48))
    assert (values["hidden"], values["batch_sizes"]) == (2000, 5000)


def test_the_repository_sweeps_folder_is_the_packaged_one() -> None:
    folder = PACKAGE_ROOT / "sweeps"
    if not folder.exists():
        pytest.skip("installed package: no repository around it")
    assert sorted(p.name for p in folder.glob("*.toml")) == [
        "accuracy.toml", "ci-cpu.toml", "fair.toml", "published.toml", "quick.toml"]


def test_a_packaged_sweep_loads_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    monkeypatch.chdir(tmp_path)
    assert sweep_spec.read_sweep_file(None)[0] == sweep_spec.DEFAULT_SWEEP
    assert sweep_spec.load_sweep("ci-cpu", {}).name == "ci-cpu"


def test_fresh_results_dir_never_reuses_one(tmp_path: Path) -> None:
    base = tmp_path / "r"
    assert sweep_folder.results_dir(base, fresh=True) == base
    base.mkdir()
    assert sweep_folder.results_dir(base, fresh=False) == base
    assert sweep_folder.results_dir(base, fresh=True) == tmp_path / "r.2"
    (tmp_path / "r.2").mkdir()
    assert sweep_folder.results_dir(base, fresh=True) == tmp_path / "r.3"
    assert not (tmp_path / "r.3").exists()


def test_resume_rules() -> None:
    assert not sweep_run.is_finished(None, retry_failed=False)
    for status, finished, finished_when_retrying in [
        ("ok", True, True), ("oom", True, False), ("timeout", True, False),
        ("error", True, False), ("crashed", True, False), ("skipped", False, False),
    ]:
        assert sweep_run.is_finished({"status": status}, retry_failed=False) is finished
        again = sweep_run.is_finished({"status": status}, retry_failed=True)
        assert again is finished_when_retrying


def outcome(returncode: int | None, tail: str = "", *, timed_out: bool = False,
            state: str | None = None) -> CellOutcome:
    job = CellJob(CellSpec(algorithm="bp", n_layers=1, hidden=8), "s", Path("x.json"))
    return CellOutcome(job, returncode, timed_out, 1.5, tail, 123, "host", None, state)


def test_classify_every_way_a_child_can_end_without_a_row() -> None:
    assert sweep_outcomes.classify(outcome(-9, timed_out=True), 30)[0] == "timeout"
    status, error = sweep_outcomes.classify(outcome(-9, "last words"), 30)
    assert status == "oom" and "SIGKILL" in error and "last words" in error
    status, error = sweep_outcomes.classify(outcome(-11, "Fatal Python error"), 30)
    assert status == "crashed" and "SIGSEGV" in error and "Fatal Python error" in error
    assert sweep_outcomes.classify(outcome(1, "...\nMemoryError"), 30)[0] == "oom"
    cuda_oom = outcome(1, "torch.OutOfMemoryError: CUDA out of memory")
    assert sweep_outcomes.classify(cuda_oom, 30)[0] == "oom"
    status, error = sweep_outcomes.classify(outcome(1, "ValueError: bad"), 30)
    assert status == "error" and "code 1" in error and "ValueError: bad" in error
    assert sweep_outcomes.classify(outcome(None, state="OUT_OF_MEMORY"), 30)[0] == "oom"
    assert sweep_outcomes.classify(outcome(None, state="TIMEOUT"), 30)[0] == "timeout"
    assert sweep_outcomes.classify(outcome(None, state="NODE_FAIL"), 30)[0] == "crashed"


def test_failure_row_has_identity_environment_and_every_column() -> None:
    spec = CellSpec(algorithm="ff", n_layers=3, hidden=8)
    row = sweep_outcomes.failure_row(spec, "s1", "timeout", "too slow", outcome(-9, timed_out=True))
    assert {k: row[k] for k in identity_columns(spec, "s1")} == identity_columns(spec, "s1") | {
        "options": json.dumps(identity(spec)["options"], sort_keys=True)}  # late ones left out
    assert (row["status"], row["error"], row["returncode"], row["cell_wall_s"]) == (
        "timeout", "too slow", -9, 1.5)
    assert row["host"] == "host" and row["ffbench_version"] == ffbench.__version__
    assert row["torch_version"] and row["python_version"] and row["step_time_median_s"] is None


def rows_for(specs: list[CellSpec], **values: object) -> list[dict[str, object]]:
    return [make_row(**identity_columns(s, "s"), status="ok", **values) for s in specs]


def test_results_dir_round_trips_through_parquet_and_repairs_itself(tmp_path: Path) -> None:
    specs = sweep_spec.parse_sweep(tiny_values(), "t").cells()
    store = sweep_folder.SweepDir(tmp_path)
    rows = rows_for(specs, train_peak_tracked_bytes=2**40 + 1, step_time_median_s=1e-3,
                    cell_wall_s=math.pi, error=None)
    for row in rows:
        store.record(row)
    # rows recorded in quick succession: the parquet is written at once for the first, then
    # at most every CONSOLIDATE_EVERY_S (each row is in its cell file), and whole at the end
    assert len(read_parquet(tmp_path / PARQUET_NAME)) == 1
    store.consolidate()
    frame = read_parquet(tmp_path / PARQUET_NAME)
    assert len(frame) == len(specs)
    back = frame.astype(object).where(frame.notna(), None).to_dict("records")
    assert sorted(back, key=str) == sorted(rows, key=str)
    assert [r["n_layers"] for r in back] == [1, 2, 3, 1, 2, 3]  # bp's rows, then ff's

    # a kill leaves a temporary file and a parquet one cell behind: the next run repairs both
    (tmp_path / CELLS_DIR / ".abc.json.x.tmp").write_text("{")
    (tmp_path / CELLS_DIR / "000000000000.json").write_text("{not json")  # a row file
    (tmp_path / CELLS_DIR / "notes.json").write_text("{not a row")  # not a sweep's: left
    for spec, row in zip(specs, rows, strict=True):
        sweep_run.write_row_json(row, store.row_path(spec))
    with pytest.raises(sweep_folder.SweepLocked, match=f"PID {os.getpid()}"):
        sweep_folder.SweepDir(tmp_path)  # one sweep per folder, even within one process
    store.close()
    again = sweep_folder.SweepDir(tmp_path)
    assert not list(tmp_path.rglob("*.tmp"))
    assert set(again.rows) == {cell_id(s) for s in specs}  # 000000000000: to be run again
    rejected = tmp_path / sweep_folder.REJECTED_DIR
    assert sorted(p.name for p in rejected.iterdir()) == ["000000000000.json",
                                                          "000000000000.json.reason.txt"]
    assert (tmp_path / CELLS_DIR / "notes.json").read_text() == "{not a row"
    again.close()


def test_summary_table_counts_each_ending() -> None:
    specs = sweep_spec.parse_sweep(tiny_values(), "t").cells()
    rows = rows_for(specs[:4], train_peak_tracked_bytes=2**20, step_time_median_s=0.002)
    rows[1]["status"], rows[3]["status"] = "oom", "timeout"
    rows += [make_row(**identity_columns(specs[4], "s"), status="skipped")]
    table = sweep_table(rows)
    cells = {column.header: list(column.cells) for column in table.columns}
    assert cells["algorithm"] == ["bp", "ff"]
    assert cells["ok"] == ["2", "0"]
    assert cells["failed"] == ["0", "1 oom, 1 timeout"]
    assert cells["skipped"] == ["1", "0"]
    assert cells["train peak"] == ["1.00 MiB", "-"]


def test_resume_command_keeps_the_flags_but_not_no_resume() -> None:
    argv = ["ffbench", "sweep", "ci-cpu", "--no-resume", "--out", "results/a", "--layers", "1,2"]
    assert resume_command(argv, Path("results/a.2")) == (
        "ffbench sweep ci-cpu --layers 1,2 --out results/a.2")


def test_cpu_parallel_cells_warn_but_meta_ones_do_not() -> None:
    def warning(**values: object) -> str | None:
        return sweep_run.timing_warning(sweep_spec.parse_sweep(tiny_values(**values), "t"))

    assert warning(jobs=2) and warning(jobs=1) is None and warning(jobs=2, device="meta") is None


def test_meta_cells_run_one_per_core_unless_jobs_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Predicted cells are not timed: without --jobs a sweep runs one per usable core (up to
    MAX_AUTO_META_JOBS); measured cells one at a time; --jobs always wins."""
    def at_once(cores: int, **values: object) -> int:
        monkeypatch.setattr(sweep_spec.os, "sched_getaffinity", lambda _: set(range(cores)))
        return sweep_spec.parse_sweep(tiny_values(**values), "t").cells_at_once

    assert at_once(2, device="meta") == 2 and at_once(1, device="meta") == 1
    assert at_once(64, device="meta") == sweep_spec.MAX_AUTO_META_JOBS
    assert at_once(8, device="cpu") == 1
    assert at_once(8, device="meta", jobs=1) == 1 and at_once(1, device="cpu", jobs=3) == 3


def test_meta_cells_in_workers_run_deepest_first_measured_ones_in_grid_order() -> None:
    """Workers side by side end together when the longest (deepest) cells go first; one at
    a time, or measured, the grid's depth-major order stands."""
    def order(**values: object) -> list[tuple[int, str]]:
        spec = sweep_spec.parse_sweep(tiny_values(**values), "t")
        return [(c.n_layers, c.algorithm) for c in sweep_run.run_order(spec, spec.cells())]

    grid = [(n, a) for n in (1, 2, 3) for a in ("bp", "ff")]
    assert order(device="meta", jobs=2) == [(n, a) for n in (3, 2, 1) for a in ("bp", "ff")]
    assert order(device="meta", jobs=1) == grid
    assert order(device="cpu", jobs=2) == grid


def test_slurm_settings_reach_submitit_under_its_names() -> None:
    spec = sweep_spec.parse_sweep(tiny_values(executor="slurm", slurm={
        "partition": "gpu", "account": "lab", "time_min": 30, "gpus_per_task": 1,
        "cluster": "local"}), "t")
    pool = SubmititPool(slurm=spec.slurm, folder=Path("x"), timeout_s=10)
    assert pool.parameters() == {
        "name": "ffbench", "slurm_partition": "gpu", "slurm_account": "lab",
        "timeout_min": 30, "slurm_gpus_per_task": 1}


BAD_INPUTS = [
    (["--layers", "47..2"], "runs backwards"),
    (["--layers", "x"], "cannot read 'x'"),
    (["--batch-sizes", "0"], "at least 1"),
    (["--algorithms", "bp,nope"], "unknown algorithm 'nope'"),
    (["--executor", "pbs"], "unknown executor 'pbs'"),
    (["--jobs", "0"], "--jobs"),
    (["--timeout", "0"], "--timeout"),
    (["--device", "tpu"], "unknown device"),
    (["--dataset", "mnist", "--data-dir", "/nonexistent"], "no such directory"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_flags_are_one_line_exit_2_and_nothing_written(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    ran = invoke(capsys, "sweep", *["ci-cpu", *args, "--out", str(tmp_path / "out")])
    code, err = ran.code, ran.err.splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("ffbench: error:") and message in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_bad_sweep_files_and_out_paths_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.toml").write_text("layers = [1, 2\n")
    (tmp_path / "unknown.toml").write_text('algorithms = "bp"\nlayers = 2\nlayer = 3\n')
    (tmp_path / "typed.toml").write_text('algorithms = "bp"\nlayers = 2\nsteps = "five"\n')
    (tmp_path / "unreadable.toml").mkdir()
    (tmp_path / "a-file").write_text("")
    before = sorted(tmp_path.iterdir())
    for args, message in [
        (["broken.toml"], "invalid TOML"),
        (["unknown.toml"], "unknown sweep key 'layer'"),
        (["typed.toml"], "expected int"),
        (["unreadable.toml"], "cannot read sweep file"),
        (["missing.toml"], "cannot read sweep file"),
        (["no-such-sweep"], "no sweep file 'no-such-sweep'"),
        (["ci-cpu", "--out", "a-file"], "is a file"),
        (["ci-cpu", "--out", "a-file/below"], "is a file"),
    ]:
        ran = invoke(capsys, "sweep", *args)
        code, err = ran.code, ran.err.splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], (args, err)
    assert sorted(tmp_path.iterdir()) == before


def test_refusing_bad_input_does_not_import_torch(tmp_path: Path) -> None:
    probe = (
        "import sys\nfrom ffbench.cli import main\n"
        "sys.argv = ['ffbench', 'sweep', 'ci-cpu', '--layers', '47..2']\n"
        "try:\n    main()\nexcept SystemExit as e:\n"
        "    print(e.code, 'torch' in sys.modules, 'pandas' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=tmp_path, env=child_env(), timeout=60)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr
    assert result.stderr.count("\n") == 1


def child_env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}


def test_bad_grid_value_types_are_refused() -> None:
    for values, message in [
        (tiny_values(layers=[1, "2"]), "--layers"),
        (tiny_values(layers=True), "--layers"),
        (tiny_values(algorithms=3), "--algorithms"),
        (tiny_values(slurm={"partiton": "x"}), "unknown [slurm] key"),
        (tiny_values(slurm={"cluster": "pbs"}), "cluster"),
        (tiny_values(name=3), "name"),
        ({"layers": "1"}, "no algorithms"),
    ]:
        with pytest.raises(BadInput, match=message.replace("[", r"\[")):
            sweep_spec.parse_sweep(values, "t").cells()
