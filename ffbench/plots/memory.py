"""Memory figures: peak memory against depth, memory by category at a few depths, and the
measured peak against the predicted one (with the host's RSS on a CPU)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from ffbench.algorithms.registry import (
    by_algorithm_order,
    display_name,
)
from ffbench.measure.categories import CATEGORIES
from ffbench.plots.style import (
    LineStyle,
    NoData,
    algorithm_colors,
    category_colors,
    config_names,
    draw_caption,
    figure_title,
    finish_figure,
    lines_panel,
    memory_unit,
    ok_rows,
    panel_grid,
    peak_kind,
    prepared,
    spans_decades,
)
from ffbench.plots.ticks import plain_number, readable
from ffbench.settings.cell import HOST_DEVICE
from ffbench.sweep.plan import is_predicted
from ffbench.units import PHASES

SPLIT_PREFIX = {"train": "mem_", "eval": "eval_mem_"}  # category columns of each phase's peak


CATEGORY_LABEL_INCHES = 1.4  # under each row of category bars, for their rotated labels


TOTAL_HEADROOM = 1.25  # y range above the tallest stack, for the totals written on top


WIDE_RANGE_RATIO = 20  # log axes once max/min passes this (measured vs predicted)


RSS_LINE_POINTS = 50  # points of the dotted predicted-plus-offset curve


MEASURED_NOTE = ("measured: CUDA allocated, or tracked (tensors alive in the real run); "
                 "predicted: the same steps on fake tensors")


HOST_RSS_NOTE = ("host peak RSS: the process's peak resident memory (VmHWM), Python, "
                 "torch and the data set included")


def memory_vs_layers(frame: pd.DataFrame) -> Figure:
    """Peak memory vs hidden layers, train and eval side by side, a row per batch size."""
    data = prepared(frame)
    if ok_rows(data, "train_peak").empty and ok_rows(data, "eval_peak").empty:
        raise NoData("no successful cell with a memory peak")
    divisor, unit = memory_unit(pd.concat([data["train_peak"], data["eval_peak"]]))
    # one scale for every panel: log where the figure's peaks span more than a decade
    log = spans_decades(*(ok_rows(data, f"{p}_peak")[f"{p}_peak"] for p in PHASES))
    style = LineStyle.of(data, "source")
    fig, axes = panel_grid(len(config_names(data)), len(PHASES))
    for row, config in enumerate(config_names(data)):
        panel = data[data["config"] == config]
        for col, phase in enumerate(PHASES):
            cells = panel.assign(y=panel[f"{phase}_peak"] / divisor)
            label = f"{phase} peak, {peak_kind(cells, phase)} ({unit})"
            lines_panel(axes[row, col], cells, "y", style, label, log=log)
            axes[row, col].set_title(f"{phase} · {config}")
    return finish_figure(fig, data, "Peak memory vs depth", style)


def default_depths(data: pd.DataFrame) -> list[int]:
    """The smallest, a middle and the largest depth with a successful cell."""
    depths = sorted(ok_rows(data)["n_layers"].unique())
    if not depths:
        return []
    return sorted({int(depths[0]), int(depths[len(depths) // 2]), int(depths[-1])})


def _bar_slots(panel: pd.DataFrame) -> pd.DataFrame:
    """One slot per algorithm, depth and source, in registry and depth order; median of
    repeats; `status` is ok if any repeat succeeded."""
    keys = ["algorithm", "n_layers", "source"]
    ok = panel[panel["status"] == "ok"].groupby(keys).median(numeric_only=True).reset_index()
    failed = panel[panel["status"] != "ok"].drop_duplicates(keys)[[*keys, "status"]]
    failed = failed.merge(ok[keys], on=keys, how="left", indicator=True)
    failed = failed[failed["_merge"] == "left_only"].drop(columns="_merge")
    slots = pd.concat([ok.assign(status="ok"), failed], ignore_index=True)
    return slots.sort_values(["algorithm", "n_layers", "source"], key=by_algorithm_order)


def _stacked_bars(ax: Axes, panel: pd.DataFrame, phase: str, shown: Sequence[str],
                  divisor: float, several_sources: bool) -> None:
    slots = _bar_slots(panel)
    positions = np.arange(len(slots))
    bottom = np.zeros(len(slots))
    for name, color in category_colors().items():
        if name in shown:
            values = slots[f"{SPLIT_PREFIX[phase]}{name}_bytes"].fillna(0).to_numpy() / divisor
            ax.bar(positions, values, bottom=bottom, color=color, width=0.7)
            bottom += values
    # the stacks' tops are sticky edges: set the range, with room for the totals above
    ax.set_ylim(0, max(bottom.max(), 0) * TOTAL_HEADROOM or None)
    ax.yaxis.set_major_formatter(FuncFormatter(plain_number))
    for position, status, total in zip(positions, slots["status"], bottom, strict=True):
        if status != "ok":
            ax.text(float(position), 0, f" {status}", rotation=90, ha="center", va="bottom",
                    color="firebrick", fontsize="small")
        elif total > 0:
            ax.text(float(position), total, f" {plain_number(total)}", rotation=90,
                    ha="center", va="bottom", fontsize="x-small", color="dimgray")
    names = zip(slots["algorithm"], slots["n_layers"], slots["source"], strict=True)
    labels = [f"{display_name(a)} · {int(n)}" + (f" · {Path(s).name}" if several_sources else "")
              for a, n, s in names]
    ax.set_xticks(positions, labels, fontsize="small", rotation=90)
    colors = algorithm_colors(slots["algorithm"])
    for tick, algorithm in zip(ax.get_xticklabels(), slots["algorithm"], strict=True):
        tick.set_color(colors[algorithm])


def memory_categories(frame: pd.DataFrame, depths: Sequence[int] | None = None) -> Figure:
    """Tracked bytes at each phase's peak split by category, stacked, at a few depths."""
    data = prepared(frame)
    chosen = list(depths) if depths else default_depths(data)
    data = data[data["n_layers"].isin(chosen)]
    columns = [f"{SPLIT_PREFIX[p]}{c}_bytes" for p in PHASES for c in CATEGORIES]
    ok = ok_rows(data)
    if ok.empty or not ok[columns].notna().any().any():
        raise NoData(f"no successful cell with a category split at depths {chosen}")
    shown = [c for c in CATEGORIES
             if ok[[f"{SPLIT_PREFIX[p]}{c}_bytes" for p in PHASES]].fillna(0).to_numpy().any()]
    divisor, unit = memory_unit(ok[["train_peak_tracked_bytes", "eval_peak_tracked_bytes"]]
                                .to_numpy().ravel())
    fig, axes = panel_grid(len(config_names(data)), len(PHASES), CATEGORY_LABEL_INCHES)
    for row, config in enumerate(config_names(data)):
        for col, phase in enumerate(PHASES):
            ax = axes[row, col]
            _stacked_bars(ax, data[data["config"] == config], phase, shown, divisor,
                          data["source"].nunique() > 1)
            ax.set_ylabel(f"tracked at the {phase} peak ({unit})")
            ax.set_xlabel("algorithm · hidden layers", fontsize="small")
            ax.set_title(f"{phase} · {config}")
    handles = [Line2D([], [], color=category_colors()[c], linewidth=8, label=c.replace("_", " "))
               for c in shown]
    fig.legend(handles=handles, loc="outside right center", fontsize="small")
    fig.suptitle(figure_title(data, f"Memory by category at depths {', '.join(map(str, chosen))}"))
    draw_caption(fig, data)
    return fig


