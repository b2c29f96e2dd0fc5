"""A sweep's child process: `python -m ffbench.child SPEC.json OUT.json [SWEEP_ID]`.

Runs one cell (`ffbench.cell.run_cell_row`, which turns a failure inside the cell into
a row) in this fresh process, writes the row atomically to OUT.json and exits at once.
`--serve` runs meta cells one after another instead: each stdin line is a JSON list
[SPEC.json, OUT.json, SWEEP_ID], and each row written is answered by a "done" line on
stdout. What the child cannot report itself (killed, crashed, hung) the parent classifies.
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TextIO

from ffbench.cell import run_cell_row
from ffbench.executors import PARENT_PID_ENV
from ffbench.results import write_row_json
from ffbench.spec import CellSpec

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> None:
    """Have Linux SIGKILL this process when the sweep dies, even of SIGKILL: an orphaned
    cell would keep the machine busy and race a rerun of the sweep for its row file."""
    parent = os.environ.get(PARENT_PID_ENV)
    if parent is None or not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):  # the parent died before the request took hold
        os._exit(1)


def run_one(spec_path: str, out_path: str, sweep_id: str = "", *, shared: bool = False) -> None:
    """`shared`: this process has run other cells before, so its peak RSS is not this cell's."""
    spec = CellSpec.from_json(Path(spec_path).read_text())
    row = run_cell_row(spec, sweep_id)
    row["returncode"] = 0  # the row is written, so this process ends normally
    if shared:
        row["cpu_peak_rss_bytes"] = None
    write_row_json(row, Path(out_path))


def serve(replies: TextIO) -> None:
    for line in sys.stdin:
        run_one(*json.loads(line), shared=True)
        # keep the next cell's gc.collect() (before each memory pass) cheap: survivors of
        # this cell (modules imported on first use) are moved out of the collector's sight
        gc.collect()
        gc.freeze()
        replies.write("done\n")
        replies.flush()


def main(argv: list[str]) -> None:
    die_with_parent()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # torch's ~10^6 module-level objects never die; freezing them makes each gc.collect()
    # in the measurement a fraction of a second cheaper without changing what it frees
    gc.freeze()
    if argv == ["--serve"]:
        replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not be replies
        serve(replies)
    else:
        run_one(*argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the row is on disk: skip interpreter teardown (a few hundred ms with torch)


if __name__ == "__main__":
    main(sys.argv[1:])
