"""The ffbench command line: thin commands that parse, validate and call the library.

Heavy modules (torch, pandas, seaborn) are imported inside the commands that need
them, after the input is validated, so bad input is refused in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ffbench import __version__
from ffbench.console import (
    error_line,
    resume_command,
    show,
    show_library_warnings,
    sweep_progress,
    warn,
)
from ffbench.errors import BadInput
from ffbench.gpus import DEFAULT_GPU, GPUS
from ffbench.paths import check_creatable, check_out_file
from ffbench.presets import PRESETS, apply_preset
from ffbench.spec import CellSpec, check_data, parse_int_range, parse_names, whole_number
from ffbench.sweep_plan import defaults_help as sweep_defaults_help
from ffbench.sweep_spec import DEFAULT_MAX_CELLS, MAX_CELLS

if TYPE_CHECKING:
    import pandas as pd

    from ffbench.executors import LocalPool
    from ffbench.plots import Drawn

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure what Forward-Forward training costs against backprop.",
)


def show_version(value: bool) -> None:
    if value:
        print(f"ffbench {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[bool, typer.Option("--version", callback=show_version, is_eager=True,
                                          help="Print ffbench's version and exit.")] = False,
) -> None:
    """Measure what Forward-Forward training costs against backprop."""


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


# command-line parameter -> CellSpec field: the one table run, explain and sweep read
CELL_FIELDS = {
    "layers": "n_layers", "hidden": "hidden", "batch_size": "batch_size",
    "eval_batch_size": "eval_batch_size", "steps": "steps", "warmup": "warmup_steps",
    "epochs": "epochs", "device": "device", "dtype": "dtype", "goodness": "goodness",
    "threshold": "threshold", "lr": "lr", "optimizer": "optimizer", "threads": "threads",
    "seed": "seed", "target_gpu": "target_gpu",
    "dataset": "dataset", "data_dir": "data_dir", "eval_chunk": "eval_chunk",
    "compile": "compile", "option": "options",
}
_CONVERT: dict[str, Callable[[Any], Any]] = {"data_dir": str, "option": parse_options}


def cell_fields(params: dict[str, Any]) -> dict[str, Any]:
    """CellSpec fields from a command's parameters: the ones given, converted. A repeatable
    option that was not given arrives empty: not given either (else `--option` left out
    would replace a sweep file's options and make a bare sweep choose a grid)."""
    return {
        CELL_FIELDS[name]: _CONVERT.get(name, lambda v: v)(value)
        for name, value in params.items()
        if name in CELL_FIELDS and value is not None and value not in ((), [])
    }


def explicit_fields(ctx: typer.Context) -> set[str]:
    """CellSpec fields the user set on the command line (not left at their defaults)."""
    return {
        CELL_FIELDS.get(name, name)
        for name in ctx.params
        if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")  # type: ignore[union-attr]
    }


def cell_spec(ctx: typer.Context, algorithm: str, preset: str | None) -> CellSpec:
    """The cell the command line describes: its flags, a preset under them, CellSpec's
    defaults for the rest; checked against this machine (CUDA, data)."""
    fields = {"algorithm": algorithm, **cell_fields(ctx.params)}
    spec = CellSpec(**apply_preset(preset, algorithm, fields, explicit_fields(ctx)))
    check_data(spec)
    check_device_available(spec.device)
    return spec


def _default(name: str) -> str:
    return f" (default: {CellSpec.__dataclass_fields__[name].default})"


# The options that describe a cell, defined once for run, explain and sweep. None means
# "not given": the preset's value, else CellSpec's default (shown in the help).
PresetOption = Annotated[
    str | None, typer.Option(help="Named settings (see `ffbench presets`); explicit flags win.")
]
LayersOption = Annotated[int, typer.Option(help="Number of hidden layers.")]
HiddenOption = Annotated[
    int | None, typer.Option(help="Units per hidden layer" + _default("hidden"))
]
BatchSizeOption = Annotated[
    int | None, typer.Option(help="Real images per train step" + _default("batch_size"))
]
EvalBatchSizeOption = Annotated[
    int | None, typer.Option(help="Images per eval batch (default: batch size).")
]
StepsOption = Annotated[int | None, typer.Option(help="Timed train steps" + _default("steps"))]
WarmupOption = Annotated[
    int | None, typer.Option(help="Warm-up train steps before measuring" + _default("warmup_steps"))
]
EpochsOption = Annotated[
    int | None,
    typer.Option(help="Training epochs for test accuracy (real data)" + _default("epochs")),
]
DeviceOption = Annotated[
    str | None, typer.Option(help="cpu, cuda, cuda:N, or meta (predict only)" + _default("device"))
]
DtypeOption = Annotated[str | None, typer.Option(help="float32 or bfloat16" + _default("dtype"))]
GoodnessOption = Annotated[
    str | None, typer.Option(help="FF goodness function" + _default("goodness"))
]
ThresholdOption = Annotated[
    float | None, typer.Option(help="FF goodness threshold (default: per goodness).")
]
LrOption = Annotated[
    float | None, typer.Option(help="Learning rate (default: per algorithm).")
]
OptimizerOption = Annotated[
    str | None,
    typer.Option(help="adam, sgd or momentum, for every algorithm" + _default("optimizer")),
]
TargetGpuOption = Annotated[
    str | None,
    typer.Option(help="With --device meta: the GPU whose allocator view is predicted: "
                 f"{', '.join(GPUS)}" + _default("target_gpu")),
]
ThreadsOption = Annotated[int | None, typer.Option(help="CPU threads (default: torch's).")]
SeedOption = Annotated[
    int | None, typer.Option(help="Seed for data, weights and negatives" + _default("seed"))
]
DatasetOption = Annotated[
    str | None, typer.Option(help="synthetic, mnist or mnist-5k" + _default("dataset"))
]
DataDirOption = Annotated[Path | None, typer.Option(help="Directory with torchvision's MNIST.")]
EvalChunkOption = Annotated[
    int | None, typer.Option(help="FF eval: replicated rows alive at once (0 = all).")
]
CompileOption = Annotated[
    bool | None, typer.Option("--compile/--no-compile",
                              help="torch.compile each layer (timed; memory eager).")
]
AlgorithmOptions = Annotated[
    list[str] | None, typer.Option(help="Algorithm setting NAME=VALUE (repeatable).")
]
DEFAULT_LAYERS = 2  # run and explain describe one cell; a sweep's depths are a grid


@app.command()
def run(
    ctx: typer.Context,
    algorithm: Annotated[str, typer.Argument(help="Registered algorithm (`ffbench algorithms`).")],
    *,
    preset: PresetOption = None,
    layers: LayersOption = DEFAULT_LAYERS,
    hidden: HiddenOption = None,
    batch_size: BatchSizeOption = None,
    eval_batch_size: EvalBatchSizeOption = None,
    steps: StepsOption = None,
    warmup: WarmupOption = None,
    epochs: EpochsOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    goodness: GoodnessOption = None,
    threshold: ThresholdOption = None,
    lr: LrOption = None,
    optimizer: OptimizerOption = None,
    target_gpu: TargetGpuOption = None,
    threads: ThreadsOption = None,
    seed: SeedOption = None,
    dataset: DatasetOption = None,
    data_dir: DataDirOption = None,
    eval_chunk: EvalChunkOption = None,
    compile: CompileOption = None,
    option: AlgorithmOptions = None,
    out: Annotated[Path | None, typer.Option(help="Write the full result row here (JSON).")] = None,
) -> None:
    """Measure one cell in this process and print a summary."""
    spec = cell_spec(ctx, algorithm, preset)
    check_out_file(out)

    from ffbench.cell import run_cell_row
    from ffbench.results import write_row_json
    from ffbench.summary import cell_table

    row = run_cell_row(spec)
    show(cell_table(row))
    if out is not None:
        write_row_json(row, out)
        show(f"wrote {out}")
    if row["status"] != "ok":
        error_line(f"cell {row['status']}: {row['error']}")
        raise typer.Exit(1)


@app.command("presets")
def list_presets() -> None:
    """List the named settings `--preset` accepts, one line each."""
    width = max(map(len, PRESETS))
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.summary}")


