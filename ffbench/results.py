"""The result row: its columns (base units, named by unit), atomic writes, loading.

No torch here: plotting and checking import this module and must start fast. One home for
the row, which is why it runs past 400 lines: its schema, the checks of a row read back, and
the files rows live in (written atomically, read without following links).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin, get_type_hints

import pyarrow as pa

from ffbench.errors import BadInput
from ffbench.measure.categories import CATEGORIES
from ffbench.settings.cell import IDENTITY_FIELDS, CellSpec
from ffbench.settings.paths import FILE_KINDS, file_kind, unwritable_because

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
CELLS_DIR = "cells"
PARQUET_NAME = "results.parquet"
FOLDER = "folder"  # column of a loaded frame: the source a row was read from, before a split
STATUSES = ("ok", "oom", "timeout", "error", "crashed", "diverged", "skipped")
# ran, but left no (meaningful) measurement; diverged: the loss became NaN or infinite
FAILED_STATUSES = ("oom", "timeout", "error", "crashed", "diverged")
# text that means the device or the host ran out of memory (CPU allocators raise RuntimeError)
OOM_MARKERS = ("MemoryError", "OutOfMemoryError", "CUDA out of memory", "can't allocate memory")

_INT, _FLOAT, _STR = pa.int64(), pa.float64(), pa.string()


def _column_type(name: str) -> pa.DataType:
    """A setting's column type, from its CellSpec annotation (options: JSON text)."""
    hint = get_type_hints(CellSpec)[name]
    kinds = [arg for arg in get_args(hint) if arg is not type(None)] or [hint]
    base = get_origin(kinds[0]) or kinds[0]
    return {int: _INT, float: _FLOAT, str: _STR, bool: pa.bool_(), dict: _STR}[base]


# Every setting that decides what is measured (the settings table's identity settings, in
# its order), between the row's own identity and the rows it pushed per step.
IDENTITY = {
    "schema_version": _INT, "sweep_id": _STR, "cell_id": _STR, "algorithm": _STR,
    **{name: _column_type(name) for name in IDENTITY_FIELDS if name != "algorithm"},
    "rows_per_step": _INT,
}
OUTCOME = {
    "status": _STR, "error": _STR, "returncode": _INT, "cell_wall_s": _FLOAT,
    "start_method": _STR,  # how the cell's process started: spawn, fork-server or worker
    "diverged_at_step": _INT,  # 1-based timed train step whose loss was first NaN/inf
}
MEMORY = dict.fromkeys(
    (
        "static_bytes",
        "train_peak_allocated_bytes", "train_peak_reserved_bytes",
        "eval_peak_allocated_bytes", "eval_peak_reserved_bytes",
        "nvml_peak_used_bytes", "nvml_process_peak_used_bytes", "cpu_peak_rss_bytes",
        "train_peak_tracked_bytes", "eval_peak_tracked_bytes",
        "predicted_train_peak_bytes", "predicted_eval_peak_bytes",
        "predicted_train_peak_allocated_bytes", "predicted_train_peak_reserved_bytes",
        "predicted_eval_peak_allocated_bytes", "predicted_eval_peak_reserved_bytes",
        "host_peak_tracked_bytes",
        "offloaded_bytes_per_step",  # to host memory in the forward, back in the backward
        *(f"mem_{name}_bytes" for name in CATEGORIES),
        *(f"eval_mem_{name}_bytes" for name in CATEGORIES),
    ),
    _INT,
)
TIME = dict.fromkeys(
    ("step_time_median_s", "step_time_iqr_s", "step_time_min_s", "eval_time_s", "samples_per_s"),
    _FLOAT,
)
WORK = {
    "train_flops_per_step": _INT, "eval_flops_per_batch": _INT,
    "achieved_flops_per_s": _FLOAT, "calibrated_flops_per_s": _FLOAT, "efficiency": _FLOAT,
}
QUALITY = {
    "test_accuracy": _FLOAT, "layer_accuracy": _STR, "final_train_loss": _FLOAT,
    # JSON [[epoch, train_seconds, test_accuracy], ...]: after each pass over the training set,
    # the training seconds so far (evaluations left out); null where nothing was trained
    "accuracy_curve": _STR,
}
ENVIRONMENT = dict.fromkeys(
    (
        "host", "gpu_name", "driver_version", "cuda_version", "torch_version",
        "ffbench_version", "git_sha", "python_version", "cpu_model", "started_at",
    ),
    _STR,
)
SCHEMA = pa.schema(
    [
        pa.field(name, kind)
        for group in (IDENTITY, OUTCOME, MEMORY, TIME, WORK, QUALITY, ENVIRONMENT)
        for name, kind in group.items()
    ]
)
COLUMNS = tuple(SCHEMA.names)
_INT_COLUMNS = frozenset(f.name for f in SCHEMA if f.type == _INT)


