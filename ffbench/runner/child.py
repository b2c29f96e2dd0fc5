"""A sweep's child process: `python -m ffbench.runner.child SPEC.json OUT.json [SWEEP_ID]`
runs one cell in this fresh process, writes its row atomically to OUT.json and exits at once.
`--serve` runs meta cells one after another (ffbench.runner.cell_process.serve);
`--fork-server ROOM` becomes the fork server (ffbench.runner.fork_server). What the child
cannot report itself (killed, crashed, hung) the parent classifies.
"""

from __future__ import annotations

import gc
import logging
import os
import sys

from ffbench.runner.cell_process import die_with_parent, run_one, serve
from ffbench.runner.fork_server import serve_forks
from ffbench.runner.jobs import FORK_SERVER_FLAG, SERVE_FLAG


def main(argv: list[str]) -> None:
    die_with_parent()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # torch's ~10^6 module-level objects never die; freezing them makes each gc.collect()
    # in the measurement a fraction of a second cheaper without changing what it frees
    gc.freeze()
    if argv == [SERVE_FLAG]:
        replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not be replies
        serve(sys.stdin, replies)
    elif argv[:1] == [FORK_SERVER_FLAG]:
        replies_fd = os.dup(sys.stdout.fileno())
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        serve_forks(replies_fd)
    else:
        run_one(*argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the row is on disk: skip interpreter teardown (a few hundred ms with torch)


if __name__ == "__main__":
    main(sys.argv[1:])
