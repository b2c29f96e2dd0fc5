"""How a Forward-Forward network names a digit: by goodness, or by a linear read-out.

`readout=goodness` (the default, Hinton 2022's first method): each image is run once per
candidate label (label embedded) and the label with the most goodness wins: ten forward
passes per image.

`readout=linear` (Hinton 2022's other method, section 3.3): each image is run once with a
neutral label (every label unit at 0: no label), and a softmax classifier reads the
length-normalized activities of the read-out layers (`readout_from_layer` on). The
classifier is trained beside the layers on the same batches, with its own optimizer
(`make_optimizer`, so `--optimizer` applies), on activities computed without gradient:
the layers' training stays local and the classifier never changes them.

The classifier is one weight block (classes, width) per read-out layer and one bias: its
logits, the sum of the blocks' products, are a linear map of the layers' concatenated
activities, computed without making the concatenation. The algorithm supplies the
activities (`ff`: one forward pass; `rff`: its read-out iterations); this module holds the
classifier, its step, its FLOPs and its share of the closed-form memory account.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ffbench.algorithms import account
from ffbench.algorithms.account import MemoryAccount
from ffbench.algorithms.base import make_optimizer, matmul_flops
from ffbench.errors import BadInput
from ffbench.settings.cell import MNIST_CLASSES, CellSpec

GOODNESS_READOUT, LINEAR_READOUT = "goodness", "linear"
READOUTS = (GOODNESS_READOUT, LINEAR_READOUT)
# The options every FF-family algorithm takes (added after cells were stored: late options).
# readout_lr: the classifier's learning rate; 0 takes the cell's --lr.
OPTIONS = {"readout": GOODNESS_READOUT, "readout_lr": 0.0}
# The label units of an image whose label is unknown: none. Hinton (2022) sets each to 1/10,
# adding the mean of every label's weights to every image's input; measured, the read-out
# then falls behind while the layers improve (mnist-5k, ff 2x500, rms, lr 0.003, seed 0:
# 85.4% after 60 epochs against 92.7% with 0; the accuracy documentation).
NEUTRAL_LABEL = 0.0


def readout_of(options: Mapping[str, Any]) -> str:
    """The cell's read-out (an algorithm whose options lack it, a plugin's, reads goodness)."""
    return str(options.get("readout", GOODNESS_READOUT))


def is_linear(spec: CellSpec) -> bool:
    return readout_of(spec.options) == LINEAR_READOUT


def check_readout(options: Mapping[str, Any]) -> None:
    kind = options.get("readout", GOODNESS_READOUT)
    if kind not in READOUTS:
        raise BadInput(f"option readout={kind!r}: use one of {', '.join(READOUTS)}")
    lr = options.get("readout_lr", 0.0)
    if not (math.isfinite(lr) and lr >= 0):
        raise BadInput(f"option readout_lr must be 0 (the cell's --lr) or positive, got {lr}")


def readout_layers(n_layers: int, from_layer: int) -> range:
    """Indices of the layers read out: `from_layer` on (at least the top one)."""
    return range(min(from_layer, n_layers - 1), n_layers)


def with_neutral_label(x: Tensor) -> Tensor:
    """A copy of the images (E, 784) with the neutral label in the label pixels."""
    rows = x.clone()
    rows[:, :MNIST_CLASSES].fill_(NEUTRAL_LABEL)
    return rows


def neutral_labels(rows: int, like: Tensor) -> Tensor:
    """(rows, C): the neutral label as a separate input (rff clamps its label above)."""
    return torch.full((rows, MNIST_CLASSES), NEUTRAL_LABEL, device=like.device, dtype=like.dtype)


class LinearReadout(nn.Module):
    """Softmax classifier over `blocks` activity vectors of `width` units each."""

    def __init__(self, blocks: int, width: int, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Linear(width, MNIST_CLASSES, bias=index == 0, device=device, dtype=dtype)
            for index in range(blocks)
        )

    def logits(self, activities: Iterable[Tensor]) -> Tensor:
        """(E, C) from one (E, width) length-normalized activity per block, taken one at a
        time (a generator's block can be freed once read, where no gradient keeps it)."""
        total: Tensor | None = None
        for head, h in zip(self.heads, activities, strict=True):
            total = head(h) if total is None else total + head(h)  # (E, C)
        assert total is not None
        return total

    def update(self, activities: Iterable[Tensor], labels: Tensor,
               optimizer: torch.optim.Optimizer) -> Tensor:
        """One step of the classifier's own optimizer on cross-entropy; the loss, detached."""
        loss = F.cross_entropy(self.logits(activities), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    @torch.no_grad()
    def predict(self, activities: Iterable[Tensor]) -> Tensor:
        return self.logits(activities).argmax(dim=1)

    def forward_flops(self, rows: int) -> int:
        return matmul_flops(rows, list(self.heads))  # type: ignore[arg-type]

    def update_flops(self, rows: int) -> int:
        """Forward and weight gradients (the activities need none)."""
        return 2 * self.forward_flops(rows)


def attach_readout(spec: CellSpec, blocks: int, model: nn.ModuleList,
                   optimizers: list[torch.optim.Optimizer], device: torch.device,
                   dtype: torch.dtype) -> LinearReadout | None:
    """The cell's linear read-out, appended to `model` with its optimizer last in
    `optimizers`; None for the goodness read-out. Its initial weights are drawn without
    moving the random stream on: the layers then see the same negatives as with the
    goodness read-out (same seed, same layers, only the read-out differs)."""
    if not is_linear(spec):
        return None
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        readout = LinearReadout(blocks, spec.hidden, device, dtype)
    model.append(readout)
    optimizers.append(make_optimizer(list(readout.parameters()), readout_spec(spec)))
    return readout


def readout_spec(spec: CellSpec) -> CellSpec:
    """The cell as the classifier's optimizer sees it: its own learning rate, if given."""
    lr = float(spec.options.get("readout_lr", 0.0))
    return dataclasses.replace(spec, lr=lr) if lr else spec


# --- its share of the closed-form memory account (algorithms.account) ---

def parameter_sizes(spec: CellSpec, blocks: int) -> list[int]:
    """Bytes of the classifier's parameters, in `parameters()` order (0 blocks: none)."""
    return [
        size for index in range(blocks)
        for size in account.linear(spec.hidden, MNIST_CLASSES, spec, bias=index == 0)
    ]


def update_moments(spec: CellSpec, blocks: int, rows: int) -> list[tuple[str, int, int]]:
    """The classifier's update on `rows` rows at its candidate peaks, as (moment, gradients,
    activations), besides what its algorithm keeps alive (the batch). In the backward, the
    `blocks` activities (rows, width) its products saved and: at the cross-entropy's
    backward, the log-softmax (saved), the gradients of the log-probabilities and of the
    logits, the loss and its gradient; then, with the logits' gradient, the first weight
    gradient (classes, width) being made. In its optimizer step (the activities freed), its
    gradients, the step's temporaries and the loss."""
    e, logits = account.element_bytes(spec), account.matrix(rows, MNIST_CLASSES, spec)
    activities = blocks * account.matrix(rows, spec.hidden, spec)
    sizes = parameter_sizes(spec, blocks)
    return [
        ("cross-entropy backward", 0, activities + 3 * logits + 2 * e),
        ("first weight gradient", 0,
         activities + logits + account.matrix(MNIST_CLASSES, spec.hidden, spec) + 2 * e),
        ("optimizer step", sum(sizes), account.step_temporaries(sizes, spec) + e),
    ]


def with_parts(moment: MemoryAccount, spec: CellSpec, sizes: list[int]) -> MemoryAccount:
    """The moment, naming the classifier's parameters and optimizer state in it (`explain`
    shows them); unchanged without a linear read-out (no `sizes`)."""
    if not sizes:
        return moment
    return dataclasses.replace(moment, parts={
        **moment.parts,
        "linear read-out parameters": sum(sizes),
        "linear read-out optimizer state": account.optimizer_state(sizes, spec),
    })
