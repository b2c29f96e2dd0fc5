"""Recurrent Forward-Forward (Hinton 2022, "using FF to model top-down effects in perception").
Everything about the algorithm is in this file (its model, step, prediction, memory account
and FLOPs), which is why it runs past 400 lines.

The hidden layers form a recurrent stack: the image is clamped below the bottom layer and
the label, one-hot, above the top one. Iteration 0 is one bottom-up pass (the layers above
still silent). At each later iteration every hidden layer is recomputed at once
(synchronously) from the length-normalized layer below and the length-normalized layer
above as they were at the previous iteration, then damped:
state = damping_old * previous state + damping_new * computed.

Training: the rows are the B images with their true labels (positive) and the same images
with a label drawn from the other nine (negative). At each of `iterations` iterations every
layer takes one local FF update (inputs detached, its own Adam) on its new state's goodness.

Prediction (readout=goodness): each image is run once per candidate label; the label with
the most goodness, summed over the hidden layers from `readout_from_layer` on and over
iterations readout_first..readout_last (counted from 1, inclusive), wins. Prediction stops
after iteration readout_last.

Prediction (readout=linear, algorithms/readout.py): each image is run once, with the neutral
label clamped above, to iteration readout_last; each read-out layer's states summed over
iterations readout_first..readout_last, length-normalized, are the activities the softmax
classifier reads. The classifier takes one step after each train step's iterations, on the
same images run the same way (without gradient).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffbench.algorithms import account, readout
from ffbench.algorithms.account import MemoryAccount
from ffbench.algorithms.base import Algorithm, make_optimizer, matmul_flops
from ffbench.algorithms.ff import (
    LATE_OPTIONS,
    ONE_LAYER_AT_A_TIME,
    SumOfSquares,
    check_normalization,
    eval_chunks,
    ff_loss,
    local_goodness,
    normalize,
    readout_sizes,
    rms_normalization,
    scaled,
)
from ffbench.algorithms.readout import attach_readout, neutral_labels
from ffbench.data import rows_with_negatives, wrong_labels
from ffbench.errors import BadInput
from ffbench.measure.tracker import category
from ffbench.settings.cell import MNIST_CLASSES, MNIST_PIXELS, CellSpec


class RecurrentLayer(nn.Module):
    """One hidden layer: ReLU(bottom_up(normalized below) + top_down(normalized above))."""

    def __init__(
        self, below: int, above: int, hidden: int, device: torch.device, dtype: torch.dtype,
        rms: bool = False,
    ) -> None:
        super().__init__()
        self.bottom_up = nn.Linear(below, hidden, device=device, dtype=dtype)
        self.top_down = nn.Linear(above, hidden, bias=False, device=device, dtype=dtype)
        self.rms = rms

    def forward(self, below: Tensor, above: Tensor | None) -> Tensor:
        """below (R, below), above (R, above) or None while the layer above is silent."""
        pre = self.bottom_up(normalize(below, self.rms))  # (R, hidden)
        if above is not None:
            pre = pre + self.top_down(normalize(above, self.rms))
        return F.relu(pre, inplace=True)  # no backward here needs `pre` itself


class RecurrentFF(Algorithm):
    name = "rff"
    display_name = "Recurrent FF"
    summary = (
        "Recurrent FF (Hinton 2022): synchronous damped updates from below and above, "
        "image and label clamped, goodness read out over iterations"
    )
    default_lr = 0.03
    options = {
        "iterations": 8, "damping_old": 0.3, "damping_new": 0.7,
        "readout_first": 3, "readout_last": 5,
        "readout_from_layer": 0, **LATE_OPTIONS,
    }
    late_options: ClassVar[tuple[str, ...]] = (*LATE_OPTIONS, "readout_from_layer")
    preset_settings = {
        # its best found on mnist-5k at the training time of ff's (accuracy documentation):
        # inputs at unit root mean square, a small Adam step (each batch takes `iterations`
        # updates of every layer) and a high bar for the top units' mean square
        "mnist-5k-accuracy": {
            "n_layers": 2, "hidden": 256, "batch_size": 100, "epochs": 10,
            "goodness": "topk_meansq", "lr": 0.0005, "threshold": 16.0,
            "options": {"normalization": "rms"},
        },
    }
    accuracy_target = 0.92
    gradient_note = ONE_LAYER_AT_A_TIME

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> None:
        """Read out from iterations that exist; damping factors that are weights."""
        first, last, iterations = (
            options["readout_first"], options["readout_last"], options["iterations"]
        )
        if not 1 <= first <= last <= iterations:
            raise BadInput(
                f"rff needs 1 <= readout_first <= readout_last <= iterations, "
                f"got {first}, {last}, {iterations}"
            )
        for name in ("damping_old", "damping_new"):
            if not 0 <= options[name] <= 1:
                raise BadInput(f"option {name} must be between 0 and 1, got {options[name]}")
        readout.check_readout(options)
        check_normalization(options)

    @classmethod
    def memory_account(cls, spec: CellSpec) -> MemoryAccount:
        """The largest of the last iteration's Adam steps, one per layer (`rff_layer_account`)."""
        below, above = layer_fan_ins(spec.hidden, spec.n_layers)
        params = [
            account.linear(b, spec.hidden, spec) + account.linear(a, spec.hidden, spec, bias=False)
            for b, a in zip(below, above, strict=True)
        ]
        sizes = readout_sizes(spec)
        moments = [rff_layer_account(spec, params, k, sizes) for k in range(spec.n_layers)]
        if sizes:
            moments += rff_readout_account(spec, params, sizes)
        return readout.with_parts(account.largest(moments), spec, sizes)

    def __init__(self, spec: CellSpec, device: torch.device) -> None:
        super().__init__(spec, device)
        hidden, n = spec.hidden, spec.n_layers
        below, above = layer_fan_ins(hidden, n)
        self.layers = [
            RecurrentLayer(b, a, hidden, device, self.dtype, rms_normalization(spec))
            for b, a in zip(below, above, strict=True)
        ]
        self.model = nn.ModuleList(self.layers)
        assert spec.lr is not None and spec.threshold is not None
        self.optimizers = [make_optimizer(list(layer.parameters()), spec) for layer in self.model]
        self.goodness, self.sumsq_divisor = local_goodness(spec)
        self.threshold = spec.threshold
        options = spec.options
        self.iterations = int(options["iterations"])
        self.damping_old = float(options["damping_old"])
        self.damping_new = float(options["damping_new"])
        self.readout_iterations = range(
            int(options["readout_first"]), int(options["readout_last"]) + 1)
        self.readout_range = readout.readout_layers(n, int(options["readout_from_layer"]))
        self.readout = attach_readout(spec, len(self.readout_range), self.model,
                                      self.optimizers, device, self.dtype)

    @classmethod
    def rows_per_step(cls, spec: CellSpec) -> int:
        return rows_with_negatives(spec.batch_size)

    def bottom_up(self, image: Tensor, label: Tensor) -> list[Tensor]:
        """Iteration 0: each layer from the one below; only the top layer hears from above
        (the clamped label), the hidden layers above are still silent."""
        states: list[Tensor] = []
        below = image
        for index, layer in enumerate(self.layers):
            above = label if index == len(self.layers) - 1 else None
            below = layer(below, above)  # (R, hidden)
            states.append(below)
        return states

    def neighbours(
        self, states: list[Tensor], image: Tensor, label: Tensor
    ) -> list[tuple[Tensor, Tensor]]:
        """(below, above) of each layer at the previous iteration: image and label clamped."""
        return list(zip([image, *states[:-1]], [*states[1:], label], strict=True))

    def damp(self, old: Tensor, computed: Tensor) -> Tensor:
        """damping_old * old + damping_new * computed, as one new tensor and one in-place add
        (old is detached, so the add needs nothing saved)."""
        return (computed * self.damping_new).add_(old, alpha=self.damping_old)

    def iterate(self, states: list[Tensor], image: Tensor, label: Tensor) -> list[Tensor]:
        """One synchronous, damped update of every layer from the previous iteration's states."""
        pairs = self.neighbours(states, image, label)
        return [
            self.damp(old, layer(below, above))
            for layer, old, (below, above) in zip(self.layers, states, pairs, strict=True)
        ]

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        with category("inputs"):
            image, label = positive_and_negative_rows(x, y)  # (2B, 784), (2B, C)
        with torch.no_grad():
            states = self.bottom_up(image, label)
        losses = []
        for _ in range(self.iterations):
            states, step_losses = self._train_iteration(states, image, label)
            losses.append(step_losses)
        if self.readout is None:
            return torch.stack(losses)  # (iterations, n_layers)
        del image, label, states
        readout_loss = self.readout.update(self.neutral_activities(x), y, self.optimizers[-1])
        # (iterations * n_layers + 1,): the read-out's last
        return torch.cat([torch.stack(losses).flatten(), readout_loss.unsqueeze(0)])

    def _train_iteration(
        self, states: list[Tensor], image: Tensor, label: Tensor
    ) -> tuple[list[Tensor], Tensor]:
        """Every layer's new state (detached) and one local update per layer on it."""
        pairs = self.neighbours(states, image, label)
        new_states, losses = [], []
        for index, (old, (below, above)) in enumerate(zip(states, pairs, strict=True)):
            new = self.damp(old, self.layers[index](below, above))  # (2B, hidden)
            loss = ff_loss(self.train_goodness(new), self.threshold, len(new) // 2)
            loss.backward()
            self.optimizers[index].step()
            self.optimizers[index].zero_grad(set_to_none=True)
            new_states.append(new.detach())
            losses.append(loss.detach())
        return new_states, torch.stack(losses)

    def train_goodness(self, state: Tensor) -> Tensor:
        """The goodness of a new state, with grad: a sum-of-squares goodness through
        SumOfSquares (one-tensor backward), any other through its function."""
        if self.sumsq_divisor is None:
            return self.goodness(state)
        return scaled(SumOfSquares.apply(state), self.sumsq_divisor)

    @torch.no_grad()
    def readout_goodness(self, x: Tensor) -> Tensor:
        """(n_layers, E * C): each layer's goodness of every image x candidate label (row
        i*C + c has label c), summed over the readout iterations."""
        with category("eval_replication"):
            image, label = every_label_rows(x)  # (E * C, 784), (E * C, C)
        states = self.bottom_up(image, label)
        score = torch.zeros(len(self.layers), len(image), device=x.device, dtype=x.dtype)
        for iteration in range(1, self.readout_iterations.stop):
            states = self.iterate(states, image, label)
            if iteration in self.readout_iterations:
                score += torch.stack([self.goodness(state) for state in states])
        return score

    @torch.no_grad()
    def neutral_activities(self, x: Tensor) -> list[Tensor]:
        """Each read-out layer's states summed over the read-out iterations, for the images
        with the neutral label above, length-normalized: (E, hidden) each."""
        with category("inputs"):
            label = neutral_labels(len(x), x)  # (E, C)
        states = self.bottom_up(x, label)
        totals: list[Tensor] = []
        for iteration in range(1, self.readout_iterations.stop):
            states = self.iterate(states, x, label)
            if iteration == self.readout_iterations.start:
                totals = [states[index].clone() for index in self.readout_range]
            elif iteration in self.readout_iterations:
                for total, index in zip(totals, self.readout_range, strict=True):
                    total.add_(states[index])
        del states
        return [normalize(total) for total in totals]

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        if self.readout is not None:  # one run per image, no replication
            return self.readout.predict(self.neutral_activities(x))
        layers = slice(self.readout_range.start, None)
        return torch.cat([
            self.readout_goodness(part)[layers].sum(dim=0).view(-1, MNIST_CLASSES).argmax(dim=1)
            for part in eval_chunks(x, self.spec)
        ])

    @torch.no_grad()
    def layer_predictions(self, x: Tensor) -> Tensor:
        parts = [
            self.readout_goodness(part).view(len(self.layers), -1, MNIST_CLASSES).argmax(dim=2)
            for part in eval_chunks(x, self.spec)
        ]
        return torch.cat(parts, dim=1)  # (n_layers, E)

    def _pass_flops(self, rows: int, with_top_down: bool) -> int:
        """Matmul FLOPs of one pass over every layer; iteration 0 has only the label from above."""
        flops = 0
        for index, layer in enumerate(self.layers):
            linears = [layer.bottom_up]
            if with_top_down or index == len(self.layers) - 1:
                linears.append(layer.top_down)
            flops += matmul_flops(rows, linears)
        return flops

    def _run_flops(self, rows: int) -> int:
        """One run to the last read-out iteration (prediction stops there), no gradient."""
        iterations = self.readout_iterations.stop - 1
        return self._pass_flops(rows, False) + iterations * self._pass_flops(rows, True)

    def train_flops_per_step(self) -> int:
        # bottom-up pass (no grad), then per iteration forward + weight gradient
        rows = self.rows_per_step(self.spec)
        flops = self._pass_flops(rows, False) + 2 * self.iterations * self._pass_flops(rows, True)
        if self.readout is not None:  # the batch run once more, then the classifier's step
            batch = self.spec.batch_size
            flops += self._run_flops(batch) + self.readout.update_flops(batch)
        return flops

    def eval_flops_per_batch(self) -> int:
        assert self.spec.eval_batch_size is not None
        if self.readout is not None:
            rows = self.spec.eval_batch_size
            return self._run_flops(rows) + self.readout.forward_flops(rows)
        return self._run_flops(self.spec.eval_batch_size * MNIST_CLASSES)


def layer_fan_ins(hidden: int, n_layers: int) -> tuple[list[int], list[int]]:
    """Widths of what each hidden layer hears from below (image, then hidden) and from above
    (hidden, then the one-hot label)."""
    below = [MNIST_PIXELS] + [hidden] * (n_layers - 1)
    above = [hidden] * (n_layers - 1) + [MNIST_CLASSES]
    return below, above


def rff_layer_account(
    spec: CellSpec, params: list[list[int]], k: int, readout_sizes: list[int] | None = None,
) -> MemoryAccount:
    """In layer k's update in the last iteration, the largest of four moments. All hold every
    layer's parameters and optimizer state; the batch, its labelled images (2B, 784) and
    one-hot labels (2B, C); the previous iteration's states and this one's below layer k
    (2B, hidden each); the losses of earlier iterations (stacked) and of the layers below;
    layer k's new state S and its loss. The moments, in the order they happen:
    - the ReLU's backward: the normalized inputs from below and above (saved by the Linears),
      the ReLU output, the gradient coming in and the one going out, and the loss's gradient;
    - the top-down weight's gradient being made (top_down runs first in backward, made last in
      forward): both normalized inputs, the pre-activation's gradient, that weight's gradient;
    - the bottom-up weight's gradient being made: the normalized input from below, the
      pre-activation's gradient, the top-down gradient (now in .grad), the bottom-up weight's
      and bias's;
    - the optimizer step: layer k's gradients and the step's temporaries (Adam's, mostly).
    With Adam the step is the largest; with SGD or momentum one of the backward moments.
    `readout_sizes`: the linear read-out's parameters, held with their optimizer state."""
    rows, e, n = rows_with_negatives(spec.batch_size), account.element_bytes(spec), spec.n_layers
    iterations = int(spec.options["iterations"])
    every = [size for layer in params for size in layer] + (readout_sizes or [])
    below, above = (widths[k] for widths in layer_fan_ins(spec.hidden, n))
    state = account.matrix(rows, spec.hidden, spec)
    around = (n + k) * state + ((iterations - 1) * n + k) * e + state + e  # ... S, its loss
    from_below, from_above = account.matrix(rows, below, spec), account.matrix(rows, above, spec)
    bottom_up_weight, bottom_up_bias, top_down_weight = params[k]
    moments = (  # (moment, gradients, activations besides `around`)
        ("ReLU backward", 0, from_below + from_above + 3 * state + e),
        ("top-down weight gradient", 0, from_below + from_above + state + top_down_weight + e),
        ("bottom-up weight gradient", top_down_weight,
         from_below + state + bottom_up_weight + bottom_up_bias + e),
        ("optimizer step", sum(params[k]), account.step_temporaries(params[k], spec)),
    )
    return account.largest(
        MemoryAccount.of(
            f"layer {k}'s {moment}, iteration {iterations}",
            parameters=sum(every),
            gradients=gradients,
            optimizer_state=account.optimizer_state(every, spec),
            inputs=account.batch(spec.batch_size, spec)
            + account.matrix(rows, MNIST_PIXELS, spec)
            + account.matrix(rows, MNIST_CLASSES, spec),
            activations=around + activations,
        )
        for moment, gradients, activations in moments
    )


def rff_readout_account(
    spec: CellSpec, params: list[list[int]], readout_sizes: list[int],
) -> list[MemoryAccount]:
    """The linear read-out's step, after the train step's iterations (their states and
    labelled rows freed), at its candidate peaks. Held throughout: every parameter and
    optimizer state (the read-out's included), the batch, each iteration's stacked losses.
    In the read-out run (B rows, no gradient), the neutral label (B, C), and:
    - in the last read-out iteration, computing layer k: the previous iteration's states
      (n), this one's below k, the read-out layers' running sums (when there is more than
      one read-out iteration), and the layer's own temporaries (B rows each): its normalized
      input from below and the bottom-up product; or the bottom-up product, the normalized
      input from above and the top-down product; or both products and their sum;
    - normalizing the sums (the states freed): the sums and their normalized copies;
    then the classifier's update (`readout.update_moments`)."""
    rows, e, n = spec.batch_size, account.element_bytes(spec), spec.n_layers
    options = spec.options
    blocks = len(readout.readout_layers(n, int(options["readout_from_layer"])))
    every = [size for layer in params for size in layer] + readout_sizes
    state = account.matrix(rows, spec.hidden, spec)
    last = int(options["readout_last"])
    sums = blocks * state if last > int(options["readout_first"]) else 0
    label = account.matrix(rows, MNIST_CLASSES, spec)

    def moment(at: str, inputs: int = 0, gradients: int = 0, activations: int = 0
               ) -> MemoryAccount:
        return MemoryAccount.of(
            f"the read-out's {at}", parameters=sum(every), gradients=gradients,
            optimizer_state=account.optimizer_state(every, spec),
            inputs=account.batch(rows, spec) + inputs,
            activations=int(options["iterations"]) * n * e + activations)

    moments = []
    for k, (below, above) in enumerate(zip(*layer_fan_ins(spec.hidden, n), strict=True)):
        own = max(below + spec.hidden, 2 * spec.hidden + above, 3 * spec.hidden)
        moments.append(moment(
            f"run, iteration {last}, layer {k}", inputs=label,
            activations=(n + k) * state + sums + account.matrix(rows, own, spec)))
    moments.append(moment("run, normalizing its sums", inputs=label,
                          activations=2 * blocks * state + account.matrix(rows, 1, spec)))
    moments += [moment(at, gradients=gradients, activations=activations)
                for at, gradients, activations in readout.update_moments(spec, blocks, rows)]
    return moments


def positive_and_negative_rows(x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Images (2B, 784), twice, and one-hot labels (2B, C): the true ones, then wrong ones."""
    both = torch.cat([labels, wrong_labels(labels)])
    return x.repeat(2, 1), F.one_hot(both, MNIST_CLASSES).to(x.dtype)


def every_label_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Each image once per candidate label, image-major: (E * C, 784) and (E * C, C)."""
    labels = torch.arange(MNIST_CLASSES, device=x.device).repeat(len(x))
    return x.repeat_interleave(MNIST_CLASSES, dim=0), F.one_hot(labels, MNIST_CLASSES).to(x.dtype)


ALGORITHM = RecurrentFF
