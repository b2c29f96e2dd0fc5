"""What `ffbench sweep` runs for what was typed (with and without CUDA, faked at the one
function that asks), folder ownership, finding results below a parent, and progress lines
without a terminal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli, invoke
from results_factory import ok_row, write_results

from ffbench.algorithms.resolve import identity_columns
from ffbench.console.progress_text import ProgressLines, duration, estimate_s
from ffbench.errors import BadInput
from ffbench.sweep import definition as sweep_definition
from ffbench.sweep import plan as sweep_plan
from ffbench.sweep import result_sets as sweep_result_sets
from ffbench.sweep.spec import load_sweep

ROOT = Path("results")


def fake_cuda(monkeypatch: pytest.MonkeyPatch, present: bool) -> None:
    monkeypatch.setattr(sweep_plan, "cuda_present", lambda: present)


def test_layers_alone_with_a_gpu_runs_the_published_grid_on_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_cuda(monkeypatch, True)
    [one] = sweep_plan.plan(None, {"layers": "2..47"}, None, ROOT)
    assert one.spec.name == "published" and one.spec.device == "cuda"
    assert (one.spec.algorithms, one.spec.hidden, one.spec.batch_sizes) == (
        ("bp", "bp-lean", "bp-offload", "ff", "ff-layerwise", "rff"), (2000,), (5000,))
    assert one.spec.layers == tuple(range(2, 48)) and one.out == ROOT / "published"
    assert one.spec.axes == {"eval_chunk": [None, 0]}  # FF's eval at equal rows, as published


def test_a_grid_the_flags_change_is_named_for_what_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_cuda(monkeypatch, True)
    for same in ({"layers": "2..47", "jobs": 2}, {"hidden": "2000", "device": "cuda"}):
        [one] = sweep_plan.plan(None, same, None, ROOT)
        assert one.spec.name == "published", same
    [one] = sweep_plan.plan(None, {"layers": "2..10", "optimizer": "sgd"}, None, ROOT)
    assert one.spec.name == "published_layers-2..10_optimizer-sgd"
    assert "published" not in one.why.split("(")[0].replace("published comparison's grid", "")


def test_layers_alone_without_a_gpu_predicts_on_meta_and_measures_a_small_cpu_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_cuda(monkeypatch, False)
    predicted, cpu = sweep_plan.plan(None, {"layers": "2..47"}, None, ROOT)
    assert predicted.spec.device == "meta" and "PREDICTED" in predicted.why
    assert (predicted.spec.hidden, predicted.spec.batch_sizes) == ((2000,), (5000,))
    backprops, ffs = 3, 3  # FF cells twice: eval at equal rows and as published
    assert len(predicted.spec.cells()) == (backprops + 2 * ffs) * 46
    assert predicted.out == ROOT / "published-predicted"
    assert predicted.spec.jobs is None and cpu.spec.cells_at_once == 1  # meta: one per core
    assert cpu.spec.device == "cpu" and "MEASURED" in cpu.why
    assert "CPU stand-in: hidden 256, batch 128" in cpu.why
    assert cpu.spec.algorithms == predicted.spec.algorithms
    quick = load_sweep("quick", {})
    assert (cpu.spec.hidden, cpu.spec.batch_sizes) == (quick.hidden, quick.batch_sizes)
    assert cpu.spec.layers[0] == 2 and cpu.spec.layers[-1] == 47
    assert len(cpu.spec.layers) == sweep_plan.CPU_MAX_DEPTHS
    assert cpu.out == ROOT / "published-cpu-stand-in"
    below = sweep_plan.plan(None, {"layers": "2..47"}, Path("mine"), ROOT)
    assert [p.out for p in below] == [Path("mine/predicted"), Path("mine/cpu-stand-in")]


def test_a_bare_sweep_and_runner_flags_stay_the_embedded_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for present in (True, False):
        fake_cuda(monkeypatch, present)
        for flags in ({}, {"jobs": 2}):
            [one] = sweep_plan.plan(None, flags, None, ROOT)
            assert one.spec.name == "quick" and one.spec.device == "cpu"


def test_cuda_without_a_gpu_is_refused_with_the_meta_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_cuda(monkeypatch, False)
    flags = {"hidden": "2000", "batch_sizes": "5000", "device": "cuda"}
    with pytest.raises(BadInput, match="ffbench sweep --hidden 2000 --batch-sizes 5000 "
                                       "--device meta$"):
        sweep_plan.plan(None, flags, None, ROOT)
    with pytest.raises(BadInput, match="ffbench sweep published --device meta"):
        sweep_plan.plan("published", {}, None, ROOT)
    fake_cuda(monkeypatch, True)
    [one] = sweep_plan.plan("published", {}, None, ROOT)
    assert one.spec.device == "cuda"


def test_the_cli_refuses_cuda_without_a_gpu_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    fake_cuda(monkeypatch, False)
    monkeypatch.chdir(tmp_path)
    ran = invoke(capsys, "sweep", "published")
    code, err = ran.code, ran.err.splitlines()
    assert code == 2 and len(err) == 1 and "--device meta" in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_the_typed_bare_sweep_with_runner_flags_is_the_embedded_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Through the command line: `--option` not given must not count as a grid flag (it
    once did, and `ffbench sweep` ran the published grid). `--max-cells 1` makes the
    chosen grid name itself in its refusal before anything runs."""
    fake_cuda(monkeypatch, False)
    quick_layers = ",".join(map(str, load_sweep(sweep_plan.DEFAULT_SWEEP, {}).layers))
    for flags in ([], ["--out", str(tmp_path / "x")], ["--jobs", "1"]):
        ran = invoke(capsys, "sweep", *flags, "--max-cells", "1")
        code, err = ran.code, ran.err.splitlines()
        assert code == 2 and len(err) == 1 and f"--layers {quick_layers}:" in err[0], err
    assert list(tmp_path.iterdir()) == []


