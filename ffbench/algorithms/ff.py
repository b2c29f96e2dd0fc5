"""Base Forward-Forward (Hinton 2022): every layer is updated on every batch. Everything
about the algorithm is in this file (the FF family's base class: its layers, loss hook,
step, prediction, memory account and FLOPs), which is why it runs past 400 lines.

Each layer sees its input length-normalized (`normalization=rms`: to unit root mean
square) and detached, has its own Adam, and learns to give positive rows (true label
embedded) goodness above the threshold and negative rows (a wrong label) goodness below it.
Prediction embeds each candidate label in turn and picks the one with the most goodness
summed over the readout layers; `readout=linear` instead runs each image once, without a
label, through a softmax classifier trained beside the layers (algorithms/readout.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffbench.algorithms import account, readout
from ffbench.algorithms.account import MemoryAccount
from ffbench.algorithms.base import Algorithm, linear_stack, make_optimizer, matmul_flops
from ffbench.algorithms.readout import attach_readout, with_neutral_label
from ffbench.data import positive_and_negative, replicate_per_class, rows_with_negatives
from ffbench.errors import BadInput
from ffbench.goodness import GOODNESS
from ffbench.measure.tracker import category
from ffbench.settings.cell import MNIST_CLASSES, MNIST_PIXELS, CellSpec

NORM_EPS = 1e-4  # keeps the length normalization finite for an all-zero row
# option `normalization`: each row to unit length (Hinton 2022), or to unit root mean square
# (sqrt(width) times longer: each unit ~1, whatever the width)
NORMALIZATIONS = ("length", "rms")


def normalize(h: Tensor, rms: bool = False) -> Tensor:
    """Scale each row to unit length (rms: unit root mean square): only the direction of the
    layer below passes on. Either way one (rows, 1) temporary at a time besides the result."""
    if rms:
        return h / ((h.norm(dim=1, keepdim=True) + NORM_EPS) / math.sqrt(h.shape[1]))
    return h / (h.norm(dim=1, keepdim=True) + NORM_EPS)


# options of every FF-family algorithm added after cells were stored (late options)
LATE_OPTIONS = {**readout.OPTIONS, "normalization": NORMALIZATIONS[0]}


def rms_normalization(spec: CellSpec) -> bool:
    """Whether the cell's layers read their inputs at unit root mean square (option
    `normalization`; an algorithm without the option, a plugin's: unit length)."""
    normalization = spec.options.get("normalization", NORMALIZATIONS[0])
    return bool(normalization == "rms")


def check_normalization(options: Mapping[str, Any]) -> None:
    normalization = options.get("normalization", NORMALIZATIONS[0])
    if normalization not in NORMALIZATIONS:
        raise BadInput(f"option normalization={normalization!r}: use one of "
                       f"{', '.join(NORMALIZATIONS)}")


class FFLayer(nn.Module):
    def __init__(self, linear: nn.Linear, rms: bool = False) -> None:
        super().__init__()
        self.linear = linear
        self.rms = rms

    def pre_activation(self, h: Tensor) -> Tensor:
        return self.linear(normalize(h, self.rms))

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


