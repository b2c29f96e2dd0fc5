"""Lean backprop: `bp` with both of its memory-saving options on (see algorithms/bp.py):
the hidden stack checkpointed over round(sqrt(n_layers)) segments unless
`checkpoint_segments` says otherwise, and each parameter's optimizer step fused into the
backward. Same stack, head, loss and updates as `bp`; the strongest memory-saving backprop
ffbench knows, and the baseline FF is compared with next to `bp`. Its closed-form memory
account is bp's (Backprop.memory_account reads both options).
"""

from __future__ import annotations

import math

from ffbench.algorithms.bp import Backprop
from ffbench.settings.cell import CellSpec


def default_segments(n_layers: int) -> int:
    """sqrt(n) segments: about sqrt(n) boundaries kept plus one segment of sqrt(n) layers
    recomputed at a time, the fewest activations alive for one extra forward."""
    return max(1, round(math.sqrt(n_layers)))


class LeanBackprop(Backprop):
    name = "bp-lean"
    display_name = "lean backprop"
    summary = (
        "lean backprop: bp checkpointed over round(sqrt(layers)) segments "
        "(checkpoint_segments=0) or the k given, with the optimizer step fused into the backward"
    )
    options = {"checkpoint_segments": 0, "fused_step": True}
    late_options = ()
    preset_settings = Backprop.preset_settings  # the same function, trained the same way
    gradient_note = "each gradient is freed by its own fused optimizer step during backward"

    @classmethod
    def checkpoint_segments(cls, spec: CellSpec) -> int:
        given = int(spec.options.get("checkpoint_segments", 0))
        return given or default_segments(spec.n_layers)


ALGORITHM = LeanBackprop
