"""What the command line shows: its two consoles, stdout and stderr.

Every text is printed literally: the consoles never read markup or highlight, so a path
or an error message with square brackets reaches the user as it is (rich would otherwise
eat `[x]` and raise on a stray `[/]`). Styles are applied to Text objects, never by markup.
Control characters in any text shown (an escape sequence in a cell's error, a path, a file
someone wrote) are printed as escapes (\x1b), never sent to the terminal; and a table is
never narrower than MIN_WIDTH columns, whatever COLUMNS says.
The rest of the package builds what is shown: tables, a sweep's progress, its ending.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from rich.console import Console, ConsoleDimensions, RenderableType
from rich.text import Text

from ffbench.text import printable

MIN_WIDTH = 80  # columns a table is laid out in at least (COLUMNS=5 emptied every cell)


class _Console(Console):
    """A console that escapes control characters in every string it renders (text, table
    cells, titles) and lays out at least MIN_WIDTH columns."""

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(printable(text), **options)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if size.width >= MIN_WIDTH else ConsoleDimensions(MIN_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


out = _Console(markup=False, highlight=False, emoji=False)
err = _Console(stderr=True, markup=False, highlight=False, emoji=False)


def show(*items: RenderableType, to_stderr: bool = False) -> None:
    """Print texts and tables literally (to stdout unless `to_stderr`)."""
    console = err if to_stderr else out
    for item in items:
        console.print(item, soft_wrap=isinstance(item, str))


def warn(message: str) -> None:
    err.print(Text.assemble(("warning: ", "yellow"), printable(message)), soft_wrap=True)


def error_line(message: str) -> None:
    """The one line a refused or failed command ends with, on stderr (plain, no console:
    it must reach the user even when the console cannot be built)."""
    flat = printable(" ".join(str(message).split())) or "unknown error"
    print(f"ffbench: error: {flat}", file=sys.stderr)


def usable_streams() -> None:
    """A closed stdout or stderr (`>&-`) taken as /dev/null: the command does its work, and
    what it would print is dropped (writing to it would end the command with a traceback
    after the work was done)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or _closed(stream):
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 (for the process's life)


def _closed(stream: Any) -> bool:
    """Whether `stream`'s descriptor is closed (one without a descriptor is not)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return False  # in memory (a test's capture): usable
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


class _WarningLines(logging.Handler):
    """The library's warnings, one line each on the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            return  # a failure the command reports itself, in its one error line
        text = printable(" ".join(record.getMessage().split()))
        print(f"{record.levelname.lower()}: {text}", file=sys.stderr)


def show_library_warnings() -> None:
    """Route ffbench's log warnings to stderr as single lines (once per process)."""
    logger = logging.getLogger("ffbench")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        handler = _WarningLines(logging.WARNING)
        logger.addHandler(handler)
        logger.propagate = False
