"""The sweep runner with real processes: SIGKILL and resume, timeouts, crashes, errors,
Ctrl-C, the meta worker and the submitit path. Cells are tiny; the cost is process starts."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import FFBENCH, ffbench_process, process_env

import ffbench
from ffbench.algorithms.resolve import cell_id
from ffbench.results import CELLS_DIR, PARQUET_NAME, read_parquet, read_row_json
from ffbench.runner.jobs import CHILD_MODULE, PARENT_PID_ENV, WORKER, CellJob
from ffbench.runner.local_pool import LocalPool
from ffbench.settings.cell import MNIST_FILES, CellSpec
from ffbench.sweep import folder as sweep_folder
from ffbench.sweep import spec as sweep_spec

PACKAGE_ROOT = Path(ffbench.__file__).parent.parent
TINY = ["--hidden", "16", "--batch-sizes", "32", "--steps", "1", "--warmup", "0"]
WAIT_S = 300  # upper bound for any wait here; a healthy run needs a fraction of it


def start_sweep(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*FFBENCH, "sweep", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=process_env())


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def finished_cells(out: Path) -> int:
    return len(list((out / CELLS_DIR).glob("*.json")))


def child_pids(marker: str) -> list[int]:
    """Processes running `ffbench.child` whose command line mentions `marker`."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if CHILD_MODULE.encode() in argv and any(marker.encode() in arg for arg in argv):
            pids.append(int(proc.name))
    return pids


def children_of(parent_pid: int) -> list[int]:
    """Live cell processes started by that sweep (they carry its pid in their environment)."""
    marker = f"{PARENT_PID_ENV}={parent_pid}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


def assert_no_child_left(parent: subprocess.Popen[str]) -> None:
    """Children die with their sweep (PR_SET_PDEATHSIG), within moments."""
    wait_for(lambda: not children_of(parent.pid), "the children of a killed sweep to die")


def assert_every_file_whole(out: Path) -> None:
    rows = [read_row_json(path) for path in (out / CELLS_DIR).glob("*.json")]
    if (out / PARQUET_NAME).exists():
        ids = read_parquet(out / PARQUET_NAME)["cell_id"]
        assert ids.is_unique and set(ids) <= {row["cell_id"] for row in rows}


@pytest.mark.slow
def test_ci_cpu_sweep_survives_sigkill_at_random_moments_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "ci"
    args = [PACKAGE_ROOT / "ffbench" / "sweeps" / "ci-cpu.toml", "--out", out]
    expected = {cell_id(spec) for spec in sweep_spec.load_sweep("ci-cpu", {}).cells()}
    rng = random.Random()
    moments = []
    for kill in range(3):
        before = finished_cells(out) if out.exists() else 0
        parent = start_sweep(*args)
        if kill:  # after some progress, at a random moment of the next cell's life
            wait_for(lambda n=before: finished_cells(out) > n, "a cell to finish")
        moments.append(round(rng.uniform(0.0, 3.0), 2))
        time.sleep(moments[-1])
        parent.kill()
        parent.wait()
        assert_no_child_left(parent)
        if out.exists():
            assert_every_file_whole(out)
    finished_before = {p.name: p.read_bytes() for p in (out / CELLS_DIR).glob("*.json")}
    assert len(finished_before) >= 2, moments
    # a poisoned row planted among them: a wrong type in one column of a finished cell
    poisoned = sorted(finished_before)[0]
    row = json.loads(finished_before.pop(poisoned))
    (out / CELLS_DIR / poisoned).write_text(json.dumps({**row, "static_bytes": "lots"}))

    result = ffbench_process("sweep", *args)
    assert result.returncode == 0, result.stderr
    assert f"{len(finished_before)} already finished" in result.stderr, moments
    assert f"{poisoned}: column static_bytes = 'lots' is not a int64" in result.stderr
    assert (out / sweep_folder.REJECTED_DIR / f"{poisoned}.reason.txt").exists()
    frame = read_parquet(out / PARQUET_NAME)
    assert sorted(frame["cell_id"]) == sorted(expected), moments  # each cell exactly once
    assert set(frame["status"]) == {"ok"}
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or p.name == ".work"]
    for name, text in finished_before.items():  # nothing finished was redone
        assert (out / CELLS_DIR / name).read_bytes() == text
    json_rows = {row["cell_id"]: row for row in map(read_row_json, (out / CELLS_DIR).glob("*"))}
    for record in frame.astype(object).where(frame.notna(), None).to_dict("records"):
        assert record == json_rows[record["cell_id"]]  # the parquet round trip is exact


