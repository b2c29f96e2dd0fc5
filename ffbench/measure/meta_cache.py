"""Faster fake (meta) steps: each aten op's output shapes are worked out once per arguments.

On the meta device an op computes nothing but its outputs' shapes, and many ops do even
that in Python (torch._refs and prims: 0.1 to 1 ms each). A step repeats the same ops on
the same shapes layer after layer (rff: iterations x layers), so `MetaShapeCache`
remembers, per (op, its arguments' shapes, strides, dtypes and values), the shapes and
strides of the outputs, and answers a repeat with fresh empty meta tensors of those; an
in-place op (`add_`, Adam's `lerp_`, ...) whose checks passed once for the same arguments
returns its `self`, as its kernel would. Views, ops whose output shape depends on data,
and anything not on meta run as usual. The memory numbers do not change: the outputs get
storages of the same size (tests pin them).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_SCALARS = (bool, int, float, str, torch.dtype, torch.device, torch.memory_format, torch.layout)
_UNCACHEABLE = object()
_META = torch.device("meta")

OutputSpec = tuple[tuple[int, ...], tuple[int, ...], torch.dtype]


class _Uncacheable(Exception):
    pass


def _key(values: tuple[Any, ...] | list[Any]) -> tuple[Any, ...]:
    """A hashable summary of arguments (nested lists too): what a meta kernel's output can
    depend on. A loop, not a call per argument: it runs for every op."""
    parts: list[Any] = []
    for value in values:
        if isinstance(value, torch.Tensor):
            parts.append((value.device, value.dtype, value.shape, value.stride(),
                          value.storage_offset()))
        elif isinstance(value, (list, tuple)):
            parts.append(_key(value))
        elif value is None or isinstance(value, _SCALARS):
            parts.append((type(value), value))
        else:
            raise _Uncacheable
    return tuple(parts)


def _kind(func: Any) -> str:
    """"functional" (fresh outputs), "inplace" (returns its mutated self) or "other"."""
    schema = func._schema
    if torch.Tag.dynamic_output_shape in func.tags or func.is_view:
        return "other"
    returns = schema.returns
    if not schema.is_mutable:
        return "functional" if all(r.alias_info is None for r in returns) else "other"
    first = schema.arguments[0].alias_info if schema.arguments else None
    writes_only_self = sum(a.alias_info is not None and a.alias_info.is_write
                           for a in schema.arguments) == 1
    if (len(returns) == 1 and returns[0].alias_info is not None and first is not None
            and first.is_write and writes_only_self and not schema.arguments[0].kwarg_only):
        return "inplace"
    return "other"


def _spec(out: Any) -> list[OutputSpec] | None:
    """The outputs' shapes, if each is a fresh meta tensor that empty_strided can remake."""
    outputs = list(out) if isinstance(out, (tuple, list)) else [out]
    specs = []
    for tensor in outputs:
        if not isinstance(tensor, torch.Tensor) or tensor.device.type != "meta":
            return None
        shape, stride = tuple(tensor.shape), tensor.stride()
        probe = torch.empty_strided(shape, stride, dtype=tensor.dtype, device="meta")
        same_storage = probe.untyped_storage().nbytes() == tensor.untyped_storage().nbytes()
        if tensor.storage_offset() != 0 or not same_storage:
            return None
        specs.append((shape, stride, tensor.dtype))
    return specs


class MetaShapeCache(TorchDispatchMode):
    """Remembers meta ops' output shapes per arguments: a dispatch mode of its own, or, inside
    the tracker's (measure.tracker's `run`), its `call`."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: dict[int, str] = {}  # id(op) -> its kind
        self.outputs: dict[Any, Any] = {}
        self.hits = 0

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        return self.call(func, args, kwargs or {})

    def call(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The op's outputs: fresh ones of the remembered shapes for a repeat."""
        op = id(func)  # ops live as long as the process; hashing one runs Python code
        kind = self.kinds.get(op)
        if kind is None:
            kind = self.kinds[op] = _kind(func)
        if kind == "other":
            return func(*args, **kwargs)
        try:
            key = (op, _key(args), _key(tuple(kwargs.items())) if kwargs else ())
        except _Uncacheable:
            return func(*args, **kwargs)
        known = self.outputs.get(key)
        if known is None:
            return self._first_call(func, kind, key, args, kwargs)
        if known is _UNCACHEABLE:  # the key names each argument's device: so is its repeat
            return func(*args, **kwargs)
        self.hits += 1
        if kind == "inplace":
            return args[0]
        specs, container = known
        if container is None:  # one tensor
            shape, stride, dtype = specs[0]
            return torch.empty_strided(shape, stride, dtype=dtype, device=_META)
        return container([torch.empty_strided(shape, stride, dtype=dtype, device=_META)
                          for shape, stride, dtype in specs])

    def _first_call(self, func: Any, kind: str, key: Any, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        out = func(*args, **kwargs)
        if not _on_meta(args):  # a host op (Adam's step count): its values are real
            self.outputs[key] = _UNCACHEABLE
        elif kind == "inplace":
            self.outputs[key] = ([], None) if out is args[0] else _UNCACHEABLE
        else:
            specs = _spec(out)
            container = type(out) if isinstance(out, (tuple, list)) else None
            self.outputs[key] = _UNCACHEABLE if specs is None else (specs, container)
        return out


def _on_meta(args: tuple[Any, ...]) -> bool:
    """The first tensor argument is on meta (others may be host scalars)."""
    for arg in args:
        tensors = arg if isinstance(arg, (list, tuple)) else (arg,)
        for value in tensors:
            if isinstance(value, torch.Tensor):
                return value.is_meta
    return False
