"""Where cells run: a local pool of child processes, or a Slurm cluster through submitit.

Every cell runs in a process of its own, started in its own session, so a timeout or
Ctrl-C kills the cell and anything it started (killpg). The child writes its row itself,
atomically; a pool only reports how each child ended (`CellOutcome`), and the sweep turns
an ending without a row into a failure row.

Real-device cells get a fresh process each, forked by a fork server (`python -m
ffbench.child --fork-server`): a process that imported torch and ffbench once (and holds
the sweep's dataset) and never touched CUDA, so each cell skips the ~2 s import yet has its own CUDA
context, its own host high-water mark, and dies alone. Should the server be gone, a cell
is spawned as `python -m ffbench.child SPEC OUT` instead. The row's `start_method` says
which. Meta-device cells (fake tensors: no device state, nothing timed) run one after
another in a long-lived worker per slot, which also keeps its caches warm; the workers too
are forked by the fork server (on pipes it was started with), so a meta sweep imports torch
once for all of them; a worker that dies is replaced by a spawned one.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ffbench.algorithms.resolve import cell_id
from ffbench.measure.env import utc_now
from ffbench.settings.cell import CellSpec

log = logging.getLogger(__name__)

CHILD_MODULE = "ffbench.child"
PARENT_PID_ENV = "FFBENCH_PARENT_PID"  # the child dies with this process (see child.py)
POLL_S = 0.005  # how often the local pool (and the fork server) look at their children
SUBMITIT_POLL_S = 2.0  # Slurm's accounting is slow to ask; submitit caches it anyway
STDERR_TAIL_BYTES = 4000
WORKER_CLOSE_S = 5.0
FORK_REPLY_S = 300.0  # the server's first answer waits for its imports, on a loaded machine
FORK_SERVER_FLAG = "--fork-server"
# room kept in the server's command line, where each forked cell writes its own title
# (`ffbench.child CELL_ID ROW_PATH`, as `ps` shows a spawned cell)
TITLE_ROOM = 400
# the row's start_method: how the cell's process came to be
SPAWNED, FORKED, WORKER = "spawn", "fork-server", "worker"


@dataclass(frozen=True)
class CellJob:
    """One cell to run and where its child writes the row."""

    spec: CellSpec
    sweep_id: str
    row_path: Path


@dataclass(frozen=True)
class CellOutcome:
    """How a cell's process ended, as the parent saw it (the row is the child's own word)."""

    job: CellJob
    returncode: int | None  # negative: killed by that signal; None: never known
    timed_out: bool
    wall_s: float | None  # parent-observed, from just before the spawn to the end
    stderr_tail: str
    pid: int | None
    host: str
    started_at: str | None
    scheduler_state: str | None = None  # Slurm's word when the job itself failed
    start_method: str | None = None  # SPAWNED, FORKED or WORKER


# (job, None) as a cell starts, (job, outcome) as it ends
Ends = Generator[tuple[CellJob, "CellOutcome | None"], None, None]


def gpu_ids() -> list[str]:
    """This machine's GPUs as CUDA_VISIBLE_DEVICES entries, found without importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [entry for entry in visible.split(",") if entry.strip()]
    try:
        import pynvml

        pynvml.nvmlInit()
        return [str(index) for index in range(pynvml.nvmlDeviceGetCount())]
    except Exception:  # no driver, no library: ask nvidia-smi, else none
        return _nvidia_smi_gpus()


def _nvidia_smi_gpus() -> list[str]:
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def _write_spec(job: CellJob, workdir: Path) -> Path:
    path = workdir / f"{cell_id(job.spec)}.spec.json"
    path.write_text(job.spec.to_json())
    return path