@pytest.mark.slow
def test_timeout_and_crash_are_rows_and_the_rest_finish(tmp_path: Path) -> None:
    out = tmp_path / "t"
    # depth 1 finishes in seconds; 1500 and 1501 layers take minutes (the meta prediction
    # alone is ~60 ms a layer): 1500 is left to time out, 1501 gets a SIGABRT from us
    args = ["ci-cpu", "--algorithms", "bp", "--layers", "1,1500,1501", *TINY, "--device", "cpu",
            "--timeout", "40", "--jobs", "2", "--out", out]
    grid = sweep_spec.load_sweep("ci-cpu", {"algorithms": "bp", "layers": "1,1500,1501",
                                        "hidden": "16", "batch_sizes": "32", "steps": 1,
                                        "warmup_steps": 0, "device": "cpu"})
    victim = next(spec for spec in grid.cells() if spec.n_layers == 1501)
    parent = start_sweep(*args)
    wait_for(lambda: bool(child_pids(cell_id(victim))), "the depth-1501 cell to start")
    time.sleep(1.0)
    for pid in child_pids(cell_id(victim)):
        os.kill(pid, signal.SIGABRT)
    stdout, stderr = parent.communicate(timeout=WAIT_S)
    assert parent.returncode == 0, stderr
    assert "--jobs 2 runs CPU cells side by side" in stderr
    rows = {row["n_layers"]: row for row in read_parquet(out / PARQUET_NAME).to_dict("records")}
    assert sorted(rows) == [1, 1500, 1501]
    assert rows[1]["status"] == "ok"
    assert rows[1500]["status"] == "timeout" and "40 s" in rows[1500]["error"]
    assert rows[1500]["returncode"] == -signal.SIGKILL and rows[1500]["cell_wall_s"] >= 40
    assert rows[1501]["status"] == "crashed" and "SIGABRT" in rows[1501]["error"]
    assert rows[1501]["returncode"] == -signal.SIGABRT
    assert "2 cell(s) failed" in stdout
    again = ffbench_process("sweep", *args)
    assert "3 already finished" in again.stderr and again.returncode == 0


@pytest.mark.slow
def test_cells_that_raise_are_error_rows_in_one_meta_worker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "MNIST" / "raw").mkdir(parents=True)
    for name in MNIST_FILES:  # present, so the sweep accepts the directory; unreadable
        (data / "MNIST" / "raw" / name).write_bytes(b"not an idx file")
    out = tmp_path / "e"
    result = ffbench_process("sweep", "ci-cpu", "--algorithms", "bp,ff", "--layers", "1", *TINY,
                             "--device", "meta", "--dataset", "mnist", "--data-dir", data,
                             "--out", out)
    assert result.returncode == 0, result.stderr
    frame = read_parquet(out / PARQUET_NAME)
    assert list(frame["status"]) == ["error", "error"]
    # torchvision's own complaint about the files (today an AssertionError on the magic number)
    assert all(re.match(r"\w+Error: ", error) for error in frame["error"]), frame["error"]


@pytest.mark.slow
def test_meta_cells_share_one_worker_and_real_cells_get_fresh_processes(tmp_path: Path) -> None:
    meta = [CellSpec(algorithm="bp", n_layers=n, hidden=8, batch_size=8, device="meta",
                     warmup_steps=0, steps=1) for n in (1, 2, 3)]
    cpu = [CellSpec(algorithm="bp", n_layers=1, hidden=8, batch_size=8, steps=1,
                    warmup_steps=0, threads=1)]
    jobs = [CellJob(spec, "s", tmp_path / f"{cell_id(spec)}.json") for spec in [*meta, *cpu]]
    pool = LocalPool(jobs=1, timeout_s=WAIT_S, gpus=[])
    outcomes = [outcome for _, outcome in pool.run(jobs, tmp_path / "work")
                if outcome is not None]
    assert [o.returncode for o in outcomes] == [0, 0, 0, 0]
    assert len({o.pid for o in outcomes[:3]}) == 1 and outcomes[3].pid != outcomes[0].pid
    rows = [read_row_json(job.row_path) for job in jobs]
    assert [row["status"] for row in rows] == ["ok"] * 4
    assert [row["cpu_peak_rss_bytes"] is None for row in rows] == [True, True, True, False]
    assert all(o.wall_s is not None and o.wall_s > row["cell_wall_s"]
               for o, row in zip(outcomes, rows, strict=True))


