"""`ffbench report`: its numbers against an independent least-squares fit, and its page."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, Cli
from results_factory import DEPTHS, failed_row, ok_row, sweep_rows, write_results

from ffbench.algorithms.resolve import identity_columns
from ffbench.analysis import fits, verdict, verdict_text
from ffbench.report import findings, page, render
from ffbench.results import load
from ffbench.sweep import definition as sweep_definition
from ffbench.sweep.spec import load_sweep

EXAMPLE = REPO / "results" / "example"
MIB = 2**20
PER_LAYER = re.compile(r"(\S+): ([+-][\d,]*\.?\d*) (MiB|ms) per layer")


def lstsq_slope(x: pd.Series, y: pd.Series) -> float:
    design = np.column_stack([x.to_numpy(float), np.ones(len(x))])
    return float(np.linalg.lstsq(design, y.to_numpy(float), rcond=None)[0][0])


def independent_slopes(frame: pd.DataFrame) -> dict[tuple[str, str, int], dict[str, float]]:
    """(what, algorithm, batch size) -> slope per layer in MiB or ms, over ok cells only;
    CUDA allocated peak where present, else tracked."""
    ok = frame[frame["status"] == "ok"]
    slopes: dict[tuple[str, str, int], dict[str, float]] = {}
    for (algorithm, batch_size), cells in ok.groupby(["algorithm", "batch_size"]):
        for phase in ("train", "eval"):
            peak = cells[f"{phase}_peak_allocated_bytes"].combine_first(
                cells[f"{phase}_peak_tracked_bytes"])
            slope = lstsq_slope(cells["n_layers"], peak) / MIB
            slopes[(f"{phase.capitalize()} peak", algorithm, int(batch_size))] = {"MiB": slope}
        timed = cells.dropna(subset=["step_time_median_s"])
        if timed["n_layers"].nunique() > 1:
            ms = lstsq_slope(timed["n_layers"], timed["step_time_median_s"]) * 1e3
            slopes[("Train step time", algorithm, int(batch_size))] = {"ms": ms}
    return slopes


def reported_slopes(text: str) -> dict[tuple[str, str, int], dict[str, tuple[float, float]]]:
    """Finding lines -> (what, algorithm, batch) -> unit -> (value, half of the last digit)."""
    found: dict[tuple[str, str, int], dict[str, tuple[float, float]]] = {}
    for line in text.splitlines():
        head = re.match(r"- (Train peak|Eval peak|Train step time) per added layer "
                        r"\(batch (\d+), hidden \d+\): ", line)
        if not head:
            continue
        for algorithm, value, unit in PER_LAYER.findall(line[head.end():]):
            decimals = len(value.partition(".")[2])
            key = (head[1], algorithm, int(head[2]))
            found.setdefault(key, {})[unit] = (float(value.replace(",", "")), 0.5 * 10**-decimals)
    return found


def check_report_against_lstsq(text: str, frame: pd.DataFrame) -> None:
    expected, found = independent_slopes(frame), reported_slopes(text)
    assert set(found) == set(expected)
    for key, units in expected.items():
        for unit, slope in units.items():
            value, rounding = found[key][unit]
            assert value == pytest.approx(slope, abs=rounding * 1.001), (key, unit)


@pytest.fixture(scope="module")
def with_failures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = sweep_rows() + [failed_row("ff", 8, 256, "oom"), failed_row("bp", 10, 256, "timeout")]
    return write_results(tmp_path_factory.mktemp("with_failures"), rows)


def test_slope_table_is_the_least_squares_fit_of_ok_cells(with_failures: Path):
    frame = load([with_failures])
    table = fits.slope_table(frame)
    assert list(table["algorithm"]) == ["bp", "ff", "bp", "ff"]  # registry order per batch
    expected = independent_slopes(frame)
    for row in table.itertuples():
        key = (row.algorithm, row.batch_size)
        assert row.cells == 5  # the failed cells are not fitted
        assert row.train_slope_bytes_per_layer / MIB == pytest.approx(
            expected[("Train peak", *key)]["MiB"], rel=1e-12)
        assert row.eval_slope_bytes_per_layer / MIB == pytest.approx(
            expected[("Eval peak", *key)]["MiB"], rel=1e-12)
        assert row.time_slope_s_per_layer * 1e3 == pytest.approx(
            expected[("Train step time", *key)]["ms"], rel=1e-9)


@pytest.mark.slow
def test_report_states_slopes_categories_and_failures(
    with_failures: Path, tmp_path: Path, cli: Cli
) -> None:
    out = tmp_path / "page" / "report.md"
    done = cli("report", with_failures, "--out", out)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    check_report_against_lstsq(text, load([with_failures]))
    assert "- Largest memory category at the train peak, bp: activations" in text
    assert "2 of 22 cells run failed (oom: 1, timeout: 1)" in text
    assert "| ff | 8 | 256 | 32 | oom | oom on purpose |" in text
    assert "| bp | 10 | 256 | 32 | timeout | timeout on purpose |" in text
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert len(images) == 5
    for image in images:
        assert (out.parent / image).read_bytes().startswith(b"\x89PNG")
    assert "accuracy_vs_memory: skipped, no test accuracy" in text
    assert "Test CPU · torch 2.0-test · 2026-01-02" in text


@pytest.mark.slow
def test_html_report(with_failures: Path, tmp_path: Path, cli: Cli):
    out = tmp_path / "report.html"
    done = cli("report", with_failures, "--out", out)
    assert done.returncode == 0, done.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.count("<table>") == 3  # verdict first
    for image in re.findall(r'<img src="([^"]+)"', page):
        assert (tmp_path / image).is_file()
    assert re.search(r"<li>Train peak per added layer \(batch 64, hidden 32\): "
                     r"bp: \+4\.\d+ MiB per layer, ff: \+3\.\d+ MiB per layer\.</li>", page)


def test_report_on_real_results_matches_lstsq(tmp_path: Path):
    """The committed example: real cells measured by ffbench, some failed."""
    frame = load([EXAMPLE])
    blocks = page.build(frame, [], tmp_path)
    text = render.to_markdown(blocks)
    check_report_against_lstsq(text, frame)
    assert "per added layer" in text


@pytest.mark.slow
def test_bad_report_inputs_exit_2(tmp_path: Path, with_failures: Path, cli: Cli):
    done = cli("report", with_failures, "--out", tmp_path / "report.pdf")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "report.pdf" in done.stderr and ".md or .html" in done.stderr
    (tmp_path / "empty").mkdir()
    done = cli("report", tmp_path / "empty", "--out", tmp_path / "r.md")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert f"{tmp_path / 'empty'}: empty directory" in done.stderr
    assert not (tmp_path / "r.md").exists() and not (tmp_path / "r_figures").exists()


@pytest.mark.parametrize(
    ("value", "signed", "text"),
    [(16.0234, True, "+16.02"), (0.0610351, False, "0.06104"), (-1234.56, True, "-1,235"),
     (0.0, False, "0"), (float("nan"), False, "n/a"), (3e-6, True, "+0.000003"),
     (3e-9, False, "0"), (-1e-12, True, "0")],
)
def test_number_keeps_four_significant_digits(value: float, signed: bool, text: str):
    assert findings.number(value, signed=signed) == text


def test_fit_line_needs_two_depths():
    assert fits.fit_line([1, 2, 3], [5, 7, 9]) == pytest.approx((2.0, 3.0))
    assert all(np.isnan(fits.fit_line([4, 4], [1, 2])))


@pytest.mark.slow
def test_plot_and_report_on_the_ci_cpu_sweep(tmp_path: Path, cli: Cli):
    """A real sweep (sweeps/ci-cpu.toml: bp and ff, 1, 2 and 4 layers, fresh processes)."""
    sweep = tmp_path / "ci"
    done = cli("sweep", "ci-cpu", "--out", sweep)
    assert done.returncode == 0, done.stderr
    done = cli("plot", sweep)
    assert done.returncode == 0, done.stderr
    figures = sorted((sweep / "figures").iterdir())
    assert [f.stem for f in figures] == sorted(
        ["memory_vs_layers", "answer", "time_vs_layers", "memory_categories",
         "measured_vs_predicted"])
    assert all(f.read_bytes().startswith(b"\x89PNG") for f in figures)
    done = cli("report", sweep)
    assert done.returncode == 0, done.stderr
    check_report_against_lstsq((sweep / "report.md").read_text(), load([sweep]))


def test_the_report_begins_with_the_verdict(tmp_path: Path):
    """The verdict's lines and table, first; no other finding states a crossover."""
    folder = write_results(tmp_path, sweep_rows(("bp", "bp-lean", "ff")))
    frame = load([folder])
    blocks = page.build(frame, [], tmp_path)
    assert blocks[1] == page.Heading("Verdict")
    answer = verdict.verdict(frame)
    assert blocks[2] == page.Bullets(verdict_text.verdict_lines(answer))
    columns, rows = verdict_text.verdict_table(answer)
    assert blocks[3] == page.Table(columns, rows)
    # computed here from the rows: below bp where more than 4 MiB and 1% under it
    peaks = {a: {n: ok_row(a, n, 64)["train_peak_tracked_bytes"] for n in DEPTHS}
             for a in ("bp", "ff", "bp-lean")}
    below = [n for n in DEPTHS if peaks["bp"][n] - peaks["ff"][n] >= max(4 * MIB,
                                                                        peaks["bp"][n] / 100)]
    since = min(n for n in below if all(m in below for m in DEPTHS if m >= n))
    ratio, lean = (peaks["ff"][6] / peaks[b][6] for b in ("bp", "bp-lean"))
    assert ["64", "Base FF", "train", "adam", "6", f"{ratio:.2f}x, from {since}",
            f"{lean:.2f}x, never", f"{lean:.2f}x, never (bp-lean)"] in rows
    text = render.to_markdown(blocks)
    assert text.index("## Verdict") < text.index("## Findings")
    assert "crossover" not in text


