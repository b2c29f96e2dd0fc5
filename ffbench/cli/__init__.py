"""The ffbench command line: each command parses, calls one library function, and shows
what it returns (ffbench.console).

The cell settings' options are generated from the settings table (ffbench.cli.options), the
same for run, sweep, explain and capacity. Heavy modules (torch, pandas, seaborn) are
imported inside the commands that need them, after the input is checked, so bad input is
refused in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from ffbench import __version__
from ffbench.cli.options import with_settings
from ffbench.console import error_line, show, show_library_warnings, usable_streams
from ffbench.errors import BadInput
from ffbench.runner.isolated import ANSWER_TIMEOUT_S, LOAD_TIMEOUT_S
from ffbench.settings.gpus import DEFAULT_GPU, GPUS
from ffbench.settings.paths import check_out_file
from ffbench.settings.ranges import parse_int_range
from ffbench.sweep.spec import DEFAULT_MAX_CELLS

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


Algorithm = Annotated[str, typer.Argument(help="Registered algorithm (`ffbench algorithms`).")]
Preset = Annotated[
    str | None, typer.Option(help="Named settings (see `ffbench presets`); explicit flags win.")
]
Results = Annotated[list[Path], typer.Argument(help="Results folders or parquet files.")]
Together = Annotated[
    bool, typer.Option("--together", help="Several results in one comparison (default: each "
                       "results folder found below a parent on its own).")
]


class FigureFormat(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


class SweepHelp(TyperCommand):
    """`ffbench sweep`: its help ends with what runs by default, read from the packaged sweep
    files only when the help is shown (never for other commands)."""

    @property  # type: ignore[override]
    def epilog(self) -> str:
        from ffbench.sweep.plan import defaults_help

        return defaults_help()

    @epilog.setter
    def epilog(self, _: str | None) -> None:
        """click sets it at construction; it is worked out when read."""


@app.command()
@with_settings()
def run(
    algorithm: Algorithm, *, preset: Preset = None, settings: dict[str, Any],
    out: Annotated[Path | None, typer.Option(help="Write the full result row here (JSON).")] = None,
) -> None:
    """Measure one cell in this process and print a summary."""
    from ffbench.algorithms.presets import cell_spec
    from ffbench.cell.run import run_cell_row
    from ffbench.console.tables import cell_table
    from ffbench.results import write_row_json

    spec = cell_spec(algorithm, settings, preset)
    check_out_file(out)
    row = run_cell_row(spec)
    show(cell_table(row))
    if out is not None:
        write_row_json(row, out)
        show(f"wrote {out}")
    if row["status"] != "ok":
        raise CellFailed(f"cell {row['status']}: {row['error']}")


@app.command()
@with_settings()
def explain(algorithm: Algorithm, *, preset: Preset = None, settings: dict[str, Any]) -> None:
    """Memory by category at each phase's peak: closed form, tracked, predicted (meta)."""
    from ffbench.algorithms.presets import cell_spec
    from ffbench.cell.explain import explain as explanation
    from ffbench.cell.explain import lines

    show(*lines(explanation(cell_spec(algorithm, settings, preset))))


@app.command(cls=SweepHelp)
@with_settings(grid=True)
def sweep(
    sweep_file: Annotated[str | None, typer.Argument(
        help="Sweep TOML file, or a packaged sweep's name (quick, the default; published; "
             "fair; accuracy; ci-cpu).", show_default=False)] = None,
    *,
    algorithms: Annotated[str | None, typer.Option(help="Algorithms, e.g. bp,ff,rff.")] = None,
    preset: Annotated[str | None, typer.Option(
        help="Named settings under every cell's own (see `ffbench presets`).")] = None,
    settings: dict[str, Any],
    timeout: Annotated[float | None, typer.Option(
        help="Seconds before a cell is killed (status timeout).")] = None,
    jobs: Annotated[int | None, typer.Option(
        help="Cells at once (one GPU each); default 1, and for meta cells one per CPU core "
             "(up to 4).")] = None,
    executor: Annotated[str | None, typer.Option(help="local or slurm (submitit).")] = None,
    out: Annotated[Path | None, typer.Option(
        help="Results folder (default: results/NAME).")] = None,
    no_resume: Annotated[bool, typer.Option(
        "--no-resume", help="Start over in a fresh folder (NAME.2, ...).")] = False,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Run failed cells (oom, timeout, ...) again.")] = False,
    max_cells: Annotated[int, typer.Option(
        help="Refuse a grid of more cells than this (a typo guard).")] = DEFAULT_MAX_CELLS,
) -> None:
    """Run a grid of cells, each in a fresh process; rerun the same command to resume."""
    from ffbench.console.sweep_view import ConsoleSweepView
    from ffbench.sweep.plan import plan
    from ffbench.sweep.run import run_planned

    given = {"algorithms": algorithms, "preset": preset, **settings, "timeout_s": timeout,
             "jobs": jobs, "executor": executor}
    planned = plan(sweep_file, given, out, max_cells=max_cells)
    run_planned(planned, ConsoleSweepView(sys.argv), no_resume=no_resume,
                retry_failed=retry_failed)


