"""Activation offloading: saved-tensor hooks that keep what autograd saves for the backward
in host memory between the forward and the backward.

Inside `offloaded(device)` (one train step's forward), every tensor autograd saves that the
forward computed (it, or the tensor it views, has a grad_fn) is copied to host memory at
pack, and the device copy is dropped by autograd; it comes back to the device at unpack,
when the backward reaches the node that needs it. Leaves stay where they are: parameters
(and views of them: a Linear saves its weight transposed), the batch and its labels are on
the device for the whole step anyway, so moving them would copy bytes for nothing.

Two things `torch.autograd.graph.save_on_cpu(pin_memory=True)` does not do:
- a storage saved twice in the same version (bp's in-place ReLU output is saved by the
  ReLU and by the next Linear) is copied to the host once, and its device copy, made at
  its first unpack, is handed to its last unpack too, then dropped: each activation
  crosses the host link once each way per step;
- parameters stay on the device (save_on_cpu copies a saved weight out and back, and the
  copy back is a second weight on the device while its backward runs).

Copies run on the compute stream (pinned host memory, non-blocking, stream-ordered): no
overlap with compute is attempted, so a measured step time carries their whole cost.

On the meta device, which stands for a GPU, a saved tensor has no values to copy: its host
stand-in is an uninitialized host tensor of the same size (the tensor tracker counts it as
host bytes), and unpack makes a fresh meta tensor of it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

HOST = torch.device("cpu")
# a saved tensor's identity within one forward: storage, offset, shape, strides, version
SavedKey = tuple[int, int, tuple[int, ...], tuple[int, ...], int]


class HostCopy:
    """One saved activation in host memory, and its device copy while unpacks remain. The
    graph's saved variables hold it: it goes when the last node that saved it has run."""

    def __init__(self, host: Tensor, device: torch.device, pinned: bool) -> None:
        self.host = host
        self.device = device
        self.pinned = pinned
        self.uses = 0  # packs not yet unpacked
        self.on_device: Tensor | None = None

    def unpack(self) -> Tensor:
        if self.on_device is None:
            self.on_device = self.host.to(self.device, non_blocking=self.pinned)
        tensor = self.on_device
        self.uses -= 1
        if self.uses <= 0:  # the last node that saved it: it holds the device copy now
            self.on_device = None
        return tensor


class Offloader:
    """The pack and unpack hooks of one forward (see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.pinned = device.type == "cuda"  # an asynchronous copy needs page-locked memory
        # during the forward only: saved tensor -> (its storage, weakly; its host copy)
        self.saved: dict[SavedKey, tuple[weakref.ref[Any], HostCopy]] = {}

    def pack(self, tensor: Tensor) -> Tensor | HostCopy:
        origin = tensor if tensor._base is None else tensor._base
        if origin.grad_fn is None:  # a leaf: a parameter, the batch, its labels
            return tensor
        storage = tensor.untyped_storage()
        key = (int(storage._cdata), int(tensor.storage_offset()), tuple(tensor.shape),
               tensor.stride(), tensor._version)
        known = self.saved.get(key)
        # the same live storage (a dead one's address may be reused by a new tensor)
        if known is not None and known[0]() is not None:
            copy = known[1]
        else:
            copy = HostCopy(self._to_host(tensor), self.device, self.pinned)
            self.saved[key] = (weakref.ref(storage), copy)
        copy.uses += 1
        return copy

    def _to_host(self, tensor: Tensor) -> Tensor:
        host = torch.empty(tensor.shape, dtype=tensor.dtype, device=HOST, pin_memory=self.pinned)
        if not tensor.is_meta:  # a meta tensor has no values: its stand-in stays uninitialized
            host.copy_(tensor, non_blocking=self.pinned)
        return host

    @staticmethod
    def unpack(packed: Tensor | HostCopy) -> Tensor:
        return packed if isinstance(packed, Tensor) else packed.unpack()


@contextmanager
def offloaded(device: torch.device) -> Iterator[None]:
    """Saved activations of the forward run inside go to host memory until the backward."""
    offloader = Offloader(device)
    try:
        with torch.autograd.graph.saved_tensors_hooks(offloader.pack, offloader.unpack):
            yield
    finally:
        offloader.saved.clear()  # dedup is for the forward; the graph holds the copies now
