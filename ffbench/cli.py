"""The ffbench command line: thin commands that parse, validate and call the library.

Heavy modules (torch, pandas, seaborn) are imported inside the commands that need
them, after the input is validated, so bad input is refused in a fraction of a second.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from ffbench.algorithms.registry import ALGORITHMS
from ffbench.presets import PRESETS, apply_preset
from ffbench.spec import BadInput, CellSpec, parse_int_range

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure what Forward-Forward training costs against backprop.",
)
console = Console()
err_console = Console(stderr=True)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """["iterations=8", "damping=0.3"] -> {"iterations": 8, "damping": 0.3} (JSON values)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise BadInput(f"--option {pair!r}: write NAME=VALUE")
        try:
            options[name] = json.loads(text)
        except json.JSONDecodeError:
            options[name] = text
    return options


def check_device_available(device: str) -> None:
    """Refuse a CUDA device this machine does not have (imports torch)."""
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise BadInput(f"--device {device}: CUDA is not available on this machine")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise BadInput(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s)")


def check_out_path(out: Path | None) -> None:
    if out is not None and out.is_dir():
        raise BadInput(f"--out {out} is a directory; give a file name like result.json")


# command-line parameter -> CellSpec field, where the names differ
_FIELD_OF_PARAMETER = {"layers": "n_layers", "warmup": "warmup_steps", "option": "options"}


def explicit_fields(ctx: typer.Context) -> set[str]:
    """CellSpec fields the user set on the command line (not left at their defaults)."""
    return {
        _FIELD_OF_PARAMETER.get(name, name)
        for name in ctx.params
        if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")  # type: ignore[union-attr]
    }


# Options of the commands that describe one cell (run, explain): one definition each.
PresetOption = Annotated[
    str | None, typer.Option(help="Named settings (see `ffbench presets`); explicit flags win.")
]
LayersOption = Annotated[int, typer.Option(help="Number of hidden layers.")]
HiddenOption = Annotated[int, typer.Option(help="Units per hidden layer.")]
BatchSizeOption = Annotated[int, typer.Option(help="Real images per train step.")]
EvalBatchSizeOption = Annotated[
    int | None, typer.Option(help="Images per eval batch (default: batch size).")
]
WarmupOption = Annotated[int, typer.Option(help="Warm-up train steps before measuring.")]
DeviceOption = Annotated[str, typer.Option(help="cpu, cuda, cuda:N, or meta (predict only).")]
DtypeOption = Annotated[str, typer.Option(help="float32 or bfloat16.")]
GoodnessOption = Annotated[str, typer.Option(help="FF goodness function.")]
ThreadsOption = Annotated[int | None, typer.Option(help="CPU threads (default: torch's).")]
DatasetOption = Annotated[str, typer.Option(help="synthetic, mnist or mnist-5k.")]
DataDirOption = Annotated[Path | None, typer.Option(help="Directory with torchvision's MNIST.")]
EvalChunkOption = Annotated[
    int, typer.Option(help="FF eval: replicated rows alive at once (0 = all).")
]
AlgorithmOptions = Annotated[
    list[str] | None, typer.Option(help="Algorithm setting NAME=VALUE (repeatable).")
]