TogetherOption = Annotated[
    bool, typer.Option("--together", help="Several results in one comparison (default: each "
                       "results folder found below a parent on its own).")
]


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


def result_sets(paths: list[Path], *, together: bool) -> list[list[Path]]:
    """The inputs drawn together, or (a parent of results folders) each folder found below."""
    from ffbench.sweep_folder import results_below

    found = [folder for path in paths for folder in results_below(path)]
    if found != paths:
        show(f"found {len(found)} results folder(s): {', '.join(map(str, found))}")
    return [found] if together or found == paths else [[folder] for folder in found]


def loaded_sets(paths: list[Path], *, together: bool) -> list[tuple[list[Path], pd.DataFrame]]:
    """Each set of `result_sets` with its rows (missing cells of its sweep included)."""
    from ffbench.sweep_folder import with_missing

    return [(found, with_missing(load_results(found)))
            for found in result_sets(paths, together=together)]


def show_skipped(figures: list[Drawn]) -> None:
    """One line per figure that was not drawn, with why."""
    show(*(f"skipped {figure.name}: {figure.skipped}" for figure in figures
           if figure.path is None))


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
    together: TogetherOption = False,
) -> None:
    """Draw the figures (memory, time, categories, prediction, accuracy, comparison)."""
    chosen = parse_int_range(depths, flag="depths") if depths else None
    out_root = out or default_out(results, "figures")
    if out_root.exists() and not out_root.is_dir():
        raise BadInput(f"--out {out_root} is a file; give a folder for the figures")
    check_creatable(out_root, "--out")
    sets = loaded_sets(results, together=together)

    from ffbench.plots import draw_all

    for paths, frame in sets:
        where = out / paths[0].name if out and len(sets) > 1 else out
        for figure in draw_all(frame, where or default_out(paths, "figures"), fmt.value, chosen):
            if figure.path is None:
                show_skipped([figure])
            else:
                show(f"wrote {figure.path}")