@app.command()
def plot(
    results: Results, *, together: Together = False,
    out: Annotated[Path | None, typer.Option(
        help="Folder for the figures (default: RESULTS/figures).")] = None,
    fmt: Annotated[FigureFormat, typer.Option("--format", help="Image format.")] = FigureFormat.png,
    depths: Annotated[str | None, typer.Option(
        help="Depths for the category bars, e.g. 2,8 (default: min, middle, max).")] = None,
) -> None:
    """Draw the figures (the answer, memory, time, categories, prediction, accuracy)."""
    from ffbench.plots import draw_sets

    chosen = parse_int_range(depths, flag="depths") if depths else None
    for line in draw_sets(results, together=together, out=out, fmt=fmt.value, depths=chosen):
        show(line)


@app.command()
def report(
    results: Results, *, together: Together = False,
    out: Annotated[Path | None, typer.Option(
        help="FILE.md or FILE.html (default: RESULTS/report.md).")] = None,
) -> None:
    """Write a one-page report: the verdict first, then numbers, failures and figures."""
    from ffbench.report import write_sets

    for line in write_sets(results, together=together, out=out):
        show(line)


@app.command("check")
def check_command(
    results: Annotated[list[Path], typer.Argument(help="Results folders, parquet or JSON.")],
    *,
    baseline: Annotated[Path, typer.Option(help="Baseline results (folder, parquet or JSON).")],
    rtol: Annotated[float, typer.Option(help="Relative change allowed before it counts.")] = 0.02,
    metric: Annotated[list[str] | None, typer.Option(
        help="Memory column to compare (repeatable) (default: tracked, predicted and static "
             "bytes; CUDA peaks when both rows come from the same GPU).")] = None,
    refresh_baseline: Annotated[bool, typer.Option(
        help="Write RESULTS' successful rows as the new baseline (FILE.parquet), on purpose."
    )] = False,
    allow_uncompared: Annotated[bool, typer.Option(
        "--allow-uncompared",
        help="Cells that cannot be compared (given more than once, a memory column null now "
             "or, for --metric, on both sides) are listed but do not fail the gate.")] = False,
) -> None:
    """Memory regression gate: exit 1 if a cell's memory grew beyond --rtol over the baseline,
    or a cell could not be compared (the gate fails closed)."""
    from ffbench import check
    from ffbench.console.tables import check_lines

    if refresh_baseline:
        show(f"wrote {check.refresh(results, baseline)} cells to {baseline}")
        return
    outcome = check.gate(results, baseline, rtol=rtol, metrics=metric or [],
                         allow_uncompared=allow_uncompared)
    show(*check_lines(outcome, rtol))
    raise typer.Exit(outcome.exit_code)


@app.command("capacity")
@with_settings(capacity=True, skip=("target_gpu",))
def capacity_command(
    memory: Annotated[str, typer.Argument(help="GPU memory, e.g. 24GiB, 80GB, 40960MiB.")],
    *,
    settings: dict[str, Any],
    layers: Annotated[int | None, typer.Option(
        help="Give a depth to get the largest batch instead of the deepest net.")] = None,
    algorithms: Annotated[str | None, typer.Option(
        help="Comma-separated algorithms (default: all registered).")] = None,
    target_gpu: Annotated[str, typer.Option(
        help=f"GPU whose cuBLAS workspace and CUDA context to assume: {', '.join(GPUS)}.",
    )] = DEFAULT_GPU,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    timeout: Annotated[float, typer.Option(
        help="Seconds a plugin's answer may take (each plugin runs in a process of its own; "
             "one that fails is a row saying why).")] = ANSWER_TIMEOUT_S,
) -> None:
    """Per algorithm, the deepest network (or at --layers the largest batch) whose predicted
    reserved memory plus the CUDA context fits in MEMORY."""
    from ffbench.capacity import answer
    from ffbench.settings.checks import positive_number

    fits = answer(memory, settings, algorithms=algorithms, layers=layers, target_gpu=target_gpu,
                  timeout_s=positive_number("timeout", timeout))
    show(*([fits.as_json()] if as_json else [fits.heading(), *fits.lines()]))


@app.command("presets")
def list_presets() -> None:
    """List the named settings `--preset` accepts, one line each."""
    from ffbench.algorithms.presets import preset_lines

    show(*preset_lines())


@app.command("algorithms")
def list_algorithms(
    *,
    timeout: Annotated[float, typer.Option(
        help="Seconds a plugin may take to load (each loads in a process of its own).",
    )] = LOAD_TIMEOUT_S,
) -> None:
    """List the registered algorithms (built-in and plugins), one line each; a plugin that
    cannot be used is one line saying why."""
    from ffbench.algorithm_list import algorithm_lines
    from ffbench.settings.checks import positive_number

    show(*algorithm_lines(positive_number("timeout", timeout)))


class CellFailed(Exception):
    """`ffbench run`'s cell ended without a measurement (exit 1, its status and error)."""


def exit_code_of(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, message) for what a command may end in, None for a bug (re-raised)."""
    if isinstance(exc, BadInput):
        return 2, str(exc)
    if isinstance(exc, CellFailed):
        return 1, str(exc)
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
        with contextlib.suppress(OSError, ValueError, AttributeError):  # a closed pipe (| head)
            stream.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input is one line on stderr and exit code 2, an OS error
    (full disk, permissions) one line and exit 1; no arguments print the help."""
    args = sys.argv[1:] if argv is None else argv
    usable_streams()
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


