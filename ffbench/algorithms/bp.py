"""Backprop baseline: the FF hidden stack with a linear head, cross-entropy, one Adam."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffbench.algorithms.base import Algorithm, adam, linear_stack, matmul_flops
from ffbench.spec import MNIST_CLASSES, MNIST_PIXELS, CellSpec


class MLP(nn.Module):
    def __init__(
        self, hidden: int, n_layers: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        super().__init__()
        self.linears = linear_stack(MNIST_PIXELS, hidden, n_layers, device, dtype)
        self.layers = nn.ModuleList(self.linears)
        self.head = nn.Linear(hidden, MNIST_CLASSES, device=device, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.linears:
            x = F.relu(layer(x), inplace=True)  # (B, hidden); the Linear's backward needs no output
        return self.head(x)  # (B, classes) logits


class Backprop(Algorithm):
    def __init__(self, spec: CellSpec, device: torch.device) -> None:
        super().__init__(spec, device)
        self.model = model = MLP(spec.hidden, spec.n_layers, device, self.dtype)
        self.linears = [*model.linears, model.head]
        assert spec.lr is not None
        self.optimizers = [adam(list(self.model.parameters()), spec.lr)]

    @property
    def rows_per_step(self) -> int:
        return self.spec.batch_size

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        (optimizer,) = self.optimizers
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return self.model(x).argmax(dim=1)

    def train_flops_per_step(self) -> int:
        # forward, grad of weights, grad of inputs (none for the first layer: x needs no grad)
        rows = self.spec.batch_size
        return 2 * matmul_flops(rows, self.linears) + matmul_flops(rows, self.linears[1:])

    def eval_flops_per_batch(self) -> int:
        assert self.spec.eval_batch_size is not None
        return matmul_flops(self.spec.eval_batch_size, self.linears)


ALGORITHM = Backprop
