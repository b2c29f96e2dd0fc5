"""Analytic memory model: what one train step and one eval batch allocate and free, in order.

Pure Python on a resolved CellSpec (no torch import). Each algorithm's model (one file
here, one line in MODELS) replays its step as an explicit timeline, readable against the
algorithm's code: the tensors its Python code makes, what autograd saves for backward
and frees after each node, and what the single-tensor Adam makes per parameter.
"""

from __future__ import annotations

from collections.abc import Callable

from ffbench.memory_model import bp, ff, ff_progressive, rff
from ffbench.memory_model.core import CellModel, Peak
from ffbench.spec import BadInput, CellSpec

MODELS: dict[str, Callable[[CellSpec], CellModel]] = {
    "bp": bp.model,
    "ff": ff.model,
    "rff": rff.model,
    "ff-progressive": ff_progressive.model,
    "ff-layerwise": ff_progressive.layerwise_model,
}

__all__ = ["MODELS", "CellModel", "Peak", "cell_model", "has_model"]


def has_model(algorithm: str) -> bool:
    return algorithm in MODELS


def cell_model(spec: CellSpec) -> CellModel:
    """The analytic peaks of a cell (its spec resolved first)."""
    if not has_model(spec.algorithm):
        raise BadInput(f"no analytic memory model for {spec.algorithm!r} yet")
    return MODELS[spec.algorithm](spec.resolved())