class _Process:
    """A `python -m ffbench.child` process in its own session, stderr kept in a file: at
    `stderr_path`, or an anonymous one (nothing left behind, whatever ends this process)."""

    def __init__(
        self, args: list[str], env: dict[str, str], stderr_path: Path | None, serve: bool,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.stderr_path = stderr_path
        # an anonymous file is kept open to read its tail; a named one is opened again
        self._anonymous: IO[bytes] | None = None
        err: IO[bytes]
        if stderr_path is None:
            err = self._anonymous = tempfile.TemporaryFile()
        else:
            err = open(stderr_path, "ab")  # closed below, once the child has it
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", CHILD_MODULE, *args],
                stdin=subprocess.PIPE if serve else subprocess.DEVNULL,
                stdout=subprocess.PIPE if serve else err,
                stderr=err,
                env=env,
                start_new_session=True,
                pass_fds=pass_fds,
            )
        finally:
            if err is not self._anonymous:
                err.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_tail(self) -> str:
        if self._anonymous is None:
            assert self.stderr_path is not None
            return _tail(self.stderr_path)
        return _fd_tail(self._anonymous.fileno())


def _fd_tail(fd: int) -> str:
    """The last STDERR_TAIL_BYTES of an open file."""
    size = os.fstat(fd).st_size
    start = max(0, size - STDERR_TAIL_BYTES)
    return os.pread(fd, size - start, start).decode(errors="replace")


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as err:
            err.seek(max(0, path.stat().st_size - STDERR_TAIL_BYTES))
            return err.read().decode(errors="replace")
    except OSError:
        return ""


class CellProcess(_Process):
    """A fresh process for exactly one cell; the cell is over when the process is."""

    def __init__(self, job: CellJob, workdir: Path, env: dict[str, str]) -> None:
        spec_path = _write_spec(job, workdir)
        stderr_path = workdir / f"{cell_id(job.spec)}.stderr"
        super().__init__([str(spec_path), str(job.row_path), job.sweep_id], env, stderr_path,
                         serve=False)
        self.job = job
        self.start_method = SPAWNED

    def cell_done(self) -> bool:
        return not self.alive()

    def returncode(self) -> int | None:
        return self.proc.returncode


class _WorkerChannel:
    """A meta worker's side of the conversation: a JSON line in, a "done" line out per cell."""

    requests: IO[bytes] | None
    replies: IO[bytes] | None
    job: CellJob | None

    def submit(self, job: CellJob, workdir: Path) -> None:
        self.job = job
        request = [str(_write_spec(job, workdir)), str(job.row_path), job.sweep_id]
        assert self.requests is not None
        with suppress(BrokenPipeError):  # a dead worker shows in cell_done
            self.requests.write(json.dumps(request).encode() + b"\n")
            self.requests.flush()

    def _answered(self) -> bool:
        """A reply came ("done", or the end of the channel: the worker is gone)."""
        assert self.replies is not None
        if not select.select([self.replies], [], [], 0)[0]:
            return False
        if not self.replies.readline():
            self._gone()
        return True

    def _gone(self) -> None:
        """The worker closed its end of the channel (it died)."""

    def alive(self) -> bool:
        raise NotImplementedError  # each kind of worker knows

    def cell_done(self) -> bool:
        return self._answered() or not self.alive()


class MetaWorker(_Process, _WorkerChannel):  # alive() and the rest from _Process
    """A spawned process that runs meta cells in turn (`python -m ffbench.child --serve`)."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(["--serve"], env, None, serve=True)
        self.requests, self.replies = self.proc.stdin, self.proc.stdout
        self.job = None
        self.start_method = WORKER

    def _gone(self) -> None:
        self.proc.wait()

    def returncode(self) -> int | None:
        return 0 if self.alive() else self.proc.returncode

    def close(self) -> None:
        """Let it finish cleanly (end of input), else kill it."""
        with suppress(BrokenPipeError, OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=WORKER_CLOSE_S)
        except subprocess.TimeoutExpired:
            self.kill()


class _WorkerEnds:
    """The pipes (and stderr file) of a meta worker the fork server will fork: the server
    is given the child's ends (their numbers go in the request), the pool keeps its own."""

    def __init__(self) -> None:
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        self.stderr = tempfile.TemporaryFile()  # anonymous: nothing left behind
        self.requests = os.fdopen(requests_write, "wb")
        self.replies = os.fdopen(replies_read, "rb")
        self.child_fds = (requests_read, replies_write, self.stderr.fileno())

    def close_child_fds(self) -> None:
        """The server has its copies: without ours, the worker's death ends its replies."""
        for fd in self.child_fds[:2]:
            os.close(fd)

    def close(self) -> None:
        """The pipes (the stderr file stays readable for its tail until this is dropped)."""
        for end in (self.requests, self.replies):
            with suppress(OSError):
                end.close()


