"""What every figure shares: the theme, each algorithm's colour, units, captions, the
frame's preparation, and the drawing helpers (lines, bands, failed cells, axes, legends).
Stored values are base units (bytes, seconds); they become MiB/GiB and ms here, for drawing
only. Figures are built on `matplotlib.figure.Figure` (no pyplot): no display, no global state."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ffbench.algorithms.registry import (
    ALGORITHMS,
    BUILTIN,
    algorithm_order,
    algorithm_rank,
    display_name,
)
from ffbench.analysis.describe import caption
from ffbench.measure.categories import CATEGORIES
from ffbench.plots.ticks import readable
from ffbench.results import measured_peak_bytes
from ffbench.sweep.plan import is_predicted
from ffbench.sweep.result_sets import MISSING
from ffbench.units import MIB, PHASES

GIB = 2**30


GIB_ABOVE_BYTES = 4 * GIB  # draw in GiB once the largest value passes this


PERCENT = 100


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


DASHES: tuple[Any, ...] = ("", (4, 2), (1, 1.5), (6, 2, 1, 2), (2, 4), (8, 2, 1, 2, 1, 2),
                           (3, 1, 3, 4))  # the fair sweep's six configurations, and one more


STATUS_MARKERS = {"oom": "x", "timeout": "v", "error": "X", "crashed": "D", "skipped": ".",
                  MISSING: "$?$"}


# Failed and missing cells: a dotted line at their depth and a marker on the x axis itself
# (never at a height that reads as a value), side by side when several fail at one depth.
# between the marks of algorithms failing at one depth: this share of the depth axis
# (about a marker's width on a panel), so they stay apart on a long axis too
FAILED_MARK_SPREAD = 0.02


FAILED_LINE_ALPHA = 0.5


DECADE = 10  # a log axis wherever the values span more than this ratio


CAPTION_CHARS_PER_INCH = 14  # small-font characters one inch of figure width holds


CONFIG_MARKERS = ("o", "s", "^", "D", "P", "*")


BAND_ALPHA = 0.2


TOP_MARGIN = 1.05  # y range above the largest value, where one range serves several panels


PREDICTED_NOTE = "PREDICTED on meta (fake tensors, no compute)"


class NoData(Exception):
    """Nothing to draw for a figure; the message says why."""


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


def peak_kind(frame: pd.DataFrame, phase: str) -> str:
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


def wrapped_text(text: str, fig: Figure) -> str:
    return fill_lines(text, int(fig.get_figwidth() * CAPTION_CHARS_PER_INCH))


def fill_lines(text: str, width: int) -> str:
    """Lines of at most `width` characters, broken at spaces only (paths stay whole)."""
    return textwrap.fill(text, width, break_on_hyphens=False, break_long_words=False)


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


def panel_grid(rows: int, cols: int, extra_row_inches: float = 0) -> tuple[Figure, np.ndarray]:
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


def draw_bands(ax: Axes, data: pd.DataFrame, mid: str, width: str, style: LineStyle) -> None:
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
        log = values is not None and spans_decades(values)
    readable(ax, "y", log)
    if log:
        ax.set_ylim(top=finite_top)
    else:
        ax.set_ylim(bottom=0, top=finite_top)


def spans_decades(*values: pd.Series) -> bool:
    """Whether the positive values, all series together, span more than a decade."""
    joined = pd.concat([v.dropna() for v in values])
    positive = joined[joined > 0]
    return not positive.empty and positive.max() / positive.min() > DECADE


def lines_panel(ax: Axes, data: pd.DataFrame, y: str, style: LineStyle, ylabel: str,
                 top: float | None = None, log: bool | None = None) -> None:
    _draw_lines(ax, data, y, style)
    _depth_axes(ax, data, ylabel, top, ok_rows(data, y)[y], log)
    _mark_failed(ax, data, style.colors)


def draw_legend(fig: Figure, data: pd.DataFrame, style: LineStyle | None,
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


def draw_caption(fig: Figure, data: pd.DataFrame, note: str = "") -> None:
    """The caption line under the panels (a figure-level label, so the layout keeps room),
    after `note` (what the figure's quantities are) where given."""
    text = caption(data)
    if _predicted(data):
        text = f"{PREDICTED_NOTE} · {text}"
    if note:
        text = f"{note} · {text}"
    fig.supxlabel(wrapped_text(text, fig), x=0.01, ha="left", fontsize="small", color="dimgray")


def figure_title(data: pd.DataFrame, title: str) -> str:
    return f"{title} · PREDICTED" if _predicted(data) else title


def finish_figure(fig: Figure, data: pd.DataFrame, title: str, style: LineStyle | None,
            extra: Sequence[Line2D] = (), note: str = "") -> Figure:
    draw_legend(fig, data, style, extra)
    fig.suptitle(figure_title(data, title))
    draw_caption(fig, data, note)
    return fig


def config_names(data: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(data["config"]))
