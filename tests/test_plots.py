"""`ffbench plot` and ffbench.plots: real parquet files, real subprocesses, real images."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, Cli
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from PIL import Image
from results_factory import (
    BATCH_SIZES,
    DEPTHS,
    INTERCEPT_BYTES,
    TRAIN_SLOPE_BYTES,
    failed_row,
    ok_row,
    peak_row,
    sweep_rows,
    wobble,
    write_results,
)

from ffbench import plots
from ffbench.analysis import verdict, verdict_records, verdict_text
from ffbench.analysis.describe import caption
from ffbench.analysis.verdict_records import EVAL_EQUAL, EVAL_PUBLISHED, LARGER, TRAIN
from ffbench.plots import style as plot_style
from ffbench.plots import ticks as plots_ticks
from ffbench.plots.answer import RATIO_AXIS_TOP
from ffbench.results import load, rows_to_table, write_row_json

EXAMPLE = REPO / "results" / "example"
MIB = 2**20
ALL_FIGURES = set(plots.figures())


@pytest.fixture(scope="module")
def with_failures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bp and ff at depths 1..6, two batch sizes; ff oom at 8 and bp timeout at 10 (batch 256)."""
    rows = sweep_rows() + [failed_row("ff", 8, 256, "oom"), failed_row("bp", 10, 256, "timeout")]
    return write_results(tmp_path_factory.mktemp("with_failures"), rows)


def panel(fig: Figure, title: str) -> Axes:
    (ax,) = [ax for ax in fig.axes if ax.get_title() == title]
    return ax


def data_lines(ax: Axes) -> list:
    """The drawn curves (failed-cell lines are dotted)."""
    return [line for line in ax.get_lines() if line.get_linestyle() != ":"]


def load_rows(rows: list[dict], source: str = "rows") -> pd.DataFrame:
    return rows_to_table(rows).to_pandas().assign(source=source)


@pytest.mark.slow
def test_plot_writes_valid_images_without_the_measuring_code(with_failures: Path, tmp_path: Path):
    out = tmp_path / "figs"
    script = (
        "import sys\n"
        "from ffbench.cli import app\n"
        f"app(['plot', {str(with_failures)!r}, '--out', {str(out)!r}], standalone_mode=False)\n"
        # torch comes in with the algorithm classes (their display names); the measuring
        # code never does
        "print('heavy:', sorted(m for m in ('ffbench.cell', 'ffbench.measure.meta_cache')"
        " if m in sys.modules))\n"
    )
    env = os.environ | {"PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout
    drawn = {"memory_vs_layers", "answer", "time_vs_layers", "memory_categories",
             "measured_vs_predicted"}
    assert {p.stem for p in out.iterdir()} == drawn
    for path in out.iterdir():
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 400 and image.size[1] > 200
    assert "skipped accuracy_vs_memory: no test accuracy" in done.stdout
    assert "skipped compare_inputs: one input" in done.stdout


def test_memory_lines_are_the_stored_bytes_in_mib_and_failures_sit_at_their_depth(
    with_failures: Path,
):
    fig = plots.memory_vs_layers(load([with_failures]))
    ax = panel(fig, "train · batch 256, hidden 32")
    assert ax.get_ylabel() == "train peak, tracked (MiB)"
    colors = plot_style.algorithm_colors()
    (bp_line,) = [line for line in data_lines(ax) if line.get_color() == colors["bp"]]
    expected = [(INTERCEPT_BYTES["bp"] + TRAIN_SLOPE_BYTES["bp"] * n + 256 * 1024
                 + wobble(n, 256)) / MIB for n in DEPTHS]
    np.testing.assert_allclose(bp_line.get_xydata(), np.column_stack([DEPTHS, expected]))
    marks = sorted(tuple(p) for c in ax.collections if isinstance(c, PathCollection)
                   for p in c.get_offsets())
    # on the x axis itself (y = 0 in axes coordinates), never at a data-like height; bp
    # (first in the registry) just left of its depth, ff just right
    spread = plot_style.FAILED_MARK_SPREAD / 2 * (10.5 - 0.5)  # a share of the depth axis
    assert marks == [(pytest.approx(8 + spread), 0), (pytest.approx(10 - spread), 0)]
    dotted = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":")
    assert dotted == [pytest.approx(8 + spread), pytest.approx(10 - spread)]
    assert ax.get_xlim()[1] >= 10 and ax.get_ylim()[1] > max(expected)
    no_failures = panel(fig, "train · batch 64, hidden 32")
    assert not [c for c in no_failures.collections if isinstance(c, PathCollection)]


