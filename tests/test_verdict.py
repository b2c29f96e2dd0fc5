"""The verdict held to hand-made results (every number here is computed from the rows given),
and to real cells at the published size predicted on meta."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from results_factory import BATCH_SIZES, DEPTHS, ok_row, peak_row, sweep_rows

from ffbench.algorithms import registry
from ffbench.analysis import verdict_text
from ffbench.analysis.verdict import verdict
from ffbench.analysis.verdict_records import (
    EVAL_EQUAL,
    EVAL_PUBLISHED,
    LARGER,
    STRONGEST,
    TRAIN,
    Comparison,
    Verdict,
)
from ffbench.results import rows_to_table

MIB = 2**20
BATCH = BATCH_SIZES[0]
EQUAL = {"eval_chunk": BATCH}  # FF's replicated eval rows never exceed the eval batch
PUBLISHED = {"eval_chunk": 0}  # every label of the whole eval batch at once
OFFLOAD = "bp-offload"
# bp-offload as a plugin would declare it, for a registry that does not have it built in
STAND_IN = '''
from ffbench.algorithms.bp import Backprop


class OffloadStandIn(Backprop):
    name = "bp-offload"
    display_name = "offloading backprop (stand-in)"
    summary = "a backprop plugin for the verdict's tests"
    baseline = True
'''


def of(rows: list[dict], source: str = "results/test") -> Verdict:
    return verdict(rows_to_table(rows).to_pandas().assign(source=source))


def only(v: Verdict, algorithm: str, baseline: str, phase: str) -> Comparison:
    found = v.find(algorithm, baseline, phase)
    assert found is not None, (algorithm, baseline, phase)
    return found


def line_of(v: Verdict, start: str) -> str:
    (line,) = [line for line in verdict_text.verdict_lines(v) if line.startswith(start)]
    return line


def train_only(algorithm: str, peaks_mib: dict[int, float], **extra: object) -> list[dict]:
    """Cells whose train peak is given per depth (eval at a tenth of it)."""
    return [peak_row(algorithm, n, mib, mib / 10, **extra) for n, mib in peaks_mib.items()]


@pytest.fixture
def offload_registered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`bp-offload` known to the registry: built in, or else installed as a plugin (a module
    and its distribution's entry point on sys.path, as pip leaves them)."""
    if OFFLOAD in registry.BUILTIN:
        yield
        return
    (tmp_path / "offload_stand_in.py").write_text(STAND_IN)
    info = tmp_path / "offload_stand_in-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: offload-stand-in\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{registry.ENTRY_POINT_GROUP}]\n{OFFLOAD} = offload_stand_in:OffloadStandIn\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.plugin_entry_points.cache_clear()
    registry.load.cache_clear()
    yield
    registry.plugin_entry_points.cache_clear()
    registry.load.cache_clear()


def test_backprops_are_the_classes_that_say_so() -> None:
    assert [registry.is_backprop(n) for n in ("bp", "bp-lean", "ff", "ff-layerwise", "rff")] \
        == [True, True, False, False, False]
    assert not registry.is_backprop("no-such-algorithm")  # unknown: not a backprop


def test_crossover_is_the_depth_from_which_ff_stays_below() -> None:
    """Below at 2, above at 3, below from 4 on: the crossover is 4, not 2."""
    rows = (train_only("bp", {1: 1000, 2: 1000, 3: 1000, 4: 1000, 5: 1000})
            + train_only("ff", {1: 1100, 2: 900, 3: 1050, 4: 850, 5: 800}))
    c = only(of(rows), "ff", "bp", TRAIN)
    assert (c.deepest, c.below_from, c.first_depth) == (5, 4, 1)
    assert c.ratio == pytest.approx(0.8) and c.difference_bytes == -200 * MIB
    assert c.saves and not c.about_same
    assert verdict_text.outcome_text(c) == "saves 20% from depth 4 on"
    # with one backprop, it is the strongest too, and the lines name it as the only one
    assert only(of(rows), "ff", STRONGEST, TRAIN).ratio == c.ratio
    assert line_of(of(rows), "Base FF, train at 5 layers:") == (
        "Base FF, train at 5 layers: 0.80x bp (800 vs 1,000 MiB, the only backprop run): "
        "saves 20% from depth 4 on.")


