"""The floor a cell's arithmetic sets: the measured matmul rate at the cell's own shapes.

Not a datasheet number. Every distinct Linear shape of the model is timed alone on the
cell's device and dtype, at `rows_per_step` rows, in the three layouts a training step
uses: forward (x @ W^T), weight gradient (g^T @ x) and input gradient (g @ W). The
calibrated rate is total FLOPs over total time, each shape weighted by how often the model
has it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ffbench.measure.timer import TimeSummary, time_calls

CALIBRATION_REPEATS = 5  # timed calls per matmul, after one untimed call


def matmul_shapes(model: nn.Module, rows: int) -> Counter[tuple[int, int, int]]:
    """(rows, in, out) of every Linear in the model, with multiplicity."""
    return Counter(
        (rows, layer.in_features, layer.out_features)
        for layer in model.modules()
        if isinstance(layer, nn.Linear)
    )


def _median_s(fn: Callable[[], Tensor], device: torch.device) -> float:
    fn()  # warm-up: library handles, workspaces
    return TimeSummary.of(time_calls(fn, CALIBRATION_REPEATS, device)).median_s


def shape_time_s(
    rows: int, in_features: int, out_features: int, device: torch.device, dtype: torch.dtype
) -> float:
    """Median seconds of the forward, weight-gradient and input-gradient matmuls, summed."""
    x = torch.randn(rows, in_features, device=device, dtype=dtype)
    weight = torch.randn(out_features, in_features, device=device, dtype=dtype)
    grad = torch.randn(rows, out_features, device=device, dtype=dtype)
    return (
        _median_s(lambda: x @ weight.t(), device)
        + _median_s(lambda: grad.t() @ x, device)
        + _median_s(lambda: grad @ weight, device)
    )


def calibrated_flops_per_s(
    shapes: Counter[tuple[int, int, int]], device: torch.device, dtype: torch.dtype
) -> float:
    """FLOP/s of the given matmul mix (three layouts per shape), measured here and now."""
    layouts = 3
    total_flops, total_s = 0, 0.0
    for (rows, in_features, out_features), count in shapes.items():
        total_flops += count * layouts * 2 * rows * in_features * out_features
        total_s += count * shape_time_s(rows, in_features, out_features, device, dtype)
    return total_flops / total_s
