"""Accuracy next to cost: test accuracy against the train peak (a dotted line at chance)."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ffbench.plots.style import (
    CONFIG_MARKERS,
    PERCENT,
    NoData,
    algorithm_colors,
    config_names,
    finish_figure,
    memory_unit,
    ok_rows,
    panel_grid,
    peak_kind,
    prepared,
    wrapped_text,
)
from ffbench.settings.cell import MNIST_CLASSES

CHANCE = 1 / MNIST_CLASSES


def accuracy_vs_memory(frame: pd.DataFrame) -> Figure:
    """Test accuracy against the train peak it cost, each point labelled with its depth."""
    data = prepared(frame)
    rows = ok_rows(data, "test_accuracy", "train_peak")
    if rows.empty:
        raise NoData("no test accuracy in these results (it needs --epochs and real data)")
    divisor, unit = memory_unit(rows["train_peak"])
    rows = rows.assign(x=rows["train_peak"] / divisor, y=rows["test_accuracy"] * PERCENT)
    fig, axes = panel_grid(1, 1)
    ax = axes[0, 0]
    markers = {c: CONFIG_MARKERS[i % len(CONFIG_MARKERS)] for i, c in enumerate(config_names(rows))}
    sns.scatterplot(data=rows, x="x", y="y", hue="algorithm", style="config", markers=markers,
                    palette=algorithm_colors(rows["algorithm"]), s=50, ax=ax, legend=False)
    for x, y, depth in zip(rows["x"], rows["y"], rows["n_layers"], strict=True):
        ax.annotate(f"{int(depth)}", (x, y), textcoords="offset points", xytext=(4, 3),
                    fontsize="x-small")
    ax.axhline(CHANCE * PERCENT, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel(f"train peak, {peak_kind(rows, 'train')} ({unit})")
    ax.set_ylabel("test accuracy (%)")
    at_chance = rows[rows["test_accuracy"] < 2 * CHANCE]
    if not at_chance.empty:
        epochs = ", ".join(str(int(e)) for e in sorted(at_chance["epochs"].dropna().unique()))
        ax.set_title(wrapped_text(f"dotted: chance ({CHANCE:.0%}). {len(at_chance)} cell(s) near "
                              f"chance: trained too little to learn ({epochs or '?'} epoch(s)), "
                              "not a verdict on the algorithm", fig), fontsize="small")
    configs = [Line2D([], [], color="gray", marker=m, linestyle="", label=c)
               for c, m in markers.items()] if len(markers) > 1 else []
    return finish_figure(fig, data, "Accuracy vs memory (labels: hidden layers)", None, configs)
