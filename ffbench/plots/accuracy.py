"""Accuracy next to cost: test accuracy against the train peak (a dotted line at chance)."""

from __future__ import annotations

import json

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ffbench.plots.style import (
    CONFIG_MARKERS,
    DASHES,
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


CURVE_COLUMNS = ["epoch", "train_s", "accuracy"]  # one entry of the accuracy_curve column
BAND_ALPHA = 0.2


def curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Each cell's accuracy_curve as rows (algorithm, config, n_layers, seed, point, epoch,
    train_s, accuracy): one per epoch, in order (a progressive algorithm's per layer in turn)."""
    found = []
    for row in rows.itertuples():
        for point, (epoch, seconds, accuracy) in enumerate(json.loads(row.accuracy_curve)):
            found.append({"algorithm": row.algorithm, "config": row.config,
                          "n_layers": row.n_layers, "seed": row.seed, "point": point,
                          "epoch": epoch, "train_s": seconds, "accuracy": accuracy})
    return pd.DataFrame(found)


def accuracy_vs_time(frame: pd.DataFrame) -> Figure:
    """Test accuracy after every epoch against the training seconds it took, one line per
    algorithm (and size): the median over the cells run (seeds) at each epoch, a band from
    the lowest to the highest."""
    data = prepared(frame)
    rows = ok_rows(data, "accuracy_curve")
    if rows.empty:
        raise NoData("no accuracy after every epoch in these results (it needs --epochs and "
                     "real data)")
    points = curves(rows)
    keys = ["algorithm", "config", "n_layers", "point"]
    summary = points.groupby(keys).agg(
        seconds=("train_s", "median"), accuracy=("accuracy", "median"),
        low=("accuracy", "min"), high=("accuracy", "max"), runs=("seed", "nunique"),
    ).reset_index()
    colors = algorithm_colors(summary["algorithm"])
    sizes = list(dict.fromkeys(zip(summary["config"], summary["n_layers"], strict=True)))
    several = len(sizes) > 1
    fig, axes = panel_grid(1, 1)
    ax = axes[0, 0]
    for (algorithm, config, layers), line in summary.groupby(keys[:3], sort=False):
        color = colors[algorithm]
        dashes = DASHES[sizes.index((config, layers)) % len(DASHES)]
        ax.plot(line["seconds"], line["accuracy"] * PERCENT, color=color, linewidth=1.5,
                **({"dashes": dashes} if dashes else {}))
        ax.fill_between(line["seconds"], line["low"] * PERCENT, line["high"] * PERCENT,
                        color=color, alpha=BAND_ALPHA, linewidth=0)
    ax.axhline(CHANCE * PERCENT, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("training seconds (evaluations left out)")
    ax.set_ylabel("test accuracy (%)")
    runs = int(summary["runs"].max())
    note = f"lines: median of {runs} cells (seeds) per epoch; bands: lowest to highest"
    ax.set_title(wrapped_text(note + (", one line per size" if several else ""), fig),
                 fontsize="small")
    return finish_figure(fig, data, "Accuracy vs training time", None, [])
