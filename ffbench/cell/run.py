"""Run one CellSpec in this process and return its result row (docs/measuring.md, "One cell").

Order: environment and NVML baseline; predicted peaks (meta device, no compute);
build and warm up on the device; memory pass (train, then eval); timing pass (train,
then eval); accuracy (only with epochs > 0 on real data).
"""

from __future__ import annotations

import gc
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch

from ffbench.algorithms import registry
from ffbench.algorithms.base import DTYPES, Algorithm
from ffbench.algorithms.resolve import cell_id, identity_columns, resolved
from ffbench.cell.allocator_view import EventLog, replay, traced_sequence
from ffbench.cell.built import (
    MEMORY_PASS_STEPS,
    Built,
    PhasePeak,
    build,
    load_dataset,
    phase_peak,
    tracker_of,
    warm_up,
)
from ffbench.data import Dataset, in_order
from ffbench.measure import cpu, cuda
from ffbench.measure.calibrate import calibrated_flops_per_s, matmul_shapes
from ffbench.measure.categories import CATEGORIES
from ffbench.measure.env import environment, utc_now
from ffbench.measure.nvml import NvmlPoller
from ffbench.measure.timer import Stopwatch, TimeSummary, time_calls
from ffbench.measure.tracker import storage_bytes
from ffbench.results import OOM_MARKERS, make_row, row_problem
from ffbench.settings.cell import CellSpec

log = logging.getLogger(__name__)

# On meta, one warm-up step creates the optimizer state and one measured step gives the
# peak: each step allocates the same shapes in the same order (tests pin the numbers).
META_WARMUP_STEPS = 1
META_MEMORY_PASS_STEPS = 1
EVAL_TIMING_REPEATS = 3
ERROR_TEXT_CHARS = 2000


def calibrated_rate(built: Built) -> float:
    """FLOP/s of this cell's own matmul shapes on its device (measure.calibrate)."""
    algorithm = built.algorithm
    shapes = matmul_shapes(algorithm.model, algorithm.rows_per_step(algorithm.spec))
    return calibrated_flops_per_s(shapes, algorithm.device, algorithm.dtype)


def static_bytes(algorithm: Algorithm) -> int:
    """Bytes on the algorithm's device that persist between steps: parameters + optimizer state."""
    persistent = algorithm.persistent_tensors()
    tensors = persistent["parameters"] + persistent["optimizer_state"]
    return storage_bytes([t for t in tensors if t.device.type == algorithm.device.type])


def settle_heap() -> None:
    """Collect garbage, then take every survivor out of the collector's view (gc.freeze):
    each phase's gc.collect() then scans only what is new, not torch's ~300k module
    objects (~0.4 s a time). Frozen objects are still freed by reference counting; only
    a reference cycle alive now would outlive its cell."""
    gc.collect()
    gc.freeze()


def memory_pass(built: Built, steps: int = MEMORY_PASS_STEPS, *,
                module_paths: bool = False) -> tuple[PhasePeak, PhasePeak]:
    """Peaks of `steps` train steps, then of one eval batch, each phase on its own
    (the host-side peak, where tracked, runs over both phases)."""
    device = built.algorithm.device
    settle_heap()
    cuda.reset_peaks(device)
    with tracker_of(built, module_paths=module_paths) as tracker:
        tracker.track_host()
        train_start = len(tracker.events)  # after the persistent storages' allocations
        for _ in range(steps):
            built.algorithm.step(built.train)
        train = phase_peak(tracker, train_start, *cuda.read_peaks(device))
        cuda.reset_peaks(device)
        tracker.reset_peak()
        eval_start = len(tracker.events)
        built.algorithm.predict(built.eval.next()[0])
        evaluation = phase_peak(tracker, eval_start, *cuda.read_peaks(device))
    return train, evaluation


