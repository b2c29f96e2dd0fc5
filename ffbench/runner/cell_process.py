"""One cell's process, from the inside: run the cell (ffbench.cell.run.run_cell_row, which
turns a failure inside the cell into a row), write its row atomically, and die with the
sweep; or, as a meta worker, run meta cells one after another, each request a JSON line
[SPEC.json, OUT.json, SWEEP_ID] answered by a "start" line as the cell begins and a "done"
line as it ends."""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import sys
from pathlib import Path
from typing import BinaryIO, TextIO

from ffbench.cell.run import run_cell_row
from ffbench.results import write_row_json
from ffbench.runner.jobs import (
    CHILD_MODULE,
    DONE_LINE,
    PARENT_PID_ENV,
    SPAWNED,
    START_LINE,
    WORKER,
)
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


def announce(replies: BinaryIO, line: bytes) -> None:
    """Tell the parent (START_LINE: the cell begins now, its clock starts; DONE_LINE)."""
    replies.write(line)
    replies.flush()


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


def serve(requests: TextIO, replies: BinaryIO) -> None:
    """Run each requested cell in turn, saying START_LINE as it begins and DONE_LINE as
    it ends."""
    for line in requests:
        announce(replies, START_LINE)
        run_one(*json.loads(line), start_method=WORKER)
        # keep the next cell's gc.collect() (before each memory pass) cheap: survivors of
        # this cell (modules imported on first use) are moved out of the collector's sight
        gc.collect()
        gc.freeze()
        announce(replies, DONE_LINE)


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