class ForkedWorker(_WorkerChannel):
    """A meta worker forked by the fork server: `python -m ffbench.child --serve` without
    its own import of torch. Its pid comes later, in the server's reply; cells can be sent
    before (they wait in the pipe)."""

    def __init__(self, server: ForkServer, tag: int, ends: _WorkerEnds) -> None:
        self.server, self.tag, self.ends = server, tag, ends
        self.requests, self.replies = ends.requests, ends.replies
        self.job = None
        self.start_method = WORKER
        self._ended = False

    @property
    def pid(self) -> int | None:
        return self.server.pid_of(self.tag)

    def _gone(self) -> None:
        self._ended = True
        pid = self.pid
        if pid is not None:  # for its returncode
            self.server.wait_for_exit(pid)

    def _pid_so_far(self) -> int | None:
        """Its pid if the server has answered by now (no waiting)."""
        self.server.poll()
        return self.server.known_pid(self.tag)

    def alive(self) -> bool:
        pid = self._pid_so_far()
        return not (self._ended or pid in self.server.exits or self.server.ended())

    def returncode(self) -> int | None:
        if self.alive():
            return 0
        pid = self.server.known_pid(self.tag)
        return None if pid is None else self.server.exits.get(pid)

    def kill(self) -> None:
        """Kill it. Given a cell, it is killed once forked (a cell waiting in its pipe must
        not run later); given none, only if forked yet (else it dies with the server, or at
        the end of its input: its pipes close here)."""
        pid = self.pid if self.job is not None else self._pid_so_far()
        if pid is not None:
            self.server.kill_child(pid)
        self.ends.close()

    def close(self) -> None:
        """Let it finish cleanly (end of input), else kill it."""
        with suppress(OSError):
            self.ends.requests.close()
        pid = self._pid_so_far()
        if pid is not None and not self.server.wait_for_exit(pid):
            self.server.kill_child(pid)
        self.ends.close()

    def stderr_tail(self) -> str:
        return _fd_tail(self.ends.stderr.fileno())