def tiny(**flags: object) -> dict[str, object]:
    return {"algorithms": "bp", "layers": "1,2", "hidden": 16, "batch_sizes": 8,
            "device": "meta", **flags}


def test_a_folder_keeps_its_definition_and_refuses_other_fixed_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "s"
    out.mkdir()
    sweep_definition.record_owner(load_sweep("quick", tiny()), out)
    before = sorted(p.name for p in out.iterdir())
    for flags, named in [({"hidden": 32}, "hidden 16 there, 32 here"),
                         ({"steps": 9}, "steps 3 there, 9 here"),
                         ({"algorithms": "bp,ff"}, "algorithms bp there, bp,ff here")]:
        with pytest.raises(BadInput, match=named) as refused:
            sweep_definition.check_owner(load_sweep("quick", tiny(**flags)), out)
        assert "--no-resume" in str(refused.value) and "\n" not in str(refused.value)
    argv = ["sweep", "quick", "--algorithms", "bp", "--layers", "1", "--hidden", "64",
            "--batch-sizes", "8", "--device", "meta", "--out", str(out)]
    ran = invoke(capsys, *argv)
    code, err = ran.code, ran.err.splitlines()
    assert code == 2 and len(err) == 1 and "hidden 16 there, 64 here" in err[0], err
    assert sorted(p.name for p in out.iterdir()) == before


def test_more_depths_and_batch_sizes_at_the_same_settings_extend_the_folder(
    tmp_path: Path,
) -> None:
    out = tmp_path / "s"
    out.mkdir()
    sweep_definition.record_owner(load_sweep("quick", tiny()), out)
    wider = load_sweep("quick", tiny(layers="2..4", batch_sizes="8,16"))
    sweep_definition.check_owner(wider, out)  # no refusal
    grown = sweep_definition.record_owner(wider, out)
    # each run's grid is kept: the folder's cells are their union, never the cross product
    # of all depths and all batch sizes (layers 1 at batch 16 was never asked for)
    assert grown.grids == (((1, 2), (8,)), ((2, 3, 4), (8, 16)))
    assert sorted((c.n_layers, c.batch_size) for c in grown.cells()) == [
        (1, 8), (2, 8), (2, 16), (3, 8), (3, 16), (4, 8), (4, 16)]
    stored = json.loads((out / sweep_definition.DEFINITION_NAME).read_text())
    assert stored["grids"][1] == {"layers": [2, 3, 4], "batch_sizes": [8, 16]}
    assert stored["hidden"] == [16]
    deeper = sweep_definition.record_owner(load_sweep("quick", tiny(layers="5")), out)
    assert deeper.grids == (((1, 2, 5), (8,)), ((2, 3, 4), (8, 16)))  # same batch: merged


