"""Offloading backprop: `bp` with its saved activations kept in host memory between the
forward and the backward (`offload_activations`, see algorithms/offload.py) and each
parameter's optimizer step fused into the backward. Checkpointing stays off unless
`checkpoint_segments` asks for it (then the segments' inputs are what goes to the host).
Same stack, head, loss and updates as `bp`; its closed-form memory account is bp's
(Backprop.memory_account reads every option).

On a GPU (and on `meta`, which stands for one) the offloaded activations are host memory:
the device peak leaves them out, `host_peak_tracked_bytes` counts them, and
`offloaded_bytes_per_step` says how many bytes cross the host link each way per step. On
`--device cpu` host and device are one memory: nothing is moved, and the cell is bp with
the fused step.
"""

from __future__ import annotations

from ffbench.algorithms.bp import Backprop


class OffloadBackprop(Backprop):
    name = "bp-offload"
    display_name = "offloading backprop"
    summary = (
        "offloading backprop: bp with saved activations kept in host memory from the forward "
        "to the backward and the optimizer step fused into the backward (nothing moves on cpu)"
    )
    options = {"checkpoint_segments": 0, "fused_step": True, "offload_activations": True}
    late_options = ()
    preset_settings = Backprop.preset_settings  # the same function, trained the same way
    gradient_note = "each gradient is freed by its own fused optimizer step during backward"


ALGORITHM = OffloadBackprop