class ForkServer(_Process):
    """`python -m ffbench.child --fork-server`: forks a process per request.

    Requests go in as JSON lines, each with a tag: a cell, or (given the pipes it was
    started with, `workers`) a meta worker. It answers "pid PID TAG" for each fork and
    "exit PID CODE" (a returncode as subprocess reports it) as each process ends."""

    def __init__(self, env: dict[str, str], workers: int = 0) -> None:
        self._spare = [_WorkerEnds() for _ in range(workers)]
        child_fds = tuple(fd for ends in self._spare for fd in ends.child_fds)
        try:
            super().__init__([FORK_SERVER_FLAG, "." * TITLE_ROOM], env, None, serve=True,
                             pass_fds=child_fds)
        finally:
            for ends in self._spare:
                ends.close_child_fds()
        self.exits: dict[int, int] = {}
        self._pids: dict[int, int] = {}  # request tag -> pid
        self._tags = itertools.count()
        self._pending = b""
        self._ended = False

    def fork(self, job: CellJob, workdir: Path, env: dict[str, str]) -> ForkedCell | None:
        """The cell's process, or None when the server is gone."""
        stderr_path = workdir / f"{cell_id(job.spec)}.stderr"
        tag = self._request({"spec": str(_write_spec(job, workdir)), "row": str(job.row_path),
                             "sweep_id": job.sweep_id, "stderr": str(stderr_path), "env": env})
        pid = None if tag is None else self.pid_of(tag)
        return None if pid is None else ForkedCell(job, self, pid, stderr_path)

    def fork_worker(self, env: dict[str, str]) -> ForkedWorker | None:
        """A meta worker on one of the server's spare pipes (None: none left, or the server
        is gone). Returns at once: the fork happens once the server has its imports."""
        if not self._spare or self.ended():
            return None
        ends = self._spare.pop(0)
        others = [fd for spare in self._spare for fd in spare.child_fds]
        tag = self._request({"worker": ends.child_fds, "others": others, "env": env})
        if tag is None:
            ends.close()
            return None
        return ForkedWorker(self, tag, ends)

    def _request(self, request: dict[str, Any]) -> int | None:
        """Send a fork request; its tag, or None when the server is gone."""
        tag = next(self._tags)
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps({**request, "tag": tag}).encode() + b"\n")
            stdin.flush()
        except OSError:  # BrokenPipeError: it died
            return None
        return tag

    def known_pid(self, tag: int) -> int | None:
        """The pid of request `tag`'s process, if the server has answered."""
        return self._pids.get(tag)

    def pid_of(self, tag: int) -> int | None:
        """The pid of request `tag`'s process, waiting for the answer (None: the server
        ended or did not answer within FORK_REPLY_S)."""
        deadline = time.monotonic() + FORK_REPLY_S
        while tag not in self._pids and not self._ended and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        return self._pids.get(tag)

    def poll(self, wait_s: float = 0.0) -> None:
        """Take in the replies so far (waiting up to `wait_s` for the first)."""
        self._read(wait_s)

    def _read(self, wait_s: float) -> None:
        """Record the pids and exits reported within `wait_s` (after the first, what is there)."""
        stdout = self.proc.stdout
        assert stdout is not None
        while not self._ended and select.select([stdout], [], [], max(0.0, wait_s))[0]:
            chunk = os.read(stdout.fileno(), 65536)
            self._ended = not chunk
            self._pending += chunk
            *lines, self._pending = self._pending.split(b"\n")
            for word, pid, number in (line.split() for line in map(bytes.decode, lines)):
                if word == "exit":
                    self.exits[int(pid)] = int(number)
                else:
                    self._pids[int(number)] = int(pid)
            wait_s = 0.0

    def ended(self) -> bool:
        return self._ended or not self.alive()

    def wait_for_exit(self, pid: int) -> bool:
        """Whether the server reports `pid` ended within WORKER_CLOSE_S."""
        deadline = time.monotonic() + WORKER_CLOSE_S
        while pid not in self.exits and not self.ended() and time.monotonic() < deadline:
            self.poll(POLL_S)
        return pid in self.exits

    def kill_child(self, pid: int) -> None:
        """SIGKILL a forked process's group, then wait (a while) for the server to report it."""
        if pid in self.exits:  # reaped: the pid may be someone else's now
            return
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:  # just forked: not yet in a session (a group) of its own
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.wait_for_exit(pid)

    def kill(self) -> None:
        super().kill()
        for ends in self._spare:
            ends.close()
        self._spare.clear()


class ForkedCell:
    """A cell's process forked by the server; in its own session, as a spawned one."""

    def __init__(self, job: CellJob, server: ForkServer, pid: int, stderr_path: Path) -> None:
        self.job, self.server, self.pid, self.stderr_path = job, server, pid, stderr_path
        self.start_method = FORKED

    def cell_done(self) -> bool:
        self.server.poll()
        return self.pid in self.server.exits or self.server.ended()

    def alive(self) -> bool:
        return not self.cell_done()

    def returncode(self) -> int | None:
        return self.server.exits.get(self.pid)

    def kill(self) -> None:
        self.server.kill_child(self.pid)

    def stderr_tail(self) -> str:
        return _tail(self.stderr_path)


