"""The tracker's event log: allocations and frees in program order, with module paths,
replaying to the tracker's own peak."""

from __future__ import annotations

import pytest
import torch

from ffbench.algorithms import registry
from ffbench.algorithms.resolve import resolved
from ffbench.cell.allocator_view import traced_sequence
from ffbench.cell.built import build, load_dataset, warm_up
from ffbench.cell.run import META_WARMUP_STEPS
from ffbench.measure.tracker import TensorTracker, TrackerEvent, replay
from ffbench.settings.cell import CellSpec

META = torch.device("meta")


@pytest.mark.parametrize("name", registry.names())
def test_the_log_replays_to_the_tracked_peak(name: str) -> None:
    spec = resolved(CellSpec(name, n_layers=2, hidden=64, batch_size=32, device="meta"))
    built = build(spec, load_dataset(spec), META)
    warm_up(built, META_WARMUP_STEPS, eval_batches=0)
    algorithm = built.algorithm
    with TensorTracker(META, algorithm.persistent_tensors, algorithm.model) as tracker:
        start = len(tracker.events)
        algorithm.step(built.train)
    events = [TrackerEvent(*event) for event in tracker.events]
    assert {e.op for e in events[:start]} == {"persistent"}
    assert all(e.kind == "alloc" for e in events[:start])
    assert replay(tracker.events, start).peak_bytes == tracker.peak_bytes
    live: dict[int, int] = {}
    for event in events:  # every free is of a live storage, with the bytes it came with
        if event.kind == "alloc":
            assert event.key not in live
            live[event.key] = event.nbytes
        else:
            assert live.pop(event.key) == event.nbytes
    assert sum(live.values()) == tracker.live_bytes


def test_module_paths_come_from_forward_hooks() -> None:
    spec = resolved(CellSpec("bp", n_layers=2, hidden=64, batch_size=32, device="meta"))
    built = build(spec, load_dataset(spec), META)
    warm_up(built, META_WARMUP_STEPS, eval_batches=0)
    algorithm = built.algorithm
    with TensorTracker(META, algorithm.persistent_tensors, algorithm.model) as tracker:
        algorithm.step(built.train)
    made = {(op, module) for kind, _, _, _, op, module in tracker.events if kind == "alloc"}
    # the Linears' outputs in forward, made inside each Linear; backward and Adam outside
    assert {("aten.addmm.default", f"layers.{i}") for i in range(2)} <= made
    assert ("aten.addmm.default", "head") in made
    assert ("aten.sqrt.default", "") in made  # Adam's step
    hooks = sum(len(m._forward_pre_hooks) + len(m._forward_hooks)
                for m in algorithm.model.modules())
    assert hooks == 0  # removed on exit


@pytest.mark.parametrize("name", ["bp", "rff"])
def test_module_paths_are_named_on_request_and_change_nothing_else(name: str) -> None:
    """A sweep's cells trace without the forward hooks (nobody reads the paths there); the
    same cell traced with them (explain) differs only in the module field."""
    spec = resolved(CellSpec(name, n_layers=3, hidden=64, batch_size=32, device="meta"))
    dataset = load_dataset(spec)
    plain, named = (
        traced_sequence(build(spec, dataset, META), META_WARMUP_STEPS, 1, module_paths=paths)
        for paths in (False, True)
    )
    assert {TrackerEvent(*e).module for e in plain.log.events} == {""}
    assert len({TrackerEvent(*e).module for e in named.log.events}) > 1
    # kind, bytes, category and op in order (keys are storage addresses, new each run)
    without_module = [
        [(e.kind, e.nbytes, e.category, e.op) for e in map(TrackerEvent._make, log.events)]
        for log in (plain.log, named.log)
    ]
    assert without_module[0] == without_module[1]
    assert (plain.train.tracked_bytes, plain.train.split, plain.eval.split) == (
        named.train.tracked_bytes, named.train.split, named.eval.split)
