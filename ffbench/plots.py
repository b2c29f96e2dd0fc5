"""Seaborn figures from a loaded results frame (`ffbench.results.load`); no measuring here
(legends name algorithms by their classes' display names, which loads them and torch).

Each figure function takes the frame and returns a matplotlib Figure, or raises NoData
saying why there is nothing to draw. Stored values are base units (bytes, seconds); they
become MiB/GiB and ms here, for drawing only, with the unit in the axis label. Figures are
built on `matplotlib.figure.Figure` (no pyplot), so no display and no global state.
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ffbench import verdict, verdict_text
from ffbench.algorithms.registry import (
    ALGORITHMS,
    BUILTIN,
    algorithm_order,
    algorithm_rank,
    by_algorithm_order,
    display_name,
)
from ffbench.errors import BadInput
from ffbench.measure.categories import CATEGORIES
from ffbench.plot_ticks import plain_number, readable
from ffbench.results import measured_peak_bytes
from ffbench.settings.cell import HOST_DEVICE, MNIST_CLASSES
from ffbench.sweep.folder import MISSING
from ffbench.sweep.plan import is_predicted
from ffbench.units import MIB, MS_PER_S, PHASES

GIB = 2**30
GIB_ABOVE_BYTES = 4 * GIB  # draw in GiB once the largest value passes this
PERCENT = 100
SPLIT_PREFIX = {"train": "mem_", "eval": "eval_mem_"}  # category columns of each phase's peak

THEME = "whitegrid"
ALGORITHM_PALETTE = "colorblind"
# The palette's colours in the order the built-ins take them, by registry position: the
# fifth and sixth swapped so that the five drawn together in the published and fair grids
# (registry positions 1-4 and 6) do not hold both light browns.
BUILTIN_PALETTE_ORDER = (0, 1, 2, 3, 5, 4)
# Every other algorithm (installed plugins, then names in results this install does not
# know), sorted by name, takes these in turn: dark and saturated, each at least as far
# (CIE76 colour difference) from every built-in's colour and from each other as the
# built-ins' closest pair is from each other, none paler than a built-in's.
PLUGIN_COLORS = ("#5e3c99", "#6b8e23", "#a50f15", "#404040", "#e7298a", "#01665e")
CATEGORY_PALETTE = "Set2"
PANEL_INCHES = (4.6, 3.2)
DPI = 120
DASHES: tuple[Any, ...] = ("", (4, 2), (1, 1.5), (6, 2, 1, 2), (2, 4))
STATUS_MARKERS = {"oom": "x", "timeout": "v", "error": "X", "crashed": "D", "skipped": ".",
                  MISSING: "$?$"}
# Failed and missing cells: a dotted line at their depth and a marker on the x axis itself
# (never at a height that reads as a value), side by side when several fail at one depth.
# between the marks of algorithms failing at one depth: this share of the depth axis
# (about a marker's width on a panel), so they stay apart on a long axis too
FAILED_MARK_SPREAD = 0.02
FAILED_LINE_ALPHA = 0.5
CATEGORY_LABEL_INCHES = 1.4  # under each row of category bars, for their rotated labels
TOTAL_HEADROOM = 1.25  # y range above the tallest stack, for the totals written on top
DECADE = 10  # a log axis wherever the values span more than this ratio
CAPTION_CHARS_PER_INCH = 14  # small-font characters one inch of figure width holds
CONFIG_MARKERS = ("o", "s", "^", "D", "P", "*")
BAND_ALPHA = 0.2
TOP_MARGIN = 1.05  # y range above the largest value, where one range serves several panels
WIDE_RANGE_RATIO = 20  # log axes once max/min passes this (measured vs predicted)
CHANCE = 1 / MNIST_CLASSES
PREDICTED_NOTE = "PREDICTED on meta (fake tensors, no compute)"
# The answer figure: a linear ratio axis from 0 to at least RATIO_AXIS_MIN_TOP and at most
# RATIO_AXIS_TOP (a line above it is cut there, its value written at the top); room right of
# the deepest depth for each line's end label.
ANSWER_PHASES = (verdict.TRAIN, verdict.EVAL_EQUAL, verdict.LARGER, verdict.EVAL_PUBLISHED)
RATIO_AXIS_TOP = 2.0
RATIO_AXIS_MIN_TOP = 1.25
LINES_SHARE = 0.8  # of the axes' width, from the left, the depths take; labels the rest
LABEL_X = 0.83  # where the labels start (axes fraction)
LABEL_GAP_INCHES = 0.27  # a two-line x-small label's height
AXES_HEIGHT_SHARE = 0.7  # of a panel's height, its axes take about this much
RSS_LINE_POINTS = 50  # points of the dotted predicted-plus-offset curve
MEASURED_NOTE = ("measured: CUDA allocated, or tracked (tensors alive in the real run); "
                 "predicted: the same steps on fake tensors")
HOST_RSS_NOTE = ("host peak RSS: the process's peak resident memory (VmHWM), Python, "
                 "torch and the data set included")


class NoData(Exception):
    """Nothing to draw for a figure; the message says why."""


# ---- colors, units, captions -----------------------------------------------------------


def algorithm_colors(names: Iterable[str] = ()) -> dict[str, Any]:
    """A built-in algorithm has the same color in every figure (its registry position);
    installed plugins, then names the registry does not know, take PLUGIN_COLORS in sorted
    order (more than there are repeat them)."""
    order = [*BUILTIN_PALETTE_ORDER, *range(len(BUILTIN_PALETTE_ORDER), len(BUILTIN))]
    palette = sns.color_palette(ALGORITHM_PALETTE, len(order))
    builtin = {name: palette[i] for name, i in zip(BUILTIN, order, strict=False)}
    others = ([n for n in ALGORITHMS if n not in BUILTIN]
              + sorted(set(names) - set(ALGORITHMS)))
    return builtin | {name: to_rgb(PLUGIN_COLORS[i % len(PLUGIN_COLORS)])
                      for i, name in enumerate(others)}


def category_colors() -> dict[str, Any]:
    return dict(zip(CATEGORIES, sns.color_palette(CATEGORY_PALETTE, len(CATEGORIES)), strict=True))


def memory_unit(values_bytes: Iterable[float]) -> tuple[float, str]:
    """(divisor, unit): GiB for large values, else MiB."""
    largest = max((v for v in values_bytes if pd.notna(v)), default=0)
    return (GIB, "GiB") if largest > GIB_ABOVE_BYTES else (MIB, "MiB")


def _joined(values: pd.Series) -> str:
    unique = [str(v) for v in dict.fromkeys(values.dropna())]
    return " / ".join(unique) if unique else "unknown"


def _one_caption(frame: pd.DataFrame) -> str:
    device = frame["gpu_name"].where(frame["gpu_name"].notna(), frame["cpu_model"])
    dates = frame["started_at"].dropna().str[:10]
    when = "unknown date" if dates.empty else " to ".join(dict.fromkeys([dates.min(), dates.max()]))
    return f"{_joined(device)} · torch {_joined(frame['torch_version'])} · {when}"


def caption(frame: pd.DataFrame) -> str:
    """'device · torch version · date' of the cells (several values joined by ' / '); with
    several inputs, one such part per input, named."""
    if "source" not in frame or frame["source"].nunique() < 2:
        return _one_caption(frame)
    return "  |  ".join(f"{source}: {_one_caption(cells)}"
                        for source, cells in frame.groupby("source", sort=False))


def _peak_kind(frame: pd.DataFrame, phase: str) -> str:
    """Which measurement the drawn peak is, for the axis label (rows with neither, such as
    failed cells, do not count)."""
    if _predicted(frame):
        return "predicted"
    allocated = frame[f"{phase}_peak_allocated_bytes"]
    has_cuda = allocated[allocated.notna() | frame[f"{phase}_peak_tracked_bytes"].notna()].notna()
    if has_cuda.all():
        return "CUDA allocated"
    return "tracked" if not has_cuda.any() else "CUDA allocated, else tracked"


def _predicted(frame: pd.DataFrame) -> bool:
    """Whether every successful cell ran on meta: its peaks are predictions."""
    devices = frame.loc[frame["status"] == "ok", "device"].dropna()
    return not devices.empty and all(is_predicted(d) for d in devices)


def _wrapped(text: str, fig: Figure) -> str:
    return _fill(text, int(fig.get_figwidth() * CAPTION_CHARS_PER_INCH))


def _fill(text: str, width: int) -> str:
    """Lines of at most `width` characters, broken at spaces only (paths stay whole)."""
    return textwrap.fill(text, width, break_on_hyphens=False, break_long_words=False)


# ---- frame preparation -----------------------------------------------------------------


def prepared(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows with a depth, a `config` label per batch size and width, a `source`, and each
    phase's measured peak as `<phase>_peak` (CUDA allocated, else tracked; bytes)."""
    data = frame.dropna(subset=["n_layers", "algorithm", "batch_size", "hidden"]).copy()
    if "source" not in data:
        data["source"] = "results"
    pairs = zip(data["batch_size"], data["hidden"], strict=True)
    data["config"] = [f"batch {int(b)}, hidden {int(h)}" for b, h in pairs]
    for phase in PHASES:
        data[f"{phase}_peak"] = measured_peak_bytes(data, phase)
    return data.sort_values(["batch_size", "hidden", "n_layers"], kind="stable")


