"""Every figure reads at a glance: tick labels, titles, axis labels, captions and legend
entries neither overlap each other nor leave the canvas (matplotlib text extents after a
real draw); numeric ticks are plain numbers; one scale per figure. Drawn from committed
results, hand-made rows and the figures of small real sweeps (tests/real_sweeps.py)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator
from matplotlib.transforms import Bbox
from results_factory import failed_row, ok_row, sweep_rows

from ffbench import plots
from ffbench.results import load, rows_to_table

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
        "fair, Adam and SGD": load([real_sweeps["fair"]]),
        "accuracy": load([real_sweeps["accuracy"]]),
    }


FRAMES = ("example", "factory", "two inputs", "embedded default", "published, predicted",
          "fair, Adam and SGD", "accuracy")
# a tick label a reader reads at once: 5 / 20 / 0.5 / 1,000 (never 10^0 or 3x10^0)
PLAIN_NUMBER = re.compile(r"^[-\u2212]?\d{1,3}(,\d{3})*(\.\d+)?$")


@pytest.fixture(scope="module")
def drawn(real_sweeps: dict[str, Path]) -> dict[str, dict[str, Figure | str]]:
    """Every figure of every frame, drawn once: frame -> figure name -> the figure, or the
    reason it was skipped."""
    return {data: {name: fig if fig is not None else str(why)
                   for name, fig, why in plots.render(frame)}
            for data, frame in frames(real_sweeps).items()}


def figures_of(drawn: dict[str, dict[str, Figure | str]], data: str) -> dict[str, Figure]:
    found = {name: fig for name, fig in drawn[data].items() if isinstance(fig, Figure)}
    assert found, "nothing was drawn"
    return found


def tick_problems(fig: Figure) -> list[str]:
    """Numeric axes whose drawn tick labels are not plain numbers, log axes with fewer than
    two labelled ticks, and axes with an offset or exponent written beside them."""
    FigureCanvasAgg(fig).draw()
    problems = []
    for i, ax in enumerate(fig.axes):
        for which, axis, limits, coordinate in (("x", ax.xaxis, ax.get_xlim(), 0),
                                                ("y", ax.yaxis, ax.get_ylim(), 1)):
            if isinstance(axis.get_major_locator(), FixedLocator):
                continue  # names, not numbers (the category figure's bars)
            labels = [t.get_text() for t in drawn_ticks(axis, limits, coordinate)]
            labels = [label for label in labels if label]
            unread = [label for label in labels if not PLAIN_NUMBER.match(label)]
            if unread:
                problems.append(f"axes {i} {which}: {unread} are not plain numbers")
            if axis.get_scale() == "log" and len(labels) < 2:
                problems.append(f"axes {i} {which}: a log axis with labels {labels}")
            if axis.get_offset_text().get_text():
                problems.append(f"axes {i} {which}: offset {axis.get_offset_text().get_text()}")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("data", FRAMES)
def test_no_figure_text_overlaps_or_leaves_the_canvas(
    data: str, drawn: dict[str, dict[str, Figure | str]],
) -> None:
    problems = {name: text_problems(fig) for name, fig in figures_of(drawn, data).items()}
    assert {name: found for name, found in problems.items() if found} == {}


@pytest.mark.slow
@pytest.mark.parametrize("data", FRAMES)
def test_tick_labels_are_plain_numbers_and_a_log_axis_has_several(
    data: str, drawn: dict[str, dict[str, Figure | str]],
) -> None:
    problems = {name: tick_problems(fig) for name, fig in figures_of(drawn, data).items()}
    assert {name: found for name, found in problems.items() if found} == {}


@pytest.mark.slow
@pytest.mark.parametrize("data", FRAMES)
def test_one_scale_per_figure(data: str, drawn: dict[str, dict[str, Figure | str]]) -> None:
    """No log panel beside a linear one (y, and x where x is not the depth)."""
    scales = {name: ({ax.get_yscale() for ax in fig.axes}
                     | {ax.get_xscale() for ax in fig.axes if ax.get_xscale() == "log"})
              for name, fig in figures_of(drawn, data).items()}
    assert {name: s for name, s in scales.items() if len(s) > 1} == {}


@pytest.mark.slow
def test_the_real_sweeps_draw_what_they_hold(drawn: dict[str, dict[str, Figure | str]]) -> None:
    """Which figures each real sweep draws, and why the others are skipped."""
    skipped = {data: {name: why for name, why in drawn[data].items() if isinstance(why, str)}
               for data in ("embedded default", "published, predicted", "fair, Adam and SGD",
                            "accuracy")}
    assert set(skipped["embedded default"]) == {"accuracy_vs_memory", "accuracy_vs_time",
                                                "compare_inputs"}
    meta = skipped["published, predicted"]
    assert set(meta) == {"time_vs_layers", "measured_vs_predicted", "accuracy_vs_memory",
                         "accuracy_vs_time", "compare_inputs"}
    assert set(skipped["accuracy"]) == {"compare_inputs"}  # the accuracy figures are drawn
    assert "is the prediction itself" in meta["measured_vs_predicted"]
    assert "not timed" in meta["time_vs_layers"]
    assert set(skipped["fair, Adam and SGD"]) == set(meta)  # one folder: nothing to compare
    measured = drawn["embedded default"]["measured_vs_predicted"]
    assert isinstance(measured, Figure)
    titles = [ax.get_title() for ax in measured.axes]
    assert titles[2].startswith("host peak RSS: predicted + ")
    assert "host peak RSS: the process's peak resident memory" in measured.get_supxlabel()


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