def parent_command(pid: int) -> str:
    """The command line of process `pid`'s parent."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    parent = int(stat.rsplit(")", 1)[1].split()[1])
    return Path(f"/proc/{parent}/cmdline").read_text().replace("\0", " ")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_meta_workers_come_from_the_fork_server_and_a_killed_one_is_replaced(
    tmp_path: Path,
) -> None:
    """The meta worker is forked by the fork server (one import of torch for all workers);
    killed in a cell, it makes that cell a failure with its signal, and the next cell runs
    in a fresh worker (spawned: the server's pipes for workers are spent)."""
    def meta(n_layers: int) -> CellSpec:
        return CellSpec(algorithm="bp", n_layers=n_layers, hidden=8, batch_size=8,
                        device="meta", warmup_steps=0, steps=1)

    specs = [meta(1), meta(1500), meta(2)]  # 1500 layers: minutes on meta
    jobs = [CellJob(spec, "s", tmp_path / f"{cell_id(spec)}.json") for spec in specs]
    pool = LocalPool(jobs=1, timeout_s=WAIT_S, gpus=[])
    pool.start("meta")
    outcomes, parents = {}, {}
    for job, outcome in pool.run(jobs, tmp_path / "work"):
        if outcome is None:
            continue
        layers = job.spec.n_layers
        outcomes[layers] = outcome
        assert outcome.pid is not None
        if layers != 1500:
            parents[layers] = parent_command(outcome.pid)  # the worker is still there
        if layers == 1:  # the slot's next cell (1500 layers) is already in its worker
            os.kill(outcome.pid, signal.SIGKILL)
    assert "--fork-server" in parents[1]
    assert outcomes[1500].returncode == -signal.SIGKILL and outcomes[1500].pid == outcomes[1].pid
    assert "--fork-server" not in parents[2] and outcomes[2].pid != outcomes[1].pid
    assert [o.start_method for o in outcomes.values()] == [WORKER] * 3
    rows = {job.spec.n_layers: read_row_json(job.row_path) for job in jobs
            if job.row_path.exists()}
    assert rows.keys() == {1, 2} and rows[1]["status"] == rows[2]["status"] == "ok"


@pytest.mark.slow
def test_a_meta_cell_out_of_time_is_killed_with_its_worker_even_before_the_fork(
    tmp_path: Path,
) -> None:
    """Sent to its worker while the fork server still imports torch, a cell that runs out
    of time is a timeout with SIGKILL's returncode; it never runs later, and nothing is left."""
    out = tmp_path / "t"
    result = ffbench_process("sweep", "--algorithms", "bp", "--layers", "1500", "--hidden", "8",
                             "--batch-sizes", "8", "--device", "meta", "--timeout", "1",
                             "--jobs", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    rows = {row["n_layers"]: row for row in read_parquet(out / PARQUET_NAME).to_dict("records")}
    assert rows[1500]["status"] == "timeout" and rows[1500]["returncode"] == -signal.SIGKILL
    time.sleep(2)  # a worker that took the cell up later would write its row by now
    assert read_row_json(out / CELLS_DIR / f"{rows[1500]['cell_id']}.json")["status"] == "timeout"
    assert not child_pids("--serve")


@pytest.mark.slow
def test_ctrl_c_kills_the_running_cell_keeps_the_finished_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    out = tmp_path / "c"
    parent = start_sweep("ci-cpu", "--algorithms", "bp", "--layers", "1..5", *TINY,
                         "--device", "meta", "--out", out)
    wait_for(lambda: out.exists() and finished_cells(out) >= 1, "a cell to finish")
    parent.send_signal(signal.SIGINT)
    stdout, stderr = parent.communicate(timeout=60)
    assert parent.returncode == 130, stderr
    assert_no_child_left(parent)
    kept = finished_cells(out)
    assert 1 <= kept < 5 and len(read_parquet(out / PARQUET_NAME)) == kept
    resume = re.search(r"resume with\s+(ffbench sweep .*)", stderr)
    assert resume, stderr
    again = subprocess.run(resume[1].replace("ffbench", " ".join(FFBENCH), 1), shell=True,
                           capture_output=True, text=True, env=process_env(), timeout=WAIT_S)
    assert again.returncode == 0, again.stderr
    assert f"{kept} already finished" in again.stderr
    assert len(read_parquet(out / PARQUET_NAME)) == 5


def test_a_cuda_sweep_without_a_gpu_is_refused_with_the_meta_command(tmp_path: Path) -> None:
    """A real process on this host, where CUDA_VISIBLE_DEVICES="" hides any GPU."""
    out = tmp_path / "g"
    result = ffbench_process("sweep", "ci-cpu", "--algorithms", "bp,ff", "--layers", "1",
                             "--device", "cuda", "--out", out, env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert "--device meta" in result.stderr and "no CUDA GPU" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_slurm_executor_runs_through_submitit_local_executor(tmp_path: Path) -> None:
    sweep_file = tmp_path / "cluster.toml"
    sweep_file.write_text(
        'algorithms = ["bp"]\nlayers = "1,2"\nhidden = 16\nbatch_sizes = 32\nsteps = 1\n'
        'warmup_steps = 0\nthreads = 1\ndevice = "meta"\nexecutor = "slurm"\n'
        '[slurm]\ncluster = "local"\ntime_min = 5\npartition = "ignored-by-local"\n'
    )
    out = tmp_path / "s"
    result = ffbench_process("sweep", sweep_file, "--out", out)
    assert result.returncode == 0, result.stderr
    frame = read_parquet(out / PARQUET_NAME)
    assert sorted(frame["n_layers"]) == [1, 2] and set(frame["status"]) == {"ok"}
    assert list((out / "slurm").glob("*/*_log.out")), "submitit keeps its logs by the results"