@dataclass(frozen=True)
class Timing:
    train: TimeSummary
    eval_s: float  # median seconds per eval batch
    last_loss: float  # the last timed step's loss (mean over its parts)
    diverged_at_step: int | None  # 1-based timed step whose loss was first NaN or infinite


def first_non_finite(losses: list[torch.Tensor]) -> int | None:
    """1-based index of the first loss with a NaN or infinite entry (read after timing, so
    that no step waits for the host)."""
    for index, loss in enumerate(losses, start=1):
        if not bool(torch.isfinite(loss.float()).all()):
            return index
    return None


def timing_pass(built: Built, steps: int) -> Timing:
    """Train step times, eval batch median, the losses' last value and where they diverged."""
    device = built.algorithm.device
    losses: list[torch.Tensor] = []

    def step() -> None:
        losses.append(built.algorithm.step(built.train))

    train = TimeSummary.of(time_calls(step, steps, device))
    x_eval, _ = built.eval.next()
    eval_times = time_calls(lambda: built.algorithm.predict(x_eval), EVAL_TIMING_REPEATS, device)
    last_loss = float(losses[-1].float().mean())
    return Timing(train, TimeSummary.of(eval_times).median_s, last_loss, first_non_finite(losses))


@dataclass(frozen=True)
class Accuracy:
    test: float  # after the last epoch
    layers: str | None  # JSON list, each layer's own (bottom first); None where layers make none
    curve: str  # JSON [[epoch, train_seconds, test_accuracy], ...], one entry per epoch


def accuracy_on_test_images(algorithm: Algorithm, dataset: Dataset, spec: CellSpec) -> float:
    """Share of the test images the algorithm names right."""
    assert spec.eval_batch_size is not None
    correct = 0
    for x, y in in_order(dataset.test_images, dataset.test_labels, spec.eval_batch_size,
                         algorithm.device, DTYPES[spec.dtype]):
        correct += int((algorithm.predict(x) == y).sum())
    return correct / len(dataset.test_labels)


def layer_accuracy(algorithm: Algorithm, dataset: Dataset, spec: CellSpec) -> str | None:
    """Each layer's own test accuracy as a JSON list (bottom layer first), for algorithms
    whose layers predict on their own; None for the others."""
    assert spec.eval_batch_size is not None
    layer_correct = None
    for x, y in in_order(dataset.test_images, dataset.test_labels, spec.eval_batch_size,
                         algorithm.device, DTYPES[spec.dtype]):
        per_layer = algorithm.layer_predictions(x)  # (n_layers, E) or None
        if per_layer is None:
            return None
        hits = (per_layer == y).sum(dim=1)
        layer_correct = hits if layer_correct is None else layer_correct + hits
    assert layer_correct is not None
    n_test = len(dataset.test_labels)
    return json.dumps([round(int(c) / n_test, 6) for c in layer_correct])


def accuracy(spec: CellSpec, dataset: Dataset, device: torch.device) -> Accuracy:
    """Train a fresh model for `spec.epochs` epochs; test accuracy after each pass over the
    training set (an epoch; a progressive algorithm makes `epochs` passes per layer) with
    the training seconds so far, the evaluations' own time left out."""
    built = build(spec, dataset, device)
    algorithm, clock = built.algorithm, Stopwatch(device)
    curve: list[list[float]] = []

    def after_epoch(epoch: int) -> None:
        seconds = clock.stop()
        curve.append([epoch, round(seconds, 6), accuracy_on_test_images(algorithm, dataset, spec)])
        clock.start()

    clock.start()
    algorithm.fit(built.train, spec.epochs, after_epoch)
    return Accuracy(curve[-1][2], layer_accuracy(algorithm, dataset, spec), json.dumps(curve))