class ResultsError(BadInput):
    """Results that cannot be read; the message names the file (bad input: exit 2)."""


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT_EXACT_INT = 2**53  # the largest integer a float64 column takes exactly
SIGNED_COLUMNS = {"returncode"}  # negative: killed by that signal
CELL_ID_PATTERN = re.compile(r"[0-9a-f]{12}")


def row_problem(row: Any) -> str | None:
    """Why this row (as read from disk) cannot be stored or used, or None if it can: every
    column of the schema type and range, a known status, a cell id that is its settings'."""
    if not isinstance(row, dict):
        return f"not a result row (a JSON {type(row).__name__}, not an object)"
    row = _whole_floats_as_ints(row)
    if row.get("schema_version") != SCHEMA_VERSION:
        return f"schema version {row.get('schema_version')!r}, this ffbench reads {SCHEMA_VERSION}"
    for name in COLUMNS:
        problem = _value_problem(name, SCHEMA.field(name).type, row.get(name))
        if problem:
            return problem
    if row.get("status") not in STATUSES:
        return f"status {row.get('status')!r} is not one of {', '.join(STATUSES)}"
    return _cell_id_problem(row)


def _whole_floats_as_ints(row: dict[str, Any]) -> dict[str, Any]:
    """128.0 in an integer column is 128 (pandas writes an int column with gaps as floats)."""
    return {
        name: int(value) if (
            name in _INT_COLUMNS
            and isinstance(value, float) and value.is_integer()
        ) else value
        for name, value in row.items()
    }


def _value_problem(name: str, kind: pa.DataType, value: Any) -> str | None:
    if value is None:
        return None
    if kind == pa.bool_():
        ok = isinstance(value, bool)
    elif kind == _STR:
        ok = isinstance(value, str)
    elif kind == _INT:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not (INT64_MIN if name in SIGNED_COLUMNS else 0) <= value <= INT64_MAX:
            return f"column {name} = {value} is out of range"
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(value, int) and abs(value) > FLOAT_EXACT_INT:
            return f"column {name} = {value} is out of range"  # parquet refuses to round it
    return None if ok else f"column {name} = {value!r:.60} is not a {kind}"


def spec_of_row(row: dict[str, Any]) -> CellSpec:
    """The cell a row was measured for. A setting missing from the row (a column added since
    it was written, such as optimizer, or target_gpu, which only meta rows carry) takes
    CellSpec's default, as it did when the row was written. BadInput, TypeError or
    ValueError if its settings are not a cell."""
    row = _whole_floats_as_ints(row)
    fields = {name: row[name] for name in IDENTITY_FIELDS if row.get(name) is not None}
    fields["options"] = json.loads(fields.get("options") or "{}")
    return CellSpec(**fields)


def _cell_id_problem(row: dict[str, Any]) -> str | None:
    """A row that names a cell must be that cell's: its id is the hash of its settings (as
    ids are made now, or were made before settings that do nothing in an algorithm stopped
    counting for it)."""
    from ffbench.algorithms.resolve import cell_id, identity
    from ffbench.settings.cell import cell_id_of

    stored = row.get("cell_id")
    if stored is None:
        return None
    if not CELL_ID_PATTERN.fullmatch(stored):
        return f"cell_id {stored!r:.40} is not 12 hex digits"
    try:
        spec = spec_of_row(row)
        if not _checkable(spec.algorithm):  # a plugin not installed (or broken) here
            return None
        # a row records the threads torch used; the cell may have left them to torch
        variants = (spec, dataclasses.replace(spec, threads=None))
        ids = {cell_id(one) for one in variants}
        ids |= {cell_id_of(identity(one, legacy=True)) for one in variants}
    except (BadInput, TypeError, ValueError) as exc:
        return f"settings that are not a cell ({exc})"
    if stored not in ids:
        return f"cell_id {stored} does not match its settings (they give {cell_id(spec)})"
    return None


