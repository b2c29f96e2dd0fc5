"""Base Forward-Forward (Hinton 2022): every layer is updated on every batch.

Each layer sees its input length-normalized and detached, has its own Adam, and
learns to give positive rows (true label embedded) goodness above the threshold and
negative rows (a wrong label) goodness below it. Prediction embeds each candidate
label in turn and picks the one with the most goodness summed over the readout layers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffbench.algorithms import account
from ffbench.algorithms.account import MemoryAccount
from ffbench.algorithms.base import Algorithm, linear_stack, make_optimizer, matmul_flops
from ffbench.data import positive_and_negative, replicate_per_class
from ffbench.goodness import GOODNESS
from ffbench.measure.tracker import category
from ffbench.settings.cell import MNIST_CLASSES, MNIST_PIXELS, CellSpec

NORM_EPS = 1e-4  # keeps the length normalization finite for an all-zero row


def normalize(h: Tensor) -> Tensor:
    """Scale each row to unit length: only the direction of the layer below passes on."""
    return h / (h.norm(dim=1, keepdim=True) + NORM_EPS)


class FFLayer(nn.Module):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def pre_activation(self, h: Tensor) -> Tensor:
        return self.linear(normalize(h))

    def forward(self, h: Tensor) -> Tensor:
        # ReLU in place: the Linear's output is not needed by its backward, so no copy
        return F.relu(self.pre_activation(h), inplace=True)


class SumOfSquares(torch.autograd.Function):
    """Per-row sum of squares of h, (rows,), with a one-tensor backward: 2 h dL/dg (the
    squared norm's own backward makes three (rows, hidden) temporaries)."""

    @staticmethod
    def forward(ctx: Any, h: Tensor) -> Tensor:
        ctx.save_for_backward(h)
        return torch.linalg.vector_norm(h, dim=1).square()

    @staticmethod
    def backward(ctx: Any, grad_g: Tensor) -> Tensor:
        (h,) = ctx.saved_tensors
        return h * (2 * grad_g).unsqueeze(1)


def scaled(sum_of_squares: Tensor, divisor: int) -> Tensor:
    """A sum-of-squares goodness from the sum of squares (goodness.Goodness.sumsq_divisor)."""
    return sum_of_squares if divisor == 1 else sum_of_squares / divisor


class ReluSumOfSquares(torch.autograd.Function):
    """(h, g) = (ReLU(z) in place, per-row sum of squares of h), as one autograd op.

    Its backward is one (rows, hidden) product, 2 h dL/dg: h is 0 wherever ReLU cut, so
    ReLU's mask comes free, and neither threshold_backward's tensor nor the squared norm's
    backward temporaries are made. Same values as relu then goodness.sumsq."""

    @staticmethod
    def forward(ctx: Any, z: Tensor) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)  # h's gradient stays None where h feeds nothing
        h = z.relu_()
        ctx.mark_dirty(z)
        ctx.save_for_backward(h)
        return h, torch.linalg.vector_norm(h, dim=1).square()

    @staticmethod
    def backward(ctx: Any, grad_h: Tensor | None, grad_g: Tensor | None) -> Tensor | None:
        (h,) = ctx.saved_tensors
        grad = None if grad_g is None else h * (2 * grad_g).unsqueeze(1)
        if grad_h is not None:
            through_relu = grad_h * (h > 0)
            grad = through_relu if grad is None else grad + through_relu
        return grad


def local_goodness(spec: CellSpec) -> tuple[Callable[[Tensor], Tensor], int | None]:
    """The cell's goodness function and, where it is a sum of squares over a divisor
    (goodness.Goodness.sumsq_divisor), that divisor at the cell's width."""
    goodness = GOODNESS[spec.goodness]
    return goodness.fn, goodness.sumsq_divisor and goodness.sumsq_divisor(spec.hidden)


