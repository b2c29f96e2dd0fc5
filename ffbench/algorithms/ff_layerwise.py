"""Layer-wise Forward-Forward: progressive training (see `ff_progressive`) with only the
layer being trained, and its Adam moments, on the device; device memory does not grow with
depth.

Every layer lives in host memory except the one being trained. The inputs of that layer for
the whole training set, positive and negative rows, (2N, hidden), are kept in host memory
(the frozen layers' outputs, computed once); each step gathers its 2B rows there and copies
them to the device. Moving on to the next layer streams the host cache through the finished
layer, chunk by chunk, and writes the outputs back in place; then the finished layer goes to
the host and the next one comes to the device. Prediction streams the layers' weights to the
device one at a time.

One measured train step is, as in `ff_progressive`, one update of the deepest layer. On
`--device cpu` host and device are the same memory; the host's share is reported on its own
(`host_peak_tracked_bytes`) on any other device, the fake `meta` one included, whose fake
weights carry no values: what comes back from it to the host is left uninitialized.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from ffbench.algorithms import account, readout
from ffbench.algorithms.account import MemoryAccount
from ffbench.algorithms.base import make_optimizer
from ffbench.algorithms.ff import FF_MNIST_5K, LATE_OPTIONS
from ffbench.algorithms.ff_progressive import FROZEN_LAYERS, ProgressiveFF, progressive_account
from ffbench.measure.tracker import category
from ffbench.settings.cell import CellSpec

HOST = torch.device("cpu")


def move(module: nn.Module, device: torch.device) -> None:
    """Parameters to `device` in place (optimizers keep pointing at them). Fake (meta)
    weights carry no values, so on a real device they arrive uninitialized."""
    if device.type != "meta" and any(p.is_meta for p in module.parameters()):
        module.to_empty(device=device)
    else:
        module.to(device)


class LayerwiseFF(ProgressiveFF):
    name = "ff-layerwise"
    display_name = "layer-wise FF"
    summary = (
        "progressive FF with only the layer in training on the device; frozen layers' "
        "outputs kept in host memory and streamed in batch by batch"
    )
    options = {"readout_from_layer": 1, **LATE_OPTIONS}
    preset_settings = {"mnist-5k-accuracy": FF_MNIST_5K}
    accuracy_target = 0.93
    gradient_note = FROZEN_LAYERS + " (and on the host, off the device)"

    @classmethod
    def memory_account(cls, spec: CellSpec) -> MemoryAccount:
        """ff-progressive's with the cache on; off the host, only the layer in training (and
        the rows it reads) on the device."""
        return progressive_account(spec, cache=True, on_device=account.host_measured(spec))

    def __init__(self, spec: CellSpec, device: torch.device) -> None:
        super().__init__(spec, HOST)  # every layer built in host memory
        self.device = device
        self._bring_to_device(0)
        if self.readout is not None:  # the linear read-out lives on the device
            move(self.readout, device)
            self.optimizers[-1] = make_optimizer(
                list(self.readout.parameters()), readout.readout_spec(spec))

    def keeps_cache(self, spec: CellSpec) -> bool:
        return True

    @property
    def cache_device(self) -> torch.device:
        return HOST

    def load(self, rows: Tensor) -> Tensor:
        if self.device.type == "cuda":
            rows = rows.pin_memory()  # an asynchronous copy needs page-locked memory
        return rows.to(self.device, non_blocking=True)

    def store(self, destination: Tensor, rows: Tensor) -> None:
        if not rows.is_meta:  # fake rows have no values to bring back
            destination.copy_(rows)

    def advance(self) -> None:
        super().advance()  # the refill runs the finished layer, still on the device
        finished = self.current - 1
        move(self.layers[finished], HOST)
        # Its optimizer (state cleared) would keep the device's Parameters alive where the
        # move replaced them (meta to cpu); on cuda the move is in place. A fresh one over the
        # moved Parameters holds nothing on the device either way.
        self.optimizers[finished] = make_optimizer(
            list(self.layers[finished].parameters()), self.spec)
        self._bring_to_device(self.current)

    def _bring_to_device(self, index: int) -> None:
        """Layer `index` to the device, with a fresh Adam: moving between devices of different
        kinds (meta and cpu) replaces the Parameter objects an older optimizer would hold."""
        move(self.layers[index], self.device)
        assert self.spec.lr is not None
        self.optimizers[index] = make_optimizer(list(self.layers[index].parameters()), self.spec)

    def eval_layer(self, index: int, h: Tensor) -> Tensor:
        """Layer `index` with its weights copied to the device for this call only."""
        layer = self.layers[index]
        with category("parameters"):
            weights = {
                name: p.to(self.device, non_blocking=True) for name, p in layer.named_parameters()
            }
        out: Tensor = functional_call(layer, weights, (h,))
        return out


ALGORITHM = LayerwiseFF