@app.command()
def report(
    results: Annotated[list[Path], typer.Argument(help="Results directories or parquet files.")],
    *,
    out: Annotated[
        Path | None, typer.Option(help="FILE.md or FILE.html (default: RESULTS/report.md).")
    ] = None,
    together: TogetherOption = False,
) -> None:
    """Write a one-page report: findings as numbers, per-layer slopes, failures, figures."""
    from ffbench import report as page

    if out is not None and out.suffix not in page.RENDERERS:
        raise BadInput(f"--out {out}: give a file ending in {' or '.join(page.RENDERERS)}")
    sets = loaded_sets(results, together=together)
    targets = [
        out.with_stem(f"{out.stem}-{paths[0].name}") if out and len(sets) > 1
        else out or default_out(paths, "report.md")
        for paths, _ in sets
    ]
    for where in targets:  # every output path checked before anything is written
        check_out_file(where)
        check_creatable(page.figures_dir(where), "--out", where)
    for where, (_, frame) in zip(targets, sets, strict=True):
        show_skipped(page.write(frame, where))
        show(f"wrote {where} (figures in {page.figures_dir(where)})")




@app.command(epilog=sweep_defaults_help())
def sweep(
    ctx: typer.Context,
    sweep_file: Annotated[
        str | None,
        typer.Argument(help="Sweep TOML file, or a packaged sweep's name: quick (the "
                       "default), ci-cpu, seed-figure, fair.", show_default=False),
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
    eval_batch_size: EvalBatchSizeOption = None,
    steps: StepsOption = None,
    warmup: WarmupOption = None,
    epochs: EpochsOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    goodness: GoodnessOption = None,
    threshold: ThresholdOption = None,
    lr: LrOption = None,
    optimizer: OptimizerOption = None,
    target_gpu: TargetGpuOption = None,
    threads: ThreadsOption = None,
    seed: SeedOption = None,
    dataset: DatasetOption = None,
    data_dir: DataDirOption = None,
    eval_chunk: EvalChunkOption = None,
    compile: CompileOption = None,
    option: AlgorithmOptions = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before a cell is killed (status timeout).")
    ] = None,
    jobs: Annotated[int | None, typer.Option(
        help="Cells at once (one GPU each); default 1, and for meta cells one per CPU core "
             "(up to 4).")] = None,
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
    max_cells: Annotated[
        int, typer.Option(help="Refuse a grid of more cells than this (a typo guard).")
    ] = DEFAULT_MAX_CELLS,
) -> None:
    """Run a grid of cells, each in a fresh process; rerun the same command to resume."""
    from ffbench import sweep as sweeps
    from ffbench.sweep_plan import plan
    from ffbench.sweep_spec import GRID_KEYS, check_runnable

    params = dict(ctx.params)
    grid = {key: params.pop(key) for key in GRID_KEYS}  # ranges, not one cell's values
    runner = {"timeout_s": timeout, "jobs": jobs, "executor": executor}
    given = {**grid, **cell_fields(params), **runner}
    whole_number("max-cells", max_cells, 1, MAX_CELLS)
    planned = plan(sweep_file, {k: v for k, v in given.items() if v is not None}, out,
                   sweeps.RESULTS_ROOT, max_cells)
    pool = sweeps.start_pool(planned[0].spec)  # starting while the cells are checked
    try:
        for one in planned:
            one.spec.cells()  # every cell validated before anything runs
            check_runnable(one.spec)
        for index, one in enumerate(planned):
            show(one.why)
            run_one_sweep(one.spec, one.out, no_resume=no_resume, retry_failed=retry_failed,
                          pool=pool if index == 0 else None)
    finally:
        if pool is not None:
            pool.close()


