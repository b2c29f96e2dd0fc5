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
# h.pow(2).sum(dim=1), with no (rows, units) temporary in the forward pass. In training, FF
# goes further for the goodness functions that declare `sumsq_divisor` below: it computes
# them with a custom op whose backward makes one (rows, units) tensor (algorithms/ff.py).


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
    # Set where fn(h) == sum of squares of h / divisor(width): FF training then computes
    # ReLU and goodness as one op with a cheaper backward (algorithms/ff.py).
    sumsq_divisor: Callable[[int], int] | None = None


GOODNESS: dict[str, Goodness] = {
    "sumsq": Goodness(sumsq, default_threshold=lambda hidden: 2.0 * hidden,
                      sumsq_divisor=lambda hidden: 1),
    "meansq": Goodness(meansq, default_threshold=lambda hidden: 2.0,
                       sumsq_divisor=lambda hidden: hidden),
    "topk_meansq": Goodness(topk_meansq, default_threshold=lambda hidden: 2.0),
    # the mirror image of sumsq: activity below 2 per unit is "good"
    "neg_sumsq": Goodness(neg_sumsq, default_threshold=lambda hidden: -2.0 * hidden),
}
