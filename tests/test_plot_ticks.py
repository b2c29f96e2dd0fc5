"""ffbench.plot_ticks: plain-number tick labels, and log axes with readable major ticks."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure
from test_figure_text import text_problems

from ffbench.plots.ticks import ReadableLogLocator, plain_number, readable


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (5, "5"), (1000, "1,000"), (2048.0, "2,048"), (1e6, "1,000,000"),
    (0.5, "0.5"), (0.05, "0.05"), (0.1 + 0.2, "0.3"), (1.25, "1.25"), (12.5, "12.5"),
    (0.123456, "0.123"),
])
def test_plain_numbers(value: float, text: str) -> None:
    assert plain_number(value) == text


@pytest.mark.parametrize(("low", "high", "expected"), [
    (2.8, 75, [5, 10, 20, 50]),         # the embedded default's eval peaks, MiB
    (5, 35, [5, 10, 20]),               # its train peaks: three ticks, not one
    (0.15, 40, [0.3, 1, 3, 10, 30]),    # the published grid's eval peaks, GiB
    (0.001, 1000, [0.001, 0.01, 0.1, 1, 10, 100, 1000]),
])
def test_log_ticks_at_round_numbers(low: float, high: float, expected: list[float]) -> None:
    assert ReadableLogLocator().tick_values(low, high) == pytest.approx(expected)


def test_a_log_axis_spanning_little_gets_evenly_spaced_round_numbers() -> None:
    ticks = ReadableLogLocator().tick_values(547, 670)
    assert ticks == pytest.approx([500, 550, 600, 650, 700])


@pytest.mark.parametrize(("low", "high"), [(2.8, 75), (0.15, 40), (1.2, 1.9), (3, 3e5),
                                           (547, 670), (0.01, 2)])
@pytest.mark.parametrize("which", ["x", "y"])
def test_a_readable_log_axis_labels_several_plain_numbers_that_do_not_overlap(
    low: float, high: float, which: str,
) -> None:
    fig = Figure(figsize=(4.6, 3.2), layout="constrained")
    ax = fig.subplots()
    readable(ax, which, log=True)
    (ax.set_xlim if which == "x" else ax.set_ylim)(low, high)
    assert text_problems(fig) == []  # draws the figure
    axis = ax.xaxis if which == "x" else ax.yaxis
    coordinate = 0 if which == "x" else 1
    shown = [t.get_text() for t in axis.get_ticklabels(which="both")
             if low <= t.get_position()[coordinate] <= high and t.get_text()]
    assert len(shown) >= 2, shown
    assert all(t.replace(",", "").replace(".", "").isdigit() for t in shown), shown
