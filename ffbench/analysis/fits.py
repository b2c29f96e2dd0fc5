"""Numbers from a results frame for the report: least-squares fits of peak memory and step time
against depth, the largest memory category at the deepest depth, failed and missing cells.
Pure pandas/numpy; stored values are bytes and seconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ffbench.algorithms.registry import by_algorithm_order
from ffbench.measure.categories import CATEGORIES
from ffbench.results import measured_peak_bytes
from ffbench.sweep.result_sets import MISSING
from ffbench.units import PHASES

GROUP = ["source", "algorithm", "batch_size", "hidden"]


FIT_COLUMNS = [
    "cells", "train_slope_bytes_per_layer", "train_intercept_bytes",
    "eval_slope_bytes_per_layer", "eval_intercept_bytes", "time_slope_s_per_layer",
    "time_intercept_s",
]


CATEGORY_COLUMNS = [
    "source", "algorithm", "n_layers", "batch_size", "hidden", "category", "category_bytes",
    "peak_bytes",
]


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y = slope * x + intercept; NaN for fewer than
    two distinct x."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(np.unique(xs)) < 2:
        return math.nan, math.nan
    design = np.column_stack([xs, np.ones_like(xs)])
    (slope, intercept), *_ = np.linalg.lstsq(design, ys, rcond=None)
    return float(slope), float(intercept)


def in_algorithm_order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(
        ["source", "batch_size", "hidden", "algorithm"], key=by_algorithm_order, kind="stable",
    ).reset_index(drop=True)


def succeeded(frame: pd.DataFrame) -> pd.DataFrame:
    data = frame[frame["status"] == "ok"].dropna(subset=["n_layers"])
    return data if "source" in data else data.assign(source="results")


def _group_fit(cells: pd.DataFrame) -> dict[str, Any]:
    """Slopes and intercepts of the train and eval peaks and of the step time."""
    fit: dict[str, Any] = {"cells": len(cells)}
    for phase in PHASES:
        peak = measured_peak_bytes(cells, phase)
        known = peak.notna()
        slope, intercept = fit_line(cells["n_layers"][known], peak[known])
        fit |= {f"{phase}_slope_bytes_per_layer": slope, f"{phase}_intercept_bytes": intercept}
    timed = cells.dropna(subset=["step_time_median_s"])
    slope, intercept = fit_line(timed["n_layers"], timed["step_time_median_s"])
    return fit | {"time_slope_s_per_layer": slope, "time_intercept_s": intercept}


def slope_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per source, algorithm, batch size and width: least-squares fits over the successful
    cells of peak bytes (CUDA allocated, else tracked) and step seconds vs hidden layers."""
    ok = succeeded(frame)
    rows = [
        dict(zip(GROUP, key, strict=True)) | _group_fit(cells)
        for key, cells in ok.groupby(GROUP, sort=False)
    ]
    return in_algorithm_order(pd.DataFrame(rows, columns=[*GROUP, *FIT_COLUMNS]))


def largest_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Per source and algorithm, at its deepest successful cell (largest batch there): the
    category holding most tracked bytes at the train peak."""
    ok = succeeded(frame).sort_values(["n_layers", "batch_size"])
    rows = []
    for (source, algorithm), cells in ok.groupby(["source", "algorithm"], sort=False):
        deepest = cells.iloc[-1]
        split = {name: deepest[f"mem_{name}_bytes"] for name in CATEGORIES}
        split = {name: value for name, value in split.items() if pd.notna(value)}
        if not split:
            continue
        category = max(split, key=lambda name: split[name])
        rows.append({"source": source, "algorithm": algorithm, "n_layers": deepest["n_layers"],
                     "batch_size": deepest["batch_size"], "hidden": deepest["hidden"],
                     "category": category, "category_bytes": split[category],
                     "peak_bytes": deepest["train_peak_tracked_bytes"]})
    return in_algorithm_order(pd.DataFrame(rows, columns=CATEGORY_COLUMNS))


def failed_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells that ran and failed (not the missing ones, which never ran)."""
    failed = frame[~frame["status"].isin(["ok", MISSING])]
    return failed.sort_values(["algorithm", "batch_size", "hidden", "n_layers"])


def missing_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells of the sweep's stored grid with no row yet (a sweep stopped before them)."""
    missing = frame[frame["status"] == MISSING]
    return missing.sort_values(["algorithm", "batch_size", "hidden", "n_layers"])
