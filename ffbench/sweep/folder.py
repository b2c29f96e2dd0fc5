"""A results folder: the only code that writes one, and the one that says what is in one.

OUT/cells/<cell_id>.json holds each cell's row (written atomically, as each cell ends);
OUT/results.parquet the consolidated rows; OUT/sweep.json the definition of the sweep the
folder belongs to (its grid and the settings every cell shares), stored at the first run.
A later run into the folder must share its fixed settings (every cell setting, the widths
and the algorithms); its depths and batch sizes may differ, and the stored grid grows to
their union. One sweep writes into a folder at a time (an fcntl lock on OUT/.lock).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ffbench.algorithms.resolve import cell_id
from ffbench.errors import BadInput
from ffbench.results import (
    CELLS_DIR,
    PARQUET_NAME,
    ResultsError,
    atomic_write,
    read_row_json,
    write_parquet,
)
from ffbench.settings.cell import SETTINGS, CellSpec
from ffbench.settings.paths import check_creatable
from ffbench.sweep.spec import SweepSpec

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

WORK_DIR = ".work"  # spec files and child stderr of the running invocation; removed after it
REJECTED_DIR = "rejected"  # row files that failed validation, each with its reason
LOCK_NAME = ".lock"  # held (fcntl) by the one sweep writing into the folder; holds its PID
# results.parquet is rewritten at most this often while cells finish (~15 ms a write): each
# row is on disk at once in its cell file, and the sweep's end writes the parquet whole
CONSOLIDATE_EVERY_S = 2.0
DEFINITION_NAME = "sweep.json"
MISSING = "missing"  # status of a grid cell with no row yet (added for reports, never stored)
NEW_FOLDER_FLAG = "--no-resume"
# what the grid sets per cell (and the eval batch, which follows the batch size by default)
_PER_CELL = ("algorithm", *(name for name, setting in SETTINGS.items() if setting.grid),
             "eval_batch_size")


def fixed_settings(spec: SweepSpec) -> dict[str, Any]:
    """What every cell of the sweep shares, resolved (defaults filled in), plus the
    algorithms, widths and other axes: the part of a definition a folder keeps for good."""
    probe = CellSpec(algorithm=spec.algorithms[0], n_layers=1, **spec.shared)
    shared = {k: v for k, v in dataclasses.asdict(probe).items() if k not in _PER_CELL}
    shared["eval_batch_size"] = spec.cell.get("eval_batch_size")
    return {"algorithms": list(spec.algorithms), "hidden": list(spec.hidden), **shared,
            **spec.axes, "preset": spec.preset}


def definition(spec: SweepSpec) -> dict[str, Any]:
    return {"name": spec.name, "algorithms": list(spec.algorithms), "layers": list(spec.layers),
            "batch_sizes": list(spec.batch_sizes), "hidden": list(spec.hidden),
            "cell": spec.cell, **({"preset": spec.preset} if spec.preset else {})}


def stored_sweep(folder: Path) -> SweepSpec | None:
    """The sweep a folder belongs to, or None for a folder without a definition."""
    path = folder / DEFINITION_NAME
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
        return SweepSpec(name=values["name"], algorithms=tuple(values["algorithms"]),
                         layers=tuple(values["layers"]),
                         batch_sizes=tuple(values["batch_sizes"]),
                         hidden=tuple(values["hidden"]), cell=dict(values["cell"]),
                         preset=values.get("preset"))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise BadInput(f"{path}: unreadable sweep definition ({exc})") from None


def _difference(kept: dict[str, Any], given: dict[str, Any]) -> str | None:
    changed = [key for key in kept if kept[key] != given.get(key)]
    if not changed:
        return None
    first = changed[0]
    more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
    return f"{first} {_show(kept[first])} there, {_show(given.get(first))} here{more}"


def _show(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return json.dumps(value) if isinstance(value, dict) else str(value)


def check_owner(spec: SweepSpec, folder: Path) -> None:
    """Refuse (BadInput, one line) a sweep whose fixed settings differ from the folder's."""
    kept = stored_sweep(folder)
    if kept is None:
        return
    difference = _difference(fixed_settings(kept), fixed_settings(spec))
    if difference:
        raise BadInput(f"{folder} holds another sweep ({difference}); add {NEW_FOLDER_FLAG} "
                       "to start a new folder beside it, or give --out DIR")


def record_owner(spec: SweepSpec, folder: Path) -> SweepSpec:
    """Store the definition, its depths and batch sizes grown by this run's; returns it."""
    kept = stored_sweep(folder)
    grown = spec if kept is None else dataclasses.replace(
        kept, layers=tuple(sorted({*kept.layers, *spec.layers})),
        batch_sizes=tuple(sorted({*kept.batch_sizes, *spec.batch_sizes})))
    text = json.dumps(definition(grown), indent=1) + "\n"
    atomic_write(folder / DEFINITION_NAME, text.encode())
    return grown


# ---- finding results -------------------------------------------------------------------


def holds_results(folder: Path) -> bool:
    return (folder / PARQUET_NAME).is_file() or any((folder / CELLS_DIR).glob("*.json"))