def test_colors_follow_the_registry_in_every_figure(with_failures: Path):
    frame = load([with_failures])
    colors = plot_style.algorithm_colors()
    for fig in (plots.memory_vs_layers(frame), plots.time_vs_layers(frame)):
        line_colors = {line.get_color() for ax in fig.axes for line in ax.get_lines()}
        assert line_colors == {colors["bp"], colors["ff"]}
    only_ff = plot_style.algorithm_colors(["ff"])
    assert only_ff["ff"] == colors["ff"] != colors["bp"]
    with_unknown = plot_style.algorithm_colors(["ff", "zz-new"])
    assert with_unknown["ff"] == colors["ff"]
    assert with_unknown["zz-new"] not in [colors[name] for name in colors]


def test_time_figure_in_ms_with_iqr_band(with_failures: Path):
    fig = plots.time_vs_layers(load([with_failures]))
    ax = panel(fig, "step time · batch 64, hidden 32")
    assert ax.get_ylabel().endswith("(ms)")
    ff_color = plot_style.algorithm_colors()["ff"]
    (ff_line,) = [line for line in data_lines(ax) if line.get_color() == ff_color]
    step_ms = [ok_row("ff", n, 64)["step_time_median_s"] * 1e3 for n in DEPTHS]
    np.testing.assert_allclose(ff_line.get_ydata(), step_ms)
    bands = [c for c in ax.collections if not isinstance(c, PathCollection)]
    assert len(bands) == 2  # one IQR band per algorithm


def test_units_switch_to_gib_and_caption_names_device_torch_and_date():
    rows = [ok_row("bp", n, 64, train_peak_allocated_bytes=n * 3 * 2**30,
                   eval_peak_allocated_bytes=2**30, gpu_name="NVIDIA H100 80GB HBM3",
                   torch_version="2.11.0", started_at="2026-03-04T05:06:07+00:00")
            for n in DEPTHS] + [failed_row("bp", 8, 64, "oom")]
    frame = load_rows(rows)
    fig = plots.memory_vs_layers(frame)
    ax = panel(fig, "train · batch 64, hidden 32")
    assert ax.get_ylabel() == "train peak, CUDA allocated (GiB)"
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [3 * n for n in DEPTHS])
    assert caption(frame) == "NVIDIA H100 80GB HBM3 · torch 2.11.0 · 2026-01-02 to 2026-03-04"
    assert fig.get_supxlabel() == caption(frame)


def test_category_bars_stack_to_the_tracked_peak_and_label_failed_depths(with_failures: Path):
    fig = plots.memory_categories(load([with_failures]), depths=[6, 8])
    ax = panel(fig, "train · batch 256, hidden 32")
    tops = {}
    for bar in ax.patches:
        x = round(bar.get_x() + bar.get_width() / 2)
        tops[x] = max(tops.get(x, 0), bar.get_y() + bar.get_height())
    labels = [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()]
    assert labels == ["backprop · 6", "Base FF · 6", "Base FF · 8"]
    assert tops[0] == pytest.approx(ok_row("bp", 6, 256)["train_peak_tracked_bytes"] / MIB)
    # each stack's total on top of it, the failed slot's status instead of a total
    totals = [plots_ticks.plain_number(tops[x]) for x in (0, 1)]
    assert [t.get_text().strip() for t in ax.texts] == [*totals, "oom"]