@functools.cache
def _checkable(algorithm: str) -> bool:
    """Whether rows of `algorithm` can have their cell ids checked: its class (which
    resolves its settings) loads here. A plugin not installed, or one that does not load,
    is said once; its rows are read as they are, their ids unchecked."""
    from ffbench.algorithms import registry

    failure = registry.load_failure(algorithm)
    if failure is not None:
        log.warning("rows of algorithm %r are read with their cell ids unchecked: %s",
                    algorithm, failure)
    return failure is None


def checked_row(row: Any, source: Path | str) -> dict[str, Any]:
    """The row, every column present, or ResultsError naming the source and the reason."""
    problem = row_problem(row)
    if problem:
        raise ResultsError(f"{source}: {problem}")
    return make_row(**{k: v for k, v in _whole_floats_as_ints(row).items() if k in COLUMNS})


def make_row(**values: Any) -> dict[str, Any]:
    """A full row: every column present, None where not given. Unknown names are a bug."""
    unknown = set(values) - set(COLUMNS)
    if unknown:
        raise KeyError(f"not result columns: {sorted(unknown)}")
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row["schema_version"] = SCHEMA_VERSION
    row.update(values)
    if isinstance(row["options"], dict):
        row["options"] = json.dumps(row["options"], sort_keys=True)
    return row


MAX_ROW_FILE_BYTES = 1 << 20  # a row file is a few KB; a bigger one is not a row


class NotARegularFile(ResultsError):
    """A path ffbench would write (or read) that is not a regular file: a link, a FIFO, a
    device, a directory. Writing would follow the link or replace the special file;
    reading a FIFO or a device would block or never end."""


def check_regular_target(path: Path, flag: str = "") -> None:
    """`path` is a regular file or nothing yet: ffbench replaces no link and no special
    file (NotARegularFile, naming the path and the flag, if any)."""
    problem = unwritable_because(path, flag)
    if problem is not None:
        raise NotARegularFile(problem)