@dataclass
class _Slot:
    """One place a cell can run; with several GPUs, slot i uses GPU i mod count."""

    index: int
    running: CellProcess | ForkedCell | MetaWorker | ForkedWorker | None = None
    worker: MetaWorker | ForkedWorker | None = None  # kept between meta cells
    started_s: float = 0.0
    started_at: str = ""

    def close_worker(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def stop(self) -> None:
        if self.running is not None:
            self.running.kill()
            self.running = None
        if self.worker is not None:
            self.worker.kill()
            self.worker = None


def _child_env() -> dict[str, str]:
    """This process's environment, and its pid: a child dies with it (child.die_with_parent)."""
    return {**os.environ, PARENT_PID_ENV: str(os.getpid())}


class LocalPool:
    """`jobs` cells at a time on this machine, each killed after `timeout_s`. `start` may
    bring its processes up before the first cell (they import torch while the sweep checks
    its cells); `run` starts what is still missing; a pool runs once, and ends its processes
    when its run ends, or on `close`."""

    def __init__(self, *, jobs: int, timeout_s: float, gpus: list[str]) -> None:
        self.timeout_s, self.gpus = timeout_s, gpus
        self._slots = [_Slot(index) for index in range(jobs)]
        self._server: ForkServer | None = None
        self._forking = True  # until a server fails: then every cell is spawned

    def start(self, device: str) -> None:
        """Start the processes cells on `device` will need: a meta worker per slot, or the
        fork server."""
        if device == "meta":
            for slot in self._slots:
                slot.worker = slot.worker or self._new_worker()
        elif self._server is None:
            self._start_server()

    def run(self, jobs: Iterable[CellJob], workdir: Path) -> Ends:
        """Yields (job, None) as a cell starts and (job, outcome) as it ends; cells' spec
        files and stderr go in `workdir`. Closing the iterator, or an exception in it
        (Ctrl-C), kills whatever is running."""
        workdir.mkdir(parents=True, exist_ok=True)
        queue = iter(jobs)
        slots = self._slots
        more = True
        try:
            while more or any(slot.running for slot in slots):
                # a slot that frees up gets its next cell before the ended one is reported
                ended = [outcome for outcome in map(self._check, slots) if outcome is not None]
                for slot in slots:
                    if not more or slot.running is not None:
                        continue
                    job = next(queue, None)
                    more = job is not None
                    if job is not None:
                        self._start(slot, job, workdir)
                        yield job, None
                for outcome in ended:
                    yield outcome.job, outcome
                if not ended:
                    time.sleep(POLL_S)
        finally:
            self.close()

    def close(self) -> None:
        """Kill whatever runs."""
        for slot in self._slots:
            slot.stop()
        if self._server is not None:
            self._server.kill()
            self._server = None

    def _env(self, slot: _Slot, job: CellJob) -> dict[str, str]:
        env = _child_env()
        if job.spec.device == "cuda" and self.gpus:  # "cuda:N" means the user chose
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot.index % len(self.gpus)]
        return env

    def _start(self, slot: _Slot, job: CellJob, workdir: Path) -> None:
        slot.started_s, slot.started_at = time.perf_counter(), utc_now()
        env = self._env(slot, job)
        if job.spec.device != "meta":
            slot.close_worker()
            slot.running = self._fork(job, env, workdir) or CellProcess(job, workdir, env)
            return
        if slot.worker is None:
            slot.worker = self._new_worker()
        slot.worker.submit(job, workdir)
        slot.running = slot.worker

    def _new_worker(self) -> MetaWorker | ForkedWorker:
        """A meta worker forked by the fork server, which imports torch once for them all
        (started here, with pipes for each slot still without a worker), else a spawned
        one (a worker that died is replaced so). Meta cells: no GPU to choose."""
        if self._server is None and self._forking:
            self._start_server(workers=sum(slot.worker is None for slot in self._slots))
        worker = None if self._server is None else self._server.fork_worker(_child_env())
        return worker or MetaWorker(_child_env())

    def _start_server(self, workers: int = 0) -> ForkServer:
        # each cell gets its own environment (its GPU) with its fork request
        self._server = ForkServer(_child_env(), workers)
        return self._server

    def _fork(self, job: CellJob, env: dict[str, str], workdir: Path) -> ForkedCell | None:
        """The cell forked by this pool's server (started on first use), else None."""
        if not self._forking:
            return None
        server = self._server or self._start_server()
        cell = None if server.ended() else server.fork(job, workdir, env)
        if cell is None:
            log.warning("the fork server is gone; spawning cells instead. Its stderr:\n%s",
                        server.stderr_tail())
            self._forking = False
        return cell

    def _check(self, slot: _Slot) -> CellOutcome | None:
        """The outcome if the slot's cell ended or ran out of time, else None."""
        run = slot.running
        if run is None:
            return None
        done = run.cell_done()
        timed_out = not done and time.perf_counter() - slot.started_s > self.timeout_s
        if not (done or timed_out):
            return None
        if timed_out:
            run.kill()
        job = run.job
        assert job is not None
        slot.running = None
        if run is slot.worker and not run.alive():
            slot.worker = None
        return CellOutcome(
            job=job, returncode=run.returncode(), timed_out=timed_out,
            wall_s=time.perf_counter() - slot.started_s, stderr_tail=run.stderr_tail(),
            pid=run.pid, host=socket.gethostname(), started_at=slot.started_at,
            start_method=run.start_method,
        )


