"""What the command line shows: its two consoles, stdout and stderr.

Every text is printed literally: the consoles never read markup or highlight, so a path
or an error message with square brackets reaches the user as it is (rich would otherwise
eat `[x]` and raise on a stray `[/]`). Styles are applied to Text objects, never by markup.
The rest of the package builds what is shown: tables, a sweep's progress, its ending.
"""

from __future__ import annotations

import logging
import sys

from rich.console import Console, RenderableType
from rich.text import Text

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