@pytest.mark.parametrize(
    ("bp_mib", "ff_mib", "same", "text"),
    [(1000, 1000, True, "about the same (0.0% apart)"),  # equal: never a crossover
     (1000, 995, True, "about the same (0.5% apart)"),  # 5 MiB, but under 1%
     (100, 97, True, "about the same (3.0 MiB apart)"),  # 3%, but under 4 MiB
     (1000, 1020, False, "needs 2% more"),  # 2% and 20 MiB
     (100, 95, False, "saves 5% at every depth")],  # 5% and 5 MiB
)
def test_about_the_same_under_one_percent_or_four_mib(bp_mib: float, ff_mib: float, same: bool,
                                                       text: str) -> None:
    rows = (train_only("bp", dict.fromkeys(DEPTHS, bp_mib))
            + train_only("ff", dict.fromkeys(DEPTHS, ff_mib)))
    c = only(of(rows), "ff", "bp", TRAIN)
    assert c.about_same == same
    assert verdict_text.outcome_text(c) == text
    assert (c.below_from is not None) == (not same and ff_mib < bp_mib)
    if same:
        assert verdict_text._cell(c, c.deepest, False).endswith("about the same")


def test_never_below_and_below_at_every_depth() -> None:
    rows = (train_only("bp", {1: 100, 2: 200, 3: 300})
            + train_only("ff", {1: 150, 2: 260, 3: 330})
            + train_only("rff", {1: 50, 2: 100, 3: 150}))
    never, always = only(of(rows), "ff", "bp", TRAIN), only(of(rows), "rff", "bp", TRAIN)
    assert never.below_from is None and verdict_text.outcome_text(never) == "needs 10% more"
    assert always.below_from == 1 and verdict_text.outcome_text(always) == (
        "saves 50% at every depth")
    _, table = verdict_text.verdict_table(of(rows))
    assert ["Base FF", TRAIN, "adam", "3", "1.10x, never"] in table
    assert ["Recurrent FF", TRAIN, "adam", "3", "0.50x, from 1"] in table


def test_missing_depths_compare_at_the_deepest_both_reached() -> None:
    """ff lacks bp's deepest depths (failed there); bp lacks one of ff's."""
    rows = (train_only("bp", {1: 100, 2: 200, 3: 300, 4: 400, 6: 600})
            + train_only("ff", {1: 120, 2: 190, 3: 280, 5: 200})
            + [ok_row("ff", 6, BATCH, status="oom")])
    v = of(rows)
    c = only(v, "ff", "bp", TRAIN)
    assert (c.deepest, c.algorithm_deepest, c.baseline_deepest) == (3, 5, 6)
    assert c.below_from == 2 and c.ratio == pytest.approx(280 / 300)
    assert line_of(v, "Base FF").startswith(
        "Base FF, train at 3 layers (the deepest both reached; Base FF reached 5, bp reached "
        "6): 0.93x bp")


def test_the_strongest_backprop_is_the_lowest_per_depth_and_phase(offload_registered: None
                                                                  ) -> None:
    """bp-lean is lower in training, bp-offload in eval; at depth 1 bp-offload is lower in
    both. Each phase names the one lowest at its deepest depth."""
    lean = {1: (90, 50), 2: (100, 60), 3: (110, 70)}  # depth: (train, eval) MiB
    offload = {1: (80, 40), 2: (120, 40), 3: (130, 40)}
    ff = {1: (150, 100), 2: (105, 100), 3: (95, 100)}
    rows = ([peak_row("bp", n, 400, 60) for n in (1, 2, 3)]
            + [peak_row("bp-lean", n, t, e) for n, (t, e) in lean.items()]
            + [peak_row(OFFLOAD, n, t, e) for n, (t, e) in offload.items()]
            + [peak_row("ff", n, t, e, **EQUAL) for n, (t, e) in ff.items()])
    v = of(rows)
    assert v.groups[0].backprops == ("bp", "bp-lean", OFFLOAD)
    assert v.groups[0].variants == ("ff",)  # bp-offload is a backprop, not an FF variant
    train, evaluation = only(v, "ff", STRONGEST, TRAIN), only(v, "ff", STRONGEST, EVAL_EQUAL)
    assert (train.backprop, train.baseline_bytes) == ("bp-lean", 110 * MIB)
    assert (evaluation.backprop, evaluation.baseline_bytes) == (OFFLOAD, 40 * MIB)
    larger = only(v, "ff", STRONGEST, LARGER)  # bp-lean's 110 against bp-offload's 130
    assert (larger.backprop, larger.bytes, larger.baseline_bytes) == (
        "bp-lean", 100 * MIB, 110 * MIB)
    per_depth = v.depths[(v.depths["baseline"] == STRONGEST) & (v.depths["phase"] == TRAIN)]
    assert list(per_depth["backprop"]) == [OFFLOAD, "bp-lean", "bp-lean"]
    assert train.below_from == 3  # 95 < 110 at 3 only (105 > 100 at 2)
    assert only(v, "ff", OFFLOAD, TRAIN).ratio == pytest.approx(95 / 130)
    line = line_of(v, "Base FF")
    assert line.startswith(f"Base FF, {LARGER} at 3 layers: 0.91x the strongest backprop, "
                           "bp-lean (100 vs 110 MiB): saves 9% at the deepest depth only; "
                           "0.25x bp (100 vs 400 MiB)")
    columns, table = verdict_text.verdict_table(v)
    assert columns[-4:] == ["vs bp", "vs bp-lean", f"vs {OFFLOAD}", "vs the strongest backprop"]
    assert ["Base FF", EVAL_EQUAL, "adam", "3", "1.67x, never", "1.43x, never", "2.50x, never",
            f"2.50x, never ({OFFLOAD})"] in table


