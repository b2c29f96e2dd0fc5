"""The answer figure: the verdict (ffbench.analysis.verdict) drawn, each FF variant's peak over
the strongest backprop's and over bp's, per phase, on a linear ratio axis around 1, with the
crossover depth and the deepest depth's value written on each line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ffbench.algorithms.registry import (
    algorithm_order,
)
from ffbench.analysis import verdict, verdict_records, verdict_text
from ffbench.analysis.verdict_records import EVAL_EQUAL, EVAL_PUBLISHED, GROUP, LARGER, TRAIN
from ffbench.plots.style import (
    CAPTION_CHARS_PER_INCH,
    PANEL_INCHES,
    TOP_MARGIN,
    LineStyle,
    NoData,
    draw_caption,
    draw_legend,
    figure_title,
    fill_lines,
    panel_grid,
    prepared,
)
from ffbench.results import as_read

# The answer figure: a linear ratio axis from 0 to at least RATIO_AXIS_MIN_TOP and at most
# RATIO_AXIS_TOP (a line above it is cut there, its value written at the top); room right of
# the deepest depth for each line's end label.
ANSWER_PHASES = (TRAIN, EVAL_EQUAL, LARGER, EVAL_PUBLISHED)


RATIO_AXIS_TOP = 2.0


RATIO_AXIS_MIN_TOP = 1.25


LINES_SHARE = 0.8  # of the axes' width, from the left, the depths take; labels the rest


LABEL_X = 0.83  # where the labels start (axes fraction)


LABEL_GAP_INCHES = 0.27  # a two-line x-small label's height


AXES_HEIGHT_SHARE = 0.7  # of a panel's height, its axes take about this much


def _config_labels(table: pd.DataFrame) -> pd.Series:
    """Per row of a verdict table, its group named by the settings that vary between the
    groups drawn (one group: its batch size and width)."""
    names = {"source": "{}", "optimizer": "{}", "dtype": "{}", "batch_size": "batch {}",
             "hidden": "hidden {}"}
    varying = [k for k in names if table[k].nunique() > 1] or ["batch_size", "hidden"]
    return table[varying].astype(str).apply(
        lambda row: ", ".join(names[k].format(row[k]) for k in varying), axis=1)


def _answer_rows(found: verdict_records.Verdict) -> list[tuple[str, str]]:
    """(baseline, its name in the figure): the strongest backprop, and bp beside it."""
    backprops = algorithm_order({b for g in found.groups for b in g.backprops})
    if len(backprops) == 1:
        return [(verdict_records.STRONGEST, backprops[0])]
    return [(verdict_records.STRONGEST, "the strongest backprop")] + (
        [("bp", "bp")] if "bp" in backprops else [])


def _since(c: verdict_records.Comparison) -> str:
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


def _answer_panel(ax: Axes, lines: pd.DataFrame, found: verdict_records.Verdict,
                  groups: dict[str, verdict_records.Group], style: LineStyle) -> list[str]:
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
    """The verdict drawn (ffbench.analysis.verdict, its per-depth ratios): per phase, each FF
    variant's peak over the strongest backprop's at each depth, and over bp's, on a linear
    axis around 1; at each line's end its value at the deepest depth and the depth from
    which it stays below (circled on the line). Drawn per folder, as the verdict is."""
    frame = as_read(frame)
    data = prepared(frame)
    found = verdict.verdict(frame)
    table = found.depths
    if table.empty:
        raise NoData("no backprop and FF cells at the same depths, batch size and width")
    table = table.assign(config=_config_labels(table), status="ok")
    groups = {config: next(g for g in found.groups if g.key == tuple(key))
              for config, key in zip(table["config"], table[GROUP].to_numpy().tolist(),
                                     strict=True)}
    phases = [p for p in ANSWER_PHASES if p in set(table["phase"])]
    rows = _answer_rows(found)
    style = LineStyle.of(table, "config")
    fig, axes = panel_grid(len(rows), len(phases))
    for row, (baseline, name) in enumerate(rows):
        for col, phase in enumerate(phases):
            ax = axes[row, col]
            lines = table[(table["baseline"] == baseline) & (table["phase"] == phase)]
            names = _answer_panel(ax, lines, found, groups, style) if not lines.empty else []
            at = f" ({' / '.join(dict.fromkeys(names))} at the deepest)" if (
                baseline == verdict_records.STRONGEST and len(rows) > 1 and names) else ""
            width = int(PANEL_INCHES[0] * CAPTION_CHARS_PER_INCH)
            ax.set_title(f"{phase}\n{fill_lines(f'over {name}{at}', width)}", fontsize="small")
            ax.set_ylabel(f"FF peak / {name}'s" if col == 0 else "")
    extra = [Line2D([], [], color="black", linewidth=1.2, label="1: the backprop's peak"),
             Line2D([], [], color="gray", linestyle="", marker="o", markersize=8,
                    markerfacecolor="none", label="below from here on")]
    draw_legend(fig, table, style, extra)  # the FF variants drawn; backprop is the line at 1
    title = "The answer: FF's peak over backprop's (below 1: FF needs less)"
    fig.suptitle(figure_title(data, title))
    draw_caption(fig, data)
    return fig