def test_accuracy_figure_when_accuracy_was_measured(tmp_path: Path):
    rows = [ok_row(a, n, 64, test_accuracy=0.8 + n / 100) for a in ("bp", "ff") for n in DEPTHS]
    fig = plots.accuracy_vs_memory(load([write_results(tmp_path, rows)]))
    (ax,) = fig.axes
    assert ax.get_ylabel() == "test accuracy (%)"
    points = [line.get_ydata()[0] for line in ax.get_lines() if line.get_marker() == "o"]
    assert sorted(points) == pytest.approx(sorted(100 * r["test_accuracy"] for r in rows))


@pytest.mark.slow
def test_several_inputs_side_by_side(with_failures: Path, tmp_path: Path):
    other = write_results(tmp_path / "other", sweep_rows(cpu_model="Other CPU"))
    frame = load([with_failures, other])
    drawn = plots.draw_all(frame, tmp_path / "figs", "svg")
    assert {d.name for d in drawn if d.path} == ALL_FIGURES - {"accuracy_vs_memory",
                                                               "accuracy_vs_time"}
    assert (tmp_path / "figs" / "compare_inputs.svg").read_text().lstrip().startswith("<?xml")
    fig = plots.compare_inputs(frame)
    titles = [ax.get_title().replace("\n", " ") for ax in fig.axes if ax.get_title()]
    assert titles == [f"{with_failures}: Test CPU · torch 2.0-test · 2026-01-02",
                      f"{other}: Other CPU · torch 2.0-test · 2026-01-02"]
    assert " ".join(fig.get_supxlabel().split()) == (
        f"{with_failures}: Test CPU · torch 2.0-test · 2026-01-02 | "
        f"{other}: Other CPU · torch 2.0-test · 2026-01-02")
    legend_labels = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {f"batch {b}, hidden 32" for b in BATCH_SIZES} <= legend_labels
    memory = plots.memory_vs_layers(frame)
    assert {str(with_failures), str(other)} <= {t.get_text() for t in memory.legends[0].texts}