def test_eval_as_published_and_at_equal_rows_are_their_own_phases() -> None:
    """ff's equal-rows cells (eval_chunk = the batch), published cells (eval_chunk 0) and
    cells whose chunk exceeds the batch (in neither eval phase); train from equal rows."""
    rows = ([peak_row("bp", n, 300, 200) for n in (1, 2)]
            + [peak_row("ff", n, 250, 210, **EQUAL) for n in (1, 2)]
            + [peak_row("ff", n, 251, 900, **PUBLISHED) for n in (1, 2)]
            + [peak_row("ff", n, 252, 600, eval_chunk=4 * BATCH) for n in (1, 2)])
    v = of(rows)
    assert only(v, "ff", "bp", TRAIN).bytes == 250 * MIB
    assert only(v, "ff", "bp", EVAL_EQUAL).ratio == pytest.approx(210 / 200)
    assert only(v, "ff", "bp", EVAL_PUBLISHED).ratio == pytest.approx(900 / 200)
    larger = only(v, "ff", "bp", LARGER)  # ff: max(250, 210); bp: max(300, 200)
    assert larger.ratio == pytest.approx(250 / 300) and larger.below_from == 1
    assert line_of(v, "Eval as published") == (
        "Eval as published (eval_chunk 0: every label of the whole eval batch at once, 10x "
        "its rows): Base FF 4.50x bp at 2 layers: needs 4.5 times as much.")
    assert not v.groups[0].notes
    published_only = of([r for r in rows if r["eval_chunk"] in (None, 0)])
    assert published_only.find("ff", "bp", EVAL_EQUAL) is None
    assert published_only.groups[0].notes == (
        f"{EVAL_EQUAL}: not in these results (run with --eval-chunk equal: at most the eval "
        f"batch's {BATCH} rows)",
        f"{LARGER}: not in these results (it needs eval at equal rows)")
    assert line_of(published_only, "Base FF").startswith("Base FF, train at 2 layers: ")
    assert line_of(published_only, "Eval at equal rows: not in these results")


def test_how_the_answer_moves_with_the_optimizer() -> None:
    rows = []
    for optimizer, ff_train in (("adam", 910), ("sgd", 405)):
        extra = {"optimizer": optimizer}
        rows += [peak_row("bp", n, 2000, 500, **extra) for n in (1, 2)]
        rows += [peak_row("bp-lean", n, 1000 if optimizer == "adam" else 500, 500, **extra)
                 for n in (1, 2)]
        rows += [peak_row("ff", n, ff_train, 400, **EQUAL, **extra) for n in (1, 2)]
    v = of(rows)
    (shift,) = v.shifts
    assert (shift.reference, shift.other, shift.phase) == ("adam", "sgd", LARGER)
    assert (shift.reference_ratio, shift.other_ratio) == (pytest.approx(0.91),
                                                          pytest.approx(0.81))
    assert line_of(v, "With sgd") == (
        f"With sgd instead of adam ({LARGER}, against the strongest backprop, 2 layers): "
        "Base FF from 0.91x to 0.81x (bp-lean).")
    assert line_of(v, "Verdict,").endswith("float32, adam (sgd below).")
    _, table = verdict_text.verdict_table(v)
    assert [r[2] for r in table if r[1] == LARGER] == ["adam", "sgd"]
    assert of([r for r in rows if r["optimizer"] == "adam"]).shifts == []


