"""Checks on the paths a command will write, made before any work starts."""

from __future__ import annotations

import os
from pathlib import Path

from ffbench.errors import BadInput


def check_creatable(folder: Path, flag: str, given: Path | None = None) -> None:
    """`folder` exists as a writable directory, or can be created (its first existing
    ancestor is a writable directory); BadInput naming the flag and the path otherwise."""
    shown = given if given is not None else folder
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise BadInput(f"{flag} {shown}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"{flag} {shown}: {existing} is not writable")


def check_out_file(out: Path | None, flag: str = "--out") -> None:
    """An output file that could be written: not a directory, in a creatable folder."""
    if out is None:
        return
    if out.is_dir():
        raise BadInput(f"{flag} {out} is a directory; give a file name")
    check_creatable(out.parent, flag, out)