@pytest.mark.slow
def test_nothing_to_draw_is_said_not_crashed(tmp_path: Path):
    rows = [failed_row("bp", n, 64, "oom") for n in DEPTHS]
    drawn = plots.draw_all(load([write_results(tmp_path, rows)]), tmp_path / "figs", "pdf")
    assert all(d.path is None and d.skipped for d in drawn)
    meta = [ok_row("ff", n, 64, step_time_median_s=None, step_time_iqr_s=None,
                   samples_per_s=None, device="meta") for n in DEPTHS]
    drawn = plots.draw_all(load_rows(meta), tmp_path / "meta", "pdf")
    skipped = {d.name: d.skipped for d in drawn if d.path is None}
    assert "time_vs_layers" in skipped and "not timed" in skipped["time_vs_layers"]
    assert (tmp_path / "meta" / "memory_vs_layers.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.slow
def test_real_results_as_parquet_and_as_cell_files(tmp_path: Path):
    """The committed example (real cells, some failed) and the same rows as cells/*.json."""
    frame = load([EXAMPLE])
    assert set(frame["algorithm"]) >= {"bp", "ff"}
    for i, row in enumerate(frame.drop(columns="source").to_dict("records")):
        write_row_json({k: (None if v != v else v) for k, v in row.items()},
                       tmp_path / "cells" / f"{i}.json")
    drawn = plots.draw_all(load([tmp_path]), tmp_path / "figs")
    assert {d.name for d in drawn if d.path} >= {"memory_vs_layers", "time_vs_layers"}


@pytest.mark.slow
def test_several_inputs_through_the_command(with_failures: Path, tmp_path: Path, cli: Cli):
    other = write_results(tmp_path / "other", sweep_rows(algorithms=("ff",)))
    done = cli("plot", with_failures, other, "--out", tmp_path / "figs", "--format", "png",
               "--depths", "2,6")
    assert done.returncode == 0, done.stderr
    assert f"wrote {tmp_path / 'figs' / 'compare_inputs.png'}" in done.stdout
    with Image.open(tmp_path / "figs" / "compare_inputs.png") as image:
        image.verify()


def other_schema(path: Path) -> Path:
    table = rows_to_table(sweep_rows())
    index = table.schema.get_field_index("schema_version")
    table = table.set_column(index, "schema_version", pa.array([2] * len(table), pa.int64()))
    path.mkdir()
    pq.write_table(table, path / "results.parquet")
    return path / "results.parquet"


def corrupt(path: Path) -> Path:
    path.mkdir()
    (path / "results.parquet").write_bytes(b"PAR1 this is not parquet")
    return path / "results.parquet"


def no_parquet(path: Path) -> Path:
    path.mkdir()
    (path / "notes.txt").write_text("no results here")
    return path


def empty(path: Path) -> Path:
    path.mkdir()
    return path


def corrupt_cell(path: Path) -> Path:
    (path / "cells").mkdir(parents=True)
    (path / "cells" / "abc.json").write_text('{"schema_version": 1, "algorithm": ')
    return path / "cells" / "abc.json"


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (empty, "empty directory"),
        (no_parquet, "no results.parquet and no cells/*.json"),
        (other_schema, "schema version [2], this ffbench reads 1"),
        (corrupt, "not a readable parquet file"),
        (corrupt_cell, "not a readable result row"),
    ],
)
def test_bad_results_one_line_naming_the_file_exit_2(make, expected: str, tmp_path: Path, cli: Cli):
    named = make(tmp_path / "input")
    done = cli("plot", tmp_path / "input", "--out", tmp_path / "figs")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert str(named) in done.stderr and expected in done.stderr
    assert not (tmp_path / "figs").exists()


def test_bad_format_and_missing_path_exit_2(with_failures: Path, tmp_path: Path, cli: Cli):
    done = cli("plot", with_failures, "--format", "gif", "--out", tmp_path / "figs")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "gif" in done.stderr
    done = cli("plot", tmp_path / "missing")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"{tmp_path / 'missing'}: no such file or directory" in done.stderr
    assert not (tmp_path / "figs").exists()


def test_the_answer_draws_the_verdicts_ratios_on_a_linear_axis_around_one():
    rows = (sweep_rows(("bp", "bp-lean"))
            + sweep_rows(("ff",), eval_chunk=BATCH_SIZES[0])  # equal rows
            + sweep_rows(("ff",), eval_chunk=0))  # as published
    frame = load_rows([row for row in rows if row["batch_size"] == 64])
    fig = plots.answer(frame)
    found = verdict.verdict(frame)
    colors = plot_style.algorithm_colors()
    titles = [ax.get_title() for ax in fig.axes]
    assert [t.split("\n")[0] for t in titles] == [
        TRAIN, EVAL_EQUAL, LARGER, EVAL_PUBLISHED] * 2
    assert [t.split("\n")[1].split(" (")[0] for t in titles] == (
        ["over the strongest backprop"] * 4 + ["over bp"] * 4)
    ax = panel(fig, f"{LARGER}\nover the strongest backprop (bp-lean at the deepest)")
    assert ax.get_yscale() == "linear" and ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 1
    (ff_line,) = [line for line in data_lines(ax) if line.get_color() == colors["ff"]
                  and len(line.get_xdata()) > 1]
    ff = [ok_row("ff", n, 64) for n in DEPTHS]
    lean = [ok_row("bp-lean", n, 64) for n in DEPTHS]
    expected = [max(f["train_peak_tracked_bytes"], f["eval_peak_tracked_bytes"])
                / max(b["train_peak_tracked_bytes"], b["eval_peak_tracked_bytes"])
                for f, b in zip(ff, lean, strict=True)]
    np.testing.assert_allclose(ff_line.get_ydata(), expected)
    c = found.find("ff", verdict_records.STRONGEST, LARGER, found.groups[0])
    assert c is not None and c.ratio == pytest.approx(expected[-1])
    label = f"{verdict_text.ratio_text(c.ratio)}\n" + (
        "never" if c.below_from is None else f"from {c.below_from}")
    assert label in [t.get_text() for t in ax.texts]
    (one,) = ax.collections[0].get_segments()
    assert set(one[:, 1]) == {1.0}  # the backprop's peak, drawn across the depths
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert "Base FF" in legend and "backprop" not in legend  # backprop is the line at 1


