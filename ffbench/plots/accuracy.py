"""Accuracy next to cost: test accuracy against the train peak (a dotted line at chance)."""

from __future__ import annotations

import json

import pandas as pd
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
    spans_decades,
    wrapped_text,
)
from ffbench.plots.ticks import readable
from ffbench.settings.cell import MNIST_CLASSES

CHANCE = 1 / MNIST_CLASSES
BAND_ALPHA = 0.2
Y_MARGIN_POINTS = 2  # accuracy axis: from this far below the lowest point (or chance)


def accuracy_vs_memory(frame: pd.DataFrame) -> Figure:
    """Test accuracy against the train peak it cost: per algorithm, size and depth, the
    median over the cells run (seeds) with a bar from the lowest to the highest; each point
    labelled with its depth where several depths were run."""
    data = prepared(frame)
    rows = ok_rows(data, "test_accuracy", "train_peak")
    if rows.empty:
        raise NoData("no test accuracy in these results (it needs --epochs and real data)")
    divisor, unit = memory_unit(rows["train_peak"])
    points = rows.groupby(["source", "algorithm", "config", "n_layers"], sort=False).agg(
        x=("train_peak", "median"), y=("test_accuracy", "median"), low=("test_accuracy", "min"),
        high=("test_accuracy", "max"), runs=("test_accuracy", "size"),
        epochs=("epochs", "max")).reset_index()
    points[["y", "low", "high"]] *= PERCENT
    points["x"] /= divisor
    fig, axes = panel_grid(1, 1)
    ax = axes[0, 0]
    configs = config_names(points)
    markers = {c: CONFIG_MARKERS[i % len(CONFIG_MARKERS)] for i, c in enumerate(configs)}
    colors = algorithm_colors(points["algorithm"])
    depths_shown = points["n_layers"].nunique() > 1
    for p in points.itertuples():
        ax.errorbar(p.x, p.y, yerr=[[p.y - p.low], [p.high - p.y]], color=colors[p.algorithm],
                    marker=markers[p.config], markersize=6, linestyle="", capsize=2)
        if depths_shown:
            ax.annotate(f"{int(p.n_layers)}", (p.x, p.y), textcoords="offset points",
                        xytext=(4, 3), fontsize="x-small")
    at_chance = points[points["y"] < 2 * CHANCE * PERCENT]
    bottom = CHANCE * PERCENT if not at_chance.empty else float(points["low"].min())
    ax.set_ylim(max(0.0, bottom - Y_MARGIN_POINTS),
                min(PERCENT, float(points["high"].max()) + Y_MARGIN_POINTS))
    ax.axhline(CHANCE * PERCENT, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel(f"train peak, {peak_kind(rows, 'train')} ({unit})")
    ax.set_ylabel("test accuracy (%)")
    runs = int(points["runs"].max())
    notes = [f"median of {runs} seeds, bars: lowest to highest"] if runs > 1 else []
    if not at_chance.empty:
        epochs = ", ".join(str(int(e)) for e in sorted(at_chance["epochs"].dropna().unique()))
        notes.append(f"dotted: chance ({CHANCE:.0%}). {len(at_chance)} point(s) near chance: "
                     f"trained too little to learn ({epochs or '?'} epoch(s)), not a verdict on "
                     "the algorithm")
    if notes:
        ax.set_title(wrapped_text("; ".join(notes), fig), fontsize="small")
    shapes = [Line2D([], [], color="gray", marker=m, linestyle="", label=c)
              for c, m in markers.items()] if len(markers) > 1 else []
    title = "Accuracy vs memory" + (" (labels: hidden layers)" if depths_shown else "")
    return finish_figure(fig, data, title, None, shapes)


def curves(rows: pd.DataFrame) -> pd.DataFrame:
    """Each cell's accuracy_curve as rows (algorithm, config, n_layers, seed, point, epoch,
    train_s, accuracy): one per epoch, in order (a progressive algorithm's per layer in turn)."""
    found = []
    for row in rows.itertuples():
        for point, (epoch, seconds, accuracy) in enumerate(json.loads(row.accuracy_curve)):
            found.append({"algorithm": row.algorithm, "config": row.config,
                          "n_layers": row.n_layers, "seed": row.seed, "point": point,
                          "epoch": epoch, "train_s": seconds, "accuracy": accuracy,
                          "source": row.source})
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
    keys = ["source", "algorithm", "config", "n_layers", "point"]
    summary = points.groupby(keys).agg(
        seconds=("train_s", "median"), accuracy=("accuracy", "median"),
        low=("accuracy", "min"), high=("accuracy", "max"), runs=("seed", "nunique"),
    ).reset_index()
    colors = algorithm_colors(summary["algorithm"])
    sizes = list(dict.fromkeys(zip(summary["source"], summary["config"], summary["n_layers"],
                                   strict=True)))
    several = len(sizes) > 1
    fig, axes = panel_grid(1, 1)
    ax = axes[0, 0]
    for (source, algorithm, config, layers), line in summary.groupby(keys[:4], sort=False):
        color = colors[algorithm]
        dashes = DASHES[sizes.index((source, config, layers)) % len(DASHES)]
        ax.plot(line["seconds"], line["accuracy"] * PERCENT, color=color, linewidth=1.5,
                **({"dashes": dashes} if dashes else {}))
        ax.fill_between(line["seconds"], line["low"] * PERCENT, line["high"] * PERCENT,
                        color=color, alpha=BAND_ALPHA, linewidth=0)
    readable(ax, "x", log=spans_decades(summary["seconds"]))
    # the interesting part: from a little below the lowest line once it has begun to learn
    learned = summary[summary["point"] > 0]["accuracy"]
    bottom = max(CHANCE, float((learned if not learned.empty else summary["accuracy"]).min()))
    ax.set_ylim(max(0.0, bottom * PERCENT - Y_MARGIN_POINTS),
                min(PERCENT, float(summary["high"].max()) * PERCENT + Y_MARGIN_POINTS))
    ax.set_xlabel("training seconds (evaluations left out)")
    ax.set_ylabel("test accuracy (%)")
    runs = int(summary["runs"].max())
    note = f"lines: median of {runs} seeds per epoch; bands: lowest to highest"
    ax.set_title(wrapped_text(note + (", a dash per size or input" if several else ""), fig),
                 fontsize="small")
    return finish_figure(fig, data, "Accuracy vs training time", None, [])
