"""A deterministic tensor-level memory tracker, split by category, on any device.

Every aten op's outputs pass through `TensorTracker.__torch_dispatch__`; each new
storage on the measured device is counted (exact `nbytes`, no allocator rounding)
until Python drops it. Storages alive when tracking starts are counted too, if the
algorithm reports them as persistent (parameters, optimizer state, caches).

Event log: `TensorTracker.events` lists, in program order from `__enter__` on, every
storage on the tracked device as it appears ("alloc": persistent ones at `__enter__`, the
rest from the op that made them) and as Python drops it ("free"), with its bytes, its
category when created, the op, and the module path (from forward hooks on the model's
modules, when the tracker is given the model; "" outside any module's forward). `explain`
finds a phase's peak, and where it is, by replaying it (`replay`).

Categories: a storage is "parameters", "gradients", "optimizer_state" or "cache" when
the algorithm reports it so at the moment of the peak; otherwise it keeps the
category in force when it was created (see `category`): "inputs", "eval_replication",
or "activations" (saved activations and temporaries) by default.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
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


class TrackerEvent(NamedTuple):
    """An event's fields. The log stores each as a plain `Event` tuple (TrackerEvent(*event)
    names them): the garbage collector stops scanning a plain tuple of numbers and strings,
    but would scan a NamedTuple at every gc.collect() (a meta cell logs tens of thousands)."""

    kind: str  # "alloc" or "free"
    key: int  # storage identity (storage_key)
    nbytes: int  # exact storage bytes
    category: str  # category when created (see measure.categories)
    op: str  # aten op that created it ("persistent" for pre-existing storages)
    module: str  # module path from forward hooks ("" outside any module, or no model given)


Event = tuple[str, int, int, str, str, str]  # a TrackerEvent's fields, in its order
LiveEntry = tuple[int, str, str, str]  # a live storage's bytes, category, op and module


@dataclass(frozen=True)
class Replayed:
    """A phase replayed from the event log: its peak, and the allocation that reached it
    (None: the peak is what was alive when the phase began)."""

    peak_bytes: int
    at: TrackerEvent | None


def replay(events: list[Event], start: int = 0) -> Replayed:
    """Live bytes through `events`; the largest from index `start` on (at least what is
    alive at `start`) and the first allocation that reached it."""
    live = 0
    for kind, _, nbytes, *_ in events[:start]:
        live += nbytes if kind == "alloc" else -nbytes
    peak, at = live, None
    for event in events[start:]:
        kind, _, nbytes, *_ = event
        live += nbytes if kind == "alloc" else -nbytes
        if live > peak:
            peak, at = live, event
    return Replayed(peak, None if at is None else TrackerEvent(*at))


PersistentTensors = Callable[[], dict[str, list[torch.Tensor]]]
# runs one aten op: (op, args, kwargs) -> its outputs
OpRunner = Callable[[Any, tuple[Any, ...], dict[str, Any]], Any]


def run_op(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The op itself (measure.meta_cache's MetaShapeCache.call answers repeats on meta)."""
    return func(*args, **kwargs)


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


class _Ledger:
    """The live storages, released by weak-reference callbacks when Python drops one.

    It holds no tensor and nothing that leads to one (not the tracker, whose
    `persistent` leads to the model): a callback kept alive by a live parameter must not
    keep that parameter alive, or a cell's model would never be freed."""

    def __init__(self) -> None:
        # storage key -> (bytes, category when created, the op that created it, module path)
        self.live: dict[int, LiveEntry] = {}
        self.live_bytes = 0
        self._refs: dict[int, weakref.ref[torch.UntypedStorage]] = {}
        self.events: list[Event] = []

    def add(self, storage: torch.UntypedStorage, key: int, entry: LiveEntry) -> None:
        self.live[key] = entry
        self.live_bytes += entry[0]
        self._refs[key] = weakref.ref(storage, self._releaser(key))
        self.events.append(("alloc", key, *entry))

    def _releaser(self, key: int) -> Callable[[weakref.ref[torch.UntypedStorage]], None]:
        return lambda _: self.release(key)

    def release(self, key: int) -> None:
        entry = self.live.pop(key, None)
        if entry is None:
            return
        self._refs.pop(key, None)
        self.live_bytes -= entry[0]
        self.events.append(("free", key, *entry))