def test_results_below_a_parent_and_missing_cells_of_a_stopped_sweep(tmp_path: Path) -> None:
    import pandas as pd

    from ffbench.results import load

    first, second = tmp_path / "a", tmp_path / "deeper" / "b"
    spec = load_sweep("quick", tiny(layers="1..3", device="cpu"))
    rows = [ok_row("bp", 1, 8) | identity_columns(spec.cells()[0], "quick")]
    for folder in (first, second):
        write_results(folder, rows)
    sweep_definition.record_owner(spec, first)
    assert sweep_result_sets.results_below(tmp_path) == [first, second]
    assert sweep_result_sets.results_below(first) == [first]
    frame = sweep_result_sets.with_missing(load([first]))
    assert list(frame["status"]) == ["ok", "missing", "missing"]
    assert list(frame["n_layers"]) == [1, 2, 3]
    assert isinstance(frame, pd.DataFrame)


def test_progress_lines_count_cells_and_give_an_eta() -> None:
    lines = ProgressLines(total=4, clock=0.0, last_line_at=0.0)
    assert lines.quiet_line("bp 1", now=10.0) is None
    assert lines.quiet_line("bp 1", now=31.0) == (
        "[0/4 cells, 31 s elapsed, ETA unknown]  running bp 1")
    assert lines.finished("bp 1", "ok", now=40.0) == (
        "[1/4 cells, 40 s elapsed, ETA 2 min 00 s]  ok bp 1")
    assert lines.finished("ff 1", "oom", now=80.0).startswith("[2/4 cells, 1 failed, 1 min 20 s")
    assert duration(3725) == "1 h 02 min"
    meta = load_sweep("published", {"device": "meta"}).cells()
    assert estimate_s(meta) == pytest.approx(len(meta) * sweep_plan_seconds("meta"))


def sweep_plan_seconds(device: str) -> float:
    from ffbench.console.progress_text import SECONDS_PER_CELL

    return SECONDS_PER_CELL[device]


def test_version_and_the_sweep_defaults_in_help(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ffbench import __version__

    version = cli("--version")
    assert version.code == 0 and version.out.strip() == f"ffbench {__version__}"
    monkeypatch.setenv("COLUMNS", "400")
    shown = cli("sweep", "--help")
    assert shown.code == 0, shown.err
    text = " ".join(shown.out.split())
    assert ("embedded 'quick' sweep (bp,bp-lean,ff,ff-layerwise,rff; layers 1,2,4,8,12,16; "
            "hidden 256; batch 128") in text
    assert ("'published' (bp,bp-lean,bp-offload,ff,ff-layerwise,rff; layers 2..47; hidden 2000; "
            "batch 5000; cuda)") in text


def test_a_long_cell_gets_a_progress_line_while_it_runs_without_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The events wait while a cell runs; the lines must not (here every 0.5 s, not 30)."""
    import time

    from ffbench.console import progress, progress_text
    from ffbench.sweep.run import Finished, Planned, Started

    monkeypatch.setattr(progress_text, "QUIET_INTERVAL_S", 0.5)
    spec = load_sweep("quick", tiny(layers="1", device="cpu"))
    [cell] = spec.cells()

    def events() -> Iterator[Planned | Started | Finished]:
        yield Started(cell)
        time.sleep(2.2)  # the cell at work: no event for a while
        yield Finished(cell, {"status": "ok", "error": None})

    progress.sweep_progress(spec, tmp_path, Planned(total=1, to_run=1), events())
    err = capsys.readouterr().err.splitlines()
    running = [line for line in err if line.endswith(f"running {progress.cell_label(cell)}")]
    assert len(running) >= 2, err
    assert err[-1].startswith("[1/1 cells") and err[-1].endswith(f"ok {progress.cell_label(cell)}")
