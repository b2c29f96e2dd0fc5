"""A results folder: the only code that writes one, and the one that says what is in one.

OUT/cells/<cell_id>.json holds each cell's row (written atomically, as each cell ends): the
truth; OUT/results.parquet the consolidated rows (rewritten now and then, and whole at the
end); OUT/sweep.json the definition of the sweep the folder belongs to (sweep.definition),
stored at the first run: a later run into the folder must share its fixed settings, its
depths and batch sizes may differ. What report and plot read: sweep.result_sets. One sweep writes
into a folder at a time (an fcntl lock on the folder itself; OUT/.lock holds its PID).

The store adopts only a folder that is new, empty, or a sweep's (a definition, or cell
rows, or nothing but the parts a sweep makes), and it never follows a link nor replaces a
file that is not a regular one. Rows in results.parquet that have no cell file (a cell
being redone when the sweep was killed) are restored to cells/ before the parquet is
rewritten: nothing a folder held is lost."""

from __future__ import annotations

import fcntl
import logging
import math
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from ffbench.algorithms.resolve import cell_id
from ffbench.errors import BadInput
from ffbench.results import (
    CELL_ID_PATTERN,
    CELLS_DIR,
    PARQUET_NAME,
    NotARegularFile,
    ResultsError,
    atomic_write,
    check_regular_target,
    parquet_rows,
    read_regular,
    read_row_json,
    row_files,
    write_parquet,
    write_row_json,
)
from ffbench.settings.cell import CellSpec
from ffbench.settings.paths import FILE_KINDS, check_creatable
from ffbench.sweep.definition import DEFINITION_NAME, NEW_FOLDER_FLAG, check_owner
from ffbench.sweep.spec import SweepSpec

log = logging.getLogger(__name__)

WORK_DIR = ".work"  # spec files and child stderr of the running invocation; removed after it
REJECTED_DIR = "rejected"  # row files that failed validation, each with its reason
LOCK_NAME = ".lock"  # the PID of the one sweep writing into the folder (it locks the folder)
SLURM_DIR = "slurm"  # submitit's job files
# what a sweep makes in its folder: a folder holding nothing else is a sweep's
FOLDER_PARTS = {CELLS_DIR: stat.S_IFDIR, REJECTED_DIR: stat.S_IFDIR, WORK_DIR: stat.S_IFDIR,
                SLURM_DIR: stat.S_IFDIR, PARQUET_NAME: stat.S_IFREG, LOCK_NAME: stat.S_IFREG,
                DEFINITION_NAME: stat.S_IFREG}
MAX_LOCK_BYTES = 64
LOCK_HOLDER_WAIT_S = 1.0  # how long a refused sweep waits for the holder's PID to be written
# results.parquet is rewritten at most this often while cells finish (~15 ms a write): each
# row is on disk at once in its cell file, and the sweep's end writes the parquet whole
CONSOLIDATE_EVERY_S = 2.0


def _kind(path: Path) -> int | None:
    """The file type of `path` itself (a link is a link), None if nothing is there."""
    try:
        return stat.S_IFMT(path.lstat().st_mode)
    except FileNotFoundError:
        return None


def check_adoptable(folder: Path, flag: str = "--out", *, held: bool = False) -> None:
    """Refuse (BadInput, one line) to write a sweep into a folder that is not a sweep's: one
    that exists, is not empty, and holds neither a definition nor a cell's row file nor
    only what a sweep makes as it starts (results.parquet alone, a copy, is not a sweep's
    folder: a sweep would rewrite it with its own rows); or whose parts are links or of the
    wrong kind (never followed nor replaced). A folder another sweep holds is refused as
    such (SweepLocked), whatever its starting files look like; `held`: this process holds
    the folder's lock itself."""
    try:
        _check_adoptable(folder, flag)
    except BadInput:
        if not held and _locked(folder):
            raise SweepLocked(_in_use(folder)) from None
        raise


def _check_adoptable(folder: Path, flag: str) -> None:
    if not folder.exists():
        return
    if not folder.is_dir():
        raise BadInput(f"{flag} {folder} is a file; give a directory for the sweep's results")
    entries = {entry.name: _kind(entry) for entry in folder.iterdir()}
    for name, expected in FOLDER_PARTS.items():
        kind = entries.get(name)
        if kind is not None and kind != expected:
            shown = FILE_KINDS.get(kind, "not a file")
            raise BadInput(f"{flag} {folder}: {folder / name} is {shown}; this is not a "
                           "sweep's folder")
    if DEFINITION_NAME in entries or cell_files(folder):
        return
    started = set(FOLDER_PARTS) - {PARQUET_NAME, DEFINITION_NAME}
    cells = folder / CELLS_DIR
    if {name for name in entries if not _partial(name)} <= started and all(
            _partial(p.name) for p in (cells.iterdir() if cells.is_dir() else [])):
        return  # empty, or what a sweep killed as it started leaves
    if PARQUET_NAME in entries:
        raise BadInput(f"{flag} {folder}: holds {PARQUET_NAME} but no cell rows in {CELLS_DIR}/ "
                       "(a copied result file?): a sweep would rewrite it; give a new folder")
    raise BadInput(f"{flag} {folder}: holds files that are not a sweep's (no "
                   f"{DEFINITION_NAME}, no cell rows); give a new or empty folder")