def _independent(data: pd.DataFrame) -> pd.DataFrame:
    """Rows with a measurement of their own: a meta cell's peak is its prediction."""
    return data[~data["device"].fillna("").map(is_predicted)]


def _host_rss_points(measured: pd.DataFrame) -> pd.DataFrame:
    """CPU cells with a host peak RSS: x = the larger predicted phase, y = the RSS (bytes)."""
    rows = ok_rows(measured[measured["device"] == HOST_DEVICE], "cpu_peak_rss_bytes")
    larger = rows[[f"predicted_{p}_peak_bytes" for p in PHASES]].max(axis=1)
    return rows.assign(x=larger, y=rows["cpu_peak_rss_bytes"]).dropna(subset=["x"])


def _scatter(ax: Axes, rows: pd.DataFrame) -> None:
    sns.scatterplot(data=rows, x="x", y="y", hue="algorithm",
                    palette=algorithm_colors(rows["algorithm"]), legend=False, ax=ax)


def measured_vs_predicted(frame: pd.DataFrame) -> Figure:
    """Measured peak (CUDA allocated, else tracked) against the fake-tensor prediction, per
    phase; on the CPU also the host's peak RSS (the whole process) against the larger
    predicted phase. Meta cells are left out: their peak is the prediction itself."""
    data = prepared(frame)
    measured = _independent(data)
    if measured.empty and not ok_rows(data).empty:
        raise NoData("every cell ran on meta: its peak is the prediction itself, so there "
                     "is no measurement to compare it with")
    pairs = [(p, ok_rows(measured, f"{p}_peak", f"predicted_{p}_peak_bytes")) for p in PHASES]
    if all(rows.empty for _, rows in pairs):
        raise NoData("no successful cell with both a measured and a predicted peak")
    rss = _host_rss_points(measured)
    peaks = pd.concat([pd.concat([rows[f"{p}_peak"], rows[f"predicted_{p}_peak_bytes"]])
                       for p, rows in pairs])
    divisor, unit = memory_unit(pd.concat([peaks, rss["y"]]))
    log = _wide(peaks)  # one scale for every panel, the RSS panel's too
    fig, axes = panel_grid(1, len(PHASES) + (not rss.empty))
    for ax, (phase, rows) in zip(axes[0], pairs, strict=False):
        rows = rows.assign(x=rows[f"predicted_{phase}_peak_bytes"] / divisor,
                           y=rows[f"{phase}_peak"] / divisor)
        _scatter(ax, rows)
        both = pd.concat([rows["x"], rows["y"]])
        ax.axline((both.min(), both.min()), slope=1, color="gray", linestyle=":", linewidth=1)
        ratio = (rows["y"] / rows["x"]).median()
        ax.set_title(f"{phase}: measured / predicted, median {ratio:.3f}")
        ax.set_xlabel(f"predicted, fake tensors ({unit})")
        ax.set_ylabel(f"measured, {peak_kind(rows, phase)} ({unit})")
    if not rss.empty:
        _host_rss_panel(axes[0, -1], rss.assign(x=rss["x"] / divisor, y=rss["y"] / divisor),
                        unit, log)
    for ax in axes[0]:
        readable(ax, "x", log)
        readable(ax, "y", log)
    return finish_figure(fig, data, "Measured vs predicted peak (dotted: equal)", None,
                   note=_measured_note(data, measured, not rss.empty))


