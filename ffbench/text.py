"""Text as ffbench shows it: what comes from files, cells and plugins with its control
characters escaped (the consoles and the report use it), and command lines quoted for a user
to paste into a shell (the one quoting of every command shown: a sweep's resume line, the
no-GPU refusal's suggestion, what to run next)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

# C0 and C1 controls but newline and tab, DEL, and the bidirectional overrides (which
# reorder what a terminal shows)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every control character written as an escape ("\x1b"), so that what a
    file, a plugin or a cell's error holds cannot clear the screen or hide what follows."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def shell_command(*words: Any) -> str:
    """A command line to paste into a shell, every word quoted where it must be; a path
    that starts with "-" is written ./-x, so that the command does not take it for an
    option."""
    return shlex.join(_word(word) for word in words)


def _word(word: Any) -> str:
    if isinstance(word, Path):
        text = str(word)
        return f"./{text}" if text.startswith("-") else text
    return str(word)
