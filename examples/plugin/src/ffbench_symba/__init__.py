"""Forward-Forward with the SymBa loss (Lee & Song 2023), as an ffbench plugin.

Base FF (ffbench's `ff`) pushes every positive row's goodness above a threshold and every
negative row's below it. SymBa drops the threshold and compares each image's positive row
with its own negative row: loss = mean softplus(-alpha * (g_positive - g_negative)).
Everything else (layers, normalization, one Adam per layer, prediction) is ff's, so the
memory account is ff's too: the loss's few (B,) tensors are freed before the peak.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from ffbench.algorithms.ff import ForwardForward
from ffbench.errors import BadInput


def symba_loss(goodness: Tensor, alpha: float) -> Tensor:
    """goodness (2B,): the B positive rows, then their B negative rows."""
    positive, negative = goodness.chunk(2)
    return F.softplus(-alpha * (positive - negative)).mean()


class SymBaFF(ForwardForward):
    name = "ff-symba"
    display_name = "SymBa FF"
    summary = "FF with the SymBa loss (Lee & Song 2023): positive vs its own negative, no threshold"
    default_lr = 0.03
    options: ClassVar[dict[str, Any]] = {"readout_from_layer": 1, "alpha": 4.0}
    accuracy_target = None  # no accuracy settings tuned for it
    gradient_note = "as ff: each layer's gradients are freed right after its own Adam step"

    @classmethod
    def check(cls, options: Any) -> None:
        if not options["alpha"] > 0:
            raise BadInput(f"option alpha must be positive, got {options['alpha']}")

    def train_layer(self, index: int, h: Tensor) -> tuple[Tensor, Tensor]:
        out, goodness = self.layer_and_goodness(index, h)
        loss = symba_loss(goodness, float(self.spec.options["alpha"]))
        del goodness
        loss.backward()
        optimizer = self.optimizers[index]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return out.detach(), loss.detach()
