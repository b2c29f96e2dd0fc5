"""The result row: its columns (base units, named by unit), atomic writes, loading.

No torch here: plotting and checking import this module and must start fast.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ffbench.measure.categories import CATEGORIES

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1
CELLS_DIR = "cells"
PARQUET_NAME = "results.parquet"
STATUSES = ("ok", "oom", "timeout", "error", "crashed", "skipped")
FAILED_STATUSES = ("oom", "timeout", "error", "crashed")  # ran, but left no measurement
# text that means the device or the host ran out of memory (CPU allocators raise RuntimeError)
OOM_MARKERS = ("MemoryError", "OutOfMemoryError", "CUDA out of memory", "can't allocate memory")

_INT, _FLOAT, _STR = pa.int64(), pa.float64(), pa.string()

IDENTITY = {
    "schema_version": _INT, "sweep_id": _STR, "cell_id": _STR,
    "algorithm": _STR, "n_layers": _INT, "hidden": _INT, "batch_size": _INT,
    "eval_batch_size": _INT, "rows_per_step": _INT, "dataset": _STR, "device": _STR,
    "dtype": _STR, "goodness": _STR, "threshold": _FLOAT, "lr": _FLOAT, "seed": _INT,
    "warmup_steps": _INT, "steps": _INT, "epochs": _INT, "threads": _INT,
    "eval_chunk": _INT, "compile": pa.bool_(), "options": _STR,
}
OUTCOME = {"status": _STR, "error": _STR, "returncode": _INT, "cell_wall_s": _FLOAT}
MEMORY = dict.fromkeys(
    (
        "static_bytes",
        "train_peak_allocated_bytes", "train_peak_reserved_bytes",
        "eval_peak_allocated_bytes", "eval_peak_reserved_bytes",
        "nvml_peak_used_bytes", "nvml_process_peak_used_bytes", "cpu_peak_rss_bytes",
        "train_peak_tracked_bytes", "eval_peak_tracked_bytes",
        "predicted_train_peak_bytes", "predicted_eval_peak_bytes",
        "host_peak_tracked_bytes",
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
QUALITY = {"test_accuracy": _FLOAT, "layer_accuracy": _STR, "final_train_loss": _FLOAT}
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


class ResultsError(ValueError):
    """Results that cannot be read; the message names the file."""


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename over."""
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
    _atomic_write(path, (json.dumps(row, indent=1, sort_keys=False) + "\n").encode())


def read_row_json(path: Path) -> dict[str, Any]:
    try:
        row = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not a readable result row ({exc})") from None
    if not isinstance(row, dict):
        raise ResultsError(f"{path}: not a result row (a JSON {type(row).__name__}, not an object)")
    if row.get("schema_version") != SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema version {row.get('schema_version')!r}, "
                           f"this ffbench reads {SCHEMA_VERSION}")
    return make_row(**{k: v for k, v in row.items() if k in COLUMNS})


def rows_to_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist([make_row(**row) for row in rows], schema=SCHEMA)


def write_parquet(rows: Iterable[dict[str, Any]], path: Path) -> None:
    """All rows as one parquet file, replaced atomically."""
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(rows_to_table(rows), sink)
    _atomic_write(path, sink.getvalue().to_pybytes())


def read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

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
            f"{path}: schema version {sorted(versions)}, this ffbench reads {SCHEMA_VERSION}"
        )
    return table.to_pandas()


def load(paths: Iterable[Path | str]) -> pd.DataFrame:
    """Rows from results directories (their results.parquet, else cells/*.json) and
    parquet or JSON files, in one DataFrame with a `source` column naming each input."""
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
        if (path / PARQUET_NAME).exists():
            return read_parquet(path / PARQUET_NAME)
        cells = sorted((path / CELLS_DIR).glob("*.json"))
        if not cells:
            raise ResultsError(f"{path}: no {PARQUET_NAME} and no {CELLS_DIR}/*.json in it")
        return rows_to_table(read_row_json(p) for p in cells).to_pandas()
    if path.suffix == ".json":
        return pd.DataFrame([read_row_json(path)], columns=list(COLUMNS))
    return read_parquet(path)


def measured_peak_bytes(frame: pd.DataFrame, phase: str) -> pd.Series:
    """A phase's ("train" or "eval") peak per row: CUDA allocated where measured, else the
    tracked peak (CPU runs have no allocator peak)."""
    allocated = frame[f"{phase}_peak_allocated_bytes"]
    return allocated.where(allocated.notna(), frame[f"{phase}_peak_tracked_bytes"])