def test_a_line_above_the_axis_keeps_the_axis_and_says_its_value():
    rows = (sweep_rows(("bp",))
            + [ok_row("ff", n, 64, train_peak_tracked_bytes=2**30 * n) for n in DEPTHS])
    fig = plots.answer(load_rows(rows))
    ax = panel(fig, f"{TRAIN}\nover bp")
    assert ax.get_ylim() == (0, RATIO_AXIS_TOP)
    assert any(t.get_text().startswith("above: ") for t in ax.texts)


def test_without_backprop_the_answer_says_why():
    with pytest.raises(plots.NoData, match="no backprop"):
        plots.answer(load_rows(sweep_rows(("ff",))))


@pytest.mark.slow
def test_the_answer_text_stays_apart_with_many_lines():
    """Four FF variants under two optimizers, three backprops: every label within the
    canvas, no title, tick or legend text over another."""
    from test_figure_text import text_problems

    rows = []
    for optimizer, scale in (("adam", 1.0), ("sgd", 0.6)):
        for algorithm, train, evaluation in (("bp", 40, 20), ("bp-lean", 25, 20),
                                             ("ff", 24, 21), ("ff-layerwise", 4, 2),
                                             ("rff", 110, 400), ("ff-progressive", 30, 21)):
            for n in range(2, 48, 5):
                rows.append(peak_row(algorithm, n, scale * train * n + 10, evaluation * n + 10,
                                     optimizer=optimizer, eval_chunk=64, device="meta"))
                if algorithm.startswith(("ff", "rff")):
                    rows.append(peak_row(algorithm, n, scale * train * n + 10,
                                         10 * evaluation * n, optimizer=optimizer,
                                         eval_chunk=0, device="meta"))
    fig = plots.answer(load_rows(rows))
    assert "PREDICTED" in fig.get_suptitle()
    assert text_problems(fig) == []


def test_predicted_rows_are_labelled_predicted_and_wide_ranges_go_log():
    rows = [ok_row(a, n, 64, device="meta", train_peak_tracked_bytes=2**20 * n ** 3)
            for a in ("bp", "ff") for n in DEPTHS]
    fig = plots.memory_vs_layers(load_rows(rows))
    assert "PREDICTED" in fig.get_suptitle() and "PREDICTED" in fig.get_supxlabel()
    ax = panel(fig, "train · batch 64, hidden 32")
    assert ax.get_ylabel() == "train peak, predicted (MiB)" and ax.get_yscale() == "log"
    time_fig = plots.time_vs_layers(load_rows(sweep_rows()))
    assert "PREDICTED" not in time_fig.get_suptitle()


def test_accuracy_at_chance_is_said_and_marked():
    rows = [ok_row("ff", n, 64, test_accuracy=0.1, epochs=1) for n in DEPTHS]
    fig = plots.accuracy_vs_memory(load_rows(rows))
    (ax,) = fig.axes
    assert "chance" in ax.get_title() and "trained too little" in ax.get_title()
    chance = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert [line.get_ydata()[0] for line in chance] == [pytest.approx(10)]