def _wide(values: pd.Series) -> bool:
    """Log axes when the values span more than WIDE_RANGE_RATIO."""
    positive = values[values > 0]
    return not positive.empty and positive.max() / positive.min() > WIDE_RANGE_RATIO


def _host_rss_panel(ax: Axes, rss: pd.DataFrame, unit: str, log: bool) -> None:
    """Host peak RSS against the larger predicted phase, dotted: predicted plus the median
    difference (what the process holds besides the cell's tensors: Python, torch, data)."""
    _scatter(ax, rss)
    offset = (rss["y"] - rss["x"]).median()
    x = (np.geomspace if log else np.linspace)(rss["x"].min(), rss["x"].max(), RSS_LINE_POINTS)
    ax.plot(x, x + offset, color="gray", linestyle=":", linewidth=1)
    ax.set_title(f"host peak RSS: predicted + {offset:,.0f} {unit} (median)")
    ax.set_xlabel(f"predicted, larger phase ({unit})")
    ax.set_ylabel(f"host peak RSS ({unit})")


def _measured_note(data: pd.DataFrame, measured: pd.DataFrame, with_rss: bool) -> str:
    """What each quantity of measured_vs_predicted is, and which cells it leaves out."""
    parts = [MEASURED_NOTE] + ([HOST_RSS_NOTE] if with_rss else [])
    left_out = len(data) - len(measured)
    if left_out:
        parts.append(f"{left_out} meta cell(s) left out: their peak is the prediction")
    return "; ".join(parts)
