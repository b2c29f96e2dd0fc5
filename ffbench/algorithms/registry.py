"""The algorithms ffbench knows, by name; importable without torch.

Adding an algorithm = one file in this package exporting `ALGORITHM` (a subclass of
`ffbench.algorithms.base.Algorithm`) + one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ffbench.algorithms.base import Algorithm


@dataclass(frozen=True)
class AlgorithmInfo:
    module: str
    summary: str
    default_lr: float
    # Algorithm-specific settings and their defaults; `--option NAME=VALUE` overrides one.
    options: dict[str, Any] = field(default_factory=dict)

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

    def load(self) -> type[Algorithm]:
        cls: type[Algorithm] = importlib.import_module(self.module).ALGORITHM
        return cls


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
}
