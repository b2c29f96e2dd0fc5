"""A sweep's progress as plain lines, for output that is not a terminal (CI, nohup, a log
file), and the estimate of a run's length given before it starts. Pure; no printing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Rough seconds per cell, by device kind: a fresh process (~3 s of it importing torch on
# a CPU), the build, the warm-up and the measured steps. Only the estimate before a run
# starts uses these; once cells finish, the ETA comes from their own times.
SECONDS_PER_CELL = {"meta": 0.5, "cpu": 5.0, "cuda": 20.0}
UNKNOWN_DEVICE_SECONDS = 20.0
QUIET_INTERVAL_S = 30.0  # a line at least this often while a long cell runs
SECONDS_PER_MINUTE = 60


def estimate_s(device: str, cells: int, jobs: int = 1) -> float:
    per_cell = SECONDS_PER_CELL.get(device.partition(":")[0], UNKNOWN_DEVICE_SECONDS)
    return per_cell * cells / max(jobs, 1)


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
