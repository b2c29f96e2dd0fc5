"""The one-page report: figures, least-squares slopes per layer, the largest memory
category, failed cells, and findings stated as numbers computed from the results.

Pure pandas/numpy over a loaded results frame (`ffbench.results.load`); the algorithms'
display names come from their classes (registry.display_name).
Stored values are bytes and seconds; MiB and ms appear only in the rendered text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ffbench import ratios
from ffbench.algorithms.registry import by_algorithm_order, display_name
from ffbench.console import printable
from ffbench.errors import BadInput
from ffbench.measure.categories import CATEGORIES
from ffbench.results import STATUSES, measured_peak_bytes
from ffbench.sweep.folder import MISSING
from ffbench.sweep.plan import PREDICTED_DEVICE
from ffbench.units import MIB, MS_PER_S, PHASES

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
PREDICTED_NOTE = ("PREDICTED: every cell ran on the meta device (fake tensors, no compute, no "
                  "GPU); the peaks are the tracker's prediction of what a GPU would allocate, "
                  "and nothing was timed.")
SIGNIFICANT_DIGITS = 4
MAX_DECIMALS = 6
ERROR_CHARS = 120  # error text shown per failed cell


# ---- numbers ---------------------------------------------------------------------------


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of y = slope * x + intercept; NaN for fewer than
    two distinct x."""
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(np.unique(xs)) < 2:
        return math.nan, math.nan
    design = np.column_stack([xs, np.ones_like(xs)])
    (slope, intercept), *_ = np.linalg.lstsq(design, ys, rcond=None)
    return float(slope), float(intercept)


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(
        ["source", "batch_size", "hidden", "algorithm"], key=by_algorithm_order, kind="stable",
    ).reset_index(drop=True)


def _ok(frame: pd.DataFrame) -> pd.DataFrame:
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
    ok = _ok(frame)
    rows = [
        dict(zip(GROUP, key, strict=True)) | _group_fit(cells)
        for key, cells in ok.groupby(GROUP, sort=False)
    ]
    return _order(pd.DataFrame(rows, columns=[*GROUP, *FIT_COLUMNS]))


def largest_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """Per source and algorithm, at its deepest successful cell (largest batch there): the
    category holding most tracked bytes at the train peak."""
    ok = _ok(frame).sort_values(["n_layers", "batch_size"])
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
    return _order(pd.DataFrame(rows, columns=CATEGORY_COLUMNS))


def failed_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells that ran and failed (not the missing ones, which never ran)."""
    failed = frame[~frame["status"].isin(["ok", MISSING])]
    return failed.sort_values(["algorithm", "batch_size", "hidden", "n_layers"])


def missing_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """Cells of the sweep's stored grid with no row yet (a sweep stopped before them)."""
    missing = frame[frame["status"] == MISSING]
    return missing.sort_values(["algorithm", "batch_size", "hidden", "n_layers"])


def predicted_only(frame: pd.DataFrame) -> bool:
    """Whether every successful cell ran on meta: the peaks are predictions, not measured."""
    devices = frame.loc[frame["status"] == "ok", "device"].dropna()
    return not devices.empty and bool((devices == PREDICTED_DEVICE).all())


# ---- text ------------------------------------------------------------------------------


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
    ok = _order(_ok(frame).assign(peak=lambda f: measured_peak_bytes(f, "train")))
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


def _mib_text(value: float) -> str:
    return f"{number(value / MIB)} MiB"


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


def crossover_findings(frame: pd.DataFrame) -> list[str]:
    """Each FF algorithm against each baseline present (backprop, lean backprop), per phase:
    the depth from which it needs less memory, and the saving at the deepest depth."""
    several = "source" in frame and frame["source"].nunique() > 1
    lines = []
    for c in ratios.crossovers(frame):
        where = _group_label(c.source, c.batch_size, c.hidden, several)
        who = f"{display_name(c.algorithm)} vs {display_name(c.baseline)}"
        what = f"{ratios.PHASE_TITLES[c.phase]} peak"
        if c.depth is None:
            since = "needs more memory at the deepest depth, no crossover in the depths run"
        else:
            since = f"needs less memory from {c.depth} layers on (crossover depth {c.depth})"
        if c.saving_bytes >= 0:
            saving = f"saves {_mib_text(c.saving_bytes)} ({c.saving_fraction:.0%})"
        else:
            saving = f"needs {_mib_text(-c.saving_bytes)} more ({-c.saving_fraction:.0%})"
        lines.append(f"{who}, {what} ({where}): {since}; at {c.deepest} layers it {saving}.")
    return lines