@pytest.mark.slow
def test_plot_on_a_parent_draws_each_results_folder_found_below_it(tmp_path: Path, cli: Cli):
    for name in ("a", "b"):
        write_results(tmp_path / "results" / name, sweep_rows())
    (tmp_path / "results" / "empty").mkdir()
    done = cli("plot", tmp_path / "results")
    assert done.code == 0, done.err
    assert (f"found 2 results folder(s): {tmp_path / 'results' / 'a'}, "
            f"{tmp_path / 'results' / 'b'}") in done.out
    for name in ("a", "b"):
        drawn = {p.stem for p in (tmp_path / "results" / name / "figures").iterdir()}
        assert "answer" in drawn and "compare_inputs" not in drawn


# ---- read at a glance ------------------------------------------------------------------


def y_limits(fig: Figure) -> dict[str, tuple[float, float]]:
    return {ax.get_title(): ax.get_ylim() for ax in fig.axes}


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_failed_and_missing_cells_leave_the_y_range_alone(device: str):
    """Marked on the x axis at their depth (inside and beyond the depths that ran), on a
    linear axis (cpu rows) and a log one (meta rows spanning three decades)."""
    def wide(n: int) -> dict[str, int]:  # meta: train peaks over three decades
        return {} if device == "cpu" else {"train_peak_tracked_bytes": MIB * n ** 3}

    ok = [ok_row(a, n, b, device=device, **wide(n))
          for a in ("bp", "ff") for b in BATCH_SIZES for n in DEPTHS]
    failed = [failed_row("ff", 3, 256, "oom"), failed_row("bp", 10, 256, "timeout"),
              failed_row("ff", 12, 64, "missing"), failed_row("bp", 12, 64, "error")]
    figures = ("memory_vs_layers", "time_vs_layers") if device == "cpu" else ("memory_vs_layers",)
    for name in figures:
        draw = plots.figures()[name]
        without, with_failed = draw(load_rows(ok)), draw(load_rows(ok + failed))
        assert y_limits(with_failed) == y_limits(without), name
        assert len({ax.get_yscale() for ax in with_failed.axes}) == 1, name
        marks = [c for ax in with_failed.axes for c in ax.collections
                 if isinstance(c, PathCollection)]
        assert marks and all(y == 0 for c in marks for _, y in c.get_offsets())
    memory = {ax.get_yscale() for ax in plots.memory_vs_layers(load_rows(ok)).axes}
    assert memory == {"linear" if device == "cpu" else "log"}


def test_one_scale_per_memory_figure_with_plain_ticks():
    """Eval peaks spanning more than a decade put the train panels on the same log scale
    (they span less); the ticks are plain MiB numbers."""
    rows = [ok_row("bp", n, 64, eval_peak_tracked_bytes=2**20 * 4**n) for n in DEPTHS]
    fig = plots.memory_vs_layers(load_rows(rows))
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log"]
    FigureCanvasAgg(fig).draw()
    for ax in fig.axes:
        low, high = ax.get_ylim()
        shown = [t.get_text() for t in ax.get_yticklabels(which="both")
                 if low <= t.get_position()[1] <= high and t.get_text()]
        assert len(shown) >= 2 and all(t.replace(",", "").replace(".", "").isdigit()
                                       for t in shown), shown


