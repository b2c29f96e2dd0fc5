"""Step time (median, IQR band) and samples per second against depth."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from ffbench.plots.style import (
    LineStyle,
    NoData,
    config_names,
    draw_bands,
    finish_figure,
    lines_panel,
    ok_rows,
    panel_grid,
    prepared,
    spans_decades,
)
from ffbench.units import MS_PER_S


def time_vs_layers(frame: pd.DataFrame) -> Figure:
    """Train step time (median, IQR band) and samples/s vs hidden layers, a row per batch size."""
    data = prepared(frame)
    if ok_rows(data, "step_time_median_s").empty:
        raise NoData("no successful cell with step times (meta-device cells are not timed)")
    data = data.assign(step_ms=data["step_time_median_s"] * MS_PER_S,
                       iqr_ms=data["step_time_iqr_s"] * MS_PER_S)
    style = LineStyle.of(data, "source")
    ok = ok_rows(data, "step_ms")
    log = spans_decades(ok["step_ms"]) or spans_decades(ok["samples_per_s"])
    fig, axes = panel_grid(len(config_names(data)), 2)
    for row, config in enumerate(config_names(data)):
        panel = data[data["config"] == config]
        draw_bands(axes[row, 0], panel, "step_ms", "iqr_ms", style)
        lines_panel(axes[row, 0], panel, "step_ms", style, "train step, median ± IQR/2 (ms)",
                     log=log)
        lines_panel(axes[row, 1], panel, "samples_per_s", style, "samples/s (real images)",
                     log=log)
        axes[row, 0].set_title(f"step time · {config}")
        axes[row, 1].set_title(f"throughput · {config}")
    return finish_figure(fig, data, "Train step time and throughput vs depth", style)
