"""Wall time of device work: CUDA events on a GPU, perf_counter after a sync elsewhere."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


def time_calls(fn: Callable[[], object], repeats: int, device: torch.device) -> list[float]:
    """Seconds per call of `fn`, each timed on its own (no host sync inside `fn` needed)."""
    if device.type == "cuda":
        return _time_cuda(fn, repeats, device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _time_cuda(fn: Callable[[], object], repeats: int, device: torch.device) -> list[float]:
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        for _ in range(repeats)
    ]
    torch.cuda.synchronize(device)
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize(device)
    return [start.elapsed_time(end) / 1000 for start, end in events]


@dataclass(frozen=True)
class TimeSummary:
    median_s: float
    iqr_s: float
    min_s: float

    @classmethod
    def of(cls, times_s: list[float]) -> TimeSummary:
        if len(times_s) >= 2:
            q1, _, q3 = statistics.quantiles(times_s, n=4, method="inclusive")
        else:
            q1 = q3 = times_s[0]
        return cls(statistics.median(times_s), q3 - q1, min(times_s))


class Stopwatch:
    """Seconds of device work summed over the spans between `start` and `stop` (a CUDA device
    is synchronized before each reading), so that the work between spans (an evaluation)
    is left out."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.elapsed_s = 0.0
        self._started: float | None = None

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start(self) -> None:
        self._sync()
        self._started = time.perf_counter()

    def stop(self) -> float:
        """End the span; the seconds summed so far."""
        assert self._started is not None, "stop without start"
        self._sync()
        self.elapsed_s += time.perf_counter() - self._started
        self._started = None
        return self.elapsed_s