def test_meta_cells_are_no_measurement_and_cpu_cells_show_the_host_rss():
    meta = [ok_row(a, n, 64, device="meta") for a in ("bp", "ff") for n in DEPTHS]
    with pytest.raises(plots.NoData, match="every cell ran on meta: its peak is the "
                                           "prediction itself"):
        plots.measured_vs_predicted(load_rows(meta))
    rss = {n: 500 * MIB + 3 * n * MIB for n in DEPTHS}
    cpu = [ok_row("bp", n, 64, cpu_peak_rss_bytes=rss[n]) for n in DEPTHS]
    fig = plots.measured_vs_predicted(load_rows(cpu + meta))
    train, _, host = fig.axes
    train_points = np.vstack([c.get_offsets() for c in train.collections])
    assert len(train_points) == len(DEPTHS)  # the meta cells are left out
    points = np.vstack([c.get_offsets() for c in host.collections])
    larger = [max(ok_row("bp", n, 64)["predicted_train_peak_bytes"],
                  ok_row("bp", n, 64)["predicted_eval_peak_bytes"]) / MIB for n in DEPTHS]
    np.testing.assert_allclose(sorted(map(tuple, points)),
                               sorted(zip(larger, [rss[n] / MIB for n in DEPTHS], strict=True)))
    assert host.get_ylabel() == "host peak RSS (MiB)"
    caption = " ".join(fig.get_supxlabel().split())
    assert "host peak RSS: the process's peak resident memory (VmHWM)" in caption
    assert "predicted: the same steps on fake tensors" in caption
    assert f"{len(meta)} meta cell(s) left out" in caption
    without_rss = plots.measured_vs_predicted(load_rows(sweep_rows()))
    assert len(without_rss.axes) == 2


def lab(color) -> np.ndarray:
    """CIELAB (D65) of an sRGB color: the space where a distance is a seen difference."""
    from matplotlib.colors import to_rgb

    rgb = np.array(to_rgb(color))
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ linear / np.array([0.95047, 1, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_plugin_colors_are_their_own_and_legible():
    """Algorithms the registry does not know: each color differs from every registered
    algorithm's and from the others' at least as much as the registered ones' closest pair
    differ, and none is lighter than the lightest registered color."""
    from ffbench.algorithms.registry import BUILTIN

    plugins = [f"plugin-{i}" for i in range(len(plot_style.PLUGIN_COLORS))]
    colors = plot_style.algorithm_colors(plugins)
    registered = [colors[name] for name in BUILTIN]
    closest = min(np.linalg.norm(lab(a) - lab(b)) for i, a in enumerate(registered)
                  for b in registered[i + 1:])
    lightest = max(lab(c)[0] for c in registered)
    own = [colors[name] for name in plugins]
    for i, color in enumerate(own):
        others = registered + own[:i] + own[i + 1:]
        assert min(np.linalg.norm(lab(color) - lab(o)) for o in others) >= closest
        assert lab(color)[0] <= lightest
    fig = plots.memory_vs_layers(load_rows(sweep_rows()).assign(algorithm="plugin-0"))
    assert {line.get_color() for ax in fig.axes for line in data_lines(ax)} == {colors["plugin-0"]}


def test_compare_inputs_of_untimed_inputs_draws_the_memory_row_and_says_why():
    meta = [ok_row(a, n, 64, device="meta", step_time_median_s=None, step_time_iqr_s=None,
                   samples_per_s=None) for a in ("bp", "ff") for n in DEPTHS]
    frame = pd.concat([load_rows(meta, "a"), load_rows(meta, "b")])
    fig = plots.compare_inputs(frame)
    assert [ax.get_ylabel() for ax in fig.axes] == ["train peak, predicted (MiB)"] * 2
    assert "no step times: meta cells are not timed" in fig.get_supxlabel()
    assert len({ax.get_ylim() for ax in fig.axes}) == 1


def test_category_totals_are_written_on_each_stack_below_the_top(with_failures: Path):
    fig = plots.memory_categories(load([with_failures]), depths=[6])
    ax = panel(fig, "train · batch 256, hidden 32")
    tops: dict[int, float] = {}
    for bar in ax.patches:
        x = round(bar.get_x() + bar.get_width() / 2)
        tops[x] = max(tops.get(x, 0), bar.get_y() + bar.get_height())
    assert [t.get_text().strip() for t in ax.texts] == [
        plots_ticks.plain_number(tops[x]) for x in sorted(tops)]
    assert ax.get_ylim()[1] > max(tops.values())
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "optimizer state" in legend
