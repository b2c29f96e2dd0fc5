"""Figures from a loaded results frame (`ffbench.results.load`); no measuring here. Each
figure function takes the frame and returns a matplotlib Figure, or raises NoData saying why
there is nothing to draw; `draw_all` draws every figure of a frame, `draw_sets` what
`ffbench plot` asks for."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ffbench.errors import BadInput
from ffbench.plots.accuracy import accuracy_vs_memory, accuracy_vs_time
from ffbench.plots.answer import answer
from ffbench.plots.compare import compare_inputs
from ffbench.plots.memory import measured_vs_predicted, memory_categories, memory_vs_layers
from ffbench.plots.style import DPI, NoData
from ffbench.plots.time import time_vs_layers


@dataclass(frozen=True)
class Drawn:
    """One figure's outcome: the file written, or why it was skipped."""

    name: str
    path: Path | None
    skipped: str | None = None


def figures(depths: Sequence[int] | None = None) -> dict[str, Callable[[pd.DataFrame], Figure]]:
    return {
        "answer": answer,
        "memory_vs_layers": memory_vs_layers,
        "time_vs_layers": time_vs_layers,
        "memory_categories": functools.partial(memory_categories, depths=depths),
        "measured_vs_predicted": measured_vs_predicted,
        "accuracy_vs_memory": accuracy_vs_memory,
        "accuracy_vs_time": accuracy_vs_time,
        "compare_inputs": compare_inputs,
    }


def render(frame: pd.DataFrame,
           depths: Sequence[int] | None = None) -> Iterator[tuple[str, Figure | None, str | None]]:
    """(name, figure, None) for each figure in turn, or (name, None, why) where it has no data."""
    for name, draw in figures(depths).items():
        try:
            yield name, draw(frame), None
        except NoData as why:
            yield name, None, str(why)


def draw_all(frame: pd.DataFrame, out_dir: Path, fmt: str = "png",
             depths: Sequence[int] | None = None) -> list[Drawn]:
    """Every figure that has data, as `out_dir/<name>.<fmt>`; the others say why not."""
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = []
    for name, fig, why in render(frame, depths):
        if fig is None:
            drawn.append(Drawn(name, None, why))
            continue
        path = out_dir / f"{name}.{fmt}"
        fig.savefig(path, format=fmt, dpi=DPI)
        drawn.append(Drawn(name, path))
    return drawn


def draw_sets(results: list[Path], *, together: bool, out: Path | None, fmt: str,
              depths: list[int] | None) -> Iterator[str]:
    """`ffbench plot`: draw each result set (ffbench.sweep.result_sets.result_sets) into its
    folder (`out`, else RESULTS/figures; with several sets, out/NAME), a line per figure
    written or skipped. Every input is read before anything is drawn."""
    from ffbench.settings.paths import check_creatable
    from ffbench.sweep.result_sets import default_out, load_set, result_sets

    out_root = out or default_out(results, "figures")
    if out_root.exists() and not out_root.is_dir():
        raise BadInput(f"--out {out_root} is a file; give a folder for the figures")
    check_creatable(out_root, "--out")
    found, sets = result_sets(results, together=together)
    if found != results:
        yield f"found {len(found)} results folder(s): {', '.join(map(str, found))}"
    loaded = [(paths, load_set(paths)) for paths in sets]
    for paths, frame in loaded:
        where = out / paths[0].name if out and len(sets) > 1 else out
        for figure in draw_all(frame, where or default_out(paths, "figures"), fmt, depths):
            yield (f"wrote {figure.path}" if figure.path is not None
                   else f"skipped {figure.name}: {figure.skipped}")
