"""What a GPU's caching allocator will report for a cell, predicted on the meta device.

The cell's own sequence on CUDA (cell.memory_peaks) is replayed on meta under the tensor
tracker: build, `warmup_steps` train steps and one eval batch, then the memory pass
(empty_cache, MEMORY_PASS_STEPS train steps; empty_cache, one eval batch). Its event log
(every storage's alloc and free, exact bytes, in program order) goes through
measure.allocator's model of the caching allocator, plus the cuBLAS workspaces: one for the
thread that calls the step and one for the autograd engine's backward thread when the step
runs a matmul in backward (on CUDA, backward runs on a device thread of its own).
Tensors a step moves to host memory (bp's `offload_activations`) leave the log as frees
when the device copy is dropped, and come back as new allocations when they are brought
back: the allocator sees them leave the device (tests/test_offload.py).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from ffbench.algorithms.resolve import resolved
from ffbench.cell.built import (
    MEMORY_PASS_STEPS,
    Built,
    PhasePeak,
    build,
    load_dataset,
    phase_peak,
    tracker_of,
)
from ffbench.measure.allocator import Block, CachingAllocator
from ffbench.measure.meta_cache import MetaShapeCache
from ffbench.measure.tracker import Event
from ffbench.settings.cell import CellSpec

# aten ops that call cuBLAS (and so create the calling thread's workspace)
CUBLAS_OPS = frozenset(
    {"mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "dot", "vdot",
     "_addmm_activation", "matmul", "linear"}
)


@dataclass(frozen=True)
class AllocatorPeaks:
    """Predicted max_memory_allocated / max_memory_reserved of each phase, in bytes."""

    train_allocated_bytes: int
    train_reserved_bytes: int
    eval_allocated_bytes: int
    eval_reserved_bytes: int
    workspaces: int  # cuBLAS workspaces resident (threads that ran a matmul)

    def columns(self) -> dict[str, int]:
        return {
            "predicted_train_peak_allocated_bytes": self.train_allocated_bytes,
            "predicted_train_peak_reserved_bytes": self.train_reserved_bytes,
            "predicted_eval_peak_allocated_bytes": self.eval_allocated_bytes,
            "predicted_eval_peak_reserved_bytes": self.eval_reserved_bytes,
        }


# Output shapes depend only on an op and its arguments' shapes, dtypes and values, so one
# cache serves every cell a process traces (a meta sweep worker's cells: only the first pays
# for the real meta kernels, 0.1 to 1 ms each, of a new shape or step-dependent scalar).
_SHAPES = MetaShapeCache()


class _MetaOps:
    """Runs the tracker's ops through the meta shape cache, noting which threads ran a cuBLAS
    op: the step's own, and autograd's backward thread."""

    def __init__(self) -> None:
        self.cache = _SHAPES
        self.cublas: dict[int, bool] = {}  # id(op) -> whether it calls cuBLAS
        self.matmul_in_forward = False
        self.matmul_in_backward = False

    def __call__(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cublas = self.cublas.get(id(func))  # ops live as long as the process
        if cublas is None:
            cublas = self.cublas[id(func)] = func.overloadpacket.__name__ in CUBLAS_OPS
        if cublas:
            if torch._C._current_graph_task_id() == -1:
                self.matmul_in_forward = True
            else:
                self.matmul_in_backward = True
        return self.cache.call(func, args, kwargs)


@dataclass(frozen=True)
class EventLog:
    """A cell's predicted events, cut into phases: [setup, train, eval]."""

    events: list[Event]
    train_start: int
    eval_start: int
    end: int
    workspaces: int


def event_log(spec: CellSpec, steps: int = MEMORY_PASS_STEPS) -> EventLog:
    """Run the cell's CUDA sequence on meta under the tracker (see the module docstring);
    `steps` train steps in the memory pass (every step after the first repeats it)."""
    spec = resolved(spec)
    return traced_sequence(build(spec, load_dataset(spec), torch.device("meta")),
                           spec.warmup_steps, steps).log


@dataclass(frozen=True)
class TracedSequence:
    """One run of a cell's sequence on meta: its event log and its tracked phase peaks."""

    log: EventLog
    train: PhasePeak
    eval: PhasePeak


def traced_sequence(
    built: Built, warmup_steps: int, steps: int, warm_up_eval: bool = True, *,
    module_paths: bool = False
) -> TracedSequence:
    """`warmup_steps` train steps and one eval batch, then `steps` train steps and one eval
    batch, all under one tracker: the events for the allocator model, and the same tracked
    peaks (with the host's, where it is not the device) as cell.memory_pass's. The warm-up's
    eval batch shapes only the allocator's cache: without it (`warm_up_eval=False`, where no
    allocator view is wanted) the peaks are the same. `module_paths`: as built.tracker_of."""
    ops = _MetaOps()
    # no peak is followed through the warm-up: nobody reads it
    with _no_automatic_collection(), tracker_of(
            built, ops, peaks_from_start=False, module_paths=module_paths) as tracker:
        for _ in range(warmup_steps):
            built.algorithm.step(built.train)
        if warm_up_eval:
            built.algorithm.predict(built.eval.next()[0])
        gc.collect()  # where the memory pass collects: before each phase (cuda.reset_peaks)
        train_start = len(tracker.events)
        tracker.reset_peak()
        tracker.track_host()
        for _ in range(steps):
            built.algorithm.step(built.train)
        train = phase_peak(tracker, train_start)
        gc.collect()
        eval_start = len(tracker.events)
        tracker.reset_peak()
        built.algorithm.predict(built.eval.next()[0])
        evaluation = phase_peak(tracker, eval_start)
        end = len(tracker.events)
    workspaces = int(ops.matmul_in_forward) + int(ops.matmul_in_backward)
    log = EventLog(list(tracker.events), train_start, eval_start, end, workspaces)
    return TracedSequence(log, train, evaluation)


@contextmanager
def _no_automatic_collection() -> Iterator[None]:
    """The garbage collector runs only where the trace calls it, as the memory pass does
    (before each phase), never at an arbitrary op of it: the trace's frees do not depend on
    how many Python objects came before. (The automatic ones also scan the growing event
    log each time: 8% of an rff cell's time at 16 layers.)"""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def replay(log: EventLog, workspace_bytes: int) -> AllocatorPeaks:
    """The event log through the caching allocator model, phase by phase."""
    allocator = CachingAllocator()
    for _ in range(log.workspaces):  # created by the first matmuls of the warm-up, kept
        allocator.malloc(workspace_bytes)
    blocks: dict[int, Block] = {}
    peaks: list[tuple[int, int]] = []
    for start, stop in ((0, log.train_start), (log.train_start, log.eval_start),
                        (log.eval_start, log.end)):
        allocator.empty_cache()  # cuda.reset_peaks
        allocator.reset_peaks()
        for kind, key, nbytes, *_ in log.events[start:stop]:
            if nbytes == 0:
                continue  # the allocator hands out no block for an empty storage
            if kind == "alloc":
                blocks[key] = allocator.malloc(nbytes)
            elif key in blocks:
                allocator.free(blocks.pop(key))
        peaks.append((allocator.peak_allocated_bytes, allocator.peak_reserved_bytes))
    (_, _), (train_alloc, train_reserved), (eval_alloc, eval_reserved) = peaks
    return AllocatorPeaks(train_alloc, train_reserved, eval_alloc, eval_reserved,
                          log.workspaces)