def findings(frame: pd.DataFrame, slopes: pd.DataFrame, largest: pd.DataFrame,
             failed: pd.DataFrame) -> list[str]:
    """The report's findings, from `slope_table`, `largest_categories` and `failed_cells`
    of `frame`."""
    return (mixed_settings_findings(frame) + slope_findings(slopes)
            + depth_ratio_findings(frame) + crossover_findings(frame)
            + category_findings(largest) + failure_findings(frame, failed))


# ---- the page --------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Image:
    path: str
    alt: str


Block = Heading | Paragraph | Bullets | Table | Image


def _int(value: float) -> str:
    return "-" if pd.isna(value) else str(int(value))


def _mib(value: float) -> str:
    return number(value / MIB)


def slope_rows(slopes: pd.DataFrame) -> Table:
    columns = ["algorithm", "batch", "hidden", "cells", "train MiB/layer", "train intercept MiB",
               "eval MiB/layer", "eval intercept MiB", "step ms/layer", "step intercept ms"]
    several = slopes["source"].nunique() > 1
    rows = [
        [r.algorithm, str(int(r.batch_size)), str(int(r.hidden)), str(r.cells),
         _mib(r.train_slope_bytes_per_layer), _mib(r.train_intercept_bytes),
         _mib(r.eval_slope_bytes_per_layer), _mib(r.eval_intercept_bytes),
         number(r.time_slope_s_per_layer * MS_PER_S), number(r.time_intercept_s * MS_PER_S)]
        + ([r.source] if several else [])
        for r in slopes.itertuples()
    ]
    return Table(columns + (["source"] if several else []), rows)


def failed_rows(frame: pd.DataFrame, failed: pd.DataFrame) -> Table:
    """`failed` (`failed_cells(frame)`), a row each; a source column when `frame` has several."""
    several = "source" in frame and frame["source"].nunique() > 1
    columns = ["algorithm", "layers", "batch", "hidden", "status", "error"]
    rows = [
        [str(r.algorithm), _int(r.n_layers), _int(r.batch_size), _int(r.hidden),
         str(r.status), str(r.error or "")[:ERROR_CHARS]] + ([str(r.source)] if several else [])
        for r in failed.itertuples()
    ]
    return Table(columns + (["source"] if several else []), rows)


def figure_blocks(drawn: Sequence[Any], base: Path) -> list[Block]:
    """Images linked relative to the report's folder; a line for each figure skipped."""
    blocks: list[Block] = []
    for figure in drawn:
        if figure.path is None:
            blocks.append(Paragraph(f"{figure.name}: skipped, {figure.skipped}."))
        else:
            blocks.append(Image(figure.path.relative_to(base).as_posix(), figure.name))
    return blocks


def build(frame: pd.DataFrame, drawn: Sequence[Any], base: Path) -> list[Block]:
    """The page, top to bottom."""
    from ffbench.plots import caption

    slopes = slope_table(frame)
    largest = largest_categories(frame)
    failed = failed_cells(frame)
    missing = missing_cells(frame)
    sources = ", ".join(dict.fromkeys(frame["source"])) if "source" in frame else "results"
    predicted = [Paragraph(PREDICTED_NOTE)] if predicted_only(frame) else []
    not_run: list[Block] = [Heading("Cells not run yet"), failed_rows(frame, missing)]
    return [
        Heading(f"ffbench report: {sources}" + (" (PREDICTED)" if predicted else ""), 1),
        *predicted,
        Paragraph(caption(frame)),
        Heading("Findings"),
        Bullets(findings(frame, slopes, largest, failed)),
        Heading("Least-squares fits vs hidden layers (successful cells)"),
        slope_rows(slopes),
        Heading("Failed cells"),
        failed_rows(frame, failed) if not failed.empty else Paragraph("None."),
        *(not_run if not missing.empty else []),
        Heading("Figures"),
        *figure_blocks(drawn, base),
    ]


