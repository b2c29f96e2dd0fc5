"""What the command line shows: its two consoles and the sweep's progress display.

Every text is printed literally: the consoles never read markup or highlight, so a path
or an error message with square brackets reaches the user as it is (rich would otherwise
eat `[x]` and raise on a stray `[/]`). Styles are applied to Text objects, never by markup.
"""

from __future__ import annotations

import itertools
import logging
import shlex
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from rich.text import Text

from ffbench.settings.cell import CellSpec

out = Console(markup=False, highlight=False, emoji=False)
err = Console(stderr=True, markup=False, highlight=False, emoji=False)


def show(*items: RenderableType, to_stderr: bool = False) -> None:
    """Print texts and tables literally (to stdout unless `to_stderr`)."""
    console = err if to_stderr else out
    for item in items:
        console.print(item, soft_wrap=isinstance(item, str))


def warn(message: str) -> None:
    err.print(Text.assemble(("warning: ", "yellow"), message), soft_wrap=True)


def error_line(message: str) -> None:
    """The one line a refused or failed command ends with, on stderr (plain, no console:
    it must reach the user even when the console cannot be built)."""
    flat = " ".join(str(message).split()) or "unknown error"
    print(f"ffbench: error: {flat}", file=sys.stderr)


class _WarningLines(logging.Handler):
    """The library's warnings, one line each on the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            return  # a failure the command reports itself, in its one error line
        text = " ".join(record.getMessage().split())
        print(f"{record.levelname.lower()}: {text}", file=sys.stderr)


def show_library_warnings() -> None:
    """Route ffbench's log warnings to stderr as single lines (once per process)."""
    logger = logging.getLogger("ffbench")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        handler = _WarningLines(logging.WARNING)
        logger.addHandler(handler)
        logger.propagate = False


def cell_label(spec: CellSpec) -> str:
    return (f"{spec.algorithm} layers={spec.n_layers} hidden={spec.hidden} "
            f"batch={spec.batch_size} {spec.device}")


def resume_command(argv: list[str], out_dir: Path) -> str:
    """The command line that continues this sweep where it stopped."""
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


@contextmanager
def _every(interval_s: float, action: Callable[[], None] | None) -> Iterator[None]:
    """Call `action` every `interval_s` on a thread of its own while the block runs (a
    progress line must come while one long cell keeps the sweep's events waiting)."""
    if action is None:
        yield
        return
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            action()

    thread = threading.Thread(target=loop, name="ffbench-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def sweep_progress(
    spec: Any, out_dir: Path, first: Any, events: Generator[Any, None, None]
) -> None:
    """Show a running sweep (ffbench.sweep.run_sweep's events, the `first` already taken):
    on a terminal a progress bar (cells done, the current cell, ETA); elsewhere (CI, nohup,
    a log file) one line per finished cell, or every 30 s while none finishes, with counts and
    ETA; an estimate of the run's length before it starts; one line per cell that did not end
    ok. Closing the events (at the end, on Ctrl-C) kills what still runs."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ffbench.progress_text import ProgressLines, duration, estimate_s
    from ffbench.sweep.run import run as sweep_run

    plain = not err.is_terminal
    columns = (TextColumn("{task.description}", markup=False), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    lines = ProgressLines(total=0)
    running = "starting"
    lock = threading.Lock()  # the lines are also read by the heartbeat's thread

    def quiet() -> None:
        with lock:
            line = lines.quiet_line(running)
        if line:
            progress.console.print(line, soft_wrap=True)

    with (closing(events), Progress(*columns, console=err, disable=plain) as progress,
          _every(1.0, quiet if plain else None)):
        task = progress.add_task("starting", total=None)
        for event in itertools.chain([first], events):
            if isinstance(event, sweep_run.Planned):
                done = event.total - event.to_run
                guess = estimate_s(spec.device, event.to_run, spec.cells_at_once)
                progress.console.print(f"{spec.name}: {event.total} cells on {spec.device}, "
                                       f"{done} already finished in {out_dir}, {event.to_run} "
                                       f"to run, about {duration(guess)}", soft_wrap=True)
                progress.update(task, total=event.to_run)
                with lock:
                    lines = ProgressLines(total=event.to_run)
            elif isinstance(event, sweep_run.Started):
                running = cell_label(event.spec)
                progress.update(task, description=running)
            else:
                progress.advance(task)
                with lock:
                    line = lines.finished(cell_label(event.spec), event.row["status"])
                if plain:
                    progress.console.print(line, soft_wrap=True)
                if event.row["status"] != "ok":
                    reason = (event.row["error"] or "").strip().splitlines()[:1]
                    progress.console.print(Text.assemble(
                        (event.row["status"], "yellow"),
                        f" {cell_label(event.spec)}: {''.join(reason)}"), soft_wrap=True)
