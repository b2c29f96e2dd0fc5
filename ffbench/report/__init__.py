"""`ffbench report`: one page per result set, the verdict first (ffbench.analysis.verdict),
then numbers, failures and figures, as markdown or HTML. Stored values are bytes and seconds;
MiB and ms appear only in the rendered text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from ffbench.errors import BadInput
from ffbench.report.page import build
from ffbench.report.render import RENDERERS


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
    """`ffbench report`: a page per result set (ffbench.sweep.result_sets.result_sets), at `out`
    (with several sets, named after each) or RESULTS/report.md; a line per page and per
    figure skipped. Every input is read and every path checked before anything is written."""
    from ffbench.settings.paths import check_creatable, check_out_file
    from ffbench.sweep.result_sets import default_out, load_set, result_sets

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
