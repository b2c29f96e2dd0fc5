"""Processes the runner spawns (`python -m ffbench.runner.child ...`), seen from the parent:
one cell's process (CellProcess), a meta worker that runs meta cells in turn (MetaWorker),
and the conversation with a worker, a JSON line in and a "done" line out per cell."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import IO

from ffbench.algorithms.resolve import cell_id
from ffbench.runner.jobs import (
    CHILD_MODULE,
    SERVE_FLAG,
    SPAWNED,
    STDERR_TAIL_BYTES,
    WORKER,
    WORKER_CLOSE_S,
    CellJob,
    write_spec,
)


class ChildProcess:
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
            return file_tail(self.stderr_path)
        return fd_tail(self._anonymous.fileno())


def fd_tail(fd: int) -> str:
    """The last STDERR_TAIL_BYTES of an open file."""
    size = os.fstat(fd).st_size
    start = max(0, size - STDERR_TAIL_BYTES)
    return os.pread(fd, size - start, start).decode(errors="replace")


def file_tail(path: Path) -> str:
    try:
        with open(path, "rb") as err:
            err.seek(max(0, path.stat().st_size - STDERR_TAIL_BYTES))
            return err.read().decode(errors="replace")
    except OSError:
        return ""


class CellProcess(ChildProcess):
    """A fresh process for exactly one cell; the cell is over when the process is."""

    def __init__(self, job: CellJob, workdir: Path, env: dict[str, str]) -> None:
        spec_path = write_spec(job, workdir)
        stderr_path = workdir / f"{cell_id(job.spec)}.stderr"
        super().__init__([str(spec_path), str(job.row_path), job.sweep_id], env, stderr_path,
                         serve=False)
        self.job = job
        self.start_method = SPAWNED

    def cell_done(self) -> bool:
        return not self.alive()

    def returncode(self) -> int | None:
        return self.proc.returncode


class WorkerChannel:
    """A meta worker's side of the conversation: a JSON line in, a "done" line out per cell."""

    requests: IO[bytes] | None
    replies: IO[bytes] | None
    job: CellJob | None

    def submit(self, job: CellJob, workdir: Path) -> None:
        self.job = job
        request = [str(write_spec(job, workdir)), str(job.row_path), job.sweep_id]
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


class MetaWorker(ChildProcess, WorkerChannel):  # alive() and the rest from _Process
    """A spawned process that runs meta cells in turn (`python -m ffbench.child --serve`)."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__([SERVE_FLAG], env, None, serve=True)
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
