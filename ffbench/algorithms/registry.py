"""The algorithms ffbench knows, by name; importable without torch.

Adding an algorithm = one file in this package exporting `ALGORITHM` (a subclass of
`ffbench.algorithms.base.Algorithm`) + one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ffbench.algorithms.base import Algorithm


@dataclass(frozen=True)
class AlgorithmInfo:
    module: str
    summary: str
    default_lr: float
    # Algorithm-specific settings and their defaults; `--option NAME=VALUE` overrides one.
    options: dict[str, Any] = field(default_factory=dict)
    # Checks across options (given merged with the defaults); raises BadInput. Torch-free.
    check: Callable[[dict[str, Any]], None] | None = None

    def check_options(self, given: dict[str, Any]) -> None:
        from ffbench.spec import BadInput

        for name, value in given.items():
            if name not in self.options:
                known = ", ".join(sorted(self.options)) or "none"
                raise BadInput(f"unknown option {name!r} (this algorithm has: {known})")
            default = self.options[name]
            if not isinstance(value, type(default)) and not (
                isinstance(default, float) and isinstance(value, int)
            ):
                raise BadInput(
                    f"option {name}={value!r} should be a {type(default).__name__}"
                )
        if self.check is not None:
            self.check({**self.options, **given})

    def load(self) -> type[Algorithm]:
        cls: type[Algorithm] = importlib.import_module(self.module).ALGORITHM
        return cls


def check_recurrent(options: dict[str, Any]) -> None:
    """rff: read out from iterations that exist; damping factors that are weights."""
    from ffbench.spec import BadInput

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


ALGORITHMS: dict[str, AlgorithmInfo] = {
    "bp": AlgorithmInfo(
        "ffbench.algorithms.bp",
        "backprop baseline: the same hidden stack, linear head, cross-entropy, one Adam",
        default_lr=1e-3,
    ),
    "ff": AlgorithmInfo(
        "ffbench.algorithms.ff",
        "Base Forward-Forward (Hinton 2022): every layer updated on each batch, one Adam per layer",
        default_lr=0.03,
        options={"readout_from_layer": 1},
    ),
    "rff": AlgorithmInfo(
        "ffbench.algorithms.rff",
        "Recurrent FF (Hinton 2022): synchronous damped updates from below and above, "
        "image and label clamped, goodness read out over iterations",
        default_lr=0.03,
        options={
            "iterations": 8, "damping_old": 0.3, "damping_new": 0.7,
            "readout_first": 3, "readout_last": 5,
        },
        check=check_recurrent,
    ),
    "ff-progressive": AlgorithmInfo(
        "ffbench.algorithms.ff_progressive",
        "FF trained one layer at a time, all epochs each (the published benchmark's mode); "
        "cache=true keeps the layer's inputs for the whole training set on the device",
        default_lr=0.03,
        options={"readout_from_layer": 1, "cache": False},
    ),
    "ff-layerwise": AlgorithmInfo(
        "ffbench.algorithms.ff_layerwise",
        "progressive FF with only the layer in training on the device; frozen layers' "
        "outputs kept in host memory and streamed in batch by batch",
        default_lr=0.03,
        options={"readout_from_layer": 1},
    ),
}


def algorithm_order(names: Iterable[str]) -> list[str]:
    """Registered algorithms in registry order, then unknown names sorted."""
    present = set(names)
    return [n for n in ALGORITHMS if n in present] + sorted(present - set(ALGORITHMS))


def algorithm_rank(names: Iterable[str]) -> dict[str, int]:
    """Each name's position in `algorithm_order`."""
    return {name: i for i, name in enumerate(algorithm_order(names))}


def by_algorithm_order(column: pd.Series) -> pd.Series:
    """A `sort_values` key: the `algorithm` column by registry order, others as they are."""
    return column.map(algorithm_rank(column)) if column.name == "algorithm" else column