def test_time_and_accuracy_lines_only_where_measured() -> None:
    rows = sweep_rows(("bp", "bp-lean", "ff"))  # measured on cpu, step times, no accuracy
    v = of(rows)
    deepest = max(DEPTHS)
    times = {(t.batch_size, t.backprop): t for t in v.times}
    ff, bp = (ok_row(a, deepest, BATCH)["step_time_median_s"] for a in ("ff", "bp"))
    assert times[(BATCH, "bp")].ratio == pytest.approx(ff / bp)
    assert times[(BATCH, "bp")].depth == deepest
    text = "\n".join(verdict_text.verdict_lines(v))
    assert (f"Time per train step (adam, median, measured on cpu, {deepest} layers): Base FF "
            f"{verdict_text.ratio_text(ff / bp)} bp's, ") in text
    assert "Test accuracy" not in text
    predicted = of(sweep_rows(("bp", "bp-lean", "ff"), device="meta"))
    assert predicted.times == []
    assert "Time per" not in "\n".join(verdict_text.verdict_lines(predicted))
    assert "PREDICTED on meta" in verdict_text.verdict_lines(predicted)[1]

    scored = rows + [ok_row(a, n, BATCH, test_accuracy=acc, epochs=2, dataset="mnist-5k")
                     for a, acc in (("bp", 0.95), ("ff", 0.9)) for n in (7, 8)]
    (accuracy,) = of(scored).accuracies
    assert (accuracy.depth, accuracy.points) == (8, pytest.approx(-5.0))
    assert line_of(of(scored), "Test accuracy") == (
        "Test accuracy (adam, mnist-5k, 2 epoch(s)): Base FF 90.0% vs bp's 95.0% (-5.0 points) "
        "at 8 layers.")


def test_lines_are_few_and_say_every_choice() -> None:
    rows = []
    for optimizer in ("adam", "sgd"):
        for algorithm in ("bp", "bp-lean", "ff", "ff-layerwise", "rff"):
            for n in (2, 12, 22):
                extra = {"optimizer": optimizer, "device": "meta"}
                rows.append(peak_row(algorithm, n, 100 * n, 80 * n, **EQUAL, **extra))
                if not registry.is_backprop(algorithm):
                    rows.append(peak_row(algorithm, n, 100 * n, 200 * n, **PUBLISHED, **extra))
    lines = verdict_text.verdict_lines(of(rows))
    assert len(lines) <= 12, lines
    text = "\n".join(lines)
    for said in ("PREDICTED on meta", "batch 64", "hidden 32", "float32", "adam (sgd below)",
                 LARGER, "fair eval: FF's replicated eval rows never exceed the eval batch",
                 "the strongest backprop: at each depth the lowest of bp, bp-lean",
                 "about the same: under 1% or 4 MiB apart", "Eval as published",
                 "With sgd instead of adam"):
        assert said in text, said


def test_nothing_to_compare_is_said() -> None:
    v = of(train_only("ff", {1: 10, 2: 20}))
    assert v.comparisons == [] and v.depths.empty
    assert v.groups[0].notes == ("no backprop in these results: nothing to compare with",)
    assert verdict_text.verdict_lines(v)[-1] == (
        "No backprop in these results: nothing to compare with.")
    assert verdict_text.verdict_table(v)[1] == []
    empty = of([ok_row("bp", 1, BATCH, status="oom")])
    assert verdict_text.verdict_lines(empty) == ["Verdict: no successful cells to compare."]


def test_the_verdict_frame_has_a_row_per_comparison() -> None:
    v = of(sweep_rows(("bp", "bp-lean", "ff")))
    frame = v.frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(v.comparisons)
    # two batch sizes x (bp, bp-lean, strongest) x (train, eval as published)
    assert len(frame) == 2 * 3 * 2
    assert set(frame["phase"]) == {TRAIN, EVAL_PUBLISHED}


@pytest.mark.slow
def test_the_published_size_predicted_on_meta() -> None:
    """47 layers x 2000, batch 5000, Adam, on meta: Base FF's larger phase at about 0.91x
    bp-lean's, its eval as published at about 1.48x (at equal rows 2,254 MiB against
    backprop's 2,216)."""
    from ffbench.analysis.verdict import from_rows
    from ffbench.cell.run import run_cell
    from ffbench.settings.cell import CellSpec

    settings = (("bp", 5000), ("bp-lean", 5000), ("ff", 5000), ("ff", 0), ("ff-layerwise", 5000))
    rows = [run_cell(CellSpec(algorithm, n_layers=47, hidden=2000, batch_size=5000,
                              device="meta", eval_chunk=chunk))
            for algorithm, chunk in settings]
    v = from_rows(rows, "meta-47")
    larger = only(v, "ff", STRONGEST, LARGER)
    assert larger.backprop == "bp-lean" and larger.ratio == pytest.approx(0.91, abs=0.005)
    assert only(v, "ff", STRONGEST, EVAL_PUBLISHED).ratio == pytest.approx(1.48, abs=0.005)
    equal = only(v, "ff", "bp", EVAL_EQUAL)
    assert (equal.bytes / MIB, equal.baseline_bytes / MIB) == (
        pytest.approx(2254, abs=1), pytest.approx(2216, abs=1))
    assert only(v, "ff-layerwise", "bp-lean", LARGER).ratio == pytest.approx(0.14, abs=0.005)
    lines = verdict_text.verdict_lines(v)
    assert any(line.startswith(f"Base FF, {LARGER} at 47 layers: 0.91x the strongest "
                               "backprop, bp-lean") for line in lines), lines