@app.command()
def run(
    ctx: typer.Context,
    algorithm: Annotated[str, typer.Argument(help="Registered algorithm (`ffbench algorithms`).")],
    *,
    preset: PresetOption = None,
    layers: LayersOption = 2,
    hidden: HiddenOption = 2000,
    batch_size: BatchSizeOption = 5000,
    eval_batch_size: EvalBatchSizeOption = None,
    steps: Annotated[int, typer.Option(help="Timed train steps.")] = 5,
    warmup: WarmupOption = 2,
    epochs: Annotated[int, typer.Option(help="Training epochs for test accuracy (real data).")] = 0,
    device: DeviceOption = "cpu",
    dtype: DtypeOption = "float32",
    goodness: GoodnessOption = "meansq",
    threshold: Annotated[
        float | None, typer.Option(help="FF goodness threshold (default: per goodness).")
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help="Adam learning rate (default: per algorithm).")
    ] = None,
    threads: ThreadsOption = None,
    seed: Annotated[int, typer.Option(help="Seed for data, weights and negatives.")] = 0,
    dataset: DatasetOption = "synthetic",
    data_dir: DataDirOption = None,
    eval_chunk: EvalChunkOption = 0,
    compile: Annotated[
        bool, typer.Option("--compile", help="torch.compile each layer (timed; memory eager).")
    ] = False,
    option: AlgorithmOptions = None,
    out: Annotated[Path | None, typer.Option(help="Write the full result row here (JSON).")] = None,
) -> None:
    """Measure one cell in this process and print a summary."""
    fields: dict[str, Any] = {
        "algorithm": algorithm, "n_layers": layers, "hidden": hidden, "batch_size": batch_size,
        "eval_batch_size": eval_batch_size, "steps": steps, "warmup_steps": warmup,
        "epochs": epochs, "device": device, "dtype": dtype, "goodness": goodness,
        "threshold": threshold, "lr": lr, "threads": threads, "seed": seed, "dataset": dataset,
        "data_dir": str(data_dir) if data_dir else None, "eval_chunk": eval_chunk,
        "compile": compile, "options": parse_options(option or []),
    }
    spec = CellSpec(**apply_preset(preset, algorithm, fields, explicit_fields(ctx)))
    check_out_path(out)
    check_device_available(spec.device)

    from ffbench.cell import run_cell_row
    from ffbench.results import write_row_json
    from ffbench.summary import cell_table

    row = run_cell_row(spec)
    console.print(cell_table(row))
    if out is not None:
        write_row_json(row, out)
        console.print(f"wrote {out}")
    if row["status"] != "ok":
        err_console.print(f"cell {row['status']}: {row['error']}")
        raise typer.Exit(1)


@app.command("presets")
def list_presets() -> None:
    """List the named settings `--preset` accepts, one line each."""
    width = max(map(len, PRESETS))
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.summary}")


class FigureFormat(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


def load_results(paths: list[Path]) -> pd.DataFrame:
    """Results as one frame; unreadable input is BadInput naming the file."""
    from ffbench.results import ResultsError, load

    try:
        return load(paths)
    except ResultsError as exc:
        raise BadInput(str(exc)) from None


def default_out(results: list[Path], name: str) -> Path:
    """`name` inside the first results directory (beside it, for a file)."""
    first = results[0]
    return (first if first.is_dir() else first.parent) / name


@app.command()
def plot(
    results: Annotated[list[Path], typer.Argument(help="Results directories or parquet files.")],
    *,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the figures (default: RESULTS/figures).")
    ] = None,
    fmt: Annotated[FigureFormat, typer.Option("--format", help="Image format.")] = FigureFormat.png,
    depths: Annotated[
        str | None,
        typer.Option(help="Depths for the category bars, e.g. 2,8 (default: min, middle, max)."),
    ] = None,
) -> None:
    """Draw the figures (memory, time, categories, prediction, accuracy, comparison)."""
    chosen = parse_int_range(depths, flag="depths") if depths else None
    frame = load_results(results)

    from ffbench.plots import draw_all

    for figure in draw_all(frame, out or default_out(results, "figures"), fmt.value, chosen):
        if figure.path is None:
            print(f"skipped {figure.name}: {figure.skipped}")
        else:
            print(f"wrote {figure.path}")


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(help="Results directories or parquet files.")],
    *,
    out: Annotated[
        Path | None, typer.Option(help="FILE.md or FILE.html (default: RESULTS/report.md).")
    ] = None,
) -> None:
    """Write a one-page report: findings as numbers, per-layer slopes, failures, figures."""
    out = out or default_out(results, "report.md")
    from ffbench import report as page

    if out.suffix not in page.RENDERERS:
        raise BadInput(f"--out {out}: give a file ending in {' or '.join(page.RENDERERS)}")
    frame = load_results(results)
    for figure in page.write(frame, out):
        if figure.path is None:
            print(f"skipped {figure.name}: {figure.skipped}")
    print(f"wrote {out} (figures in {page.figures_dir(out)})")


