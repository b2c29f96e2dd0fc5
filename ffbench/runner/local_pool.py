"""Cells on the local host: `jobs` at a time, each in a process of its own, started in its own
session, so a timeout or Ctrl-C kills the cell and anything it started (killpg).

Real-device cells get a fresh process each, forked by the fork server (or spawned, should
the server be gone); the row's `start_method` says which. Meta-device cells (fake tensors:
no device state, nothing timed) run one after another in a long-lived worker per slot, which
keeps its caches warm; the workers too are forked by the fork server, so a meta sweep imports
torch once for all of them; a worker that dies is replaced by a spawned one.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ffbench.measure.env import utc_now
from ffbench.runner.fork_server import ForkedCell, ForkedWorker, ForkServer
from ffbench.runner.jobs import POLL_S, STARTUP_S, CellJob, CellOutcome, Ends, child_env
from ffbench.runner.processes import CellProcess, MetaWorker
from ffbench.settings.cell import PREDICTED_DEVICE

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    """One place a cell can run; with several GPUs, slot i uses GPU i mod count."""

    index: int
    running: CellProcess | ForkedCell | MetaWorker | ForkedWorker | None = None
    worker: MetaWorker | ForkedWorker | None = None  # kept between meta cells
    started_s: float = 0.0  # when its process was asked for
    started_at: str = ""
    clock_s: float | None = None  # when its cell began (its timeout counts from here)
    checked_s: float = 0.0  # when it was last looked at
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path = Path()

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


class LocalPool:
    """`jobs` cells at a time on the local host, each killed after `timeout_s`. `start` may
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
        if device == PREDICTED_DEVICE:
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
        env = child_env()
        if job.spec.device == "cuda" and self.gpus:  # "cuda:N" means the user chose
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot.index % len(self.gpus)]
        return env

    def _start(self, slot: _Slot, job: CellJob, workdir: Path) -> None:
        slot.started_s, slot.started_at, slot.clock_s = time.perf_counter(), utc_now(), None
        slot.checked_s = slot.started_s
        env = slot.env = self._env(slot, job)
        slot.workdir = workdir
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
        worker = None if self._server is None else self._server.fork_worker(child_env())
        return worker or MetaWorker(child_env())

    def _start_server(self, workers: int = 0) -> ForkServer:
        # each cell gets its own environment (its GPU) with its fork request
        self._server = ForkServer(child_env(), workers)
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
        """The outcome if the slot's cell ended or ran out of time, else None. Its time
        counts from when its process began the cell (`started`), not from the spawn: the
        interpreter's start and its imports are not the cell's (STARTUP_S bounds them)."""
        run = slot.running
        if run is None:
            return None
        now = time.perf_counter()
        done = run.cell_done()
        if slot.clock_s is None and (run.started() or done):
            slot.clock_s = slot.checked_s  # it began since the last look: counted from then
        elif slot.clock_s is None and now - slot.started_s > STARTUP_S:
            slot.clock_s = slot.started_s + STARTUP_S
        slot.checked_s = now
        if done and isinstance(run, ForkedCell) and run.pid is None:
            self._respawn(slot, run)  # the server died before forking it
            return None
        timed_out = not done and slot.clock_s is not None and now - slot.clock_s > self.timeout_s
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
            wall_s=time.perf_counter() - (slot.clock_s or slot.started_s),
            stderr_tail=run.stderr_tail(), pid=run.pid, host=socket.gethostname(),
            started_at=slot.started_at, start_method=run.start_method,
        )

    def _respawn(self, slot: _Slot, cell: ForkedCell) -> None:
        """A cell the fork server never forked (it died first) runs in a spawned process,
        as every cell after it."""
        if self._forking:
            log.warning("the fork server is gone; spawning cells instead. Its stderr:\n%s",
                        cell.server.stderr_tail())
            self._forking = False
        slot.started_s, slot.clock_s = time.perf_counter(), None
        slot.checked_s = slot.started_s
        slot.running = CellProcess(cell.job, slot.workdir, slot.env)


def run_blocking(job: CellJob, timeout_s: float) -> CellOutcome:
    """One cell in a fresh child process, waited for: what a Slurm array task runs."""
    with tempfile.TemporaryDirectory(prefix="ffbench-") as workdir:
        pool = LocalPool(jobs=1, timeout_s=timeout_s, gpus=[])
        ends = pool.run([job], Path(workdir))
        outcomes = [outcome for _, outcome in ends if outcome is not None]
    return outcomes[0]