def run_one_sweep(spec: Any, requested: Path, *, no_resume: bool, retry_failed: bool,
                  pool: LocalPool | None = None) -> None:
    """Run one sweep into `requested` (a fresh folder beside it with --no-resume), in
    `pool` if one was started for it."""
    from ffbench import sweep as sweeps
    from ffbench.results import FAILED_STATUSES
    from ffbench.sweep_plan import is_predicted

    cells = spec.cells()
    out_dir = sweeps.results_dir(requested, fresh=no_resume)
    if out_dir != requested:
        show(f"--no-resume: {requested} exists; starting over in {out_dir}", to_stderr=True)
    warning = sweeps.timing_warning(spec)
    if warning:
        warn(warning)
    events = sweeps.run_sweep(spec, out_dir, retry_failed=retry_failed, pool=pool)
    first = next(events)  # the folder's lock is taken here: refused before any display
    try:
        sweep_progress(spec, out_dir, first, events)
    except KeyboardInterrupt:
        show(f"interrupted: every finished cell is kept in {out_dir}; resume with\n"
             f"  {resume_command(sys.argv, out_dir)}", to_stderr=True)
        raise typer.Exit(130) from None
    rows = sweeps.load_cells(out_dir)
    grid_rows = [rows[c.cell_id] for c in cells if c.cell_id in rows]
    from ffbench.summary import sweep_table

    kind = "PREDICTED on meta (no compute), " if is_predicted(spec.device) else ""
    show(sweep_table(grid_rows, title=f"{spec.name}: {kind}{len(grid_rows)} of "
                     f"{len(cells)} cells in {out_dir}"))
    failed = sum(row["status"] in FAILED_STATUSES for row in grid_rows)
    if failed and not retry_failed:
        show(f"{failed} cell(s) failed; run them again by adding --retry-failed")
    show(f"draw it: ffbench plot {out_dir}   one page: ffbench report {out_dir}")


@app.command("explain")
def explain_command(
    ctx: typer.Context,
    algorithm: Annotated[str, typer.Argument(help="Registered algorithm.")],
    *,
    preset: PresetOption = None,
    layers: LayersOption = DEFAULT_LAYERS,
    hidden: HiddenOption = None,
    batch_size: BatchSizeOption = None,
    eval_batch_size: EvalBatchSizeOption = None,
    device: DeviceOption = None,
    dtype: DtypeOption = None,
    goodness: GoodnessOption = None,
    optimizer: OptimizerOption = None,
    target_gpu: TargetGpuOption = None,
    warmup: WarmupOption = None,
    threads: ThreadsOption = None,
    dataset: DatasetOption = None,
    data_dir: DataDirOption = None,
    eval_chunk: EvalChunkOption = None,
    option: AlgorithmOptions = None,
) -> None:
    """Memory by category at each phase's peak: analytic model, tracked, predicted (meta)."""
    spec = cell_spec(ctx, algorithm, preset)

    from ffbench.explain import (
        cache_lines,
        explain,
        part_lines,
        peak_lines,
        phase_table,
        slope_lines,
    )

    explanation = explain(spec)
    for phase in explanation.phases:
        show(phase_table(phase))
    show(*peak_lines(explanation), *part_lines(explanation), *cache_lines(explanation),
         *slope_lines(explanation))


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
    from ffbench.check import by_cell, changes_table, check_metrics, check_rtol, compare
    from ffbench.check import refresh_baseline as write_baseline

    metrics = check_metrics(metric or [])
    rtol = check_rtol(rtol)
    if refresh_baseline:
        check_out_file(baseline, "--baseline")
    elif not baseline.exists():
        raise BadInput(f"--baseline {baseline}: no such file or directory")
    now = by_cell(load_results(results))
    if refresh_baseline:
        count = write_baseline(now, baseline)
        show(f"wrote {count} cells to {baseline}")
        return
    report = compare(now, by_cell(load_results([baseline])), rtol=rtol, metrics=metrics)
    if report.regressions:
        show(changes_table(f"regressions beyond {rtol:.1%}", report.regressions))
    if report.improvements:
        show(changes_table(f"improvements beyond {rtol:.1%}", report.improvements))
    for what, labels in (("new (not in the baseline)", report.new_cells),
                         ("missing (in the baseline only)", report.missing_cells)):
        show(*(f"{what}: {label}" for label in labels))
    verdict = "FAIL" if report.regressions else "ok"
    show(f"{verdict}: {report.compared_cells} cells compared, "
         f"{len(report.regressions)} regressions, {len(report.improvements)} "
         f"improvements, {len(report.new_cells)} new, {len(report.missing_cells)} missing")
    raise typer.Exit(report.exit_code)


