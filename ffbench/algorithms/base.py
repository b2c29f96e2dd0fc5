"""What every algorithm provides to the measurement code."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from ffbench.data import BatchStream
from ffbench.spec import CellSpec

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def adam(params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam, single-tensor implementation: its temporaries are one parameter's worth at a
    time and the same on every device, so peaks are comparable and explainable."""
    return torch.optim.Adam(params, lr=lr, foreach=False)


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

    `spec` is resolved (every default filled in). Subclasses build `self.model` and
    `self.optimizers` in `__init__`.
    """

    model: nn.Module
    optimizers: list[torch.optim.Optimizer]

    def __init__(self, spec: CellSpec, device: torch.device) -> None:
        self.spec = spec
        self.device = device
        self.dtype = DTYPES[spec.dtype]

    @property
    @abstractmethod
    def rows_per_step(self) -> int:
        """Rows through the network per train step (FF: real + negative)."""

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

    def fit(self, stream: BatchStream, epochs: int) -> None:
        """Train for `epochs` passes over the stream's dataset."""
        for _ in range(epochs * stream.steps_per_epoch):
            self.step(stream)

    def persistent_tensors(self) -> dict[str, list[Tensor]]:
        """Tensors that outlive a step, by memory category (see measure.tracker)."""
        params = list(self.model.parameters())
        return {
            "parameters": [p.detach() for p in params],
            "gradients": [p.grad for p in params if p.grad is not None],
            "optimizer_state": [
                value
                for optimizer in self.optimizers
                for state in optimizer.state.values()
                for value in state.values()
                if isinstance(value, Tensor)
            ],
        }