def resume_command(argv: list[str], out_dir: Path) -> str:
    """The command line that continues this sweep where it stopped."""
    import shlex

    args = argv[argv.index("sweep") + 1 :] if "sweep" in argv else []
    kept: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next or arg == "--no-resume" or arg.startswith("--out="):
            skip_next = False
            continue
        skip_next = arg == "--out"
        if not skip_next:
            kept.append(arg)
    return shlex.join(["ffbench", "sweep", *kept, "--out", str(out_dir)])


def cell_label(spec: CellSpec) -> str:
    return (f"{spec.algorithm} layers={spec.n_layers} hidden={spec.hidden} "
            f"batch={spec.batch_size} {spec.device}")


@app.command()
def sweep(
    sweep_file: Annotated[
        str | None,
        typer.Argument(help="Sweep TOML file, or a packaged sweep's name: quick (the "
                       "default), ci-cpu, seed-figure.", show_default=False),
    ] = None,
    *,
    algorithms: Annotated[str | None, typer.Option(help="Algorithms, e.g. bp,ff,rff.")] = None,
    layers: Annotated[
        str | None, typer.Option(help="Depths: 2..47, 2..47:5, 2,4,8 or a mixture.")
    ] = None,
    batch_sizes: Annotated[
        str | None, typer.Option(help="Real images per train step (same syntax).")
    ] = None,
    hidden: Annotated[str | None, typer.Option(help="Units per layer (same syntax).")] = None,
    eval_batch_size: Annotated[int | None, typer.Option(help="Images per eval batch.")] = None,
    steps: Annotated[int | None, typer.Option(help="Timed train steps per cell.")] = None,
    warmup: Annotated[int | None, typer.Option(help="Warm-up train steps per cell.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs for test accuracy.")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, cuda:N, or meta.")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32 or bfloat16.")] = None,
    goodness: Annotated[str | None, typer.Option(help="FF goodness function.")] = None,
    threshold: Annotated[float | None, typer.Option(help="FF goodness threshold.")] = None,
    lr: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads per cell.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for data, weights, negatives.")] = None,
    dataset: Annotated[str | None, typer.Option(help="synthetic, mnist or mnist-5k.")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Directory holding MNIST.")] = None,
    eval_chunk: Annotated[int | None, typer.Option(help="FF eval: rows alive at once.")] = None,
    compile: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="torch.compile each layer.")
    ] = None,
    option: AlgorithmOptions = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before a cell is killed (status timeout).")
    ] = None,
    jobs: Annotated[int | None, typer.Option(help="Cells at once (one GPU each).")] = None,
    executor: Annotated[str | None, typer.Option(help="local or slurm (submitit).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Results directory (default: results/NAME).")
    ] = None,
    no_resume: Annotated[
        bool, typer.Option("--no-resume", help="Start over in a fresh directory (NAME.2, ...).")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Run failed cells (oom, timeout, ...) again.")
    ] = False,
) -> None:
    """Run a grid of cells, each in a fresh process; rerun the same command to resume."""
    from ffbench import sweep as sweeps
    from ffbench.results import FAILED_STATUSES
    from ffbench.sweep_spec import check_runnable, load_sweep

    given = {
        "algorithms": algorithms, "layers": layers, "batch_sizes": batch_sizes, "hidden": hidden,
        "eval_batch_size": eval_batch_size, "steps": steps, "warmup_steps": warmup,
        "epochs": epochs, "device": device, "dtype": dtype, "goodness": goodness,
        "threshold": threshold, "lr": lr, "threads": threads, "seed": seed, "dataset": dataset,
        "data_dir": data_dir, "eval_chunk": eval_chunk, "compile": compile,
        "options": parse_options(option) if option else None,
        "timeout_s": timeout, "jobs": jobs, "executor": executor,
    }
    spec = load_sweep(sweep_file, {k: v for k, v in given.items() if v is not None})
    cells = spec.cells()
    check_runnable(spec)
    requested = out if out is not None else sweeps.RESULTS_ROOT / spec.name
    out_dir = sweeps.results_dir(requested, fresh=no_resume)
    if out_dir != requested:
        err_console.print(f"--no-resume: {requested} exists; starting over in {out_dir}")
    warning = sweeps.timing_warning(spec)
    if warning:
        err_console.print(f"[yellow]warning:[/] {warning}")
    try:
        run_sweep_with_progress(spec, out_dir, retry_failed=retry_failed)
    except KeyboardInterrupt:
        err_console.print(f"interrupted: every finished cell is kept in {out_dir}; resume with\n"
                          f"  {resume_command(sys.argv, out_dir)}",
                          soft_wrap=True, markup=False, highlight=False)  # to copy whole
        raise typer.Exit(130) from None
    rows = sweeps.load_cells(out_dir)
    grid_rows = [rows[c.cell_id] for c in cells if c.cell_id in rows]
    from ffbench.summary import sweep_table

    console.print(sweep_table(grid_rows, title=f"{spec.name}: {len(grid_rows)} cells in {out_dir}"))
    failed = sum(row["status"] in FAILED_STATUSES for row in grid_rows)
    if failed and not retry_failed:
        console.print(f"{failed} cell(s) failed; run them again by adding --retry-failed")
    console.print(f"draw it: ffbench plot {out_dir}   one page: ffbench report {out_dir}",
                  highlight=False)


