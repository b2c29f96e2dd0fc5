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


# sumsq, meansq and neg_sumsq are computed as a squared L2 norm: the same numbers as
# h.pow(2).sum(dim=1), but the backward pass makes one (rows, units) temporary (h * scale)
# instead of four, and the forward pass makes none: less memory and fewer passes over the
# activations.


def sumsq(h: Tensor) -> Tensor:
    """Hinton (2022): sum of squared activities."""
    return h.norm(dim=1).square()


def meansq(h: Tensor) -> Tensor:
    """Mean of squared activities: the published benchmark and most repositories."""
    return h.norm(dim=1).square() / h.shape[1]


TOPK_FRACTION = 0.1  # share of a layer's units that topk_meansq reads (our choice of k)


def topk_meansq(h: Tensor) -> Tensor:
    """Mean of squared activities over only the k most active units of each row, k =
    `TOPK_FRACTION` of the width (at least 1): the "top-k goodness" of Akkus, Kocabay,
    Yuksel & Sawaf (2026), "Selectivity and Shape in the Design of Forward-Forward
    Goodness Functions", arXiv:2604.13081, which measures only peak activity."""
    k = max(1, int(h.shape[1] * TOPK_FRACTION))
    return h.pow(2).topk(k, dim=1).values.mean(dim=1)


def neg_sumsq(h: Tensor) -> Tensor:
    """Minus the sum of squared activities: Hinton (2022), "The Forward-Forward Algorithm:
    Some Preliminary Investigations", arXiv:2212.13345, abstract: "The sum of the squared
    activities in a layer can be used as the goodness but there are many other
    possibilities, including minus the sum of the squared activities." Positive rows
    learn low activity, negative rows high activity."""
    return -h.norm(dim=1).square()


@dataclass(frozen=True)
class Goodness:
    fn: Callable[[Tensor], Tensor]
    # Default threshold theta as a function of the layer width.
    default_threshold: Callable[[int], float]


GOODNESS: dict[str, Goodness] = {
    "sumsq": Goodness(sumsq, default_threshold=lambda hidden: 2.0 * hidden),
    "meansq": Goodness(meansq, default_threshold=lambda hidden: 2.0),
    "topk_meansq": Goodness(topk_meansq, default_threshold=lambda hidden: 2.0),
    # the mirror image of sumsq: activity below 2 per unit is "good"
    "neg_sumsq": Goodness(neg_sumsq, default_threshold=lambda hidden: -2.0 * hidden),
}