def eval_chunks(x: Tensor, spec: CellSpec) -> tuple[Tensor, ...]:
    """Eval images in parts small enough that at most `spec.eval_chunk` replicated rows
    (one per image and candidate label) are alive at once; 0 means all at once."""
    if not spec.eval_chunk:
        return (x,)
    return x.split(max(1, spec.eval_chunk // MNIST_CLASSES))


def ff_loss(goodness: Tensor, threshold: float, n_positive: int) -> Tensor:
    """softplus(theta - g) on the first `n_positive` rows, softplus(g - theta) on the rest, mean."""
    margin = goodness - threshold  # (rows,)
    positive = F.softplus(-margin[:n_positive]).sum()
    negative = F.softplus(margin[n_positive:]).sum()
    return (positive + negative) / len(margin)


# Each algorithm's settings that reached the targets on mnist-5k (4,000 training,
# 1,000 test digits) within 3 minutes of one CPU core; how they were found: README, "Accuracy".
FF_MNIST_5K = {
    "n_layers": 2, "hidden": 500, "batch_size": 250, "epochs": 60,
    # Hinton's top-k relative: only the most active units count; every layer reads out
    # (the first layer alone is the most accurate on 4,000 images)
    "goodness": "topk_meansq", "options": {"readout_from_layer": 0},
}
ONE_LAYER_AT_A_TIME = (
    "each layer's gradients are freed (zero_grad(set_to_none=True)) right after its own "
    "Adam step, so at most one layer holds gradients at a time; the published "
    "implementation kept every layer's gradients"
)


class ForwardForward(Algorithm):
    name = "ff"
    display_name = "Base FF"
    summary = (
        "Base Forward-Forward (Hinton 2022): every layer updated on each batch, one Adam per layer"
    )
    default_lr = 0.03
    options = {"readout_from_layer": 1}
    layer_options: ClassVar[Mapping[str, int]] = {"readout_from_layer": -1}  # the last layer
    preset_settings = {"mnist-5k-accuracy": FF_MNIST_5K}
    accuracy_target: ClassVar[float | None] = 0.90
    gradient_note = ONE_LAYER_AT_A_TIME

    def __init__(self, spec: CellSpec, device: torch.device) -> None:
        super().__init__(spec, device)
        linears = linear_stack(MNIST_PIXELS, spec.hidden, spec.n_layers, device, self.dtype)
        self.layers = [FFLayer(linear) for linear in linears]
        self.model = nn.ModuleList(self.layers)
        assert spec.lr is not None and spec.threshold is not None
        self.optimizers = [make_optimizer(list(layer.parameters()), spec) for layer in self.layers]
        self.goodness, self.sumsq_divisor = local_goodness(spec)
        self.threshold = spec.threshold
        self.readout_from = min(int(spec.options["readout_from_layer"]), spec.n_layers - 1)

    @classmethod
    def memory_account(cls, spec: CellSpec) -> MemoryAccount:
        """The largest of the layers' Adam steps (layer k's: `ff_layer_account`)."""
        layers = account.hidden_widths(spec)
        params = [account.linear(fan_in, fan_out, spec) for fan_in, fan_out in layers]
        return account.largest(ff_layer_account(spec, params, k) for k in range(len(layers)))

    @property
    def rows_per_step(self) -> int:
        return 2 * self.spec.batch_size

    def train_layer(self, index: int, h: Tensor) -> tuple[Tensor, Tensor]:
        """One local update of layer `index` on rows `h` ([positive; negative]).

        Returns the layer's output (detached: the next layer's input) and its loss."""
        out, goodness = self.layer_and_goodness(index, h)
        loss = ff_loss(goodness, self.threshold, len(h) // 2)
        del goodness  # (2B,): the loss's graph does not need it through backward and Adam
        loss.backward()
        optimizer = self.optimizers[index]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out.detach(), loss.detach()

    def layer_and_goodness(self, index: int, h: Tensor) -> tuple[Tensor, Tensor]:
        """Layer `index`'s output (2B, hidden) and goodness (2B,), with grad: ReLU and a
        sum-of-squares goodness fused into one op where the goodness is one."""
        layer = self.layers[index]
        if self.sumsq_divisor is None:
            out = layer(h)
            return out, self.goodness(out)
        out, sum_of_squares = ReluSumOfSquares.apply(layer.pre_activation(h))
        return out, scaled(sum_of_squares, self.sumsq_divisor)

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        with category("inputs"):
            h = positive_and_negative(x, y)  # (2B, 784)
        losses = []
        for index in range(len(self.layers)):
            h, loss = self.train_layer(index, h)
            losses.append(loss)
        return torch.stack(losses)  # (n_layers,)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        return torch.cat([self._predict_chunk(part) for part in eval_chunks(x, self.spec)])

    @torch.no_grad()
    def layer_predictions(self, x: Tensor) -> Tensor:
        parts = [self._layer_predictions_chunk(part) for part in eval_chunks(x, self.spec)]
        return torch.cat(parts, dim=1)  # (n_layers, E)

    def eval_layer(self, index: int, h: Tensor) -> Tensor:
        """Layer `index` applied at prediction time (ff-layerwise streams its weights in)."""
        return self.layers[index](h)

    def _predict_chunk(self, x: Tensor) -> Tensor:
        with category("eval_replication"):
            h = replicate_per_class(x)  # (E * C, 784)
        score = torch.zeros(len(h), device=h.device, dtype=h.dtype)
        for index in range(len(self.layers)):
            h = self.eval_layer(index, h)
            if index >= self.readout_from:
                score += self.goodness(h)
        return score.view(-1, MNIST_CLASSES).argmax(dim=1)

    def _layer_predictions_chunk(self, x: Tensor) -> Tensor:
        h = replicate_per_class(x)  # (E * C, 784)
        per_layer = []
        for index in range(len(self.layers)):
            h = self.eval_layer(index, h)
            per_layer.append(self.goodness(h).view(-1, MNIST_CLASSES).argmax(dim=1))
        return torch.stack(per_layer)  # (n_layers, E)

    def train_flops_per_step(self) -> int:
        # forward + weight gradient; inputs are detached, so no input gradient
        return 2 * matmul_flops(self.rows_per_step, [layer.linear for layer in self.layers])

    def eval_flops_per_batch(self) -> int:
        assert self.spec.eval_batch_size is not None
        rows = self.spec.eval_batch_size * MNIST_CLASSES
        return matmul_flops(rows, [layer.linear for layer in self.layers])


def local_update(spec: CellSpec, fan_in: int, layer: list[int]) -> list[tuple[str, int, int]]:
    """A layer's own update on 2B rows at its two candidate peaks, as (moment, gradients,
    activations), besides its input rows and its output (2B, hidden): in its Adam step, its
    gradients and the step's temporaries (and the loss); late in its backward, the
    normalized input and the output's gradient (2B, hidden) and the parameters' gradients
    being made (not yet `.grad`), the loss and its gradient."""
    rows, e = 2 * spec.batch_size, account.element_bytes(spec)
    backward = account.matrix(rows, fan_in, spec) + account.matrix(rows, spec.hidden, spec)
    return [
        ("Adam step", sum(layer), account.step_temporaries(layer, spec) + e),
        ("backward", 0, backward + sum(layer) + 2 * e),
    ]


def ff_layer_account(spec: CellSpec, params: list[list[int]], k: int) -> MemoryAccount:
    """In layer k's update (`local_update`): every layer's parameters and moments; the
    batch, and for layer 0 its labelled rows [positive; negative] (2B, 784); layer k's
    input (the output of layer k - 1) and output (2B, hidden); the earlier layers' losses."""
    rows, e = 2 * spec.batch_size, account.element_bytes(spec)
    every = [size for layer in params for size in layer]
    fan_in = MNIST_PIXELS if k == 0 else spec.hidden
    layer_input = account.matrix(rows, fan_in, spec)
    around = (0 if k == 0 else layer_input) + account.matrix(rows, spec.hidden, spec) + k * e
    return account.largest(
        MemoryAccount.of(
            f"layer {k}'s {moment}",
            parameters=sum(every),
            gradients=gradients,
            optimizer_state=account.optimizer_state(every, spec),
            inputs=account.batch(spec.batch_size, spec) + (layer_input if k == 0 else 0),
            activations=around + activations,
        )
        for moment, gradients, activations in local_update(spec, fan_in, params[k])
    )


ALGORITHM = ForwardForward
