"""The fork server, both sides of its protocol (in one file, past 400 lines, because they
change together): `python -m ffbench.runner.child
--fork-server ROOM` imports what a cell needs (torch, torch._dynamo, every algorithm) and the
sweep's dataset once, never touches CUDA, and forks a fresh process per request line. Each
cell thus skips the ~2 s import yet has its own CUDA context, its own host high-water mark,
and dies alone.

Requests are JSON lines, each with a tag: a cell ({"spec", "row", "sweep_id", "stderr",
"env", "tag"}), or a meta worker serving on pipes the server was started with ({"worker":
[REQUESTS, REPLIES, STDERR], "others", "env", "tag"}). The server answers "pid PID TAG" for
each fork and "exit PID RETURNCODE" (as subprocess gives it) as each process ends. The
parent never waits for an answer but to kill (and then briefly): a cell's clock starts with
its pid, so the server's own start-up is never on a cell's clock.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import select
import signal
import sys
import tempfile
import time
import traceback
from contextlib import suppress
from pathlib import Path
from typing import Any

from ffbench.algorithms.resolve import cell_id
from ffbench.runner.jobs import (
    CHILD_MODULE,
    FORK_SERVER_FLAG,
    FORKED,
    POLL_S,
    SERVE_FLAG,
    WORKER,
    WORKER_CLOSE_S,
    CellJob,
    write_spec,
)
from ffbench.runner.processes import ChildProcess, WorkerChannel, fd_tail, file_tail
from ffbench.settings.cell import CellSpec

# how long a kill waits for the pid of a process the server was asked to fork; a server
# that takes longer is stuck (it is killed, with what it was to fork)
KILL_WAIT_S = 5.0
# room kept in the server's command line, where each forked cell writes its own title
# (`ffbench.runner.child CELL_ID ROW_PATH`, as `ps` shows a spawned cell)
TITLE_ROOM = 400


# ---- the parent's side ---------------------------------------------------------------------


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


class ForkedWorker(WorkerChannel):
    """A meta worker forked by the fork server: `python -m ffbench.runner.child --serve` without
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
        return self.server.known_pid(self.tag)

    def _gone(self) -> None:
        self._ended = True
        pid = self._pid_so_far()
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
        not run later: `kill_request`); given none, only if forked yet (else it dies with
        the server, or at the end of its input: its pipes close here)."""
        if self.job is not None:
            self.server.kill_request(self.tag)
        else:
            pid = self._pid_so_far()
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
        return fd_tail(self.ends.stderr.fileno())


class ForkServer(ChildProcess):
    """`python -m ffbench.runner.child --fork-server`: forks a process per request.

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
        """The cell's process, asked for (its pid comes with the server's answer: the cell
        has started then), or None when the server is gone. Returns at once."""
        stderr_path = workdir / f"{cell_id(job.spec)}.stderr"
        tag = self._request({"spec": str(write_spec(job, workdir)), "row": str(job.row_path),
                             "sweep_id": job.sweep_id, "stderr": str(stderr_path), "env": env})
        return None if tag is None else ForkedCell(job, self, tag, stderr_path)

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

    def pid_of(self, tag: int, wait_s: float) -> int | None:
        """The pid of request `tag`'s process, waiting up to `wait_s` for the answer (None:
        the server ended or did not answer)."""
        deadline = time.monotonic() + wait_s
        while tag not in self._pids and not self._ended and time.monotonic() < deadline:
            self._read(deadline - time.monotonic())
        return self._pids.get(tag)

    def kill_request(self, tag: int) -> None:
        """Kill request `tag`'s process, forked or about to be: its answer is waited for up
        to KILL_WAIT_S; a server that has not forked it by then is stuck, and is killed
        with it (a request left in its queue must not run later)."""
        pid = self.pid_of(tag, KILL_WAIT_S)
        if pid is None:
            self.kill()
        else:
            self.kill_child(pid)

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
    """A cell's process forked by the server; in its own session, as a spawned one. It has
    `started` once the server answers with its pid (the fork is the cell's start)."""

    def __init__(self, job: CellJob, server: ForkServer, tag: int, stderr_path: Path) -> None:
        self.job, self.server, self.tag, self.stderr_path = job, server, tag, stderr_path
        self.start_method = FORKED

    @property
    def pid(self) -> int | None:
        return self.server.known_pid(self.tag)

    def started(self) -> bool:
        self.server.poll()
        return self.pid is not None

    def cell_done(self) -> bool:
        self.server.poll()
        return self.pid in self.server.exits or self.server.ended()

    def alive(self) -> bool:
        return not self.cell_done()

    def returncode(self) -> int | None:
        pid = self.pid
        return None if pid is None else self.server.exits.get(pid)

    def kill(self) -> None:
        self.server.kill_request(self.tag)

    def stderr_tail(self) -> str:
        return file_tail(self.stderr_path)