def predicted_peaks(spec: CellSpec, dataset: Dataset) -> tuple[PhasePeak, PhasePeak]:
    """The same steps on the meta device: fake tensors, no memory, no arithmetic; the
    fewest steps that give the same peaks, each op's output shapes worked out once per
    arguments (see measure.meta_cache)."""

    built = build(spec, dataset, torch.device("meta"))
    traced = traced_sequence(built, META_WARMUP_STEPS, META_MEMORY_PASS_STEPS,
                             warm_up_eval=False)
    return traced.train, traced.eval


@dataclass(frozen=True)
class MemoryPeaks:
    """A cell's tracked peaks on its device, its predicted (meta) ones, and the predicted
    event log that allocator_view replays for what CUDA's allocator will report."""

    built: Built
    train: PhasePeak
    eval: PhasePeak
    predicted_train: PhasePeak
    predicted_eval: PhasePeak
    log: EventLog


def memory_peaks(spec: CellSpec, dataset: Dataset, *, module_paths: bool = False) -> MemoryPeaks:
    """Build on the cell's device and run its memory pass, after predicting it on meta
    (on meta, the predicting pass is itself the measured one). One traced pass on meta
    gives both the tracked peaks and the event log: a warm-up step and a measured step give
    the peaks and the allocator's view of the cell's own warm-up and memory pass, to the
    byte (tests/test_allocator_view.py). `module_paths`: the events name the module that
    made each storage (explain)."""

    built = build(spec, dataset, torch.device(spec.device))
    meta = built if built.algorithm.device.type == "meta" else build(
        spec, dataset, torch.device("meta"))
    # a cpu cell has no allocator view: its pass skips the warm-up's eval batch
    traced = traced_sequence(meta, META_WARMUP_STEPS, META_MEMORY_PASS_STEPS,
                             warm_up_eval=spec.device != "cpu", module_paths=module_paths)
    if built is meta:
        return MemoryPeaks(built, traced.train, traced.eval, traced.train, traced.eval,
                           traced.log)
    warm_up(built, spec.warmup_steps)
    return MemoryPeaks(built, *memory_pass(built, module_paths=module_paths),
                       traced.train, traced.eval, traced.log)


def _split_columns(prefix: str, split: dict[str, int]) -> dict[str, int]:
    return {f"{prefix}mem_{name}_bytes": split.get(name, 0) for name in CATEGORIES}


def allocator_columns(events: EventLog, spec: CellSpec) -> dict[str, int]:
    """What CUDA's caching allocator will report (allocator_view): for the GPU in use, or on
    meta for the cell's target GPU."""
    from ffbench.settings.gpus import Gpu, cublas_workspace_bytes, gpu

    if spec.device.startswith("cuda"):
        properties = torch.cuda.get_device_properties(torch.device(spec.device))
        target = Gpu(properties.name, properties.total_memory,
                     (properties.major, properties.minor))
    else:
        target = gpu(spec.target_gpu)
    return replay(events, cublas_workspace_bytes(target)).columns()


