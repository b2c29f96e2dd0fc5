"""Goodness functions for Forward-Forward layers, registered by name.

Each maps activations of shape (rows, units) to one goodness per row, (rows,).
They use tensor methods only, so this module imports without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


# Both are computed as a squared L2 norm: the same numbers as h.pow(2).sum(dim=1), but the
# backward pass makes one (rows, units) temporary (h * scale) instead of four, and the
# forward pass makes none: less memory and fewer passes over the activations.


def sumsq(h: Tensor) -> Tensor:
    """Hinton (2022): sum of squared activities."""
    return h.norm(dim=1).square()


def meansq(h: Tensor) -> Tensor:
    """Mean of squared activities: the published benchmark and most repositories."""
    return h.norm(dim=1).square() / h.shape[1]


@dataclass(frozen=True)
class Goodness:
    fn: Callable[[Tensor], Tensor]
    # Default threshold theta as a function of the layer width.
    default_threshold: Callable[[int], float]


GOODNESS: dict[str, Goodness] = {
    "sumsq": Goodness(sumsq, default_threshold=lambda hidden: 2.0 * hidden),
    "meansq": Goodness(meansq, default_threshold=lambda hidden: 2.0),
}