def run_blocking(job: CellJob, timeout_s: float) -> CellOutcome:
    """One cell in a fresh child process, waited for: what a Slurm array task runs."""
    with tempfile.TemporaryDirectory(prefix="ffbench-") as workdir:
        pool = LocalPool(jobs=1, timeout_s=timeout_s, gpus=[])
        ends = pool.run([job], Path(workdir))
        outcomes = [outcome for _, outcome in ends if outcome is not None]
    return outcomes[0]


class SubmititPool:
    """Every cell as one task of a Slurm job array (submitit); logs under `folder`.

    Each task runs `run_blocking`, so a cell on a node is the same fresh child, with
    the same timeout, as on this machine. `slurm["cluster"] = "local"` runs the same
    path through submitit's LocalExecutor (how the tests exercise it)."""

    def __init__(self, *, slurm: dict[str, Any], folder: Path, timeout_s: float) -> None:
        self.slurm, self.folder, self.timeout_s = slurm, folder, timeout_s

    def parameters(self) -> dict[str, Any]:
        """submitit's names for the [slurm] table's settings (slurm_* apply on Slurm only)."""
        names = {
            "time_min": "timeout_min", "cpus_per_task": "cpus_per_task", "mem_gb": "mem_gb",
            "partition": "slurm_partition", "account": "slurm_account", "qos": "slurm_qos",
            "constraint": "slurm_constraint", "gpus_per_task": "slurm_gpus_per_task",
            "array_parallelism": "slurm_array_parallelism", "setup": "slurm_setup",
        }
        given = {names[key]: value for key, value in self.slurm.items() if key in names}
        return {"name": "ffbench", **given}

    def run(self, jobs: Iterable[CellJob], workdir: Path | None = None) -> Ends:
        """Submits every cell at once; yields as LocalPool.run does (`workdir` is unused:
        each task keeps its own)."""
        import submitit

        cells = list(jobs)
        if not cells:
            return
        executor = submitit.AutoExecutor(
            folder=self.folder / "%j", cluster=self.slurm.get("cluster", "slurm")
        )
        executor.update_parameters(**self.parameters())
        futures = executor.map_array(run_blocking, cells, [self.timeout_s] * len(cells))
        for cell in cells:
            yield cell, None
        pending = list(zip(futures, cells, strict=True))
        try:
            while pending:
                for future, cell in [pair for pair in pending if pair[0].done()]:
                    pending.remove((future, cell))
                    yield cell, _submitit_outcome(cell, future)
                if pending:
                    time.sleep(SUBMITIT_POLL_S)
        finally:
            for future, _ in pending:
                future.cancel(check=False)


def _submitit_outcome(job: CellJob, future: Any) -> CellOutcome:
    try:
        outcome: CellOutcome = future.result()
        return outcome
    except Exception as exc:  # the task itself died: time limit, memory limit, node failure
        return CellOutcome(
            job=job, returncode=None, timed_out=False, wall_s=None,
            stderr_tail=str(exc)[-STDERR_TAIL_BYTES:], pid=None, host="",
            started_at=None, scheduler_state=str(future.state),
        )