def results_below(path: Path) -> list[Path]:
    """`path` itself when it is a file or holds results (or nothing below it does), else
    every folder below it that holds results (sorted; a results folder's subfolders are not
    searched)."""
    if not path.is_dir() or holds_results(path):
        return [path]
    found = [f for child in sorted(p for p in path.iterdir() if p.is_dir())
             for f in results_below(child) if f.is_dir() and holds_results(f)]
    return found or [path]  # nothing below: loading `path` says what is wrong with it


def result_sets(paths: list[Path], *, together: bool) -> tuple[list[Path], list[list[Path]]]:
    """(the results folders found, the sets to draw): the inputs together, or, for a parent
    of results folders, each folder found below it on its own (`together`: all as one)."""
    found = [folder for path in paths for folder in results_below(path)]
    return found, [found] if together or found == paths else [[folder] for folder in found]


def load_set(paths: list[Path]) -> pd.DataFrame:
    """A set's rows as one frame, with a row of status `missing` for each cell of its
    folders' stored grids that has none yet (ResultsError, bad input, when unreadable)."""
    from ffbench.results import load

    return with_missing(load(paths))


def default_out(results: list[Path], name: str) -> Path:
    """`name` inside the first results folder (beside it, for a file)."""
    first = results[0]
    return (first if first.is_dir() else first.parent) / name


def with_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` plus a row of status `missing` for each cell of its folders' stored grids
    that has no row yet (a sweep stopped halfway), so reports and figures can show them."""
    import pandas as pd

    extra = []
    for source in dict.fromkeys(frame["source"]):
        kept = stored_sweep(Path(source)) if Path(source).is_dir() else None
        if kept is None:
            continue
        present = set(frame.loc[frame["source"] == source, "cell_id"])
        extra += [{"source": source, "cell_id": cell_id(c), "algorithm": c.algorithm,
                   "n_layers": c.n_layers, "hidden": c.hidden, "batch_size": c.batch_size,
                   "device": c.device, "status": MISSING, "sweep_id": kept.name}
                  for c in kept.cells() if cell_id(c) not in present]
    if not extra:
        return frame
    return pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)


# ---- the store ----------------------------------------------------------------------


def results_dir(base: Path, *, fresh: bool) -> Path:
    """Where the sweep writes: `base` (--out, default results/NAME); with `fresh`, the first
    of NAME, NAME.2, NAME.3, ... that does not exist yet. Nothing is created here."""
    if base.exists() and not base.is_dir():
        raise BadInput(f"--out {base} is a file; give a directory for the sweep's results")
    check_creatable(base, "--out")
    for name in (PARQUET_NAME, CELLS_DIR, REJECTED_DIR, LOCK_NAME):
        part = base / name
        if part.exists() and part.is_dir() != (name in (CELLS_DIR, REJECTED_DIR)):
            kind = "directory" if part.is_dir() else "file"
            raise BadInput(f"--out {base}: {part} is a {kind}; this is not a sweep's folder")
    if not fresh or not base.exists():
        return base
    n = 2
    while base.with_name(f"{base.name}.{n}").exists():
        n += 1
    return base.with_name(f"{base.name}.{n}")


def clean_partial_files(out_dir: Path) -> None:
    """Temporary files of atomic writes interrupted by a kill, and the last run's work dir."""
    for tmp in [*out_dir.glob(".*.tmp"), *(out_dir / CELLS_DIR).glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)
    shutil.rmtree(out_dir / WORK_DIR, ignore_errors=True)


def load_cells(out_dir: Path, *, set_aside: bool = False) -> dict[str, dict[str, Any]]:
    """Rows already in OUT/cells, by cell_id. A file that is not a valid row of its cell
    counts as not run; with `set_aside` (the sweep holding the lock) it is moved to
    OUT/rejected/ beside a .reason.txt, with one warning line."""
    rows: dict[str, dict[str, Any]] = {}
    for path in sorted((out_dir / CELLS_DIR).glob("*.json")):
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
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    os.replace(path, target)
    target.with_name(f"{target.name}.reason.txt").write_text(reason + "\n")
    return target


class SweepLocked(BadInput):
    """Another sweep is writing into this results folder."""


class FolderLock:
    """One sweep per results folder: an fcntl lock on OUT/.lock, held while this object is
    open. The kernel drops it when the process dies (even of SIGKILL), so a killed sweep's
    folder is never locked for its resume."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK_NAME
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SweepLocked(f"{out_dir} is in use by another sweep (PID {holder}); wait for "
                              "it to finish or give another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd: int | None = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the lock; the file stays (unlinking would race)
            self.fd = None


class SweepDir:
    """The results directory of a sweep: its rows in memory, mirrored to disk atomically.
    Holds the folder's lock from creation to `close`."""

    def __init__(self, out_dir: Path, owner: SweepSpec | None = None) -> None:
        self.path = out_dir
        self.cells = out_dir / CELLS_DIR
        had_lock_file = (out_dir / LOCK_NAME).exists()
        self.lock = FolderLock(out_dir)  # before anything in the folder is touched
        try:
            if owner is not None:  # a folder holding another sweep is refused untouched
                try:
                    check_owner(owner, out_dir)
                except BadInput:
                    if not had_lock_file:  # leave the folder as it was found
                        self.lock.path.unlink(missing_ok=True)
                    raise
            self.cells.mkdir(exist_ok=True)
            clean_partial_files(out_dir)
            self.rows = load_cells(out_dir, set_aside=True)
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
