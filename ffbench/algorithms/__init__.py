"""Training algorithms: one file each, registered by name in `registry.py`."""

from ffbench.algorithms.registry import ALGORITHMS, AlgorithmInfo

__all__ = ["ALGORITHMS", "AlgorithmInfo"]