# ---- the server's side (it imports what a cell needs; the parent's side stays torch-free) ---


def preload() -> None:
    """Import what a cell imports, touching no device: every built-in algorithm's module
    (and what it pulls in), and torch._dynamo, which torch.optim imports on a first
    optimizer (~2 s). Plugins are not imported here: a plugin that blocks, exits or crashes
    as it is imported does so in its own cells, on their clocks, never in the server."""
    import torch._dynamo  # noqa: F401

    from ffbench.algorithms import registry

    for name in registry.BUILTIN:
        registry.load(name)


def preload_dataset(spec_path: str) -> None:
    """Load the cell's dataset here, once, so that every cell forked after shares it (a
    sweep's cells share one; generating the synthetic one takes ~0.25 s). Only read by the
    cells, its pages stay shared; a dataset that fails to load fails in the cell instead."""
    from ffbench.cell.built import load_dataset

    try:
        load_dataset(CellSpec.from_json(Path(spec_path).read_text()))
    except Exception:  # the cell reports it, as a row
        return


def serve_forks(replies: int) -> None:
    """Fork a cell process per request; report each pid, and each exit as it is reaped."""
    import torch

    preload()
    # a CUDA context cannot cross a fork: each cell makes its own
    assert not torch.cuda.is_initialized(), "the fork server must not touch CUDA"
    gc.collect()
    gc.freeze()  # the cells' collections skip what the server imported (and leave it shared)
    pending = b""
    while True:
        if select.select([sys.stdin], [], [], POLL_S)[0]:
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:  # the sweep is done with us; running cells die with us
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                request = json.loads(line)
                worker = "worker" in request
                if not worker:
                    preload_dataset(request["spec"])
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    forked(request, replies)
                if worker:  # its pipes are the worker's alone now: its death ends them
                    for fd in request["worker"]:
                        os.close(fd)
                os.write(replies, f"pid {pid} {request['tag']}\n".encode())
        reap(replies)


def reap(replies: int) -> None:
    """Report every forked process that has ended (returncode as subprocess gives it)."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        os.write(replies, f"exit {pid} {os.waitstatus_to_exitcode(status)}\n".encode())


def forked(request: dict[str, Any], replies: int) -> None:
    """In a forked process: a session of its own, stderr into its file, the request's
    environment, then its work: the cell, as a spawned child would run it, or a meta worker
    (`--serve`) on the pipes the request names (the other workers' ends closed, or their
    deaths would never show). Never returns, whatever fails."""
    from ffbench.runner.cell_process import die_with, run_one, serve, set_title

    code = 1
    try:
        os.setsid()  # killable alone, with what it starts
        die_with(os.getppid())  # the server dies with the sweep
        os.close(replies)
        if "worker" in request:
            requests_fd, replies_fd, err = request["worker"]
            for fd in request["others"]:
                with contextlib.suppress(OSError):
                    os.close(fd)
            title = [CHILD_MODULE, SERVE_FLAG]

            def work() -> None:
                serve(os.fdopen(requests_fd), os.fdopen(replies_fd, "wb"))
        else:
            err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            spec_path, row_path = request["spec"], request["row"]
            title = [CHILD_MODULE, Path(spec_path).name.removesuffix(".spec.json"), row_path]

            def work() -> None:
                run_one(spec_path, row_path, request["sweep_id"], start_method=FORKED)

        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(err, 1)
        os.dup2(err, 2)
        os.environ.clear()
        os.environ.update(request["env"])  # CUDA_VISIBLE_DEVICES among them: CUDA reads it later
        set_title(title)
        work()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
