"""The report's findings stated as numbers computed from the results: per-layer slopes, the
train peaks at the deepest depth, the largest categories, failures, mixed settings."""

from __future__ import annotations

import math

import pandas as pd

from ffbench.analysis.fits import (
    in_algorithm_order,
    succeeded,
)
from ffbench.results import STATUSES, measured_peak_bytes
from ffbench.sweep.result_sets import MISSING
from ffbench.units import MIB, MS_PER_S

SIGNIFICANT_DIGITS = 4


MAX_DECIMALS = 6


def number(value: float, signed: bool = False) -> str:
    """SIGNIFICANT_DIGITS significant digits, never scientific notation: 16.02, 0.06104."""
    if not math.isfinite(value):
        return "n/a"
    if round(value, MAX_DECIMALS) == 0:  # a fit's flat slope: 0, not 0.000000 or -0.000000
        return "0"
    magnitude = math.floor(math.log10(abs(value))) if value else 0
    decimals = min(MAX_DECIMALS, max(0, SIGNIFICANT_DIGITS - 1 - magnitude))
    return f"{value:{'+' if signed else ''},.{decimals}f}"


def _group_label(source: str, batch_size: int, hidden: int, several_sources: bool) -> str:
    where = f"{source}, " if several_sources else ""
    return f"{where}batch {int(batch_size)}, hidden {int(hidden)}"


def _per_layer(fits: pd.DataFrame, column: str, scale: float, unit: str) -> str:
    return ", ".join(
        f"{a}: {number(v * scale, signed=True)} {unit} per layer"
        for a, v in zip(fits["algorithm"], fits[column], strict=True)
        if math.isfinite(v)
    )


def slope_findings(slopes: pd.DataFrame) -> list[str]:
    """'Train peak per added layer (batch 128, hidden 64): bp: +N MiB per layer, ff: ...'."""
    several = slopes["source"].nunique() > 1
    lines = []
    for (source, batch_size, hidden), fits in slopes.groupby(
        ["source", "batch_size", "hidden"], sort=False
    ):
        where = _group_label(source, batch_size, hidden, several)
        for what, column, scale, unit in (
            ("Train peak", "train_slope_bytes_per_layer", 1 / MIB, "MiB"),
            ("Eval peak", "eval_slope_bytes_per_layer", 1 / MIB, "MiB"),
            ("Train step time", "time_slope_s_per_layer", MS_PER_S, "ms"),
        ):
            text = _per_layer(fits, column, scale, unit)
            if text:
                lines.append(f"{what} per added layer ({where}): {text}.")
    return lines


def depth_ratio_findings(frame: pd.DataFrame) -> list[str]:
    """At the deepest depth every algorithm of a group reached: each train peak as a
    multiple of the first algorithm's (registry order)."""
    ok = in_algorithm_order(succeeded(frame).assign(peak=lambda f: measured_peak_bytes(f, "train")))
    several, lines = ok["source"].nunique() > 1, []
    for (source, batch_size, hidden), cells in ok.groupby(["source", "batch_size", "hidden"],
                                                          sort=False):
        algorithms = list(dict.fromkeys(cells["algorithm"]))
        common = set.intersection(*(set(cells.loc[cells["algorithm"] == a, "n_layers"])
                                    for a in algorithms))
        if len(algorithms) < 2 or not common:
            continue
        depth = max(common)
        peaks = cells[cells["n_layers"] == depth].groupby("algorithm", sort=False)["peak"].median()
        reference = algorithms[0]
        ratios = ", ".join(f"{a} {peaks[a] / peaks[reference]:.2f}× ({number(peaks[a] / MIB)} MiB)"
                           for a in algorithms[1:])
        where = _group_label(source, batch_size, hidden, several)
        lines.append(f"At {int(depth)} layers ({where}), train peak relative to {reference} "
                     f"({number(peaks[reference] / MIB)} MiB): {ratios}.")
    return lines


def category_findings(largest: pd.DataFrame) -> list[str]:
    return [
        f"Largest memory category at the train peak, {r.algorithm}: {r.category}, "
        f"{number(r.category_bytes / MIB)} of {number(r.peak_bytes / MIB)} MiB "
        f"({r.category_bytes / r.peak_bytes:.0%}) at {int(r.n_layers)} layers, "
        f"batch {int(r.batch_size)}."
        for r in largest.itertuples()
    ]


def failure_findings(frame: pd.DataFrame, failed: pd.DataFrame) -> list[str]:
    """How many of the sweep's cells (`frame`, missing ones included) ran, and how many of
    those failed (`failed_cells(frame)`), by status."""
    missing = int((frame["status"] == MISSING).sum())
    ran, total = len(frame) - missing, len(frame)
    lines = [] if not missing else [
        f"{ran} of {total} cells run; {missing} not run yet (the sweep stopped before them; "
        "run the same command again to finish it): see the list below."]
    if failed.empty:
        return lines + [f"All {ran} cells run succeeded."]
    per_status = failed["status"].value_counts()
    counts = ", ".join(f"{s}: {per_status[s]}" for s in STATUSES if s in per_status)
    return lines + [f"{len(failed)} of {ran} cells run failed ({counts}); see the list below."]


SHARED_SETTINGS = ("device", "dtype", "dataset", "steps", "warmup_steps", "epochs", "seed",
                   "goodness", "threads", "eval_chunk")  # one sweep's cells share these


def mixed_settings_findings(frame: pd.DataFrame) -> list[str]:
    """A warning per input whose cells do not share one sweep's settings (a folder from
    before folders kept their definition, or several files given together)."""
    lines = []
    data = frame[frame["status"] != MISSING]
    data = data if "source" in data else data.assign(source="results")
    for source, cells in data.groupby("source", sort=False):
        columns = [c for c in SHARED_SETTINGS if c in cells]
        mixed = [c for c in columns if cells[c].dropna().nunique() > 1]
        if mixed:
            shown = "; ".join(f"{c}: {', '.join(map(str, cells[c].dropna().unique()))}"
                              for c in mixed)
            lines.append(f"Warning: {source} mixes cells of different sweep settings ({shown}); "
                         "the numbers below combine them.")
    return lines


def findings(frame: pd.DataFrame, slopes: pd.DataFrame, largest: pd.DataFrame,
             failed: pd.DataFrame) -> list[str]:
    """The report's findings, from `slope_table`, `largest_categories` and `failed_cells`
    of `frame`."""
    return (mixed_settings_findings(frame) + slope_findings(slopes)
            + depth_ratio_findings(frame)
            + category_findings(largest) + failure_findings(frame, failed))
