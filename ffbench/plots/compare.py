"""Several results side by side: each input's peaks and step times against depth."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from ffbench.analysis.describe import caption
from ffbench.plots.style import (
    CAPTION_CHARS_PER_INCH,
    PANEL_INCHES,
    TOP_MARGIN,
    LineStyle,
    NoData,
    fill_lines,
    finish_figure,
    lines_panel,
    memory_unit,
    ok_rows,
    panel_grid,
    peak_kind,
    prepared,
    spans_decades,
)
from ffbench.units import MS_PER_S


def compare_inputs(frame: pd.DataFrame) -> Figure:
    """Train peak memory and step time vs depth, one column per input, same y ranges and
    one scale; without any step time (meta cells are not timed), the memory row alone."""
    data = prepared(frame)
    sources = list(dict.fromkeys(data.sort_index()["source"]))  # in the order given
    if len(sources) < 2:
        raise NoData("one input; give several results to compare them side by side")
    divisor, unit = memory_unit(data["train_peak"])
    data = data.assign(mem=data["train_peak"] / divisor,
                       step_ms=data["step_time_median_s"] * MS_PER_S)
    style = LineStyle.of(data, "config")
    timed = not ok_rows(data, "step_ms").empty
    rows = ["mem", "step_ms"] if timed else ["mem"]
    log = any(spans_decades(ok_rows(data, y)[y]) for y in rows)
    tops = {y: ok_rows(data, y)[y].max() * TOP_MARGIN for y in rows}
    lows = {y: ok_rows(data, y)[y].pipe(lambda v: v[v > 0]).min() / TOP_MARGIN for y in rows}
    fig, axes = panel_grid(len(rows), len(sources))
    for col, source in enumerate(sources):
        panel = data[data["source"] == source]
        labels = {"mem": f"train peak, {peak_kind(panel, 'train')} ({unit})",
                  "step_ms": "train step, median (ms)"}
        for row, y in enumerate(rows):
            lines_panel(axes[row, col], panel, y, style, labels[y], tops[y], log)
            if log:  # a linear axis starts at zero; a log one at the lowest value of all
                axes[row, col].set_ylim(bottom=lows[y])
        width = int(PANEL_INCHES[0] * CAPTION_CHARS_PER_INCH)
        axes[0, col].set_title(fill_lines(f"{source}: {caption(panel)}", width),
                               fontsize="small")
    untimed = "" if timed else "no step times: meta cells are not timed"
    return finish_figure(fig, data, "Inputs side by side", style, note=untimed)