def test_an_equal_peak_is_not_a_crossover(tmp_path: Path):
    """The same peaks at every depth: about the same, never 'from depth 1'."""
    rows = [ok_row(a, n, 64, train_peak_tracked_bytes=100 * MIB) for a in ("bp", "ff")
            for n in (1, 2, 3)]
    text = render.to_markdown(page.build(load([write_results(tmp_path, rows)]), [],
                                           tmp_path))
    assert "Base FF, train at 3 layers: 1.00x bp (100 vs 100 MiB, the only backprop run): " \
           "about the same (0.0% apart)." in text
    assert "from 1" not in text and "saves" not in text


def test_a_stopped_sweep_says_n_of_m_run_and_lists_the_missing(tmp_path: Path, cli: Cli):
    spec = load_sweep("quick", {"algorithms": "bp", "layers": "1..3", "hidden": 32,
                                "batch_sizes": 64})
    first = spec.cells()[0]
    write_results(tmp_path, [ok_row("bp", 1, 64) | identity_columns(first, spec.name)])
    sweep_definition.record_owner(spec, tmp_path)
    out = tmp_path / "report.md"
    done = cli("report", tmp_path, "--out", out)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "1 of 3 cells run; 2 not run yet" in text and "All 1 cells run succeeded." in text
    assert "## Cells not run yet" in text
    assert "| bp | 2 | 64 | 32 | missing |" in text and "| bp | 3 | 64 | 32 | missing |" in text


def test_a_predicted_sweep_says_so(tmp_path: Path):
    rows = [ok_row(a, n, 64, device="meta") for a in ("bp", "ff") for n in (1, 2)]
    text = render.to_markdown(page.build(load([write_results(tmp_path, rows)]), [], tmp_path))
    assert "(PREDICTED)" in text.splitlines()[0] and "meta device" in text


def test_cells_of_different_settings_in_one_folder_are_said_to_be_mixed():
    rows = sweep_rows(steps=3) + [ok_row("bp", 8, 64, steps=5)]
    from ffbench.results import rows_to_table

    frame = rows_to_table(rows).to_pandas().assign(source="results/quick")
    [line] = findings.mixed_settings_findings(frame)
    assert line.startswith("Warning: results/quick mixes cells of different sweep settings "
                           "(steps: 3, 5)")
    assert findings.mixed_settings_findings(frame[frame["steps"] == 3]) == []
