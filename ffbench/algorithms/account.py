"""Closed-form memory accounts: an algorithm's train-step peak as arithmetic in its sizes.

Each algorithm's `memory_account(spec)` (beside its step, in its own module) says what is
alive at the moment its train step peaks, by memory category, from the layer sizes, batch,
dtype and optimizer alone (no torch). It is the independent check of the tracker: the
tracked peak on meta must match it (tests/test_algorithm_contract.py). The pieces every
algorithm shares are here: parameter sizes, optimizer state, the optimizer step's
temporaries, a loaded batch.

Host tensors: on `--device cpu` the host *is* the measured device, so Adam's float32 step
counters count there; on cuda and meta they do not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ffbench.measure.categories import CATEGORIES
from ffbench.settings.cell import HOST_DEVICE, MNIST_PIXELS, CellSpec

DTYPE_BYTES = {"float32": 4, "bfloat16": 2}
INT64_BYTES = 8  # labels, sampler indices, argmax
STEP_COUNTER_BYTES = 4  # Adam's `step`: a float32 scalar on the host (not capturable)
# optimizer -> per parameter: state tensors of the parameter's size, host step counter
OPTIMIZER_STATE = {"adam": (2, True), "momentum": (1, False), "sgd": (0, False)}


@dataclass(frozen=True)
class MemoryAccount:
    """Bytes alive at the train step's peak, by category, and the moment that is.

    `exact` names the categories the formula counts to the byte; the others (small
    temporaries: norms, loss scalars) it may leave out, so only the total is close.
    `offloaded_bytes`: what a train step moves to host memory and back (the device peak
    leaves it out); `notes`: one line each that `explain` shows."""

    split: dict[str, int]
    at: str
    exact: tuple[str, ...] = ("parameters", "gradients", "optimizer_state", "inputs", "cache")
    notes: dict[str, str] = field(default_factory=dict)
    offloaded_bytes: int = 0
    # bytes of named parts inside the split (a linear read-out's parameters), for `explain`
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(self.split.values())

    @classmethod
    def of(cls, at: str, **parts: int) -> MemoryAccount:
        unknown = set(parts) - set(CATEGORIES)
        assert not unknown, unknown
        return cls({name: parts.get(name, 0) for name in CATEGORIES}, at)


def largest(moments: Iterable[MemoryAccount]) -> MemoryAccount:
    """The moment the train step peaks: the candidate holding the most bytes."""
    return max(moments, key=lambda moment: moment.nbytes)


def optimizer(spec: CellSpec) -> str:
    return getattr(spec, "optimizer", "adam")


def element_bytes(spec: CellSpec) -> int:
    return DTYPE_BYTES[spec.dtype]


def host_measured(spec: CellSpec) -> bool:
    return spec.device == HOST_DEVICE


def linear(fan_in: int, fan_out: int, spec: CellSpec, bias: bool = True) -> list[int]:
    """Bytes of nn.Linear's parameters in `parameters()` order: weight (out, in), bias (out,)."""
    e = element_bytes(spec)
    return [fan_out * fan_in * e] + ([fan_out * e] if bias else [])


def hidden_widths(spec: CellSpec) -> list[tuple[int, int]]:
    """(in, out) of each hidden Linear: 784 -> hidden -> ... -> hidden."""
    widths = [MNIST_PIXELS] + [spec.hidden] * spec.n_layers
    return list(zip(widths[:-1], widths[1:], strict=True))


def optimizer_state(params: Sequence[int], spec: CellSpec) -> int:
    """State of an optimizer over `params` (bytes each) after its first step."""
    copies, counters = OPTIMIZER_STATE[optimizer(spec)]
    counter_bytes = STEP_COUNTER_BYTES * len(params) if counters and host_measured(spec) else 0
    return copies * sum(params) + counter_bytes


def step_temporaries(params: Sequence[int], spec: CellSpec) -> int:
    """Most bytes the optimizer step holds at once besides its state. Single-tensor Adam
    makes, per parameter, `denom = (v.sqrt() / c).add_(eps)`: the sqrt and the denom, and
    the previous parameter's denom lives until the next is assigned. SGD (with or without
    momentum) updates in place."""
    if optimizer(spec) != "adam":
        return 0
    previous = [0, *params[:-1]]
    return max((before + 2 * now for before, now in zip(previous, params, strict=True)),
               default=0)


def batch(rows: int, spec: CellSpec) -> int:
    """A loaded batch on the device: x (rows, 784) in the cell's dtype and labels y (rows,)."""
    return rows * MNIST_PIXELS * element_bytes(spec) + rows * INT64_BYTES


def matrix(rows: int, cols: int, spec: CellSpec) -> int:
    return rows * cols * element_bytes(spec)