def run_cell(spec: CellSpec, sweep_id: str = "") -> dict[str, Any]:
    """Measure one cell in this process; raises on failure (see `run_cell_row`)."""
    spec = resolved(spec)
    started_at, wall_start = utc_now(), time.perf_counter()
    device = torch.device(spec.device)
    poller = NvmlPoller(device.index or 0) if device.type == "cuda" else None
    if poller:
        poller.start()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    dataset = load_dataset(spec)

    peaks = memory_peaks(spec, dataset)
    built, train, evaluation = peaks.built, peaks.train, peaks.eval
    predicted_train, predicted_eval = peaks.predicted_train, peaks.predicted_eval
    values: dict[str, Any] = {
        "static_bytes": static_bytes(built.algorithm),
        "train_peak_tracked_bytes": train.tracked_bytes,
        "host_peak_tracked_bytes": evaluation.host_tracked_bytes,
        # closed form (the tracked host peak holds them all at the forward's end)
        "offloaded_bytes_per_step": registry.load(spec.algorithm).memory_account(
            spec).offloaded_bytes,
        "eval_peak_tracked_bytes": evaluation.tracked_bytes,
        "train_peak_allocated_bytes": train.allocated_bytes,
        "train_peak_reserved_bytes": train.reserved_bytes,
        "eval_peak_allocated_bytes": evaluation.allocated_bytes,
        "eval_peak_reserved_bytes": evaluation.reserved_bytes,
        "predicted_train_peak_bytes": predicted_train.tracked_bytes,
        "predicted_eval_peak_bytes": predicted_eval.tracked_bytes,
        **_split_columns("", train.split),
        **_split_columns("eval_", evaluation.split),
        "train_flops_per_step": built.algorithm.train_flops_per_step(),
        "eval_flops_per_batch": built.algorithm.eval_flops_per_batch(),
    }
    outcome: dict[str, Any] = {"status": "ok"}
    if device.type in ("meta", "cuda"):
        values |= allocator_columns(peaks.log, spec)
    if device.type != "meta":
        timing = timing_pass(built, spec.steps)
        step_times, eval_time_s, last_loss = timing.train, timing.eval_s, timing.last_loss
        if timing.diverged_at_step is not None:
            outcome = {"status": "diverged", "diverged_at_step": timing.diverged_at_step,
                       "error": f"the train loss became NaN or infinite at timed step "
                                f"{timing.diverged_at_step} of {spec.steps}"}
        achieved = values["train_flops_per_step"] / step_times.median_s
        calibrated = calibrated_rate(built)
        values |= {
            "step_time_median_s": step_times.median_s,
            "step_time_iqr_s": step_times.iqr_s,
            "step_time_min_s": step_times.min_s,
            "eval_time_s": eval_time_s,
            "samples_per_s": spec.batch_size / step_times.median_s,
            "achieved_flops_per_s": achieved,
            "calibrated_flops_per_s": calibrated,
            "efficiency": achieved / calibrated,
            "final_train_loss": last_loss,
        }
    if spec.epochs > 0 and dataset.real:
        reached = accuracy(spec, dataset, device)
        values |= {"test_accuracy": reached.test, "layer_accuracy": reached.layers,
                   "accuracy_curve": reached.curve}
    if poller:
        poller.stop()
        values["nvml_peak_used_bytes"] = poller.peak_used_bytes
        values["nvml_process_peak_used_bytes"] = poller.peak_process_bytes
    values |= identity_columns(spec, sweep_id) | {"threads": torch.get_num_threads()}
    return make_row(
        rows_per_step=built.algorithm.rows_per_step(built.algorithm.spec),
        **outcome,
        cell_wall_s=time.perf_counter() - wall_start,
        cpu_peak_rss_bytes=cpu.peak_rss_bytes(),
        started_at=started_at,
        **environment(device),
        **values,
    )


def classify(exc: BaseException) -> str:
    """Which failing status an exception means: running out of device or host memory is oom
    (the CPU allocator says so only in a RuntimeError's text)."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError) or any(
        marker in text for marker in OOM_MARKERS
    ):
        return "oom"
    return "error"


def run_cell_row(spec: CellSpec, sweep_id: str = "") -> dict[str, Any]:
    """Like `run_cell`, but a failure becomes a row with its status and error text."""
    started_at, wall_start = utc_now(), time.perf_counter()
    try:
        row = run_cell(spec, sweep_id)
        problem = row_problem(row)
        if problem:  # e.g. a byte count beyond 64 bits (meta cells of absurd sizes)
            raise ValueError(f"the result cannot be stored: {problem}")
        return row
    except Exception as exc:
        log.exception("cell %s failed", cell_id(spec))
        return make_row(
            **identity_columns(spec, sweep_id),
            status=classify(exc),
            error=f"{type(exc).__name__}: {exc}"[:ERROR_TEXT_CHARS],
            cell_wall_s=time.perf_counter() - wall_start,
            cpu_peak_rss_bytes=cpu.peak_rss_bytes(),
            started_at=started_at,
        )
