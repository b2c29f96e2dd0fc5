"""A cell's algorithm built on its device, with its batch streams and dataset, warmed up;
and what the measuring passes (cell) and the meta trace (allocator_view) share: a phase's
peak, the tracker of a cell, the memory pass's length."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ffbench.algorithms import registry
from ffbench.algorithms.base import DTYPES, Algorithm
from ffbench.data import BatchStream, Dataset, load
from ffbench.measure.tracker import (
    EagerTensorTracker,
    Event,
    OpRunner,
    Storage,
    TensorTracker,
    run_op,
)
from ffbench.settings.cell import CellSpec

MEMORY_PASS_STEPS = 2  # the peak is reached in every step after warm-up; two show it repeats


@dataclass
class Built:
    """One algorithm on one device, with its train and eval batch streams."""

    algorithm: Algorithm
    train: BatchStream
    eval: BatchStream


@dataclass(frozen=True)
class PhasePeak:
    tracked_bytes: int
    split: dict[str, int]
    allocated_bytes: int | None
    reserved_bytes: int | None
    # host-side tracked peak up to the end of this phase (None where host is the device)
    host_tracked_bytes: int | None = None
    storages: tuple[Storage, ...] = ()  # alive at the peak, oldest first (for `explain`)
    # the tracker's event log up to the phase's end, and where the phase begins in it
    events: tuple[Event, ...] = ()
    phase_start: int = 0


_datasets: dict[tuple[str, int, str | None], Dataset] = {}


def load_dataset(spec: CellSpec) -> Dataset:
    """The cell's dataset; cells run one after another in one process (a sweep worker) share
    it, since nothing writes into it (generating the synthetic one takes ~1 s)."""
    key = (spec.dataset, spec.seed, spec.data_dir)
    if key not in _datasets:
        _datasets.clear()  # keep one
        _datasets[key] = load(spec)
    return _datasets[key]


def build(spec: CellSpec, dataset: Dataset, device: torch.device) -> Built:
    """Model, optimizers and streams, seeded so every build of a spec is the same."""
    torch.manual_seed(spec.seed)
    algorithm = registry.load(spec.algorithm)(spec, device)
    if spec.compile and device.type != "meta":  # predictions are of the eager steps
        algorithm.compile()
    dtype = DTYPES[spec.dtype]
    assert spec.eval_batch_size is not None
    train = BatchStream(
        dataset.train_images, dataset.train_labels, spec.batch_size, device, dtype, spec.seed
    )
    evaluation = BatchStream(
        dataset.test_images, dataset.test_labels, spec.eval_batch_size, device, dtype, spec.seed
    )
    algorithm.use_training_set(train)
    return Built(algorithm, train, evaluation)


def warm_up(built: Built, steps: int, eval_batches: int = 1) -> None:
    """Lazily created state (optimizer moments, workspaces) appears here, not in a peak."""
    for _ in range(steps):
        built.algorithm.step(built.train)
    for _ in range(eval_batches):
        built.algorithm.predict(built.eval.next()[0])


def warmed_up(spec: CellSpec, steps: int) -> Built:
    """The cell built on its own device and warmed up: ready to time or profile."""
    built = build(spec, load_dataset(spec), torch.device(spec.device))
    warm_up(built, steps)
    return built


def tracker_of(built: Built, run: OpRunner = run_op, peaks_from_start: bool = True,
               module_paths: bool = False) -> TensorTracker:
    """The tensor tracker of a built cell's device (its ops run by `run`); `module_paths`:
    name the module that made each storage (explain reads them; the hooks that name them
    cost every module call: ~3% of a meta cell)."""
    algorithm = built.algorithm
    # module paths come from forward hooks, which a compiled forward would recompile for
    model = algorithm.model if module_paths and not algorithm.spec.compile else None
    # on meta the steps are never compiled (`build`)
    tracker = EagerTensorTracker if algorithm.device.type == "meta" else TensorTracker
    return tracker(algorithm.device, algorithm.persistent_tensors, model, run, peaks_from_start)


def phase_peak(tracker: TensorTracker, start: int, allocated_bytes: int | None = None,
               reserved_bytes: int | None = None) -> PhasePeak:
    """The phase that began at event `start` and ends now, as the tracker saw it (and, on
    CUDA, the allocator's peaks)."""
    return PhasePeak(tracker.peak_bytes, tracker.peak_split, allocated_bytes, reserved_bytes,
                     tracker.host_peak_bytes, storages=tuple(tracker.peak_storages),
                     events=tuple(tracker.events), phase_start=start)
