"""A sweep's child process: `python -m ffbench.runner.child SPEC.json OUT.json [SWEEP_ID]`
runs one cell in this fresh process (saying "start" on stdout once its imports are done: the
cell's clock starts then), writes its row atomically to OUT.json and exits at once.
`--serve` runs meta cells one after another (ffbench.runner.cell_process.serve);
`--fork-server ROOM` becomes the fork server (ffbench.runner.fork_server). What the child
cannot report itself (killed, crashed, hung) the parent classifies.
"""

from __future__ import annotations

import gc
import logging
import os
import sys

from ffbench.runner.cell_process import announce, die_with_parent, run_one, serve
from ffbench.runner.fork_server import serve_forks
from ffbench.runner.jobs import FORK_SERVER_FLAG, SERVE_FLAG, START_LINE


def main(argv: list[str]) -> None:
    die_with_parent()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # torch's ~10^6 module-level objects never die; freezing them makes each gc.collect()
    # in the measurement a fraction of a second cheaper without changing what it frees
    gc.freeze()
    # stdout is the channel to the parent: stray prints (a plugin's) go to stderr instead
    replies_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    if argv == [SERVE_FLAG]:
        serve(sys.stdin, os.fdopen(replies_fd, "wb"))
    elif argv[:1] == [FORK_SERVER_FLAG]:
        serve_forks(replies_fd)
    else:  # the imports are done: the cell's clock starts here
        with os.fdopen(replies_fd, "wb") as replies:
            announce(replies, START_LINE)
        run_one(*argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the row is on disk: skip interpreter teardown (a few hundred ms with torch)


if __name__ == "__main__":
    main(sys.argv[1:])