# ---- rendering -------------------------------------------------------------------------


def _md_text(text: str) -> str:
    """Text from the results as markdown shows it, literally: control characters as escapes
    (\\x1b), and <, > and & as entities (a viewer renders raw HTML: `<script>` would run)."""
    return html.escape(printable(text), quote=False)


def _md_cell(text: str) -> str:
    return _md_text(text).replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"{'#' * block.level} {_md_text(block.text)}"
    if isinstance(block, Bullets):
        return "\n".join(f"- {_md_text(item)}" for item in block.items)
    if isinstance(block, Table):
        lines = ["| " + " | ".join(map(_md_cell, block.columns)) + " |",
                 "|" + "---|" * len(block.columns)]
        lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in block.rows]
        return "\n".join(lines)
    if isinstance(block, Image):
        return f"![{_md_text(block.alt)}]({block.path})"
    return _md_text(block.text)


def to_markdown(blocks: Sequence[Block]) -> str:
    return "\n\n".join(map(_md_block, blocks)) + "\n"


def _html_block(block: Block) -> str:
    def e(text: str) -> str:
        return html.escape(printable(text))

    if isinstance(block, Heading):
        return f"<h{block.level}>{e(block.text)}</h{block.level}>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{e(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{e(c)}</th>" for c in block.columns)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                       for row in block.rows)
        return f"<table><tr>{head}</tr>{body}</table>"
    if isinstance(block, Image):
        return f'<figure><img src="{e(block.path)}" alt="{e(block.alt)}"></figure>'
    return f"<p>{e(block.text)}</p>"


HTML_STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;}"
    "table{border-collapse:collapse;font-size:90%;}td,th{border:1px solid #ccc;padding:2px 6px;}"
    "img{max-width:100%;}"
)


def to_html(blocks: Sequence[Block]) -> str:
    body = "\n".join(map(_html_block, blocks))
    return (f"<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>ffbench report</title>"
            f"<style>{HTML_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


RENDERERS: dict[str, Callable[[Sequence[Block]], str]] = {".md": to_markdown, ".html": to_html}


def figures_dir(out: Path) -> Path:
    """Where a report's figures go: beside it, named after it."""
    return out.parent / f"{out.stem}_figures"


def write(frame: pd.DataFrame, out: Path) -> list[Any]:
    """Draw the figures (PNG) and write the page as markdown or HTML, by `out`'s suffix.
    Returns the figures' outcomes (`ffbench.plots.Drawn`)."""
    from ffbench.plots import draw_all

    drawn = draw_all(frame, figures_dir(out), "png")
    out.write_text(RENDERERS[out.suffix](build(frame, drawn, out.parent)))
    return drawn


def write_sets(results: list[Path], *, together: bool, out: Path | None) -> Iterator[str]:
    """`ffbench report`: a page per result set (ffbench.sweep.folder.result_sets), at `out`
    (with several sets, named after each) or RESULTS/report.md; a line per page and per
    figure skipped. Every input is read and every path checked before anything is written."""
    from ffbench.settings.paths import check_creatable, check_out_file
    from ffbench.sweep.folder import default_out, load_set, result_sets

    if out is not None and out.suffix not in RENDERERS:
        raise BadInput(f"--out {out}: give a file ending in {' or '.join(RENDERERS)}")
    found, sets = result_sets(results, together=together)
    if found != results:
        yield f"found {len(found)} results folder(s): {', '.join(map(str, found))}"
    loaded = [(paths, load_set(paths)) for paths in sets]
    targets = [out.with_stem(f"{out.stem}-{paths[0].name}") if out and len(sets) > 1
               else out or default_out(paths, "report.md") for paths, _ in loaded]
    for where in targets:
        check_out_file(where)
        check_creatable(figures_dir(where), "--out", where)
    for where, (_, frame) in zip(targets, loaded, strict=True):
        for figure in write(frame, where):
            if figure.path is None:
                yield f"skipped {figure.name}: {figure.skipped}"
        yield f"wrote {where} (figures in {figures_dir(where)})"