def ok_rows(data: pd.DataFrame, *columns: str) -> pd.DataFrame:
    """Successful cells with a value in every one of `columns`."""
    return data[data["status"] == "ok"].dropna(subset=list(columns))


@dataclass(frozen=True)
class LineStyle:
    """Color by algorithm, dashes by the value of one more column (source or config)."""

    colors: dict[str, Any]
    column: str
    dashes: dict[str, Any]

    @classmethod
    def of(cls, data: pd.DataFrame, column: str) -> LineStyle:
        keys = list(dict.fromkeys(data[column]))
        dashes = {key: DASHES[i % len(DASHES)] for i, key in enumerate(keys)}
        return cls(algorithm_colors(data["algorithm"]), column, dashes)


# ---- drawing helpers -------------------------------------------------------------------


def _grid(rows: int, cols: int, extra_row_inches: float = 0) -> tuple[Figure, np.ndarray]:
    """`extra_row_inches`: room under each row for long (rotated) tick labels."""
    with sns.axes_style(THEME):
        fig = Figure(figsize=(PANEL_INCHES[0] * cols + 1.5,
                              (PANEL_INCHES[1] + extra_row_inches) * rows),
                     layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _line_points(data: pd.DataFrame, style: LineStyle,
                 *columns: str) -> Iterator[tuple[str, Any, pd.DataFrame]]:
    """(algorithm, style key, points) per line, over the successful cells with all `columns`:
    points are their medians (of repeated cells) at each depth."""
    ok = ok_rows(data, *columns)
    for (algorithm, key), line in ok.groupby(["algorithm", style.column], sort=False):
        yield algorithm, key, line.groupby("n_layers")[list(columns)].median()


def _draw_lines(ax: Axes, data: pd.DataFrame, y: str, style: LineStyle) -> None:
    """One line per algorithm and style key: median of repeated cells at each depth."""
    for algorithm, key, points in _line_points(data, style, y):
        dash = style.dashes[key]
        ax.plot(points.index, points[y].to_numpy(), color=style.colors[algorithm], marker="o",
                markersize=4, linestyle=(0, dash) if dash else "-")


def _draw_bands(ax: Axes, data: pd.DataFrame, mid: str, width: str, style: LineStyle) -> None:
    """A band of `width` (the IQR) centred on `mid` (the median) along each line."""
    for algorithm, _, points in _line_points(data, style, mid, width):
        low, high = points[mid] - points[width] / 2, points[mid] + points[width] / 2
        ax.fill_between(points.index, low, high, color=style.colors[algorithm],
                        alpha=BAND_ALPHA, linewidth=0)


def _mark_failed(ax: Axes, data: pd.DataFrame, colors: dict[str, Any]) -> None:
    """Failed and missing cells: a dotted line at their depth, their marker on the x axis
    (side by side when several algorithms fail at one depth; after the x range is set)."""
    failed = data[data["status"] != "ok"]
    rank = algorithm_rank(failed["algorithm"])
    spread = len(rank) - 1
    for status, cells in failed.groupby("status"):
        offsets = ((cells["algorithm"].map(rank).to_numpy() - spread / 2)
                   * FAILED_MARK_SPREAD * (ax.get_xlim()[1] - ax.get_xlim()[0]))
        x = cells["n_layers"].to_numpy() + offsets
        for depth, algorithm in zip(x, cells["algorithm"], strict=True):
            ax.axvline(depth, color=colors[algorithm], linestyle=":", linewidth=1,
                       alpha=FAILED_LINE_ALPHA)
        ax.scatter(x, np.zeros(len(x)), transform=ax.get_xaxis_transform(),
                   marker=STATUS_MARKERS.get(str(status), "x"),
                   c=[colors[a] for a in cells["algorithm"]], s=45, zorder=3, clip_on=False)


def _depth_axes(ax: Axes, data: pd.DataFrame, ylabel: str, top: float | None = None,
                values: pd.Series | None = None, log: bool | None = None) -> None:
    """x: every depth tried (failed and missing cells included), integer ticks; y from zero
    to `top` (default: what the lines need), log where `log` says (by default: where
    `values` span more than a decade), plain-number ticks either way."""
    depths = data["n_layers"]
    ax.set_xlim(depths.min() - 0.5, depths.max() + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("hidden layers")
    ax.set_ylabel(ylabel)
    # no value to draw (e.g. meta cells have no step times): max() of nothing is NaN
    finite_top = top if top is not None and math.isfinite(top) else None
    if log is None:
        log = values is not None and _spans_decades(values)
    readable(ax, "y", log)
    if log:
        ax.set_ylim(top=finite_top)
    else:
        ax.set_ylim(bottom=0, top=finite_top)


def _spans_decades(*values: pd.Series) -> bool:
    """Whether the positive values, all series together, span more than a decade."""
    joined = pd.concat([v.dropna() for v in values])
    positive = joined[joined > 0]
    return not positive.empty and positive.max() / positive.min() > DECADE


def _lines_panel(ax: Axes, data: pd.DataFrame, y: str, style: LineStyle, ylabel: str,
                 top: float | None = None, log: bool | None = None) -> None:
    _draw_lines(ax, data, y, style)
    _depth_axes(ax, data, ylabel, top, ok_rows(data, y)[y], log)
    _mark_failed(ax, data, style.colors)


def _legend(fig: Figure, data: pd.DataFrame, style: LineStyle | None,
            extra: Sequence[Line2D] = ()) -> None:
    """One legend per figure: algorithms, `extra` handles; with a line style, the style keys
    (when several) and the failed-cell markers that line figures draw."""
    colors = algorithm_colors(data["algorithm"])
    handles = [Line2D([], [], color=colors[a], marker="o", label=display_name(a))
               for a in algorithm_order(data["algorithm"])] + list(extra)
    if style is None:
        fig.legend(handles=handles, loc="outside right center", fontsize="small")
        return
    if len(style.dashes) > 1:
        handles += [Line2D([], [], color="gray", label=str(key),
                           linestyle=(0, dash) if dash else "-")
                    for key, dash in style.dashes.items()]
    for status in dict.fromkeys(data.loc[data["status"] != "ok", "status"]):
        handles.append(Line2D([], [], color="gray", linestyle="",
                              marker=STATUS_MARKERS.get(status, "x"),
                              label="not run yet" if status == MISSING else f"{status} (failed)"))
    fig.legend(handles=handles, loc="outside right center", fontsize="small")


def _caption(fig: Figure, data: pd.DataFrame, note: str = "") -> None:
    """The caption line under the panels (a figure-level label, so the layout keeps room),
    after `note` (what the figure's quantities are) where given."""
    text = caption(data)
    if _predicted(data):
        text = f"{PREDICTED_NOTE} · {text}"
    if note:
        text = f"{note} · {text}"
    fig.supxlabel(_wrapped(text, fig), x=0.01, ha="left", fontsize="small", color="dimgray")


def _title(data: pd.DataFrame, title: str) -> str:
    return f"{title} · PREDICTED" if _predicted(data) else title


def _finish(fig: Figure, data: pd.DataFrame, title: str, style: LineStyle | None,
            extra: Sequence[Line2D] = (), note: str = "") -> Figure:
    _legend(fig, data, style, extra)
    fig.suptitle(_title(data, title))
    _caption(fig, data, note)
    return fig


def _configs(data: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(data["config"]))


# ---- the figures -----------------------------------------------------------------------


def memory_vs_layers(frame: pd.DataFrame) -> Figure:
    """Peak memory vs hidden layers, train and eval side by side, a row per batch size."""
    data = prepared(frame)
    if ok_rows(data, "train_peak").empty and ok_rows(data, "eval_peak").empty:
        raise NoData("no successful cell with a memory peak")
    divisor, unit = memory_unit(pd.concat([data["train_peak"], data["eval_peak"]]))
    # one scale for every panel: log where the figure's peaks span more than a decade
    log = _spans_decades(*(ok_rows(data, f"{p}_peak")[f"{p}_peak"] for p in PHASES))
    style = LineStyle.of(data, "source")
    fig, axes = _grid(len(_configs(data)), len(PHASES))
    for row, config in enumerate(_configs(data)):
        panel = data[data["config"] == config]
        for col, phase in enumerate(PHASES):
            cells = panel.assign(y=panel[f"{phase}_peak"] / divisor)
            label = f"{phase} peak, {_peak_kind(cells, phase)} ({unit})"
            _lines_panel(axes[row, col], cells, "y", style, label, log=log)
            axes[row, col].set_title(f"{phase} · {config}")
    return _finish(fig, data, "Peak memory vs depth", style)


def _config_labels(table: pd.DataFrame) -> pd.Series:
    """Per row of a verdict table, its group named by the settings that vary between the
    groups drawn (one group: its batch size and width)."""
    names = {"source": "{}", "optimizer": "{}", "dtype": "{}", "batch_size": "batch {}",
             "hidden": "hidden {}"}
    varying = [k for k in names if table[k].nunique() > 1] or ["batch_size", "hidden"]
    return table[varying].astype(str).apply(
        lambda row: ", ".join(names[k].format(row[k]) for k in varying), axis=1)


def _answer_rows(found: verdict.Verdict) -> list[tuple[str, str]]:
    """(baseline, its name in the figure): the strongest backprop, and bp beside it."""
    backprops = algorithm_order({b for g in found.groups for b in g.backprops})
    if len(backprops) == 1:
        return [(verdict.STRONGEST, backprops[0])]
    return [(verdict.STRONGEST, "the strongest backprop")] + (
        [("bp", "bp")] if "bp" in backprops else [])


def _since(c: verdict.Comparison) -> str:
    if c.about_same:
        return "about same"
    return "never" if c.below_from is None else f"from {c.below_from}"


@dataclass(frozen=True)
class EndLabel:
    """A line's value at its deepest depth and its crossover depth, written at its end."""

    x: float  # the line's last point
    y: float
    text: str
    color: Any
    dash: Any


def _end_labels(ax: Axes, labels: list[EndLabel], top: float) -> None:
    """Labels right of the lines' ends, in the line's colour, spread apart vertically so
    that none overlaps another, each joined to its line's end by a thin line."""
    if not labels:
        return
    gap = LABEL_GAP_INCHES / (PANEL_INCHES[1] * AXES_HEIGHT_SHARE)  # axes fraction
    gap = min(gap, 1 / len(labels))
    wanted = sorted(((min(label.y, top) / top, label) for label in labels),
                    key=lambda pair: pair[0])
    placed: list[float] = []
    for y, _ in wanted:  # upwards: each at least `gap` above the one below
        placed.append(max(y, placed[-1] + gap) if placed else max(y, gap / 2))
    for i in range(len(placed) - 1, -1, -1):  # then down from the top edge
        ceiling = 1 - gap / 2 if i == len(placed) - 1 else placed[i + 1] - gap
        placed[i] = min(placed[i], ceiling)
    for y, (_, label) in zip(placed, wanted, strict=True):
        ax.annotate(label.text, xy=(label.x, min(label.y, top)), xycoords="data",
                    xytext=(LABEL_X, y), textcoords="axes fraction",
                    va="center", ha="left", fontsize="x-small", color=label.color,
                    annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "color": label.color, "linewidth": 0.6,
                                "linestyle": (0, label.dash) if label.dash else "-",
                                "shrinkA": 1, "shrinkB": 2})


def _answer_panel(ax: Axes, lines: pd.DataFrame, found: verdict.Verdict,
                  groups: dict[str, verdict.Group], style: LineStyle) -> list[str]:
    """One phase against one baseline: each FF variant's ratio per depth, the crossover
    depth circled, the value and crossover written at the line's end. Returns the
    backprops the baseline was at the lines' deepest depths."""
    labels, names = [], []
    top = min(RATIO_AXIS_TOP, max(RATIO_AXIS_MIN_TOP, lines["ratio"].max() * TOP_MARGIN))
    for (algorithm, config), points in lines.groupby(["algorithm", "config"], sort=False):
        points = points.sort_values("n_layers")
        color, dash = style.colors[algorithm], style.dashes[config]
        ax.plot(points["n_layers"], points["ratio"], color=color, marker="o", markersize=3,
                linestyle=(0, dash) if dash else "-")
        first = points.iloc[0]
        c = found.find(algorithm, first["baseline"], first["phase"], groups[config])
        assert c is not None  # every line of the table is a comparison
        names.append(c.backprop)
        if c.below_from is not None:
            at = points[points["n_layers"] == c.below_from]
            ax.plot(at["n_layers"], at["ratio"], linestyle="", marker="o", markersize=8,
                    markerfacecolor="none", markeredgecolor=color)
        above = "above: " if c.ratio > top else ""
        labels.append(EndLabel(c.deepest, c.ratio, f"{above}{verdict_text.ratio_text(c.ratio)}"
                               f"\n{_since(c)}", color, dash))
    ax.set_ylim(0, top)
    depths = lines["n_layers"]
    left, right = depths.min() - 0.5, depths.max() + 0.5
    ax.hlines(1, left, right, color="black", linewidth=1.2)  # not through the labels
    ax.set_xlim(left, left + (right - left) / LINES_SHARE)
    ticks = MaxNLocator(integer=True).tick_values(depths.min(), depths.max())
    ax.set_xticks([t for t in ticks if depths.min() <= t <= depths.max()])
    ax.set_xlabel("hidden layers")
    _end_labels(ax, labels, top)
    return names


def answer(frame: pd.DataFrame) -> Figure:
    """The verdict drawn (ffbench.verdict, its per-depth ratios): per phase, each FF
    variant's peak over the strongest backprop's at each depth, and over bp's, on a linear
    axis around 1; at each line's end its value at the deepest depth and the depth from
    which it stays below (circled on the line)."""
    data = prepared(frame)
    found = verdict.verdict(frame)
    table = found.depths
    if table.empty:
        raise NoData("no backprop and FF cells at the same depths, batch size and width")
    table = table.assign(config=_config_labels(table), status="ok")
    groups = {config: next(g for g in found.groups if g.key == tuple(key))
              for config, key in zip(table["config"], table[verdict.GROUP].to_numpy().tolist(),
                                     strict=True)}
    phases = [p for p in ANSWER_PHASES if p in set(table["phase"])]
    rows = _answer_rows(found)
    style = LineStyle.of(table, "config")
    fig, axes = _grid(len(rows), len(phases))
    for row, (baseline, name) in enumerate(rows):
        for col, phase in enumerate(phases):
            ax = axes[row, col]
            lines = table[(table["baseline"] == baseline) & (table["phase"] == phase)]
            names = _answer_panel(ax, lines, found, groups, style) if not lines.empty else []
            at = f" ({' / '.join(dict.fromkeys(names))} at the deepest)" if (
                baseline == verdict.STRONGEST and len(rows) > 1 and names) else ""
            width = int(PANEL_INCHES[0] * CAPTION_CHARS_PER_INCH)
            ax.set_title(f"{phase}\n{_fill(f'over {name}{at}', width)}", fontsize="small")
            ax.set_ylabel(f"FF peak / {name}'s" if col == 0 else "")
    extra = [Line2D([], [], color="black", linewidth=1.2, label="1: the backprop's peak"),
             Line2D([], [], color="gray", linestyle="", marker="o", markersize=8,
                    markerfacecolor="none", label="below from here on")]
    _legend(fig, table, style, extra)  # the FF variants drawn; backprop is the line at 1
    fig.suptitle(_title(data, "The answer: FF's peak over backprop's (below 1: FF needs less)"))
    _caption(fig, data)
    return fig


def time_vs_layers(frame: pd.DataFrame) -> Figure:
    """Train step time (median, IQR band) and samples/s vs hidden layers, a row per batch size."""
    data = prepared(frame)
    if ok_rows(data, "step_time_median_s").empty:
        raise NoData("no successful cell with step times (meta-device cells are not timed)")
    data = data.assign(step_ms=data["step_time_median_s"] * MS_PER_S,
                       iqr_ms=data["step_time_iqr_s"] * MS_PER_S)
    style = LineStyle.of(data, "source")
    ok = ok_rows(data, "step_ms")
    log = _spans_decades(ok["step_ms"]) or _spans_decades(ok["samples_per_s"])
    fig, axes = _grid(len(_configs(data)), 2)
    for row, config in enumerate(_configs(data)):
        panel = data[data["config"] == config]
        _draw_bands(axes[row, 0], panel, "step_ms", "iqr_ms", style)
        _lines_panel(axes[row, 0], panel, "step_ms", style, "train step, median ± IQR/2 (ms)",
                     log=log)
        _lines_panel(axes[row, 1], panel, "samples_per_s", style, "samples/s (real images)",
                     log=log)
        axes[row, 0].set_title(f"step time · {config}")
        axes[row, 1].set_title(f"throughput · {config}")
    return _finish(fig, data, "Train step time and throughput vs depth", style)


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
    fig, axes = _grid(len(_configs(data)), len(PHASES), CATEGORY_LABEL_INCHES)
    for row, config in enumerate(_configs(data)):
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
    fig.suptitle(_title(data, f"Memory by category at depths {', '.join(map(str, chosen))}"))
    _caption(fig, data)
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
    fig, axes = _grid(1, len(PHASES) + (not rss.empty))
    for ax, (phase, rows) in zip(axes[0], pairs, strict=False):
        rows = rows.assign(x=rows[f"predicted_{phase}_peak_bytes"] / divisor,
                           y=rows[f"{phase}_peak"] / divisor)
        _scatter(ax, rows)
        both = pd.concat([rows["x"], rows["y"]])
        ax.axline((both.min(), both.min()), slope=1, color="gray", linestyle=":", linewidth=1)
        ratio = (rows["y"] / rows["x"]).median()
        ax.set_title(f"{phase}: measured / predicted, median {ratio:.3f}")
        ax.set_xlabel(f"predicted, fake tensors ({unit})")
        ax.set_ylabel(f"measured, {_peak_kind(rows, phase)} ({unit})")
    if not rss.empty:
        _host_rss_panel(axes[0, -1], rss.assign(x=rss["x"] / divisor, y=rss["y"] / divisor),
                        unit, log)
    for ax in axes[0]:
        readable(ax, "x", log)
        readable(ax, "y", log)
    return _finish(fig, data, "Measured vs predicted peak (dotted: equal)", None,
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


def accuracy_vs_memory(frame: pd.DataFrame) -> Figure:
    """Test accuracy against the train peak it cost, each point labelled with its depth."""
    data = prepared(frame)
    rows = ok_rows(data, "test_accuracy", "train_peak")
    if rows.empty:
        raise NoData("no test accuracy in these results (it needs --epochs and real data)")
    divisor, unit = memory_unit(rows["train_peak"])
    rows = rows.assign(x=rows["train_peak"] / divisor, y=rows["test_accuracy"] * PERCENT)
    fig, axes = _grid(1, 1)
    ax = axes[0, 0]
    markers = {c: CONFIG_MARKERS[i % len(CONFIG_MARKERS)] for i, c in enumerate(_configs(rows))}
    sns.scatterplot(data=rows, x="x", y="y", hue="algorithm", style="config", markers=markers,
                    palette=algorithm_colors(rows["algorithm"]), s=50, ax=ax, legend=False)
    for x, y, depth in zip(rows["x"], rows["y"], rows["n_layers"], strict=True):
        ax.annotate(f"{int(depth)}", (x, y), textcoords="offset points", xytext=(4, 3),
                    fontsize="x-small")
    ax.axhline(CHANCE * PERCENT, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel(f"train peak, {_peak_kind(rows, 'train')} ({unit})")
    ax.set_ylabel("test accuracy (%)")
    at_chance = rows[rows["test_accuracy"] < 2 * CHANCE]
    if not at_chance.empty:
        epochs = ", ".join(str(int(e)) for e in sorted(at_chance["epochs"].dropna().unique()))
        ax.set_title(_wrapped(f"dotted: chance ({CHANCE:.0%}). {len(at_chance)} cell(s) near "
                              f"chance: trained too little to learn ({epochs or '?'} epoch(s)), "
                              "not a verdict on the algorithm", fig), fontsize="small")
    configs = [Line2D([], [], color="gray", marker=m, linestyle="", label=c)
               for c, m in markers.items()] if len(markers) > 1 else []
    return _finish(fig, data, "Accuracy vs memory (labels: hidden layers)", None, configs)


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
    log = any(_spans_decades(ok_rows(data, y)[y]) for y in rows)
    tops = {y: ok_rows(data, y)[y].max() * TOP_MARGIN for y in rows}
    lows = {y: ok_rows(data, y)[y].pipe(lambda v: v[v > 0]).min() / TOP_MARGIN for y in rows}
    fig, axes = _grid(len(rows), len(sources))
    for col, source in enumerate(sources):
        panel = data[data["source"] == source]
        labels = {"mem": f"train peak, {_peak_kind(panel, 'train')} ({unit})",
                  "step_ms": "train step, median (ms)"}
        for row, y in enumerate(rows):
            _lines_panel(axes[row, col], panel, y, style, labels[y], tops[y], log)
            if log:  # a linear axis starts at zero; a log one at the lowest value of all
                axes[row, col].set_ylim(bottom=lows[y])
        width = int(PANEL_INCHES[0] * CAPTION_CHARS_PER_INCH)
        axes[0, col].set_title(_fill(f"{source}: {caption(panel)}", width),
                               fontsize="small")
    untimed = "" if timed else "no step times: meta cells are not timed"
    return _finish(fig, data, "Inputs side by side", style, note=untimed)


# ---- all of them -----------------------------------------------------------------------


@dataclass(frozen=True)
class Drawn:
    """One figure's outcome: the file written, or why it was skipped."""

    name: str
    path: Path | None
    skipped: str | None = None


def figures(depths: Sequence[int] | None = None) -> dict[str, Callable[[pd.DataFrame], Figure]]:
    return {
        "answer": answer,
        "memory_vs_layers": memory_vs_layers,
        "time_vs_layers": time_vs_layers,
        "memory_categories": functools.partial(memory_categories, depths=depths),
        "measured_vs_predicted": measured_vs_predicted,
        "accuracy_vs_memory": accuracy_vs_memory,
        "compare_inputs": compare_inputs,
    }


def render(frame: pd.DataFrame,
           depths: Sequence[int] | None = None) -> Iterator[tuple[str, Figure | None, str | None]]:
    """(name, figure, None) for each figure in turn, or (name, None, why) where it has no data."""
    for name, draw in figures(depths).items():
        try:
            yield name, draw(frame), None
        except NoData as why:
            yield name, None, str(why)


def draw_all(frame: pd.DataFrame, out_dir: Path, fmt: str = "png",
             depths: Sequence[int] | None = None) -> list[Drawn]:
    """Every figure that has data, as `out_dir/<name>.<fmt>`; the others say why not."""
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = []
    for name, fig, why in render(frame, depths):
        if fig is None:
            drawn.append(Drawn(name, None, why))
            continue
        path = out_dir / f"{name}.{fmt}"
        fig.savefig(path, format=fmt, dpi=DPI)
        drawn.append(Drawn(name, path))
    return drawn


def draw_sets(results: list[Path], *, together: bool, out: Path | None, fmt: str,
              depths: list[int] | None) -> Iterator[str]:
    """`ffbench plot`: draw each result set (ffbench.sweep.folder.result_sets) into its
    folder (`out`, else RESULTS/figures; with several sets, out/NAME), a line per figure
    written or skipped. Every input is read before anything is drawn."""
    from ffbench.settings.paths import check_creatable
    from ffbench.sweep.folder import default_out, load_set, result_sets

    out_root = out or default_out(results, "figures")
    if out_root.exists() and not out_root.is_dir():
        raise BadInput(f"--out {out_root} is a file; give a folder for the figures")
    check_creatable(out_root, "--out")
    found, sets = result_sets(results, together=together)
    if found != results:
        yield f"found {len(found)} results folder(s): {', '.join(map(str, found))}"
    loaded = [(paths, load_set(paths)) for paths in sets]
    for paths, frame in loaded:
        where = out / paths[0].name if out and len(sets) > 1 else out
        for figure in draw_all(frame, where or default_out(paths, "figures"), fmt, depths):
            yield (f"wrote {figure.path}" if figure.path is not None
                   else f"skipped {figure.name}: {figure.skipped}")
