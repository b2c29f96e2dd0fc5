"""A running sweep as the console shows it: a progress bar on a terminal, plain lines
elsewhere (CI, nohup, a log file), an estimate of its length before it starts, and one line
per cell that did not end ok."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from rich.text import Text

from ffbench.console import err
from ffbench.console.progress_text import ProgressLines, duration, estimate_s
from ffbench.settings.cell import CellSpec
from ffbench.sweep.run import Planned, Started
from ffbench.text import printable


def cell_label(spec: CellSpec) -> str:
    return printable(f"{spec.algorithm} layers={spec.n_layers} hidden={spec.hidden} "
                     f"batch={spec.batch_size} {spec.device}")


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
            if isinstance(event, Planned):
                done = event.total - event.to_run
                guess = estimate_s(event.cells, spec.cells_at_once)
                progress.console.print(f"{spec.name}: {event.total} cells on {spec.device}, "
                                       f"{done} already finished in {out_dir}, {event.to_run} "
                                       f"to run, about {duration(guess)}", soft_wrap=True)
                progress.update(task, total=event.to_run)
                with lock:
                    lines = ProgressLines(total=event.to_run)
            elif isinstance(event, Started):
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
                        (printable(event.row["status"]), "yellow"),
                        f" {cell_label(event.spec)}: {printable(''.join(reason))}"),
                        soft_wrap=True)