class TensorTracker(TorchDispatchMode):
    """Live and peak bytes of tensors on one device type, split by category; and, once
    `track_host` is called, the peak of host memory beside it (one dispatch mode for both:
    each mode an op passes through costs it several microseconds of Python)."""

    def __init__(self, device: torch.device, persistent: PersistentTensors,
                 model: nn.Module | None = None, run: OpRunner = run_op,
                 peaks_from_start: bool = True) -> None:
        super().__init__()
        self.device_type = device.type
        # tensor -> whether it is on this device type (Tensor.is_meta, is_cuda, ...: a tenth
        # of the time of tensor.device.type, asked of every op's outputs)
        self._on_device: Callable[[torch.Tensor], bool] = (
            operator.attrgetter(f"is_{device.type}") if hasattr(torch.Tensor, f"is_{device.type}")
            else lambda tensor: tensor.device.type == device.type)
        self.persistent = persistent
        self.model = model  # its modules' forward hooks name the module path of each storage
        self.run = run  # how each op is run
        # id(op) -> (its name, whether it returns tensors); ops live as long as the process
        self._ops: dict[int, tuple[str, bool]] = {}
        self._module_path: list[str] = []  # innermost last
        self._hooks: list[Any] = []
        self.ledger = _Ledger()
        self.peak_bytes = 0
        # False: no peak is followed until the first reset_peak (a warm-up whose peak nobody
        # reads: each new peak costs a look at every persistent tensor)
        self._following_peak = peaks_from_start
        self.host: _Ledger | None = None  # host storages, from track_host on
        self._host_peak_bytes = 0
        # at the peak: the live storages and who owned which (classified when asked for:
        # a phase passes many peaks, and only its last is read)
        self._peak_live: dict[int, LiveEntry] = {}
        self._peak_owner: dict[int, str] = {}

    def __enter__(self) -> TensorTracker:
        self._track_persistent()
        self._record_peak()
        self._add_hooks()
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def track_host(self) -> None:
        """From now on, also count storages in host memory, where the device is not the host:
        the persistent ones at once, then each op's new ones; `host_peak_bytes` is their
        peak from now on (never reset: it runs over the phases that follow)."""
        if self.device_type == "cpu":
            return
        self.host = _Ledger()
        self._track_persistent()  # those on the device are counted already
        self._host_peak_bytes = self.host.live_bytes

    def _track_persistent(self) -> None:
        """Count the storages of the algorithm's persistent tensors, by their category."""
        for name, tensors in self.persistent().items():
            for tensor in tensors:
                self._track(tensor, name, "persistent")

    @property
    def host_peak_bytes(self) -> int | None:
        """Peak bytes of host storages since `track_host` (None: not tracked)."""
        return None if self.host is None else self._host_peak_bytes

    @property
    def events(self) -> list[Event]:
        """Allocations and frees on the tracked device in program order (module docstring)."""
        return self.ledger.events

    def _add_hooks(self) -> None:
        if self.model is None:
            return
        for path, module in self.model.named_modules():
            if path:  # the root's forward is the algorithm's whole step: no location
                self._hooks += [
                    module.register_forward_pre_hook(self._entering(path)),
                    module.register_forward_hook(self._leaving, always_call=True),
                ]

    def _entering(self, path: str) -> Callable[..., None]:
        def hook(*_: object) -> None:
            self._module_path.append(path)

        return hook

    def _leaving(self, *_: object) -> None:
        self._module_path.pop()

    @property
    def live(self) -> dict[int, LiveEntry]:
        """Storage key -> (bytes, category when created, the op that created it, module)."""
        return self.ledger.live

    @property
    def live_bytes(self) -> int:
        return self.ledger.live_bytes

    def reset_peak(self) -> None:
        """Start a new phase: its peak is at least what is alive now."""
        self._following_peak = True
        self._record_peak()

    def _record_peak(self) -> None:
        self.peak_bytes = self.live_bytes
        self._peak_live = dict(self.live)
        self._peak_owner = self._owners()

    @property
    def peak_storages(self) -> list[Storage]:
        """Every storage alive at the phase's peak, with its category then."""
        return _classify(self._peak_live, self._peak_owner)

    @property
    def peak_split(self) -> dict[str, int]:
        """Bytes by category at the phase's peak (every category present)."""
        split = dict.fromkeys(CATEGORIES, 0)
        for storage in self.peak_storages:
            split[storage.category] += storage.nbytes
        return split

    def _owners(self) -> dict[int, str]:
        """Storage key -> category of every persistent tensor right now."""
        return {
            t.untyped_storage()._cdata: name  # storage_key, inlined: asked at every new peak
            for name, tensors in self.persistent().items()
            for t in tensors
        }

    def _dispatch(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = self.run(func, args, kwargs or {})
        op = self._ops.get(id(func))
        if op is None:
            op = self._ops[id(func)] = (str(func), _returns_tensors(func))
        op_name, returns_tensors = op
        if not returns_tensors:  # a number (Tensor.item) or a profiler record: nothing to count
            return out
        if isinstance(out, torch.Tensor):  # most ops: one tensor
            grew = self._track(out, _current_category[0], op_name)
        else:
            grew = False
            for value in tree_flatten(out)[0]:
                if isinstance(value, torch.Tensor):
                    grew |= self._track(value, _current_category[0], op_name)
        if grew and self._following_peak and self.ledger.live_bytes > self.peak_bytes:
            self._record_peak()
        host = self.host
        if host is not None and host.live_bytes > self._host_peak_bytes:
            self._host_peak_bytes = host.live_bytes
        return out

    def _track(self, tensor: torch.Tensor, category: str, op: str) -> bool:
        """Count the tensor's storage if new (True: on the tracked device), as made by `op`
        (an aten op's name, or "persistent") in `category`."""
        if self._on_device(tensor):
            ledger = self.ledger
        elif self.host is not None and tensor.is_cpu:
            ledger = self.host
        else:
            return False
        storage = tensor.untyped_storage()
        key = storage._cdata
        if key in ledger.live:
            return False
        module = self._module_path[-1] if self._module_path else ""
        ledger.add(storage, key, (storage.nbytes(), category, op, module))
        return ledger is self.ledger

    # every op passes here; TorchDispatchMode wraps it so that torch.compile never traces it
    __torch_dispatch__ = _dispatch


class EagerTensorTracker(TensorTracker):
    """A tracker of steps that nothing compiles (the meta trace: `built.build` never compiles
    on meta), without that wrapper, which costs each op about a microsecond (3.0 against
    4.0 us for an op through a mode that does nothing else, on a 2-core x86 CPU)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:  # read by TorchDispatchMode.__init_subclass__
        return False

    __torch_dispatch__ = TensorTracker._dispatch


def _returns_tensors(func: Any) -> bool:
    """Whether an op can return a tensor (and so show the tracker a storage it has not seen,
    even through a view); no schema to go by: it might."""
    returns = getattr(getattr(func, "_schema", None), "returns", None)
    return returns is None or any("Tensor" in str(r.type) for r in returns)


def _classify(live: dict[int, LiveEntry], owner: dict[int, str]) -> list[Storage]:
    return [
        Storage(nbytes, owner.get(key, created_as), op)
        for key, (nbytes, created_as, op, _) in live.items()
    ]
