"""Memory models of `ff-progressive` and `ff-layerwise` (algorithms/ff_progressive.py,
ff_layerwise.py): layer k trained to the end before layer k + 1.

A measured step is one update of the deepest layer, every lower layer frozen and without
Adam moments. Its rows are streamed (the batch through the frozen layers, no grad) or, with
the cache, gathered from the (2N, hidden) whole-training-set cache of its inputs, which is
then the largest thing alive. ff-layerwise keeps the cache, the epoch's permutation and the
frozen layers on the host: on cuda or meta only the layer in training, its moments and a
step's rows are on the device, and prediction copies each frozen layer's weights in for
its call. On --device cpu, host and device are one memory.
"""

from __future__ import annotations

from dataclasses import dataclass

from ffbench.memory_model.core import (
    INT64_BYTES,
    Block,
    CellModel,
    Sizes,
    Timeline,
    adam_state,
    layer_widths,
    load_batch,
    static_bytes,
)
from ffbench.memory_model.ff import (
    check_goodness,
    frozen_layer,
    layer_params,
    positive_and_negative,
    predict,
    train_layer,
)
from ffbench.spec import CellSpec

# Training images per dataset (data.py: synthetic and mnist 60,000; mnist-5k 4,000 of 5,000).
TRAIN_IMAGES = {"synthetic": 60_000, "mnist": 60_000, "mnist-5k": 4_000}


@dataclass(frozen=True)
class Placement:
    """Where the progressive state lives: the cache (if any), the epoch's permutation of the
    cached images and the frozen layers, on the measured device or on the host."""

    cache: bool
    host_side: bool  # ff-layerwise: on the host, counted only where the host is the device

    def counted(self, s: Sizes) -> bool:
        return not self.host_side or s.host_measured


def model(spec: CellSpec) -> CellModel:
    return progressive_model(spec, Placement(bool(spec.options["cache"]), host_side=False))


def layerwise_model(spec: CellSpec) -> CellModel:
    return progressive_model(spec, Placement(cache=True, host_side=True))


def progressive_model(spec: CellSpec, place: Placement) -> CellModel:
    check_goodness(spec)
    s = Sizes.of(spec)
    start = persistent(spec, place, s)
    train = Timeline(start)
    train_step(train, spec, place, s)
    # the permutation made (or first seen) in training stays alive into the eval phase
    order = {"epoch order": train.live["epoch order"]} if "epoch order" in train.live else {}
    evaluation = Timeline(start | order)
    frozen = frozenset(range(spec.n_layers - 1))
    streamed = frozenset() if place.counted(s) else frozen  # copied in for their call
    predict(evaluation, spec, s, streamed)
    return CellModel(train.peak, evaluation.peak, static_bytes(start))


def persistent(spec: CellSpec, place: Placement, s: Sizes) -> dict[str, Block]:
    """Every layer's parameters, the deepest layer's Adam state, and the cache."""
    layers = layer_params(spec, s)
    frozen = [p for layer in layers[:-1] for p in layer] if place.counted(s) else []
    state = {p.name: Block(p.nbytes, "parameters") for p in frozen}
    state |= adam_state(layers[-1], s)
    if reads_cache(spec, place) and place.counted(s):
        state["cache"] = Block(s.matrix(2 * TRAIN_IMAGES[spec.dataset], spec.hidden), "cache")
    return state


def reads_cache(spec: CellSpec, place: Placement) -> bool:
    """The first layer reads its batches from the data, never from a cache."""
    return place.cache and spec.n_layers > 1


def cached_rows(t: Timeline, spec: CellSpec, place: Placement, s: Sizes) -> str:
    """cache[cat(images, images + N)] for the next B images of the epoch's permutation
    (an N int64 tensor made in warm-up; the tracker first sees it here, through a slice)."""
    batch, rows = spec.batch_size, 2 * spec.batch_size
    if place.counted(s):
        t.alloc("epoch order", TRAIN_IMAGES[spec.dataset] * INT64_BYTES)
        t.alloc("images + N", batch * INT64_BYTES, "inputs")
        t.alloc("row indices", rows * INT64_BYTES, "inputs")
        t.free("images + N")
        t.alloc("rows", s.matrix(rows, spec.hidden), "inputs")
        t.free("row indices")
        return "rows"
    t.alloc("rows", s.matrix(rows, spec.hidden), "inputs")  # copied in from the host
    return "rows"


def streamed_rows(t: Timeline, spec: CellSpec, s: Sizes) -> str:
    """The batch labelled (positive; negative), through the frozen layers without grad."""
    positive_and_negative(t, spec.batch_size, s)
    rows = "h"
    for i in range(spec.n_layers - 1):
        out = frozen_layer(t, f"frozen {i}", 2 * spec.batch_size, layer_widths(spec)[i], s)
        t.free(rows)
        rows = out
    return rows


def train_step(t: Timeline, spec: CellSpec, place: Placement, s: Sizes) -> None:
    """One update of the deepest layer on its rows; its output is dropped at once."""
    if reads_cache(spec, place):  # the cache feeds the step: no batch is drawn
        rows = cached_rows(t, spec, place, s)
    else:
        load_batch(t, spec.batch_size, s)
        rows = streamed_rows(t, spec, s)
        t.free("x", "y")  # only the streaming held the batch
    deepest = spec.n_layers - 1
    train_layer(t, deepest, spec, layer_params(spec, s)[deepest], s)
    t.free(f"out {deepest}", rows)
