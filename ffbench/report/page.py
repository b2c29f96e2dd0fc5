"""The one-page report as blocks, top to bottom: the verdict first, then the findings, the fits,
the failed and missing cells and the figures."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ffbench.analysis import verdict, verdict_records, verdict_text
from ffbench.analysis.describe import caption, predicted_only
from ffbench.analysis.fits import (
    failed_cells,
    largest_categories,
    missing_cells,
    slope_table,
)
from ffbench.report.findings import findings, number
from ffbench.units import MIB, MS_PER_S

PREDICTED_NOTE = ("PREDICTED: every cell ran on the meta device (fake tensors, no compute, no "
                  "GPU); the peaks are the tracker's prediction of what a GPU would allocate, "
                  "and nothing was timed.")


ERROR_CHARS = 120  # error text shown per failed cell


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


def verdict_blocks(answer: verdict_records.Verdict) -> list[Block]:
    """The report's first section: the verdict's lines, then its table."""
    columns, rows = verdict_text.verdict_table(answer)
    return [Heading("Verdict"), Bullets(verdict_text.verdict_lines(answer)),
            *([Table(columns, rows)] if rows else [])]


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

    slopes = slope_table(frame)
    largest = largest_categories(frame)
    failed = failed_cells(frame)
    missing = missing_cells(frame)
    sources = ", ".join(dict.fromkeys(frame["source"])) if "source" in frame else "results"
    predicted = [Paragraph(PREDICTED_NOTE)] if predicted_only(frame) else []
    not_run: list[Block] = [Heading("Cells not run yet"), failed_rows(frame, missing)]
    return [
        Heading(f"ffbench report: {sources}" + (" (PREDICTED)" if predicted else ""), 1),
        *verdict_blocks(verdict.verdict(frame)),
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