def run_sweep_with_progress(spec: Any, out_dir: Path, *, retry_failed: bool) -> None:
    """Drive ffbench.sweep.run_sweep under a progress bar (cells done, current cell, ETA)."""
    from contextlib import closing

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ffbench import sweep as sweeps

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with closing(sweeps.run_sweep(spec, out_dir, retry_failed=retry_failed)) as events, \
            Progress(*columns, console=err_console) as progress:
        task = progress.add_task("starting", total=None)
        for event in events:
            if isinstance(event, sweeps.Planned):
                done = event.total - event.to_run
                progress.console.print(f"{spec.name}: {event.total} cells, {done} already "
                                       f"finished in {out_dir}, {event.to_run} to run")
                progress.update(task, total=event.to_run)
            elif isinstance(event, sweeps.Started):
                progress.update(task, description=cell_label(event.spec))
            else:
                progress.advance(task)
                if event.row["status"] != "ok":
                    reason = (event.row["error"] or "").strip().splitlines()[:1]
                    progress.console.print(f"[yellow]{event.row['status']}[/] "
                                           f"{cell_label(event.spec)}: {''.join(reason)}")


@app.command("explain")
def explain_command(
    ctx: typer.Context,
    algorithm: Annotated[str, typer.Argument(help="Registered algorithm.")],
    *,
    preset: PresetOption = None,
    layers: LayersOption = 2,
    hidden: HiddenOption = 2000,
    batch_size: BatchSizeOption = 5000,
    eval_batch_size: EvalBatchSizeOption = None,
    device: DeviceOption = "cpu",
    dtype: DtypeOption = "float32",
    goodness: GoodnessOption = "meansq",
    warmup: WarmupOption = 2,
    threads: ThreadsOption = None,
    dataset: DatasetOption = "synthetic",
    data_dir: DataDirOption = None,
    eval_chunk: EvalChunkOption = 0,
    option: AlgorithmOptions = None,
) -> None:
    """Memory by category at each phase's peak: analytic model, tracked, predicted (meta)."""
    fields: dict[str, Any] = {
        "algorithm": algorithm, "n_layers": layers, "hidden": hidden, "batch_size": batch_size,
        "eval_batch_size": eval_batch_size, "warmup_steps": warmup, "device": device,
        "dtype": dtype, "goodness": goodness, "threads": threads, "dataset": dataset,
        "data_dir": str(data_dir) if data_dir else None, "eval_chunk": eval_chunk,
        "options": parse_options(option or []),
    }
    spec = CellSpec(**apply_preset(preset, algorithm, fields, explicit_fields(ctx)))
    check_device_available(spec.device)

    from ffbench.explain import cache_lines, explain, peak_lines, phase_table, slope_lines

    explanation = explain(spec)
    for phase in explanation.phases:
        console.print(phase_table(phase))
    for line in peak_lines(explanation) + cache_lines(explanation) + slope_lines(explanation):
        console.print(line, highlight=False)


