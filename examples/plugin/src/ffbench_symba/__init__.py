"""Forward-Forward with the SymBa loss (Lee & Song 2023), as an ffbench plugin.

Base FF (ffbench's `ff`) pushes every positive row's goodness above a threshold and every
negative row's below it. SymBa drops the threshold and compares each image's positive row
with its own negative row: loss = mean softplus(-alpha * (g_positive - g_negative)).
Everything else (layers, normalization, one optimizer per layer, prediction, the memory
account: the loss's few (B,) tensors are freed before the peak) is ff's: only the loss
changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from ffbench.algorithms.ff import ForwardForward
from ffbench.errors import BadInput


class SymBaFF(ForwardForward):
    name = "ff-symba"
    display_name = "SymBa FF"
    summary = "FF with the SymBa loss (Lee & Song 2023): positive vs its own negative, no threshold"
    options: ClassVar[Mapping[str, Any]] = {**ForwardForward.options, "alpha": 4.0}
    gradient_note = "as ff: each layer's gradients are freed right after its own Adam step"

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> None:
        super().check(options)
        if not options["alpha"] > 0:
            raise BadInput(f"option alpha must be positive, got {options['alpha']}")

    def loss(self, goodness: Tensor, n_positive: int) -> Tensor:
        positive, negative = goodness[:n_positive], goodness[n_positive:]
        return F.softplus(-self.spec.options["alpha"] * (positive - negative)).mean()
