"""Progressive Forward-Forward: layer k is trained for all its epochs before layer k+1
starts (the published benchmark's mode). Layers, loss and prediction are those of `ff`;
a finished layer is frozen and its Adam moments are freed.

Layer 0 reads its batches from the training set (held on the host) like `ff`. Layer k >= 1
is fed one of two ways (option `cache`):

- cache=false, streaming: each batch is label-embedded (fresh negatives every step) and
  pushed through the frozen layers 0..k-1 again, without gradients.
- cache=true: the inputs of layer k for the whole training set, positive and negative rows,
  (2N, hidden), stay on the device (memory category "cache"); a step gathers its 2B rows
  there. The negatives' wrong labels are drawn once, when the cache is filled after layer 0.
  Moving on to the next layer overwrites the cache in place, one chunk of rows at a time, so
  one cache is alive at any moment. (The published code built the next cache while the old
  one was still alive, which doubles it: its ~2 GB at 2 layers, hidden 2000, 60,000 images.)

One measured train step (`train_step`) is one update of the deepest layer, in the state in
which it is trained: every lower layer frozen and, with cache=true, its whole-dataset input
cache alive. The first call moves there (filling the cache from the training set given to
`use_training_set`), so warm-up pays for it and the memory pass sees that state. With the
cache on, this is the peak of the whole training run: earlier layers' steps hold the same
parameters, at most as many Adam moments (when hidden >= 784) and no larger cache. Streaming,
layer 0's step can be the larger one when hidden < 784 (its Adam moments are 784 wide).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor, nn

from ffbench.algorithms import account
from ffbench.algorithms.account import INT64_BYTES, MemoryAccount
from ffbench.algorithms.base import matmul_flops
from ffbench.algorithms.ff import (
    FF_MNIST_5K,
    LATE_OPTIONS,
    ForwardForward,
    ff_readout_account,
    local_update,
    readout_sizes,
)
from ffbench.algorithms.readout import with_parts
from ffbench.data import (
    BatchStream,
    in_order,
    positive_and_negative,
    rows_with_negatives,
    train_size,
)
from ffbench.measure.tracker import category
from ffbench.settings.cell import MNIST_PIXELS, CellSpec

FROZEN_LAYERS = (
    "only the layer in training has gradients and Adam moments; finished layers are frozen "
    "and their moments freed"
)


class ProgressiveFF(ForwardForward):
    name = "ff-progressive"
    display_name = "progressive FF"
    summary = (
        "FF trained one layer at a time, all epochs each (the published benchmark's mode); "
        "cache=true keeps the layer's inputs for the whole training set on the device"
    )
    options = {"readout_from_layer": 1, "cache": False, **LATE_OPTIONS}
    preset_settings = {"mnist-5k-accuracy": FF_MNIST_5K}
    accuracy_target: ClassVar[float | None] = 0.93
    gradient_note = FROZEN_LAYERS

    @classmethod
    def memory_account(cls, spec: CellSpec) -> MemoryAccount:
        """In the deepest layer's Adam step (see `progressive_account`)."""
        return progressive_account(spec, cache=bool(spec.options["cache"]), on_device=True)

    def __init__(self, spec: CellSpec, device: torch.device) -> None:
        super().__init__(spec, device)
        self.use_cache = self.keeps_cache(spec)
        self.current = 0  # the layer being trained
        self.stream: BatchStream | None = None
        self.cache: Tensor | None = None  # (2N, hidden): current layer's inputs, pos then neg
        # this epoch's order of the cached images, and how many of them were taken
        self.order = torch.empty(0, dtype=torch.long, device=self.cache_device)
        self.taken = 0

    def keeps_cache(self, spec: CellSpec) -> bool:
        return bool(spec.options["cache"])

    @property
    def cache_device(self) -> torch.device:
        return self.device

    def load(self, rows: Tensor) -> Tensor:
        """Cache rows to the device (here they are there already)."""
        return rows

    def store(self, destination: Tensor, rows: Tensor) -> None:
        """Device rows into (a slice of) the cache."""
        destination.copy_(rows)

    def use_training_set(self, stream: BatchStream) -> None:
        self.stream = stream

    def fit(self, stream: BatchStream, epochs: int,
            after_epoch: Callable[[int], None] | None = None) -> None:
        """Each layer for `epochs` passes, one after the other; `after_epoch(n)` after the
        n-th pass of the whole run (layer k's passes are k * epochs + 1 ...)."""
        self.stream = stream
        for index in range(len(self.layers)):
            if index:
                self.advance()
            for epoch in range(1, epochs + 1):
                for _ in range(stream.steps_per_epoch):
                    self._train_on(stream)
                if after_epoch is not None:
                    after_epoch(index * epochs + epoch)

    def step(self, stream: BatchStream) -> Tensor:
        """One update of the deepest layer (see the module docstring); reading the cache, it
        draws no batch from the stream (but for the linear read-out's step)."""
        self._move_to_deepest()
        return self._train_on(stream)

    def _train_on(self, stream: BatchStream) -> Tensor:
        """One update of the current layer and, with the linear read-out, one of the
        read-out, on the same batch (kept through the layer's update)."""
        if self.readout is None:
            return self.train_current(self._next_rows(stream))
        return self._train_current_on(*stream.next())

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One update of the deepest layer on the batch (x, y), or on cached rows (then the
        batch is used by the linear read-out's step only)."""
        self._move_to_deepest()
        return self._train_current_on(x, y)

    def _train_current_on(self, x: Tensor, y: Tensor) -> Tensor:
        rows = self._cached_rows() if self._reads_cache() else self._streamed_rows(x, y)
        loss = self.train_current(rows)
        if self.readout is None:
            return loss
        del rows
        return torch.stack([loss, self.readout_step(x, y)])

    def _move_to_deepest(self) -> None:
        while self.current < len(self.layers) - 1:
            self.advance()

    def train_current(self, rows: Tensor) -> Tensor:
        """One local update of the current layer on its input rows ([positive; negative])."""
        _, loss = self.train_layer(self.current, rows)
        return loss

    def advance(self) -> None:
        """Freeze the current layer (its Adam moments go) and start training the next one."""
        self.optimizers[self.current].state.clear()
        self.current += 1
        if self.use_cache:
            self._refill_cache()

    def _reads_cache(self) -> bool:
        return self.use_cache and self.current > 0

    def _next_rows(self, stream: BatchStream) -> Tensor:
        return self._cached_rows() if self._reads_cache() else self._streamed_rows(*stream.next())

    @torch.no_grad()
    def _streamed_rows(self, x: Tensor, y: Tensor) -> Tensor:
        """(2B, width): the batch with true and wrong labels, through the frozen layers."""
        with category("inputs"):
            h = positive_and_negative(x, y)  # (2B, 784)
        for index in range(self.current):
            h = self.layers[index](h)
        return h

    def _cached_rows(self) -> Tensor:
        """(2B, hidden): B cached positive rows and the negative rows of the same images."""
        assert self.cache is not None
        n_images, batch = len(self.cache) // 2, self.spec.batch_size
        if self.taken + batch > len(self.order):  # a new epoch over the cache
            self.order, self.taken = torch.randperm(n_images, device=self.cache_device), 0
        images = self.order[self.taken : self.taken + batch]
        self.taken += batch
        with category("inputs"):
            # whole rows at a time (see data.BatchStream.next)
            return self.load(self.cache.index_select(0, torch.cat([images, images + n_images])))

    @torch.no_grad()
    def _refill_cache(self) -> None:
        """The inputs of layer `current` for the whole training set, in place of the last."""
        first = self.cache is None
        if first:
            self.cache = self._empty_cache()
        if self.device.type == "meta":  # fake tensors: no values to compute, only shapes
            return
        if first:
            self._fill_cache_from_data()
        else:
            self._pass_cache_through(self.layers[self.current - 1])

    def _empty_cache(self) -> Tensor:
        """(2N, hidden) for the N training images (the training stream's)."""
        if self.stream is None:
            raise RuntimeError("ff-progressive with cache=true needs use_training_set(stream)")
        with category("cache"):
            return torch.empty(
                2 * len(self.stream.labels), self.spec.hidden,
                device=self.cache_device, dtype=self.dtype,
            )

    def _pass_cache_through(self, layer: nn.Module) -> None:
        """Each cached row through `layer`, in place, 2B rows at a time (a step's worth)."""
        assert self.cache is not None
        for part in self.cache.split(self.rows_per_step(self.spec)):  # type: ignore[no-untyped-call]
            self.store(part, layer(self.load(part)))

    def _fill_cache_from_data(self) -> None:
        """Layer 0's outputs for every training image, with its true label (rows 0..N-1)
        and with one wrong label drawn now (rows N..2N-1)."""
        assert self.cache is not None and self.stream is not None
        n_images, start = len(self.stream.labels), 0
        batches = in_order(
            self.stream.images, self.stream.labels, self.spec.batch_size, self.device, self.dtype
        )
        for x, y in batches:
            out = self.layers[0](positive_and_negative(x, y))  # (2b, hidden)
            b = len(y)
            self.store(self.cache[start : start + b], out[:b])
            self.store(self.cache[n_images + start : n_images + start + b], out[b:])
            start += b

    def persistent_tensors(self) -> dict[str, list[Tensor]]:
        persistent = super().persistent_tensors()
        persistent["cache"] = [] if self.cache is None else [self.cache]
        return persistent

    def train_flops_per_step(self) -> int:
        # the deepest layer: forward + weight gradient; streaming also runs the frozen ones
        linears = [layer.linear for layer in self.layers]
        rows = self.rows_per_step(self.spec)
        frozen = [] if self.use_cache else linears[:-1]
        return (2 * matmul_flops(rows, linears[-1:]) + matmul_flops(rows, frozen)
                + self.readout_train_flops())


def progressive_account(spec: CellSpec, cache: bool, on_device: bool) -> MemoryAccount:
    """In the deepest layer's update (`ff.local_update`): that layer's moments (the frozen
    layers' are freed); its input rows (2B, width) and its output (2B, hidden); with the
    cache read (layers past the first), the cache (2N, hidden) and this epoch's order of the
    N images (int64). Streaming, the batch through the first frozen layer can hold more.
    With the linear read-out: its parameters and moments throughout, the batch kept through
    the layer's update for the read-out's step after it (`ff.ff_readout_account`).
    `on_device`: every layer and the cache are on the measured device (ff-layerwise keeps
    them on the host)."""
    rows, n_images = rows_with_negatives(spec.batch_size), train_size(spec.dataset)
    layers = account.hidden_widths(spec)
    params = [account.linear(fan_in, fan_out, spec) for fan_in, fan_out in layers]
    deepest, k = params[-1], len(layers) - 1
    reads_cache = cache and k > 0
    fan_in = MNIST_PIXELS if k == 0 else spec.hidden
    layer_input = account.matrix(rows, fan_in, spec)
    readout = readout_sizes(spec)
    batch = account.batch(spec.batch_size, spec) if readout else 0  # kept for the read-out
    # the labelled batch is "inputs"; a frozen layer's output streamed in is an activation
    inputs = layer_input if reads_cache or k == 0 else 0
    around = account.matrix(rows, spec.hidden, spec) + layer_input - inputs
    cached = account.matrix(2 * n_images, spec.hidden, spec) if reads_cache and on_device else 0
    order = n_images * INT64_BYTES if reads_cache and on_device else 0
    parameters = (sum(map(sum, params)) if on_device else sum(deepest)) + sum(readout)
    optimizer_state = account.optimizer_state(deepest + readout, spec)
    moments = [
        MemoryAccount.of(
            f"layer {k}'s {moment}",
            parameters=parameters,
            gradients=gradients,
            optimizer_state=optimizer_state,
            inputs=inputs + batch,
            cache=cached,
            activations=around + order + activations,
        )
        for moment, gradients, activations in local_update(spec, fan_in, deepest)
    ]
    if not cache and k > 0:
        first_frozen = account.matrix(rows, MNIST_PIXELS, spec)
        moments.append(MemoryAccount.of(
            "streaming the batch through layer 0 (frozen)",
            parameters=parameters,
            optimizer_state=optimizer_state,
            inputs=account.batch(spec.batch_size, spec) + first_frozen,
            activations=first_frozen + account.matrix(rows, spec.hidden, spec),
        ))
    if readout:
        held = MemoryAccount.of("", parameters=parameters, optimizer_state=optimizer_state,
                                inputs=batch, cache=cached,
                                activations=order + account.element_bytes(spec))  # + its loss
        moments += ff_readout_account(spec, params, held, copied=not on_device)
    return with_parts(account.largest(moments), spec, readout)


ALGORITHM = ProgressiveFF
