"""Checks on the paths a command will write, made before any work starts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ffbench.errors import BadInput

FILE_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFREG: "a regular file",
              stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO",
              stat.S_IFCHR: "a device", stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket"}


def file_kind(path: Path, *, follow: bool) -> str | None:
    """What `path` is when it is not a regular file ("a symbolic link", "a FIFO", ...); None
    for a regular file or nothing at all. `follow`: a link counts as what it points to
    (reading); not following, a link is a link (writing: ffbench never writes through one)."""
    try:
        mode = (path.stat() if follow else path.lstat()).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing there (yet)
        return None
    except OSError:  # a link loop, a name too long: nothing ffbench can read or write
        return "not a usable path"
    return None if stat.S_ISREG(mode) else FILE_KINDS.get(stat.S_IFMT(mode), "not a file")


def unwritable_because(path: Path, flag: str = "") -> str | None:
    """Why ffbench will not write `path` (a link, a FIFO, a device, a directory: it never
    follows a link nor replaces a special file), or None where it may."""
    kind = file_kind(path, follow=False)
    if kind is None:
        return None
    shown = f"{flag} {path}" if flag else str(path)
    return f"{shown} is {kind}; ffbench writes only regular files (give another path)"


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
    """An output file that could be written: not a directory, nor a link or a special file
    (ffbench writes only regular files: it never follows a link nor replaces a FIFO or a
    device), in a creatable folder."""
    if out is None:
        return
    if out.is_dir() and not out.is_symlink():
        raise BadInput(f"{flag} {out} is a directory; give a file name")
    problem = unwritable_because(out, flag)
    if problem is not None:
        raise BadInput(problem)
    check_creatable(out.parent, flag, out)