@app.command("capacity")
def capacity_command(
    memory: Annotated[str, typer.Argument(help="GPU memory, e.g. 24GiB, 80GB, 40960MiB.")],
    *,
    hidden: HiddenOption = None,
    batch_size: BatchSizeOption = None,
    layers: Annotated[int | None, typer.Option(
        "--layers", help="Give a depth to get the largest batch instead of the deepest net.",
    )] = None,
    algorithms: Annotated[str | None, typer.Option(
        help="Comma-separated algorithms (default: all registered).")] = None,
    dtype: DtypeOption = None,
    goodness: GoodnessOption = None,
    eval_chunk: EvalChunkOption = None,
    option: AlgorithmOptions = None,
    optimizer: OptimizerOption = None,
    target_gpu: Annotated[str, typer.Option(
        help=f"GPU whose cuBLAS workspace and CUDA context to assume: {', '.join(GPUS)}.",
    )] = DEFAULT_GPU,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per algorithm, the deepest network (or at --layers the largest batch) whose predicted
    reserved memory plus the CUDA context fits in MEMORY."""
    from ffbench.algorithms import registry
    from ffbench.gpus import gpu, parse_memory

    memory_bytes, target = parse_memory(memory), gpu(target_gpu)
    names = (parse_names(algorithms, flag="algorithms", known=tuple(registry.ALGORITHMS))
             if algorithms is not None else registry.names())
    fields = cell_fields({"hidden": hidden, "batch_size": batch_size, "dtype": dtype,
                          "goodness": goodness, "eval_chunk": eval_chunk, "option": option,
                          "optimizer": optimizer})
    spec = CellSpec(names[0], n_layers=layers or 1, device="meta", **fields)

    from ffbench.capacity import capacity, fit_lines

    fits = capacity(spec, names, memory_bytes, target, by_batch=layers is not None)
    if as_json:
        show(json.dumps([dataclasses.asdict(fit) for fit in fits], indent=2))
        return
    resolved = spec.resolved()
    at = f"{layers} layers, " if layers is not None else f"batch {resolved.batch_size}, "
    show(f"{memory} on {target.name}: hidden {resolved.hidden}, {at}{resolved.dtype}, "
         f"{resolved.optimizer}")
    for line in fit_lines(fits, memory_bytes, target, by_batch=layers is not None):
        show(line)


@app.command("algorithms")
def list_algorithms() -> None:
    """List the registered algorithms (built-in and plugins), one line each; a plugin that
    cannot be used is one line saying why."""
    from ffbench.algorithms.registry import algorithm_lines

    for line in algorithm_lines():
        print(line)


def exit_code_of(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, message) for what a command may end in, None for a bug (re-raised)."""
    if isinstance(exc, BadInput):
        return 2, str(exc)
    if isinstance(exc, OSError):  # no space, permission, not a directory: the machine's word
        return 1, str(exc)
    # click's (or typer's own vendored click's) usage errors: duck-typed, so that
    # any typer version works
    if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
        return exc.exit_code, exc.format_message()
    if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "Abort":
        return 130, "interrupted"
    return None


def entry() -> None:
    """The `ffbench` command: `main`, then an exit that skips the interpreter's teardown (with
    torch imported, ~0.6 s of every command); what it printed is flushed first."""
    try:
        main()
        code = 0
    except SystemExit as end:
        code = end.code if isinstance(end.code, int) else int(end.code is not None)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (| head)
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input is one line on stderr and exit code 2, an OS error
    (full disk, permissions) one line and exit 1; no arguments print the help."""
    args = sys.argv[1:] if argv is None else argv
    show_library_warnings()
    try:
        code = app(args=args or ["--help"], prog_name="ffbench", standalone_mode=False)
    except Exception as exc:
        ending = exit_code_of(exc)
        if ending is None:
            raise
        error_line(ending[1])
        sys.exit(ending[0])
    sys.exit(code if isinstance(code, int) else 0)
