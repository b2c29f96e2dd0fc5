"""Every figure's text stays readable: tick labels, titles, axis labels, captions and
legend entries neither overlap each other nor leave the canvas (matplotlib text extents
after a real draw)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from results_factory import failed_row, ok_row, sweep_rows

from ffbench import plots
from ffbench.results import load, rows_to_table

from helpers import REPO

EXAMPLE = REPO / "results" / "example"
TOLERANCE_PX = 1.0  # extents that touch by less than this do not count as overlapping


def drawn_ticks(axis: Axis, limits: tuple[float, float], coordinate: int) -> list[Text]:
    """The tick labels matplotlib draws, major and minor (a log axis labels minor ticks when
    it spans little more than a decade): those inside the axis's view limits."""
    low, high = sorted(limits)
    span = (high - low) * 1e-9
    return [t for t in axis.get_ticklabels(which="both")
            if low - span <= t.get_position()[coordinate] <= high + span]


def shown_texts(fig: Figure) -> list[tuple[str, Text]]:
    """(where, text) of every visible, non-empty text the figure draws."""
    found: list[tuple[str, Text]] = []
    for i, ax in enumerate(fig.axes):
        for kind, texts in (("x tick", drawn_ticks(ax.xaxis, ax.get_xlim(), 0)),
                            ("y tick", drawn_ticks(ax.yaxis, ax.get_ylim(), 1)),
                            ("title", [ax.title, ax._left_title, ax._right_title]),
                            ("label", [ax.xaxis.label, ax.yaxis.label]),
                            ("annotation", ax.texts)):
            found += [(f"axes {i} {kind}", t) for t in texts]
    for name in ("_suptitle", "_supxlabel", "_supylabel"):
        if getattr(fig, name, None) is not None:
            found.append((name.strip("_"), getattr(fig, name)))
    for legend in fig.legends:
        found += [("legend", t) for t in legend.get_texts()]
    named = {id(t) for _, t in found}
    found += [("figure text", t) for t in fig.texts if id(t) not in named]
    return [(where, t) for where, t in found if t.get_visible() and t.get_text().strip()]


def text_problems(fig: Figure) -> list[str]:
    """Pairs of texts that overlap, and texts that leave the canvas."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    page = Bbox.from_bounds(0, 0, *canvas.get_width_height())
    boxes = [(where, t.get_text(), t.get_window_extent(renderer)) for where, t in shown_texts(fig)]
    problems = [f"{where} {text!r} leaves the canvas" for where, text, box in boxes
                if box.x0 < -TOLERANCE_PX or box.y0 < -TOLERANCE_PX
                or box.x1 > page.x1 + TOLERANCE_PX or box.y1 > page.y1 + TOLERANCE_PX]
    for (w1, t1, b1), (w2, t2, b2) in itertools.combinations(boxes, 2):
        if "annotation" in w1 or "annotation" in w2:
            continue  # point labels: allowed to be dense, drawn beside their point
        overlap_x = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
        overlap_y = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
        if overlap_x > TOLERANCE_PX and overlap_y > TOLERANCE_PX:
            problems.append(f"{w1} {t1!r} overlaps {w2} {t2!r}")
    return problems


def frames(real_sweeps: dict[str, Path]) -> dict[str, pd.DataFrame]:
    rows = (sweep_rows(("bp", "bp-lean", "ff"))
            + [failed_row("ff", 8, 256, "oom"), failed_row("bp", 10, 256, "timeout")])
    accuracy = [ok_row("ff", n, 64, test_accuracy=0.1 + n / 100, epochs=1) for n in (1, 2, 3)]
    return {
        "example": load([EXAMPLE]),
        "factory": rows_to_table(rows + accuracy).to_pandas().assign(source="factory"),
        "two inputs": pd.concat([load([EXAMPLE]).assign(source=str(EXAMPLE)),
                                 load([EXAMPLE]).assign(source="results/a-much-longer-name")]),
        "embedded default": load([real_sweeps["embedded-default"]]),
        "published, predicted": load([real_sweeps["published-predicted"]]),
        "fair, Adam and SGD": load([real_sweeps["fair-adam"], real_sweeps["fair-sgd"]]),
    }


FRAMES = ("example", "factory", "two inputs", "embedded default", "published, predicted",
          "fair, Adam and SGD")


@pytest.mark.slow
@pytest.mark.parametrize("data", FRAMES)
def test_no_figure_text_overlaps_or_leaves_the_canvas(data: str,
                                                      real_sweeps: dict[str, Path]) -> None:
    frame = frames(real_sweeps)[data]
    problems = {}
    for name, fig, _ in plots.render(frame):
        if fig is not None:
            problems[name] = text_problems(fig)
    assert problems, "nothing was drawn"
    assert {name: found for name, found in problems.items() if found} == {}


def test_the_check_sees_an_overlap_and_a_clipped_caption(tmp_path: Path) -> None:
    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    ax.set_xticks([0, 0.01], ["a long tick label", "another long one"])
    fig.supxlabel("a caption far too long for a figure this narrow, so it runs off the edge",
                  x=0.01, ha="left")
    found = text_problems(fig)
    assert any("overlaps" in p and "tick" in p for p in found), found
    assert any("leaves the canvas" in p and "supxlabel" in p for p in found), found


def test_the_check_sees_overlapping_minor_tick_labels() -> None:
    """A log axis over a decade and a half labels some minor ticks ("3x10^0 4x10^0"): in a
    panel this narrow they run into each other, and the check must say so."""
    fig = Figure(figsize=(3, 2), layout="constrained")
    ax = fig.subplots()
    ax.set_xscale("log")
    ax.set_xlim(2.5, 80)
    found = text_problems(fig)
    assert any("x tick" in p and "overlaps" in p for p in found), found