@app.command("check")
def check_command(
    results: Annotated[list[Path], typer.Argument(help="Results directories, parquet or JSON.")],
    *,
    baseline: Annotated[Path, typer.Option(help="Baseline results (directory, parquet or JSON).")],
    rtol: Annotated[float, typer.Option(help="Relative change allowed before it counts.")] = 0.02,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="Memory column to compare (repeatable) (default: tracked, predicted "
                     "and static bytes; CUDA peaks when both rows come from the same GPU)."),
    ] = None,
    refresh_baseline: Annotated[
        bool, typer.Option(help="Write RESULTS' successful rows as the new baseline, on purpose.")
    ] = False,
) -> None:
    """Memory regression gate: exit 1 if a cell's memory grew beyond --rtol over the baseline."""
    from ffbench.check import by_cell, changes_table, check_metrics, compare
    from ffbench.check import refresh_baseline as write_baseline

    metrics = check_metrics(metric or [])
    now = by_cell(load_results(results))
    if refresh_baseline:
        count = write_baseline(now, baseline)
        console.print(f"wrote {count} cells to {baseline}")
        return
    if not baseline.exists():
        raise BadInput(f"--baseline {baseline}: no such file or directory")
    report = compare(now, by_cell(load_results([baseline])), rtol=rtol, metrics=metrics)
    if report.regressions:
        console.print(changes_table(f"regressions beyond {rtol:.1%}", report.regressions))
    if report.improvements:
        console.print(changes_table(f"improvements beyond {rtol:.1%}", report.improvements))
    for what, labels in (("new (not in the baseline)", report.new_cells),
                         ("missing (in the baseline only)", report.missing_cells)):
        for label in labels:
            console.print(f"{what}: {label}", highlight=False)
    verdict = "FAIL" if report.regressions else "ok"
    console.print(f"{verdict}: {report.compared_cells} cells compared, "
                  f"{len(report.regressions)} regressions, {len(report.improvements)} "
                  f"improvements, {len(report.new_cells)} new, {len(report.missing_cells)} missing",
                  highlight=False)
    raise typer.Exit(report.exit_code)


@app.command("algorithms")
def list_algorithms() -> None:
    """List the registered algorithms, one line each."""
    width = max(map(len, ALGORITHMS))
    for name, info in ALGORITHMS.items():
        print(f"{name:<{width}}  {info.summary}")


def fail(message: str, code: int) -> None:
    print(f"ffbench: error: {message}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    """Console entry point: bad input is one line on stderr and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except BadInput as exc:
        fail(str(exc), 2)
    except Exception as exc:
        # click's (or typer's own vendored click's) usage errors: duck-typed, so that
        # any typer version works
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            fail(exc.format_message(), exc.exit_code)
        if type(exc).__name__ == "Abort":
            fail("interrupted", 130)
        raise
    sys.exit(code if isinstance(code, int) else 0)
