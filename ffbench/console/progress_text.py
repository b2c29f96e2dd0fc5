"""A sweep's progress as plain lines, for output that is not a terminal (CI, nohup, a log
file), and the estimate of a run's length given before it starts. Pure; no printing."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ffbench.settings.cell import MNIST_CLASSES, MNIST_PIXELS

# Rough seconds per cell beyond its steps, by device kind: its process (forked from a
# server that imported torch), the build, the meta trace, the calibration. Only the
# estimate before a run starts uses these; once cells finish, the ETA comes from their
# own times.
SECONDS_PER_CELL = {"meta": 0.5, "cpu": 1.0, "cuda": 20.0}
UNKNOWN_DEVICE_SECONDS = 20.0
# Matmul rates the steps are estimated at (meta computes nothing): on a 2-core x86 CPU,
# one thread, bp at hidden 1024, batch 1024, 4 layers ran at 67 GFLOP/s; an H200 does
# ~50 TFLOP/s in fp32 (TF32 off)
FLOPS_PER_S = {"cpu": 5e10, "cuda": 5e13}
EXTRA_STEPS = 2  # beyond the warm-up and the timed steps: the memory pass, eval batches
ROWS_PER_IMAGE = 2  # FF's rows (real + negative): an upper bound for backprop's
MATMULS_PER_ROW = 6  # forward, and the backward's two (gradients of weights and inputs)
TRAIN_IMAGES = {"mnist": 60_000, "mnist-5k": 4_000}  # what an epoch goes through
QUIET_INTERVAL_S = 30.0  # a line at least this often while a long cell runs
SECONDS_PER_MINUTE = 60


def step_flops(spec: Any) -> float:
    """Roughly the matmul FLOPs of one train step of a cell (its width, depth and batch)."""
    weights = (MNIST_PIXELS * spec.hidden + (spec.n_layers - 1) * spec.hidden ** 2
               + spec.hidden * MNIST_CLASSES)
    return MATMULS_PER_ROW * ROWS_PER_IMAGE * spec.batch_size * weights


def cell_estimate_s(spec: Any) -> float:
    """Roughly how long a cell takes: its overhead, and its steps (warm-up, memory pass,
    timed steps, and the epochs of an accuracy run) at the device's matmul rate."""
    kind = spec.device.partition(":")[0]
    overhead = SECONDS_PER_CELL.get(kind, UNKNOWN_DEVICE_SECONDS)
    rate = FLOPS_PER_S.get(kind)
    if rate is None:
        return overhead
    steps = spec.warmup_steps + spec.steps + EXTRA_STEPS
    steps += spec.epochs * -(-TRAIN_IMAGES.get(spec.dataset, 0) // spec.batch_size)
    return overhead + steps * step_flops(spec) / rate


def estimate_s(cells: Iterable[Any], jobs: int = 1) -> float:
    """Roughly how long `cells` take, `jobs` at a time."""
    return sum(map(cell_estimate_s, cells)) / max(jobs, 1)


def duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '1 h 05 min'."""
    seconds = round(seconds)
    if seconds < SECONDS_PER_MINUTE:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, SECONDS_PER_MINUTE)
    if minutes < SECONDS_PER_MINUTE:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, SECONDS_PER_MINUTE)
    return f"{hours} h {minutes:02d} min"


@dataclass
class ProgressLines:
    """Counts cells as they finish and says so in one line each (with an ETA from the
    cells' own pace), or every QUIET_INTERVAL_S while nothing finishes."""

    total: int
    clock: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    last_line_at: float = field(default_factory=time.monotonic)

    def finished(self, label: str, status: str, now: float | None = None) -> str:
        self.done += 1
        self.failed += status != "ok"
        now = time.monotonic() if now is None else now
        self.last_line_at = now
        return f"{self._counts(now)}  {status} {label}"

    def quiet_line(self, running: str, now: float | None = None) -> str | None:
        """A line if none was given for QUIET_INTERVAL_S, else None."""
        now = time.monotonic() if now is None else now
        if now - self.last_line_at < QUIET_INTERVAL_S:
            return None
        self.last_line_at = now
        return f"{self._counts(now)}  running {running}"

    def _counts(self, now: float) -> str:
        elapsed = now - self.clock
        eta = (elapsed / self.done * (self.total - self.done)) if self.done else None
        failed = f", {self.failed} failed" if self.failed else ""
        left = "ETA unknown" if eta is None else f"ETA {duration(eta)}"
        return f"[{self.done}/{self.total} cells{failed}, {duration(elapsed)} elapsed, {left}]"
