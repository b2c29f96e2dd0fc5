"""The timeline every algorithm's memory model is written on, and the pieces they share.

A model replays a step as named blocks allocated and freed in program order; the
largest live total is the phase's peak, and its split by category is what the tensor
tracker should find there (exact bytes, no allocator rounding, like the tracker).

Host tensors: on `--device cpu` the host *is* the measured device, so the sampler's
index tensor and Adam's float32 step counters count; on cuda and meta they do not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ffbench.measure.categories import CATEGORIES, DEFAULT_CATEGORY
from ffbench.spec import MNIST_PIXELS, CellSpec

DTYPE_BYTES = {"float32": 4, "bfloat16": 2}
INT64_BYTES = 8  # labels, sampler indices, argmax
PIXEL_BYTES = 1  # images are uint8 until converted on the device
STEP_COUNTER_BYTES = 4  # Adam's `step`: a float32 scalar on the host (not capturable)
HOST_DEVICE = "cpu"


@dataclass(frozen=True)
class Block:
    nbytes: int
    category: str


@dataclass(frozen=True)
class Peak:
    """A phase's largest live total, its split by category, and the allocation that reached it."""

    nbytes: int
    split: dict[str, int]
    at: str


class Timeline:
    """Named blocks allocated and freed in program order; keeps the largest live total."""

    def __init__(self, start: dict[str, Block]) -> None:
        self.live = dict(start)
        self.live_bytes = sum(block.nbytes for block in start.values())
        self.peak = self._snapshot("start of phase")

    def alloc(self, name: str, nbytes: int, category: str = DEFAULT_CATEGORY) -> None:
        assert name not in self.live, f"{name} allocated twice"
        self.live[name] = Block(nbytes, category)
        self.live_bytes += nbytes
        if self.live_bytes > self.peak.nbytes:
            self.peak = self._snapshot(name)

    def free(self, *names: str) -> None:
        for name in names:
            self.live_bytes -= self.live.pop(name).nbytes

    def relabel(self, name: str, category: str) -> None:
        """A block changes category (a gradient buffer once AccumulateGrad makes it `.grad`)."""
        self.live[name] = Block(self.live[name].nbytes, category)

    def _snapshot(self, at: str) -> Peak:
        split = dict.fromkeys(CATEGORIES, 0)
        for block in self.live.values():
            split[block.category] += block.nbytes
        return Peak(self.live_bytes, split, at)


@dataclass(frozen=True)
class Param:
    name: str
    nbytes: int


@dataclass(frozen=True)
class Sizes:
    """What every model needs from the spec besides its shape."""

    element_bytes: int  # one value of the cell's dtype
    host_measured: bool  # --device cpu: host tensors are on the measured device

    @classmethod
    def of(cls, spec: CellSpec) -> Sizes:
        return cls(DTYPE_BYTES[spec.dtype], spec.device == HOST_DEVICE)

    def matrix(self, rows: int, cols: int) -> int:
        return rows * cols * self.element_bytes


@dataclass(frozen=True)
class CellModel:
    """Peaks of the train phase (one step: every measured step is alike) and of one eval batch."""

    train: Peak
    eval: Peak
    static_bytes: int  # parameters + optimizer state on the measured device


def layer_widths(spec: CellSpec) -> list[tuple[int, int]]:
    """(in_features, out_features) of each hidden Linear: 784 -> hidden -> ... -> hidden."""
    widths = [MNIST_PIXELS] + [spec.hidden] * spec.n_layers
    return list(zip(widths[:-1], widths[1:], strict=True))


def linear_params(name: str, fan_in: int, fan_out: int, s: Sizes) -> list[Param]:
    """nn.Linear's weight (out, in) and bias (out,), in `parameters()` order."""
    return [
        Param(f"{name}.weight", s.matrix(fan_out, fan_in)),
        Param(f"{name}.bias", s.matrix(fan_out, 1)),
    ]


def adam_state(params: list[Param], s: Sizes) -> dict[str, Block]:
    """Parameters, Adam's two moments each, and its step counters (host tensors)."""
    state: dict[str, Block] = {}
    for p in params:
        state[p.name] = Block(p.nbytes, "parameters")
        state[f"exp_avg {p.name}"] = Block(p.nbytes, "optimizer_state")
        state[f"exp_avg_sq {p.name}"] = Block(p.nbytes, "optimizer_state")
        if s.host_measured:
            state[f"step {p.name}"] = Block(STEP_COUNTER_BYTES, "optimizer_state")
    return state


def static_bytes(start: dict[str, Block]) -> int:
    return sum(b.nbytes for b in start.values() if b.category in ("parameters", "optimizer_state"))


Phase = Callable[[Timeline, CellSpec, Sizes], None]


def replay(spec: CellSpec, s: Sizes, start: dict[str, Block], train_step: Phase,
           predict: Phase) -> CellModel:
    """Both phases from the same persistent state: one train step, one eval batch."""
    train, evaluation = Timeline(start), Timeline(start)
    train_step(train, spec, s)
    predict(evaluation, spec, s)
    return CellModel(train.peak, evaluation.peak, static_bytes(start))


def load_batch(t: Timeline, rows: int, s: Sizes) -> None:
    """BatchStream.next: gather uint8 rows on the host, copy them, convert to x; keeps x, y."""
    if s.host_measured:
        t.alloc("sampler indices", rows * INT64_BYTES)  # torch.from_numpy(indices)
    t.alloc("images uint8", rows * MNIST_PIXELS * PIXEL_BYTES, "inputs")
    t.alloc("y", rows * INT64_BYTES, "inputs")
    t.alloc("x", s.matrix(rows, MNIST_PIXELS), "inputs")  # x.to(dtype).div_(255)
    if s.host_measured:
        t.free("sampler indices")
    t.free("images uint8")


def linear_backward(t: Timeline, name: str, grad_out: str, shape: tuple[int, int, int],
                    s: Sizes, input_grad: bool) -> None:
    """AddmmBackward of `name` for (rows, in, out): grad of the input (if it needs one),
    of the weight and of the bias; then the incoming gradient is released and
    AccumulateGrad makes the two new buffers the parameters' `.grad`."""
    rows, fan_in, fan_out = shape
    if input_grad:
        t.alloc(f"grad in {name}", s.matrix(rows, fan_in))
    t.alloc(f"grad {name}.weight", s.matrix(fan_out, fan_in))
    t.alloc(f"grad {name}.bias", s.matrix(fan_out, 1))
    t.free(grad_out)
    t.relabel(f"grad {name}.weight", "gradients")
    t.relabel(f"grad {name}.bias", "gradients")


def adam_step(t: Timeline, params: list[Param]) -> None:
    """Single-tensor Adam: per parameter `denom = (v.sqrt() / c).add_(eps)`: two temporaries
    of the parameter's size; the previous `denom` lives until the next one is assigned.
    Moments, step counter and parameter are updated in place."""
    previous = None
    for p in params:
        t.alloc(f"adam sqrt {p.name}", p.nbytes)
        t.alloc(f"adam denom {p.name}", p.nbytes)
        t.free(f"adam sqrt {p.name}")
        if previous:
            t.free(previous)
        previous = f"adam denom {p.name}"
    if previous:
        t.free(previous)


def zero_grad(t: Timeline, params: list[Param]) -> None:
    """zero_grad(set_to_none=True): the gradients are gone before the next step."""
    t.free(*(f"grad {p.name}" for p in params))
