"""A deterministic tensor-level memory tracker, split by category, on any device.

Every aten op's outputs pass through `TensorTracker.__torch_dispatch__`; each new
storage on the measured device is counted (exact `nbytes`, no allocator rounding)
until Python drops it. Storages alive when tracking starts are counted too, if the
algorithm reports them as persistent (parameters, optimizer state, caches).

Categories: a storage is "parameters", "gradients", "optimizer_state" or "cache" when
the algorithm reports it so at the moment of the peak; otherwise it keeps the
category in force when it was created (see `category`): "inputs", "eval_replication",
or "activations" (saved activations and temporaries) by default.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ffbench.measure.categories import CATEGORIES, DEFAULT_CATEGORY

# Not thread-local on purpose: CUDA's autograd engine runs backward on its own thread.
_current_category = [DEFAULT_CATEGORY]



@dataclass(frozen=True)
class Storage:
    nbytes: int
    category: str
    op: str  # the aten op that created it, or "persistent"


PersistentTensors = Callable[[], dict[str, list[torch.Tensor]]]


@contextmanager
def category(name: str) -> Iterator[None]:
    """Storages created inside this block count as `name` (unless persistent at the peak)."""
    assert name in CATEGORIES, name
    previous = _current_category[0]
    _current_category[0] = name
    try:
        yield
    finally:
        _current_category[0] = previous


def storage_key(tensor: torch.Tensor) -> int:
    """Identity of the storage under a tensor (views share it)."""
    return int(tensor.untyped_storage()._cdata)


def storage_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes of the distinct storages under `tensors`."""
    seen = {storage_key(t): t.untyped_storage().nbytes() for t in tensors}
    return sum(seen.values())


class TensorTracker(TorchDispatchMode):
    """Live and peak bytes of tensors on one device type, split by category."""

    def __init__(self, device: torch.device, persistent: PersistentTensors) -> None:
        super().__init__()
        self.device_type = device.type
        self.persistent = persistent
        # storage key -> (bytes, category when created, the op that created it)
        self.live: dict[int, tuple[int, str, str]] = {}
        self.live_bytes = 0
        self.peak_bytes = 0
        self.peak_split: dict[str, int] = {}
        self.peak_storages: list[Storage] = []

    def __enter__(self) -> TensorTracker:
        for name, tensors in self.persistent().items():
            for tensor in tensors:
                self._track(tensor, name, "persistent")
        self.reset_peak()
        super().__enter__()
        return self

    def reset_peak(self) -> None:
        """Start a new phase: its peak is at least what is alive now."""
        self._record_peak()

    def _record_peak(self) -> None:
        self.peak_bytes = self.live_bytes
        self.peak_storages = self.storages()
        self.peak_split = dict.fromkeys(CATEGORIES, 0)
        for storage in self.peak_storages:
            self.peak_split[storage.category] += storage.nbytes

    def storages(self) -> list[Storage]:
        """Every live storage right now, with its category."""
        owner = {
            storage_key(t): name
            for name, tensors in self.persistent().items()
            for t in tensors
        }
        return [
            Storage(nbytes, owner.get(key, created_as), op)
            for key, (nbytes, created_as, op) in self.live.items()
        ]

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        flat, _ = tree_flatten(out)
        grew = False
        for value in flat:
            if isinstance(value, torch.Tensor):
                grew |= self._track(value, _current_category[0], str(func))
        if grew and self.live_bytes > self.peak_bytes:
            self._record_peak()
        return out

    def _track(self, tensor: torch.Tensor, name: str, op: str) -> bool:
        if tensor.device.type != self.device_type:
            return False
        storage = tensor.untyped_storage()
        key = int(storage._cdata)
        if key in self.live:
            return False
        nbytes = storage.nbytes()
        self.live[key] = (nbytes, name, op)
        self.live_bytes += nbytes
        weakref.finalize(storage, self._release, key)
        return True

    def _release(self, key: int) -> None:
        nbytes, _, _ = self.live.pop(key, (0, "", ""))
        self.live_bytes -= nbytes