def read_regular(path: Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes. A FIFO, a device or a
    directory is refused without blocking (the open does not wait for a writer), and so is
    a file beyond `limit` (NotARegularFile or ResultsError, naming the path)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ResultsError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise NotARegularFile(f"{path} is {kind}, not a regular {what}")
        if info.st_size > limit:
            raise ResultsError(f"{path}: {info.st_size} bytes, more than a {what} holds "
                               f"(at most {limit})")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # grew while read
        raise ResultsError(f"{path}: more than a {what} holds (at most {limit} bytes)")
    return data


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename over. Only a
    regular file (or nothing) is replaced: a link, a FIFO or a device at `path` is refused
    (NotARegularFile), never followed nor replaced."""
    check_regular_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; results are for sharing
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_row_json(row: dict[str, Any], path: Path) -> None:
    atomic_write(path, (json.dumps(row, indent=1, sort_keys=False) + "\n").encode())


def read_row_json(path: Path) -> dict[str, Any]:
    """A row from a JSON file, validated (ResultsError naming the file and the reason)."""
    try:
        row = json.loads(read_regular(path, MAX_ROW_FILE_BYTES, "result row"))
    except (ValueError, RecursionError) as exc:
        raise ResultsError(f"{path}: not a readable result row ({exc})") from None
    return checked_row(row, path)


def rows_to_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([make_row(**row) for row in rows], schema=SCHEMA)


def write_parquet(rows: Iterable[dict[str, Any]], path: Path) -> None:
    """All rows as one parquet file, replaced atomically."""
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(rows_to_table(rows), sink)
    atomic_write(path, sink.getvalue().to_pybytes())


def read_parquet(path: Path) -> pd.DataFrame:
    return parquet_rows(path).to_pandas()


def parquet_rows(path: Path) -> pa.Table:
    """A results parquet's valid rows (each row left out named in a warning line)."""
    import pyarrow.parquet as pq

    kind = file_kind(path, follow=True)
    if kind is not None:  # a FIFO would block the read, a device never end
        raise NotARegularFile(f"{path} is {kind}, not a parquet file")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(f"{path}: not a readable parquet file ({exc})") from None
    if "schema_version" not in table.column_names:
        raise ResultsError(f"{path}: not an ffbench results file (no schema_version column)")
    if table.num_rows == 0:
        raise ResultsError(f"{path}: no result rows in it")
    versions = set(table.column("schema_version").to_pylist())
    if versions != {SCHEMA_VERSION}:
        raise ResultsError(
            f"{path}: schema version {sorted(versions, key=str)}, this ffbench reads "
            f"{SCHEMA_VERSION}"
        )
    return valid_rows((_attempt(checked_row, row, path) for row in table.to_pylist()), path)


def _attempt(read: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any] | ResultsError:
    """A checked row, or the ResultsError saying why it is not one (for `valid_rows`)."""
    try:
        return read(*args)
    except ResultsError as exc:
        return exc


def valid_rows(rows: Iterable[dict[str, Any] | ResultsError], source: Path) -> pa.Table:
    """The checked rows as a table; each ResultsError among them (a row left out) is named
    in one warning line. None left: ResultsError with the first reason."""
    good: list[dict[str, Any]] = []
    problems: list[ResultsError] = []
    for row in rows:
        if isinstance(row, ResultsError):
            problems.append(row)
        else:
            good.append(row)
    if not good:
        raise problems[0] if problems else ResultsError(f"{source}: no result rows in it")
    for problem in problems:
        log.warning("left out: %s", problem)
    return rows_to_table(good)


def load(paths: Iterable[Path | str]) -> pd.DataFrame:
    """Rows from results directories (their cells/*.json, the truth; their results.parquet
    only where there is no cell file: a copied result file) and parquet or JSON files, in
    one DataFrame with a `source` column naming each input."""
    import pandas as pd

    frames = []
    for raw in paths:
        path = Path(raw)
        frame = _load_one(path)
        frame["source"] = str(path)
        frames.append(frame)
    if not frames:
        raise ResultsError("no results given")
    return pd.concat(frames, ignore_index=True)


def _load_one(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory")
    if path.is_dir():
        if not any(path.iterdir()):
            raise ResultsError(f"{path}: empty directory (no {PARQUET_NAME}, no {CELLS_DIR}/)")
        # each cell's row is written as the cell ends; the parquet only now and then (and
        # not at all after a kill): the cells are the truth, a stale or broken parquet
        # beside them neither hides nor blocks a row
        cells = row_files(path)
        if cells:
            return valid_rows((_attempt(read_row_json, cell) for cell in cells),
                              path / CELLS_DIR).to_pandas()
        if (path / PARQUET_NAME).exists():
            return read_parquet(path / PARQUET_NAME)
        raise ResultsError(f"{path}: no {PARQUET_NAME} and no {CELLS_DIR}/*.json in it")
    if path.suffix == ".json":
        return pd.DataFrame([read_row_json(path)], columns=list(COLUMNS))
    return read_parquet(path)


def row_files(folder: Path) -> list[Path]:
    """The row files in FOLDER/cells (sorted); none where cells/ is not a directory."""
    cells = folder / CELLS_DIR
    return sorted(cells.glob("*.json")) if cells.is_dir() else []


def as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each row's source the folder it was read from (undoing a split into
    configurations, sweep.result_sets.by_configuration): the verdict compares optimizers
    and eval forms itself."""
    return frame.assign(source=frame[FOLDER]) if FOLDER in frame else frame


def measured_peak_bytes(frame: pd.DataFrame, phase: str) -> pd.Series:
    """A phase's ("train" or "eval") peak per row: CUDA allocated where measured, else the
    tracked peak (CPU runs have no allocator peak)."""
    allocated = frame[f"{phase}_peak_allocated_bytes"]
    return allocated.where(allocated.notna(), frame[f"{phase}_peak_tracked_bytes"])
