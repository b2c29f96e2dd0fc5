"""The tracker's event log: allocations and frees in program order, with module paths,
replaying to the tracker's own peak."""

from __future__ import annotations

import pytest
import torch

from ffbench.algorithms import registry
from ffbench.built import build, load_dataset, warm_up
from ffbench.cell import META_WARMUP_STEPS
from ffbench.measure.tracker import TensorTracker, TrackerEvent, replay
from ffbench.spec import CellSpec

META = torch.device("meta")


@pytest.mark.parametrize("name", registry.names())
def test_the_log_replays_to_the_tracked_peak(name: str) -> None:
    spec = CellSpec(name, n_layers=2, hidden=64, batch_size=32, device="meta").resolved()
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
    spec = CellSpec("bp", n_layers=2, hidden=64, batch_size=32, device="meta").resolved()
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
