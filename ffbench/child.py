"""A sweep's child process: `python -m ffbench.child SPEC.json OUT.json [SWEEP_ID]`.

Runs one cell (`ffbench.cell.run_cell_row`, which turns a failure inside the cell into
a row) in this fresh process, writes the row atomically to OUT.json and exits at once.
`--serve` runs meta cells one after another instead: each stdin line is a JSON list
[SPEC.json, OUT.json, SWEEP_ID], and each row written is answered by a "done" line on
stdout. `--fork-server ROOM` imports what a cell needs, then forks a fresh process per
stdin line, answering "pid PID TAG" for each and "exit PID RETURNCODE" as each ends: a cell
({"spec", "row", "sweep_id", "stderr", "env", "tag"}), or a meta worker serving on pipes the
server was started with ({"worker": [REQUESTS, REPLIES, STDERR], "others", "env", "tag"}).
What the child cannot report itself (killed, crashed, hung) the parent classifies.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import select
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, TextIO

from ffbench.algorithms import registry
from ffbench.built import load_dataset
from ffbench.cell import run_cell_row
from ffbench.executors import (
    CHILD_MODULE,
    FORK_SERVER_FLAG,
    FORKED,
    PARENT_PID_ENV,
    POLL_S,
    SPAWNED,
    WORKER,
)
from ffbench.results import write_row_json
from ffbench.settings.cell import CellSpec

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> None:
    """Have Linux SIGKILL this process when the sweep dies, even of SIGKILL: an orphaned
    cell would keep the machine busy and race a rerun of the sweep for its row file."""
    parent = os.environ.get(PARENT_PID_ENV)
    if parent is not None:
        die_with(int(parent))


def die_with(parent: int) -> None:
    """SIGKILL this process when `parent` (its parent process) dies."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took hold
        os._exit(1)


def run_one(spec_path: str, out_path: str, sweep_id: str = "", *,
            start_method: str = SPAWNED) -> None:
    """A WORKER has run other cells before, so its peak RSS is not this cell's."""
    spec = CellSpec.from_json(Path(spec_path).read_text())
    row = run_cell_row(spec, sweep_id)
    row["returncode"] = 0  # the row is written, so this process ends normally
    row["start_method"] = start_method
    if start_method == WORKER:
        row["cpu_peak_rss_bytes"] = None
    write_row_json(row, Path(out_path))


def serve(requests: TextIO, replies: TextIO) -> None:
    for line in requests:
        run_one(*json.loads(line), start_method=WORKER)
        # keep the next cell's gc.collect() (before each memory pass) cheap: survivors of
        # this cell (modules imported on first use) are moved out of the collector's sight
        gc.collect()
        gc.freeze()
        replies.write("done\n")
        replies.flush()


def preload() -> None:
    """Import what a cell imports, touching no device: every algorithm's module (and what
    it pulls in), and torch._dynamo, which torch.optim imports on a first optimizer (~2 s)."""
    import torch._dynamo  # noqa: F401

    registry.usable()  # loads every algorithm that loads; a bad plugin fails in its own cell


def preload_dataset(spec_path: str) -> None:
    """Load the cell's dataset here, once, so that every cell forked after shares it (a
    sweep's cells share one; generating the synthetic one takes ~0.25 s). Only read by the
    cells, its pages stay shared; a dataset that fails to load fails in the cell instead."""
    try:
        load_dataset(CellSpec.from_json(Path(spec_path).read_text()))
    except Exception:  # the cell reports it, as a row
        return


def fork_server(replies: int) -> None:
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
            title = [CHILD_MODULE, "--serve"]

            def work() -> None:
                serve(os.fdopen(requests_fd), os.fdopen(replies_fd, "w"))
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


def set_title(words: list[str]) -> None:
    """Show `words` after the interpreter's name in this process's command line (/proc,
    ps), written over the room the fork server's command line keeps for it."""
    try:
        stat = Path("/proc/self/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
    except (OSError, ValueError, IndexError):
        return
    room = end - start
    current = ctypes.string_at(start, room)
    offset = current.find(CHILD_MODULE.encode())
    if not start or offset < 0:
        return
    title = b"\0".join(word.encode() for word in words)[: room - offset - 1]
    ctypes.memmove(start + offset, title.ljust(room - offset, b"\0"), room - offset)


def main(argv: list[str]) -> None:
    die_with_parent()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # torch's ~10^6 module-level objects never die; freezing them makes each gc.collect()
    # in the measurement a fraction of a second cheaper without changing what it frees
    gc.freeze()
    if argv == ["--serve"]:
        replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not be replies
        serve(sys.stdin, replies)
    elif argv[:1] == [FORK_SERVER_FLAG]:
        replies_fd = os.dup(sys.stdout.fileno())
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        fork_server(replies_fd)
    else:
        run_one(*argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the row is on disk: skip interpreter teardown (a few hundred ms with torch)


if __name__ == "__main__":
    main(sys.argv[1:])