def _partial(name: str) -> bool:
    """A temporary file of an atomic write (`.NAME.XXXX.tmp`), left if a kill interrupts it."""
    return name.startswith(".") and name.endswith(".tmp")


def cell_files(folder: Path) -> list[Path]:
    """The row files a sweep wrote in FOLDER/cells: named after their cell's id (sorted)."""
    if _kind(folder / CELLS_DIR) != stat.S_IFDIR:  # a link to a folder is not a sweep's
        return []
    return [path for path in row_files(folder) if CELL_ID_PATTERN.fullmatch(path.stem)]


def results_dir(base: Path, *, fresh: bool) -> Path:
    """Where the sweep writes: `base` (--out, default results/NAME); with `fresh`, the first
    of NAME, NAME.2, NAME.3, ... that does not exist yet (beside `base` as written out in
    full: `--out .` is the working folder's name). Nothing is created here."""
    check_creatable(base, "--out")
    if not fresh:
        check_adoptable(base)
        return base
    fresh_dir = fresh_name(base)
    check_adoptable(fresh_dir)
    return fresh_dir


def fresh_name(base: Path) -> Path:
    """`base` if nothing is there, else the first of NAME.2, NAME.3, ... that does not
    exist (beside `base` written out in full: `--out .` is the working folder's name)."""
    if not base.exists() and not base.is_symlink():
        return base
    named = Path(os.path.abspath(base)) if base.name in ("", ".", "..") else base
    if not named.name:
        raise BadInput(f"--out {base} {NEW_FOLDER_FLAG}: the root folder has no folder beside "
                       "it; give --out DIR")
    n = 2
    while named.with_name(f"{named.name}.{n}").exists():
        n += 1
    return named.with_name(f"{named.name}.{n}")


def clean_partial_files(out_dir: Path) -> None:
    """Temporary files of atomic writes interrupted by a kill, and the last run's work dir."""
    for tmp in [*out_dir.glob(".*.tmp"), *(out_dir / CELLS_DIR).glob(".*.tmp")]:
        if _kind(tmp) == stat.S_IFREG:
            tmp.unlink(missing_ok=True)
    if _kind(out_dir / WORK_DIR) == stat.S_IFDIR:
        shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)


def load_cells(out_dir: Path, *, set_aside: bool = False) -> dict[str, dict[str, Any]]:
    """Rows already in OUT/cells, by cell_id. A row file (named after a cell id) that is not
    a valid row of its cell counts as not run; with `set_aside` (the sweep holding the lock)
    it is moved to OUT/rejected/ beside a .reason.txt, with one warning line. Files of other
    names are not a sweep's: left where they are."""
    rows: dict[str, dict[str, Any]] = {}
    for path in cell_files(out_dir):
        try:
            row = read_row_json(path)
            if row["cell_id"] != path.stem:
                raise ResultsError(f"{path}: holds the row of cell {row['cell_id']!r:.40}")
            rows[path.stem] = row
        except ResultsError as exc:
            if set_aside:
                reject(path, str(exc))
                log.warning("%s; set aside in %s/, the cell will run again", exc, REJECTED_DIR)
            else:
                log.warning("%s; the cell counts as not run", exc)
    return rows


def reject(path: Path, reason: str) -> Path:
    """Move a row file that cannot be used to OUT/rejected/, with the reason beside it."""
    folder = path.parent.parent / REJECTED_DIR
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    n = 2
    while _kind(target) is not None:
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    os.replace(path, target)
    atomic_write(target.with_name(f"{target.name}.reason.txt"), (reason + "\n").encode())
    return target


def restore_from_parquet(out_dir: Path, rows: dict[str, dict[str, Any]]) -> None:
    """A sweep's folder whose cells/ holds no row (removed) but whose results.parquet
    does: its rows written back to cells/, so that rewriting the parquet loses none. (Where
    cells/ holds rows, they are the truth: a row missing there was removed to run again.)
    An unreadable parquet is rewritten from cells/."""
    path = out_dir / PARQUET_NAME
    if rows or _kind(path) is None:
        return
    try:
        records = parquet_rows(path).to_pylist()
    except ResultsError as exc:
        log.warning("%s; it is rewritten from %s/", exc, CELLS_DIR)
        return
    for row in records:
        if row["cell_id"] is None:
            raise BadInput(f"{path}: holds rows without a cell id (not written by a sweep); "
                           "ffbench will not rewrite it")
        write_row_json(row, out_dir / CELLS_DIR / f"{row['cell_id']}.json")
        rows[row["cell_id"]] = row


