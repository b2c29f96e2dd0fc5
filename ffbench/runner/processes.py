"""Processes the runner spawns (`python -m ffbench.runner.child ...`), seen from the parent:
one cell's process (CellProcess), a meta worker that runs meta cells in turn (MetaWorker),
and the conversation with a worker, a JSON line in and a "start" and a "done" line out per
cell. Each says when its cell begins: the cell's clock starts then, not at the spawn."""

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
from typing import IO, Any

from ffbench.algorithms.resolve import cell_id
from ffbench.runner.jobs import (
    CHILD_MODULE,
    DONE_LINE,
    SERVE_FLAG,
    SPAWNED,
    START_LINE,
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
                stdout=subprocess.PIPE,  # the child's channel to us (child.py)
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
        kill_group(self.proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_tail(self) -> str:
        if self._anonymous is None:
            assert self.stderr_path is not None
            return file_tail(self.stderr_path)
        return fd_tail(self._anonymous.fileno())


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL a process started in a session of its own, with everything it started, and
    reap it."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def signal_name(number: int) -> str:
    """"SIGKILL", or "signal N" for a number no signal has."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


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


class Lines:
    """Lines from a child's channel, read without blocking and without a buffer that
    select cannot see (os.read on the descriptor); `ended` once the child closed it."""

    def __init__(self, channel: IO[bytes] | int) -> None:
        self.fd = channel if isinstance(channel, int) else channel.fileno()
        self.pending = b""
        self.ended = False

    def read(self) -> list[bytes]:
        """The whole lines that came so far (each with its newline)."""
        lines: list[bytes] = []
        while not self.ended and select.select([self.fd], [], [], 0)[0]:
            chunk = os.read(self.fd, 4096)
            self.ended = not chunk
            *whole, self.pending = (self.pending + chunk).split(b"\n")
            lines += [line + b"\n" for line in whole]
        return lines


class CellProcess(ChildProcess):
    """A fresh process for exactly one cell; the cell is over when the process is. It has
    `started` once it says so (its imports done)."""

    def __init__(self, job: CellJob, workdir: Path, env: dict[str, str]) -> None:
        spec_path = write_spec(job, workdir)
        stderr_path = workdir / f"{cell_id(job.spec)}.stderr"
        super().__init__([str(spec_path), str(job.row_path), job.sweep_id], env, stderr_path,
                         serve=False)
        self.job = job
        self.start_method = SPAWNED
        assert self.proc.stdout is not None
        self._lines = Lines(self.proc.stdout)
        self._started = False

    def started(self) -> bool:
        self._started = self._started or START_LINE in self._lines.read()
        return self._started

    def cell_done(self) -> bool:
        return not self.alive()

    def returncode(self) -> int | None:
        return self.proc.returncode


class WorkerChannel:
    """A meta worker's side of the conversation: a JSON line in, a "start" line (the cell
    begins) and a "done" line (it ended) out per cell."""

    requests: IO[bytes] | None
    replies: IO[bytes] | None
    job: CellJob | None
    _lines: Lines | None = None
    _started = False
    _done = False

    def submit(self, job: CellJob, workdir: Path) -> None:
        self.job = job
        self._started = self._done = False
        request = [str(write_spec(job, workdir)), str(job.row_path), job.sweep_id]
        assert self.requests is not None
        with suppress(BrokenPipeError):  # a dead worker shows in cell_done
            self.requests.write(json.dumps(request).encode() + b"\n")
            self.requests.flush()

    def _answered(self) -> bool:
        """The cell ended ("done", or the end of the channel: the worker is gone)."""
        assert self.replies is not None
        if self._lines is None:
            self._lines = Lines(self.replies)
        for line in self._lines.read():
            self._started = self._started or line == START_LINE
            self._done = self._done or line == DONE_LINE
        if self._lines.ended and not self._done:
            self._done = True
            self._gone()
        return self._done

    def started(self) -> bool:
        self._answered()
        return self._started

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