# The FF family's best settings found on mnist-5k (4,000 training, 1,000 test digits) at the
# size and budget of the comparison (2 x 500, 250 real + 250 negative rows per step, 60
# epochs); each alternative measured is in the accuracy documentation.
FF_MNIST_5K = {
    "n_layers": 2, "hidden": 500, "batch_size": 250, "epochs": 60,
    # Hinton's top-k relative: only the most active units count; every layer reads out
    # (the first layer alone is the most accurate on 4,000 images)
    "goodness": "topk_meansq", "options": {"readout_from_layer": 0, "normalization": "rms"},
    # inputs at unit root mean square (each unit ~1 whatever the width) want a 10x smaller
    # Adam step than unit-length ones, and a higher bar for the top units' mean square
    "lr": 0.003, "threshold": 8.0,
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
    options = {"readout_from_layer": 1, **LATE_OPTIONS}
    late_options: ClassVar[tuple[str, ...]] = tuple(LATE_OPTIONS)
    layer_options: ClassVar[Mapping[str, int]] = {"readout_from_layer": -1}  # the last layer
    preset_settings = {"mnist-5k-accuracy": FF_MNIST_5K}
    accuracy_target: ClassVar[float | None] = 0.93
    gradient_note = ONE_LAYER_AT_A_TIME

    def __init__(self, spec: CellSpec, device: torch.device) -> None:
        super().__init__(spec, device)
        linears = linear_stack(MNIST_PIXELS, spec.hidden, spec.n_layers, device, self.dtype)
        self.layers = [FFLayer(linear, rms_normalization(spec)) for linear in linears]
        self.model = nn.ModuleList(self.layers)
        assert spec.lr is not None and spec.threshold is not None
        self.optimizers = [make_optimizer(list(layer.parameters()), spec) for layer in self.layers]
        self.goodness, self.sumsq_divisor = local_goodness(spec)
        self.threshold = spec.threshold
        self.readout_range = readout.readout_layers(
            spec.n_layers, int(spec.options["readout_from_layer"]))
        self.readout_from = self.readout_range.start
        self.readout = attach_readout(spec, len(self.readout_range), self.model,
                                      self.optimizers, device, self.dtype)

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> None:
        readout.check_readout(options)
        check_normalization(options)

    @classmethod
    def memory_account(cls, spec: CellSpec) -> MemoryAccount:
        """The largest of the layers' Adam steps (layer k's: `ff_layer_account`) and, with
        the linear read-out, of its step's moments (`ff_readout_account`)."""
        layers = account.hidden_widths(spec)
        params = [account.linear(fan_in, fan_out, spec) for fan_in, fan_out in layers]
        sizes = readout_sizes(spec)
        moments = [ff_layer_account(spec, params, k, sizes) for k in range(len(layers))]
        if sizes:
            every = [size for layer in params for size in layer] + sizes
            moments += ff_readout_account(spec, params, MemoryAccount.of(
                "", parameters=sum(every), optimizer_state=account.optimizer_state(every, spec),
                inputs=account.batch(spec.batch_size, spec),
                activations=len(layers) * account.element_bytes(spec)))  # the layers' losses
        return readout.with_parts(account.largest(moments), spec, sizes)

    @classmethod
    def rows_per_step(cls, spec: CellSpec) -> int:
        return rows_with_negatives(spec.batch_size)

    def loss(self, goodness: Tensor, n_positive: int) -> Tensor:
        """A layer's local loss from its rows' goodness, (2B,): the first `n_positive` rows
        positive, the rest negative. Base FF's: softplus of goodness minus the threshold. An
        FF variant that changes only the loss overrides this (examples/plugin)."""
        return ff_loss(goodness, self.threshold, n_positive)

    def train_layer(self, index: int, h: Tensor) -> tuple[Tensor, Tensor]:
        """One local update of layer `index` on rows `h` ([positive; negative]).

        Returns the layer's output (detached: the next layer's input) and its loss."""
        out, goodness = self.layer_and_goodness(index, h)
        loss = self.loss(goodness, len(h) // 2)
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
        if self.readout is None:
            return torch.stack(losses)  # (n_layers,)
        del h
        losses.append(self.readout_step(x, y))
        return torch.stack(losses)  # (n_layers + 1,): the read-out's last

    def readout_step(self, x: Tensor, y: Tensor) -> Tensor:
        """One update of the linear read-out on the images (x, y), after the layers'."""
        assert self.readout is not None
        return self.readout.update(self.neutral_activities(x), y, self.optimizers[-1])

    def neutral_activities(self, x: Tensor) -> Iterator[Tensor]:
        """Each read-out layer's output for the images with the neutral label, length-
        normalized, one at a time; the layers run without gradient (training stays local)."""
        with category("inputs"):
            h = with_neutral_label(x)  # (E, 784)
        for index in range(len(self.layers)):
            with torch.no_grad():
                h = self.eval_layer(index, h)  # (E, hidden)
            if index in self.readout_range:
                yield normalize(h)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        if self.readout is not None:  # one forward per image, no replication
            return self.readout.predict(self.neutral_activities(x))
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
        linears = [layer.linear for layer in self.layers]
        return 2 * matmul_flops(self.rows_per_step(self.spec), linears) + self.readout_train_flops()

    def readout_train_flops(self) -> int:
        """The linear read-out's step: the batch through every layer, then the classifier."""
        if self.readout is None:
            return 0
        rows = self.spec.batch_size
        linears = [layer.linear for layer in self.layers]
        return matmul_flops(rows, linears) + self.readout.update_flops(rows)

    def eval_flops_per_batch(self) -> int:
        assert self.spec.eval_batch_size is not None
        linears = [layer.linear for layer in self.layers]
        if self.readout is not None:
            rows = self.spec.eval_batch_size
            return matmul_flops(rows, linears) + self.readout.forward_flops(rows)
        return matmul_flops(self.spec.eval_batch_size * MNIST_CLASSES, linears)


def local_update(spec: CellSpec, fan_in: int, layer: list[int]) -> list[tuple[str, int, int]]:
    """A layer's own update on 2B rows at its two candidate peaks, as (moment, gradients,
    activations), besides its input rows and its output (2B, hidden): in its Adam step, its
    gradients and the step's temporaries (and the loss); late in its backward, the
    normalized input and the output's gradient (2B, hidden) and the parameters' gradients
    being made (not yet `.grad`), the loss and its gradient."""
    rows, e = rows_with_negatives(spec.batch_size), account.element_bytes(spec)
    backward = account.matrix(rows, fan_in, spec) + account.matrix(rows, spec.hidden, spec)
    return [
        ("Adam step", sum(layer), account.step_temporaries(layer, spec) + e),
        ("backward", 0, backward + sum(layer) + 2 * e),
    ]


def ff_layer_account(
    spec: CellSpec, params: list[list[int]], k: int, readout_sizes: list[int] | None = None,
) -> MemoryAccount:
    """In layer k's update (`local_update`): every layer's parameters and moments (and the
    linear read-out's, `readout_sizes`); the batch, and for layer 0 its labelled rows
    [positive; negative] (2B, 784); layer k's input (the output of layer k - 1) and output
    (2B, hidden); the earlier layers' losses."""
    rows, e = rows_with_negatives(spec.batch_size), account.element_bytes(spec)
    every = [size for layer in params for size in layer] + (readout_sizes or [])
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


def readout_sizes(spec: CellSpec) -> list[int]:
    """Bytes of the linear read-out's parameters (none with the goodness read-out)."""
    if not readout.is_linear(spec):
        return []
    blocks = readout.readout_layers(spec.n_layers, int(spec.options["readout_from_layer"]))
    return readout.parameter_sizes(spec, len(blocks))


def ff_readout_account(
    spec: CellSpec, params: list[list[int]], held: MemoryAccount, copied: bool = False,
) -> list[MemoryAccount]:
    """The linear read-out's step (`ForwardForward.readout_step`), with `held` alive
    throughout (parameters and optimizer state, read-out's included; the batch; a cache; the
    layers' losses):
    - the neutral forward through layer i (no gradient): the read-out activities of the
      layers below i (B, hidden each, kept for the classifier's gradients) and their logits
      (B, C), layer i's input (the images with the neutral label, (B, 784), for layer 0),
      its normalized input and its output; with `copied` (ff-layerwise off the host), the
      parameters of a frozen layer (all but the last) copied from the host for its forward;
    - the classifier's update (`readout.update_moments`) with every read-out activity."""
    rows, n = spec.batch_size, spec.n_layers
    ro = readout.readout_layers(n, int(spec.options["readout_from_layer"]))
    activity = account.matrix(rows, spec.hidden, spec)
    logits = account.matrix(rows, MNIST_CLASSES, spec)

    def moment(at: str, **extra: int) -> MemoryAccount:
        return MemoryAccount.of(at, **{name: held.split[name] + extra.get(name, 0)
                                       for name in held.split})

    moments = []
    for i, (fan_in, _) in enumerate(account.hidden_widths(spec)):
        before = len([j for j in ro if j < i])
        layer_input = account.matrix(rows, fan_in, spec)
        moments.append(moment(
            f"the read-out's forward through layer {i}",
            parameters=sum(params[i]) if copied and i < n - 1 else 0,
            inputs=layer_input if i == 0 else 0,
            activations=before * activity + (logits if before else 0) + layer_input
            + activity + (layer_input if i else 0),
        ))
    moments += [
        moment(f"the read-out's {at}", gradients=gradients, activations=activations)
        for at, gradients, activations in readout.update_moments(spec, len(ro), rows)
    ]
    return moments


ALGORITHM = ForwardForward