class SweepLocked(BadInput):
    """Another sweep is writing into this results folder."""


class FolderLock:
    """One sweep per results folder: an fcntl lock on the folder itself, held while this
    object is open (deleting or replacing OUT/.lock cannot admit a second sweep). The kernel
    drops it when the process dies (even of SIGKILL), so a killed sweep's folder is never
    locked for its resume. OUT/.lock holds the holder's PID, for the refusal's message."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK_NAME
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = _take_lock(out_dir)
        if fd is None:
            raise SweepLocked(_in_use(out_dir))
        self.fd: int | None = fd

    def write_pid(self) -> None:
        """The holder's PID in OUT/.lock (a regular file: never a link followed)."""
        write_small_file(self.path, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock; .lock stays (unlinking would race)
            self.fd = None


def _in_use(out_dir: Path) -> str:
    return (f"{out_dir} is in use by another sweep (PID {holder(out_dir)}); "
            "wait for it to finish or give another --out")


def _take_lock(folder: Path) -> int | None:
    """A descriptor of FOLDER holding its lock (closing it drops the lock), or None where
    another sweep holds it; never waits."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _locked(folder: Path) -> bool:
    """Whether another sweep holds FOLDER's lock now (probed: a lock taken is dropped)."""
    try:
        fd = _take_lock(folder)
    except OSError:  # not a folder that can be opened: nobody holds it
        return False
    if fd is None:
        return True
    os.close(fd)
    return False


def holder(out_dir: Path) -> str:
    """The PID in OUT/.lock (digits only), waiting a moment for one that has just taken the
    lock to write it; "unknown" if none comes."""
    deadline = time.monotonic() + LOCK_HOLDER_WAIT_S
    while True:
        try:
            text = read_regular(out_dir / LOCK_NAME, MAX_LOCK_BYTES, "lock file").decode(
                errors="replace").strip()
        except ResultsError:
            text = ""
        if text.isdigit() and text.isascii():
            return text
        if time.monotonic() > deadline:
            return "unknown"
        time.sleep(0.02)


def write_small_file(path: Path, data: bytes) -> None:
    """Replace the contents of a regular file in place (created if missing): a link is
    refused, not followed; a FIFO or a device is refused, not opened."""
    check_regular_target(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                 0o666)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
        os.ftruncate(fd, 0)
        os.write(fd, data)
    finally:
        os.close(fd)


class SweepDir:
    """The results directory of a sweep: its rows in memory, mirrored to disk atomically.
    Holds the folder's lock from creation to `close`."""

    def __init__(self, out_dir: Path, owner: SweepSpec | None = None) -> None:
        self.path = out_dir
        self.cells = out_dir / CELLS_DIR
        check_adoptable(out_dir)  # a folder that is not a sweep's is refused untouched
        self.lock = FolderLock(out_dir)  # before anything in the folder is touched
        try:
            check_adoptable(out_dir, held=True)  # again, now that no other sweep writes in it
            if owner is not None:  # a folder holding another sweep is refused untouched
                check_owner(owner, out_dir)
            self.lock.write_pid()
            self.cells.mkdir(exist_ok=True)
            clean_partial_files(out_dir)
            self.rows = load_cells(out_dir, set_aside=True)
            restore_from_parquet(out_dir, self.rows)
            self._consolidated_s = -math.inf
            self.consolidate()  # repairs a parquet left behind by a kill between two writes
        except BaseException:
            self.lock.release()
            raise

    def close(self) -> None:
        self.lock.release()

    def row_path(self, spec: CellSpec) -> Path:
        return self.cells / f"{cell_id(spec)}.json"

    def forget(self, spec: CellSpec) -> None:
        """Drop a stale (failed or skipped) row about to be redone: it must not pass as new."""
        self.row_path(spec).unlink(missing_ok=True)
        self.rows.pop(cell_id(spec), None)

    def record(self, *rows: dict[str, Any]) -> None:
        self.rows.update((row["cell_id"], row) for row in rows)
        if time.monotonic() - self._consolidated_s >= CONSOLIDATE_EVERY_S:
            self.consolidate()

    def sync(self) -> None:
        """Take in rows that children wrote but this process never heard of (Ctrl-C)."""
        self.rows = load_cells(self.path, set_aside=True)
        self.consolidate()

    def consolidate(self) -> None:
        """All rows, one per cell, in a stable order, to results.parquet (atomically)."""
        if self.rows:
            write_parquet(sorted(self.rows.values(), key=_row_order), self.path / PARQUET_NAME)
            self._consolidated_s = time.monotonic()


def _row_order(row: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("algorithm", "device", "dtype", "hidden", "batch_size", "n_layers", "cell_id")
    return tuple((row[key] is None, row[key] or 0) for key in keys)
