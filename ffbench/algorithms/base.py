"""What every algorithm provides to the measurement code."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ffbench.algorithms.account import MemoryAccount
from ffbench.data import BatchStream
from ffbench.errors import BadInput
from ffbench.settings.cell import MOMENTUM, CellSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def make_optimizer(params: list[nn.Parameter], spec: CellSpec) -> torch.optim.Optimizer:
    """The cell's optimizer (`spec.optimizer`) over `params`: the one factory of every
    algorithm, so all get the same implementation. Single-tensor (foreach=False): its
    temporaries are one parameter's worth at a time and the same on every device, so peaks
    are comparable and explainable. State per parameter: adam two moments (+ a host step
    counter), momentum one buffer (from the first step), sgd none (algorithms.account)."""
    assert spec.lr is not None
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, foreach=False)
    momentum = MOMENTUM if spec.optimizer == "momentum" else 0.0
    return torch.optim.SGD(params, lr=spec.lr, momentum=momentum, foreach=False)


def linear_stack(
    in_features: int, hidden: int, n_layers: int, device: torch.device, dtype: torch.dtype
) -> list[nn.Linear]:
    """`n_layers` Linear layers: in_features -> hidden -> ... -> hidden."""
    widths = [in_features] + [hidden] * n_layers
    return [
        nn.Linear(a, b, device=device, dtype=dtype)
        for a, b in zip(widths[:-1], widths[1:], strict=True)
    ]


def matmul_flops(rows: int, layers: list[nn.Linear]) -> int:
    """2 * rows * in * out per Linear layer: one forward pass of `rows` rows."""
    return sum(2 * rows * layer.in_features * layer.out_features for layer in layers)


class Algorithm(ABC):
    """One training algorithm, built on one device for one cell.

    Everything about an algorithm is on its class: the facts below (read without building
    it), its closed-form memory account, and its step. `spec` is resolved (every default
    filled in). Subclasses build `self.model` and `self.optimizers` in `__init__`.
    """

    # ---- what it is and how it trains ----------------------------------------------------
    name: ClassVar[str]  # what --algorithms and the `algorithm` column call it
    default_lr: ClassVar[float]
    # Algorithm-specific settings and their defaults; `--option NAME=VALUE` overrides one.
    options: ClassVar[Mapping[str, Any]] = {}
    # A backprop: a baseline every other algorithm is measured against (ffbench.analysis.verdict
    # compares each algorithm that is not one with each that is, and with the lowest of them).
    # The goodness-only settings (goodness, threshold, eval_chunk) act in every algorithm but
    # the baselines: for those they leave the cell id and the row.
    baseline: ClassVar[bool] = False

    # ---- what the harness reads about it (names, presets, targets, explain's words) --------
    display_name: ClassVar[str]  # how figures and reports call it ("Base FF")
    summary: ClassVar[str]  # one line for `ffbench algorithms`
    # Options added after cells were stored: left out of the cell id at their default, so
    # those cells keep their ids.
    late_options: ClassVar[tuple[str, ...]] = ()
    # Options that count the hidden layers (a layer's index, a number of segments), each
    # with the most it can act as: n_layers + this. Such an option is 0 or more; a larger
    # value acts as the most (the algorithm clamps it) and is stored so, in the cell's
    # identity: one measurement, one cell id.
    layer_options: ClassVar[Mapping[str, int]] = {}
    # Settings this algorithm takes from a preset, by preset name (presets.py), laid over
    # the preset's own; options merge name by name. Read from the class itself, never
    # inherited (a subclass training the same function: `preset_settings = Parent.preset_settings`).
    preset_settings: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    # Test accuracy the mnist-5k-accuracy preset reaches (tests/test_accuracy.py); None: none set.
    accuracy_target: ClassVar[float | None] = None
    # `explain`: why the added layer's gradients are not alive at the train peak, if they are not.
    gradient_note: ClassVar[str] = ""

    model: nn.Module
    optimizers: list[torch.optim.Optimizer]

    def __init__(self, spec: CellSpec, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        self.dtype = DTYPES[spec.dtype]

    @classmethod
    def check_options(cls, given: Mapping[str, Any]) -> None:
        """Raise BadInput for an unknown option, a value of the wrong type, or (`check`)
        settings that do not go together."""
        for name, value in given.items():
            if name not in cls.options:
                known = ", ".join(sorted(cls.options)) or "none"
                raise BadInput(f"unknown option {name!r} (this algorithm has: {known})")
            default = cls.options[name]
            if not isinstance(value, type(default)) and not (
                isinstance(default, float) and isinstance(value, int)
            ):
                raise BadInput(f"option {name}={value!r} should be a {type(default).__name__}")
        cls.check({**cls.options, **given})

    @classmethod  # noqa: B027 (an optional hook: no cross-option checks by default)
    def check(cls, options: Mapping[str, Any]) -> None:
        """Checks across options (all of them, defaults filled in); raises BadInput."""

    @classmethod
    @abstractmethod
    def memory_account(cls, spec: CellSpec) -> MemoryAccount:
        """The train step's peak in closed form (see algorithms.account); `spec` resolved."""

    @classmethod
    def rows_per_step(cls, spec: CellSpec) -> int:
        """Rows through the network per train step: one per real image (the FF family also
        pushes a negative row per image: data.rows_with_negatives)."""
        return spec.batch_size

    @abstractmethod
    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One update on a batch; returns the loss(es), detached, without a host sync."""

    @abstractmethod
    def predict(self, x: Tensor) -> Tensor:
        """Predicted class per image, (E,) int64."""

    @abstractmethod
    def train_flops_per_step(self) -> int:
        """Matmul FLOPs of one train step (forward + backward), analytic."""

    @abstractmethod
    def eval_flops_per_batch(self) -> int:
        """Matmul FLOPs of `predict` on one eval batch, analytic."""

    def use_training_set(self, stream: BatchStream) -> None:  # noqa: B027 (optional hook)
        """Called once after building, with the training stream. Algorithms that keep
        something for the whole training set (ff-progressive's cache) build it from here."""

    def layer_predictions(self, x: Tensor) -> Tensor | None:
        """Predicted class per image from each layer alone, (n_layers, E) int64, or None
        where layers make no prediction of their own (bp). Used only for accuracy."""
        return None

    def compile(self) -> None:
        """torch.compile the forward of each layer (or of the whole model)."""
        modules = self.model if isinstance(self.model, nn.ModuleList) else [self.model]
        for module in modules:
            module.compile()

    def step(self, stream: BatchStream) -> Tensor:
        """One train step on the stream's next batch: the unit the harness measures and times.
        An algorithm that feeds itself (a cache) overrides it and draws no batch."""
        return self.train_step(*stream.next())

    def fit(self, stream: BatchStream, epochs: int,
            after_epoch: Callable[[int], None] | None = None) -> None:
        """Train for `epochs` passes over the stream's dataset; `after_epoch(n)` is called
        after the n-th pass (from 1)."""
        for epoch in range(1, epochs + 1):
            for _ in range(stream.steps_per_epoch):
                self.step(stream)
            if after_epoch is not None:
                after_epoch(epoch)

    @functools.cached_property
    def _model_modules(self) -> list[nn.Module]:
        """The model's modules, listed once: an algorithm adds none after building."""
        return list(self.model.modules())

    def persistent_tensors(self) -> dict[str, list[Tensor]]:
        """Tensors that outlive a step, by memory category (see measure.tracker). The
        trackers ask at every new peak: the parameters are read from the modules' own tables
        (model.parameters() as it is now, five times faster; ff-layerwise replaces a layer's
        parameters as it moves it)."""
        params: list[Tensor] = list(dict.fromkeys(
            p for module in self._model_modules
            for p in module._parameters.values() if p is not None))
        return {
            "parameters": params,
            "gradients": [p.grad for p in params if p.grad is not None],
            "optimizer_state": [
                value
                for optimizer in self.optimizers
                for state in optimizer.state.values()
                for value in state.values()
                if isinstance(value, Tensor)
            ],
        }
