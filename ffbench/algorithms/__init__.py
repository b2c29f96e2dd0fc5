"""Training algorithms: one file each, registered by name in `registry.py` (or a plugin)."""

from ffbench.algorithms.registry import ALGORITHMS

__all__ = ["ALGORITHMS"]
